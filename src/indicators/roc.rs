//! Rate of change (TA-Lib `ROC`).

use super::window::Window;

/// Rate of change over `n` inputs in percent points, as TA-Lib's `ROC`:
/// `(x / x_n_ago - 1) * 100`, and 0 when the old value is 0. First defined after `n + 1` inputs.
/// Note the unit: `roc(close, 10) > 5` means "up more than 5%"; `5%` would mean 0.05.
#[derive(Debug, Clone)]
pub struct Roc {
    win: Window,
}

impl Roc {
    /// A ROC over `n >= 1` inputs.
    pub fn new(n: usize) -> Self {
        Roc { win: Window::new(n.max(1) + 1) }
    }

    /// Feeds one input; returns the ROC once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        self.win.push(x);
        if !self.win.is_full() {
            return f64::NAN;
        }
        let old = self.win.back(self.win.capacity() - 1).unwrap_or(f64::NAN);
        if old != 0.0 { ((x / old) - 1.0) * 100.0 } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_change() {
        let mut r = Roc::new(2);
        assert!(r.update(100.0).is_nan());
        assert!(r.update(50.0).is_nan());
        assert!((r.update(110.0) - 10.0).abs() < 1e-12);
    }
}
