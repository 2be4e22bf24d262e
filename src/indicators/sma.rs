//! Simple moving average (TA-Lib `SMA`).

use super::window::two_sum;

/// Simple moving average of the last `n` defined inputs. First defined after `n` inputs
/// (TA-Lib lookback `n - 1`). The running sum is compensated (Knuth's branch-free TwoSum), so
/// the mean stays within an ulp or two of the exact window mean however long the series.
#[derive(Debug, Clone)]
pub struct Sma {
    buf: Box<[f64]>,
    pos: usize,
    count: usize,
    n: f64,
    sum: f64,
    comp: f64,
}

impl Sma {
    /// An SMA over `n >= 1` inputs.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Sma { buf: vec![0.0; n].into_boxed_slice(), pos: 0, count: 0, n: n as f64, sum: 0.0, comp: 0.0 }
    }

    /// Feeds one input; returns the mean once `n` inputs were seen, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        let len = self.buf.len();
        let old = std::mem::replace(&mut self.buf[self.pos], x);
        self.pos += 1;
        if self.pos == len {
            self.pos = 0;
        }
        if self.count == len {
            // Both the difference and the running sum keep their rounding errors (TwoSum), so
            // `sum + comp` stays the exact window sum to within an ulp, whatever the inputs'
            // magnitudes (e.g. volumes that jump by orders of magnitude).
            let (d, e0) = two_sum(x, -old);
            let (t, e1) = two_sum(self.sum, d);
            self.sum = t;
            self.comp += e0 + e1;
            (self.sum + self.comp) / self.n
        } else {
            let (t, e) = two_sum(self.sum, x);
            self.sum = t;
            self.comp += e;
            self.count += 1;
            if self.count == len { (self.sum + self.comp) / self.n } else { f64::NAN }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::testutil::assert_series;

    #[test]
    fn first_value_after_n_inputs() {
        let mut s = Sma::new(3);
        let out: Vec<f64> = [1.0, 2.0, 3.0, 4.0, f64::NAN, 5.0].iter().map(|&x| s.update(x)).collect();
        assert_series(&out, &[f64::NAN, f64::NAN, 2.0, 3.0, f64::NAN, 4.0], 1e-15);
    }

    #[test]
    fn a_one_bar_average_is_the_value_itself() {
        let mut s = Sma::new(1);
        for x in [1.0, 792_762.125_758_915_8, 306_505.242_711_333_9, 1e-3, 962_272.949_869_410_4] {
            assert_eq!(s.update(x), x);
        }
    }

    #[test]
    fn stays_exact_on_decimal_grids() {
        let mut s = Sma::new(10);
        let mut last = 0.0;
        for i in 0..1_000_000u64 {
            last = s.update(1.0 + ((i * 7919) % 1000) as f64 * 1e-6);
        }
        let exact: f64 = (999_990..1_000_000u64).map(|i| 1.0 + ((i * 7919) % 1000) as f64 * 1e-6).sum::<f64>() / 10.0;
        assert!((last - exact).abs() <= 2.0 * f64::EPSILON * exact, "{last} vs {exact}");
    }
}
