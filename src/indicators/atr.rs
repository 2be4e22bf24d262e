//! Average true range (Wilder 1978; TA-Lib `ATR`).

/// ATR over `n` bars. The true range of a bar is `max(high, prev_close) - min(low, prev_close)`
/// and is undefined on the first bar; the first ATR (after `n + 1` bars, TA-Lib lookback `n`) is
/// the mean of the first `n` true ranges, then `atr = (atr * (n - 1) + tr) / n`. With `n = 1`
/// the ATR is the true range itself.
#[derive(Debug, Clone)]
pub struct Atr {
    n: usize,
    prev_close: f64,
    seen: usize,
    acc: f64,
    value: f64,
}

impl Atr {
    /// An ATR over period `n >= 1`.
    pub fn new(n: usize) -> Self {
        Atr { n: n.max(1), prev_close: f64::NAN, seen: 0, acc: 0.0, value: f64::NAN }
    }

    /// Feeds one bar; returns the ATR once defined, else `NaN`. A bar with any undefined field
    /// is skipped.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> f64 {
        if high.is_nan() || low.is_nan() || close.is_nan() {
            return f64::NAN;
        }
        let pc = self.prev_close;
        self.prev_close = close;
        if pc.is_nan() {
            return f64::NAN;
        }
        let mut tr = high - low;
        let a = (pc - high).abs();
        if a > tr {
            tr = a;
        }
        let b = (pc - low).abs();
        if b > tr {
            tr = b;
        }
        let n = self.n as f64;
        if self.seen < self.n {
            self.seen += 1;
            self.acc += tr;
            if self.seen == self.n {
                self.value = self.acc / n;
            }
            return self.value;
        }
        self.value = (self.value * (n - 1.0) + tr) / n;
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_mean_of_first_n_true_ranges() {
        let mut a = Atr::new(2);
        assert!(a.update(10.0, 9.0, 9.5).is_nan());
        assert!(a.update(11.0, 9.0, 10.0).is_nan()); // tr 2
        assert_eq!(a.update(10.5, 10.0, 10.2), 1.25); // tr 0.5 -> (2 + 0.5) / 2
        assert_eq!(a.update(12.2, 10.2, 12.0), (1.25 + 2.0) / 2.0);
    }
}
