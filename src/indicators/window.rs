//! Fixed-size windows: a ring buffer, and running mean and variance over it.

/// Knuth's TwoSum: `a + b` rounded, and the exact rounding error, without branches.
#[inline(always)]
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bp = s - a;
    let err = (a - (s - bp)) + (b - bp);
    (s, err)
}

/// A ring buffer of the last `n` values pushed.
#[derive(Debug, Clone)]
pub struct Window {
    buf: Box<[f64]>,
    pos: usize,
    len: usize,
}

impl Window {
    /// An empty window of capacity `n` (at least 1).
    pub fn new(n: usize) -> Self {
        Window { buf: vec![0.0; n.max(1)].into_boxed_slice(), pos: 0, len: 0 }
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Number of values held (at most the capacity).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once `capacity` values were pushed.
    pub fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// Pushes a value; returns the value it evicted once the window is full.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let old = self.buf[self.pos];
        self.buf[self.pos] = x;
        self.pos += 1;
        if self.pos == self.buf.len() {
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            Some(old)
        } else {
            self.len += 1;
            None
        }
    }

    /// The value pushed `k` pushes ago (`0` = newest), if held.
    #[inline]
    pub fn back(&self, k: usize) -> Option<f64> {
        if k >= self.len {
            return None;
        }
        let cap = self.buf.len();
        Some(self.buf[(self.pos + cap - 1 - k) % cap])
    }

    /// The values held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let cap = self.buf.len();
        let start = (self.pos + cap - self.len) % cap;
        (0..self.len).map(move |i| self.buf[(start + i) % cap])
    }
}

/// Running mean and population variance of the last `n` values.
///
/// The sums are of deviations from a shift `k` (`Σ(x - k)` and `Σ(x - k)²`), and `k` is moved
/// to the window's mean every `n` values (recomputing both sums from the window, O(1) amortised)
/// or as soon as the sums show heavy cancellation.
/// Deviations from a nearby shift are small and exact to subtract, so the variance keeps its
/// precision even when the spread is tiny next to the values (e.g. prices near 3e5 that differ
/// in the fourth decimal), where textbook running sums or a sliding Welford update lose it.
#[derive(Debug, Clone)]
pub struct RollingMoments {
    win: Window,
    k: f64,
    s1: f64,
    s2: f64,
    since_recenter: usize,
}

impl RollingMoments {
    /// Moments over windows of `n` values.
    pub fn new(n: usize) -> Self {
        RollingMoments { win: Window::new(n), k: f64::NAN, s1: 0.0, s2: 0.0, since_recenter: 0 }
    }

    /// True once the window holds `n` values.
    pub fn is_full(&self) -> bool {
        self.win.is_full()
    }

    /// Adds a value (evicting the oldest when full).
    #[inline]
    pub fn push(&mut self, x: f64) {
        if self.k.is_nan() {
            self.k = x;
        }
        let d = x - self.k;
        match self.win.push(x) {
            None => {
                self.s1 += d;
                self.s2 += d * d;
            }
            Some(o) => {
                let e = o - self.k;
                self.s1 += d - e;
                self.s2 += d * d - e * e;
            }
        }
        self.since_recenter += 1;
        let n = self.win.len() as f64;
        let (m, q) = (self.s1 / n, self.s2 / n);
        // Re-centre every n values, and at once when the variance is a tiny remainder of the
        // sums (the shift is over ~1000 standard deviations from the mean, as right after a
        // large jump followed by a flat stretch): then the subtraction would cancel.
        let cancelling = q > 0.0 && q - m * m < 1e-6 * q;
        if self.win.is_full() && (self.since_recenter >= self.win.capacity() || cancelling) {
            self.recenter();
        }
    }

    fn recenter(&mut self) {
        self.since_recenter = 0;
        let n = self.win.len() as f64;
        let mean = self.win.iter().sum::<f64>() / n;
        self.k = mean;
        let (mut s1, mut s2) = (0.0, 0.0);
        for v in self.win.iter() {
            let d = v - mean;
            s1 += d;
            s2 += d * d;
        }
        self.s1 = s1;
        self.s2 = s2;
    }

    /// Mean of the values held.
    #[inline]
    pub fn mean(&self) -> f64 {
        self.k + self.s1 / self.win.len().max(1) as f64
    }

    /// Population variance (divide by n) of the values held; never negative.
    #[inline]
    pub fn variance(&self) -> f64 {
        let n = self.win.len().max(1) as f64;
        ((self.s2 - self.s1 * self.s1 / n) / n).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_evicts_oldest() {
        let mut w = Window::new(3);
        assert_eq!(w.push(1.0), None);
        w.push(2.0);
        w.push(3.0);
        assert!(w.is_full());
        assert_eq!(w.push(4.0), Some(1.0));
        assert_eq!(w.back(0), Some(4.0));
        assert_eq!(w.back(2), Some(2.0));
        assert_eq!(w.back(3), None);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn moments_keep_precision_when_the_spread_is_tiny() {
        let mut m = RollingMoments::new(2);
        for x in [306_605.1, 306_605.236_4, 306_605.237_3] {
            m.push(x);
        }
        let (a, b) = (306_605.236_4f64, 306_605.237_3f64);
        let exact = ((a - b) / 2.0).powi(2);
        assert!((m.variance() - exact).abs() <= 1e-6 * exact, "{} vs {exact}", m.variance());
    }

    #[test]
    fn moments_recover_after_a_jump_then_a_flat_stretch() {
        let mut m = RollingMoments::new(2);
        for x in [98.37, 306_602.605_307, 306_602.605_307 + 0.001_37] {
            m.push(x);
        }
        let exact = (0.001_37f64 / 2.0).powi(2);
        assert!((m.variance() - exact).abs() <= 1e-4 * exact, "{} vs {exact}", m.variance());
    }

    #[test]
    fn moments_match_two_pass_over_long_runs() {
        let mut m = RollingMoments::new(20);
        let xs: Vec<f64> = (0..100_000).map(|i| 1.07 + ((i as f64) * 0.37).sin() * 1e-3).collect();
        for &x in &xs {
            m.push(x);
        }
        let tail = &xs[xs.len() - 20..];
        let mean = tail.iter().sum::<f64>() / 20.0;
        let var = tail.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 20.0;
        assert!((m.mean() - mean).abs() < 1e-15);
        assert!((m.variance() - var).abs() / var < 1e-9);
    }
}
