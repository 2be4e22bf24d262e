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
/// The sum uses compensated summation (TwoSum) and the variance Welford's update (with the
/// sliding-window form once full), so accuracy does not decay over millions of bars; every
/// 1024 updates both are recomputed exactly from the window to bound any residual drift.
#[derive(Debug, Clone)]
pub struct RollingMoments {
    win: Window,
    sum: f64,
    comp: f64,
    mean: f64,
    m2: f64,
    since_exact: u32,
}

impl RollingMoments {
    /// Moments over windows of `n` values.
    pub fn new(n: usize) -> Self {
        RollingMoments { win: Window::new(n), sum: 0.0, comp: 0.0, mean: 0.0, m2: 0.0, since_exact: 0 }
    }

    /// True once the window holds `n` values.
    pub fn is_full(&self) -> bool {
        self.win.is_full()
    }

    /// Adds a value (evicting the oldest when full).
    #[inline]
    pub fn push(&mut self, x: f64) {
        let old = self.win.push(x);
        self.add_sum(x);
        match old {
            None => {
                let n = self.win.len() as f64;
                let delta = x - self.mean;
                self.mean += delta / n;
                self.m2 += delta * (x - self.mean);
            }
            Some(o) => {
                self.add_sum(-o);
                let n = self.win.len() as f64;
                let old_mean = self.mean;
                self.mean = old_mean + (x - o) / n;
                self.m2 += (x - o) * (x - self.mean + o - old_mean);
            }
        }
        self.since_exact += 1;
        if self.since_exact >= 1024 {
            self.recompute();
        }
    }

    #[inline]
    fn add_sum(&mut self, x: f64) {
        let (t, err) = two_sum(self.sum, x);
        self.sum = t;
        self.comp += err;
    }

    fn recompute(&mut self) {
        self.since_exact = 0;
        self.sum = 0.0;
        self.comp = 0.0;
        let vals: Vec<f64> = self.win.iter().collect();
        for &v in &vals {
            self.add_sum(v);
        }
        let n = vals.len().max(1) as f64;
        self.mean = self.sum() / n;
        let mean = self.mean;
        self.m2 = vals.iter().map(|v| (v - mean) * (v - mean)).sum();
    }

    /// Sum of the values held (compensated).
    #[inline]
    pub fn sum(&self) -> f64 {
        self.sum + self.comp
    }

    /// Mean of the values held.
    #[inline]
    pub fn mean(&self) -> f64 {
        self.sum() / self.win.len().max(1) as f64
    }

    /// Population variance (divide by n) of the values held; never negative.
    #[inline]
    pub fn variance(&self) -> f64 {
        (self.m2 / self.win.len().max(1) as f64).max(0.0)
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
