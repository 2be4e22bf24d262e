//! Moving average convergence/divergence (Appel; TA-Lib `MACD`).

use super::ema::Ema;

/// MACD line, signal and histogram with TA-Lib's seeding.
///
/// TA-Lib starts both EMAs on the same bar: the slow EMA is seeded with the mean of the first
/// `slow` inputs, and the fast EMA with the mean of the `fast` inputs *ending on that same bar*
/// (it ignores the first `slow - fast` inputs). The signal is an EMA of the line, seeded with the
/// mean of its first `signal` values. All three outputs are first defined after
/// `slow + signal - 1` inputs (TA-Lib lookback `slow - 1 + signal - 1`). If `slow < fast` the two
/// periods are swapped, as TA-Lib does.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    skip: usize,
    seen: usize,
}

/// The three MACD outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// fast EMA − slow EMA
    pub line: f64,
    /// EMA of the line
    pub signal: f64,
    /// line − signal
    pub histogram: f64,
}

impl Macd {
    /// A MACD with the given periods (each >= 1).
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
        Macd { fast: Ema::new(fast), slow: Ema::new(slow), signal: Ema::new(signal), skip: slow - fast, seen: 0 }
    }

    /// Feeds one input; all outputs are `NaN` until defined.
    #[inline]
    pub fn update(&mut self, x: f64) -> MacdValue {
        const UNDEFINED: MacdValue = MacdValue { line: f64::NAN, signal: f64::NAN, histogram: f64::NAN };
        if x.is_nan() {
            return UNDEFINED;
        }
        self.seen += 1;
        let slow = self.slow.update(x);
        let fast = if self.seen > self.skip { self.fast.update(x) } else { f64::NAN };
        if slow.is_nan() || fast.is_nan() {
            return UNDEFINED;
        }
        let line = fast - slow;
        let signal = self.signal.update(line);
        if signal.is_nan() {
            return UNDEFINED;
        }
        MacdValue { line, signal, histogram: line - signal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_defined_after_slow_plus_signal_minus_one() {
        let mut m = Macd::new(3, 5, 2);
        let outs: Vec<MacdValue> = (0..10).map(|i| m.update(i as f64 * 1.5 + (i % 3) as f64)).collect();
        let first = outs.iter().position(|o| !o.line.is_nan()).unwrap();
        assert_eq!(first, 5 + 2 - 2);
        assert!(!outs[first].signal.is_nan());
    }
}
