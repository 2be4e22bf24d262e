//! Relative strength index (Wilder 1978; TA-Lib `RSI`).

use super::ta_is_zero;

/// RSI over `n` changes with Wilder smoothing. The first value comes after `n + 1` defined
/// inputs (TA-Lib lookback `n`): average gain and loss are the simple means of the first `n`
/// changes; then `avg = (avg * (n - 1) + change) / n`. `RSI = 100 * gain / (gain + loss)`, and
/// 0 when `gain + loss` is below 1e-8, as in TA-Lib.
#[derive(Debug, Clone)]
pub struct Rsi {
    n: usize,
    prev: f64,
    seen: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// An RSI over period `n >= 1`.
    pub fn new(n: usize) -> Self {
        Rsi { n: n.max(1), prev: f64::NAN, seen: 0, gain: 0.0, loss: 0.0 }
    }

    fn value(&self) -> f64 {
        let total = self.gain + self.loss;
        if ta_is_zero(total) { 0.0 } else { 100.0 * (self.gain / total) }
    }

    /// Feeds one input; returns the RSI once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        let prev = self.prev;
        self.prev = x;
        if prev.is_nan() {
            return f64::NAN;
        }
        let change = x - prev;
        let n = self.n as f64;
        if self.seen < self.n {
            self.seen += 1;
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            if self.seen < self.n {
                return f64::NAN;
            }
            self.loss /= n;
            self.gain /= n;
            return self.value();
        }
        self.loss *= n - 1.0;
        self.gain *= n - 1.0;
        if change < 0.0 {
            self.loss -= change;
        } else {
            self.gain += change;
        }
        self.loss /= n;
        self.gain /= n;
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_at_index_n() {
        let mut r = Rsi::new(2);
        assert!(r.update(1.0).is_nan());
        assert!(r.update(2.0).is_nan());
        // changes +1, -0.5: gain 0.5, loss 0.25
        let v = r.update(1.5);
        assert!((v - 100.0 * 0.5 / 0.75).abs() < 1e-12);
        // flat prices give 0, like TA-Lib
        let mut flat = Rsi::new(3);
        let out: Vec<f64> = (0..5).map(|_| flat.update(7.0)).collect();
        assert_eq!(out[3], 0.0);
    }
}
