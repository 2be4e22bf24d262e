//! Highest and lowest value over a window (TA-Lib `MAX` and `MIN`).

use std::collections::VecDeque;

/// Monotonic deque of (sequence number, value) for sliding extremes.
#[derive(Debug, Clone)]
struct Extreme {
    n: u64,
    seq: u64,
    dq: VecDeque<(u64, f64)>,
    want_max: bool,
}

impl Extreme {
    fn new(n: usize, want_max: bool) -> Self {
        let n = n.max(1);
        Extreme { n: n as u64, seq: 0, dq: VecDeque::with_capacity(n + 1), want_max }
    }

    #[inline]
    fn update(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        while let Some(&(_, v)) = self.dq.back() {
            let dominated = if self.want_max { v <= x } else { v >= x };
            if dominated {
                self.dq.pop_back();
            } else {
                break;
            }
        }
        self.dq.push_back((self.seq, x));
        self.seq += 1;
        while let Some(&(s, _)) = self.dq.front() {
            if s + self.n < self.seq {
                self.dq.pop_front();
            } else {
                break;
            }
        }
        if self.seq < self.n {
            return f64::NAN;
        }
        self.dq.front().map_or(f64::NAN, |&(_, v)| v)
    }
}

/// Highest of the last `n` defined inputs, the current one included. First defined after `n`
/// inputs (TA-Lib lookback `n - 1`). Amortised O(1) per bar.
#[derive(Debug, Clone)]
pub struct Highest(Extreme);

impl Highest {
    /// Highest over `n >= 1` inputs.
    pub fn new(n: usize) -> Self {
        Highest(Extreme::new(n, true))
    }

    /// Feeds one input; returns the maximum once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        self.0.update(x)
    }
}

/// Lowest of the last `n` defined inputs, the current one included. First defined after `n`
/// inputs (TA-Lib lookback `n - 1`). Amortised O(1) per bar.
#[derive(Debug, Clone)]
pub struct Lowest(Extreme);

impl Lowest {
    /// Lowest over `n >= 1` inputs.
    pub fn new(n: usize) -> Self {
        Lowest(Extreme::new(n, false))
    }

    /// Feeds one input; returns the minimum once defined, else `NaN`.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        self.0.update(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_max_and_min() {
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let mut h = Highest::new(3);
        let mut l = Lowest::new(3);
        for (i, &x) in xs.iter().enumerate() {
            let hi = h.update(x);
            let lo = l.update(x);
            if i < 2 {
                assert!(hi.is_nan() && lo.is_nan());
            } else {
                let w = &xs[i - 2..=i];
                assert_eq!(hi, w.iter().cloned().fold(f64::MIN, f64::max));
                assert_eq!(lo, w.iter().cloned().fold(f64::MAX, f64::min));
            }
        }
    }
}
