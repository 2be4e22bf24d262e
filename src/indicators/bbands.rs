//! Bollinger bands (TA-Lib `BBANDS` with an SMA) and standard deviation (TA-Lib `STDDEV`).

use super::ta_is_zero_or_neg;
use super::window::RollingMoments;

/// Population standard deviation (divide by `n`) of the last `n` defined inputs, times `nbdev`.
/// First defined after `n` inputs. As in TA-Lib, a variance below 1e-8 gives exactly 0.
#[derive(Debug, Clone)]
pub struct StdDev {
    m: RollingMoments,
    nbdev: f64,
}

impl StdDev {
    /// A standard deviation over `n >= 1` inputs, scaled by `nbdev`.
    pub fn new(n: usize, nbdev: f64) -> Self {
        StdDev { m: RollingMoments::new(n), nbdev }
    }

    /// Feeds one input; returns the value once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        self.m.push(x);
        if !self.m.is_full() {
            return f64::NAN;
        }
        let var = self.m.variance();
        if ta_is_zero_or_neg(var) { 0.0 } else { var.sqrt() * self.nbdev }
    }
}

/// Bollinger bands: `middle = SMA(n)`, `upper/lower = middle ± k * stddev`, with the population
/// standard deviation of the same window. First defined after `n` inputs. As in TA-Lib, a
/// variance below 1e-8 counts as 0 (the bands collapse on the middle).
#[derive(Debug, Clone)]
pub struct BBands {
    m: RollingMoments,
    k_up: f64,
    k_down: f64,
}

/// The three band values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandsValue {
    /// middle + k_up * stddev
    pub upper: f64,
    /// SMA
    pub middle: f64,
    /// middle − k_down * stddev
    pub lower: f64,
}

impl BBands {
    /// Bands over `n >= 1` inputs, `k_up` and `k_down` standard deviations away.
    pub fn new(n: usize, k_up: f64, k_down: f64) -> Self {
        BBands { m: RollingMoments::new(n), k_up, k_down }
    }

    /// Feeds one input; all outputs are `NaN` until defined.
    #[inline]
    pub fn update(&mut self, x: f64) -> BandsValue {
        if x.is_nan() {
            return BandsValue { upper: f64::NAN, middle: f64::NAN, lower: f64::NAN };
        }
        self.m.push(x);
        if !self.m.is_full() {
            return BandsValue { upper: f64::NAN, middle: f64::NAN, lower: f64::NAN };
        }
        let middle = self.m.mean();
        let var = self.m.variance();
        let sd = if ta_is_zero_or_neg(var) { 0.0 } else { var.sqrt() };
        BandsValue { upper: middle + self.k_up * sd, middle, lower: middle - self.k_down * sd }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_deviation() {
        let mut s = StdDev::new(4, 1.0);
        let out: Vec<f64> = [2.0, 4.0, 4.0, 4.0, 5.0].iter().map(|&x| s.update(x)).collect();
        assert!(out[2].is_nan());
        assert!((out[3] - 0.75f64.sqrt()).abs() < 1e-12);
        let mut b = BBands::new(4, 2.0, 2.0);
        let last = [2.0, 4.0, 4.0, 4.0].iter().map(|&x| b.update(x)).last().unwrap();
        assert!((last.middle - 3.5).abs() < 1e-12);
        assert!((last.upper - (3.5 + 2.0 * 0.75f64.sqrt())).abs() < 1e-12);
    }

    #[test]
    fn tiny_variance_is_zero_like_talib() {
        let mut s = StdDev::new(3, 1.0);
        let out: Vec<f64> = [1.0, 1.00001, 1.0].iter().map(|&x| s.update(x)).collect();
        assert_eq!(out[2], 0.0);
    }
}
