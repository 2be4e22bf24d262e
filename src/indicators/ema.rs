//! Exponential moving average (TA-Lib `EMA`).

/// Exponential moving average with `alpha = 2 / (n + 1)`, seeded with the simple mean of the
/// first `n` defined inputs (TA-Lib's default, "classic" seeding). First defined after `n`
/// inputs; afterwards `ema = (x - ema) * alpha + ema` exactly as TA-Lib computes it.
#[derive(Debug, Clone)]
pub struct Ema {
    n: usize,
    k: f64,
    seen: usize,
    acc: f64,
    value: f64,
}

impl Ema {
    /// An EMA over period `n >= 1`.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Ema { n, k: 2.0 / (n as f64 + 1.0), seen: 0, acc: 0.0, value: f64::NAN }
    }

    /// Feeds one input; returns the EMA once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if self.seen < self.n {
            self.seen += 1;
            self.acc += x;
            if self.seen == self.n {
                self.value = self.acc / self.n as f64;
            }
            return self.value;
        }
        self.value = (x - self.value) * self.k + self.value;
        self.value
    }

    /// The current value (`NaN` until defined).
    pub fn value(&self) -> f64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_with_sma() {
        let mut e = Ema::new(3);
        assert!(e.update(1.0).is_nan());
        assert!(e.update(2.0).is_nan());
        assert_eq!(e.update(3.0), 2.0);
        assert_eq!(e.update(6.0), 4.0);
    }
}
