//! Crossings of two series.

/// Which way a [`Cross`] detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrossDirection {
    /// `a > b` now and `a <= b` on the previous bar.
    Above,
    /// `a < b` now and `a >= b` on the previous bar.
    Below,
}

/// Detects `a` crossing `b`. The result is 1.0 (true), 0.0 (false) or `NaN` (undefined) when
/// either series is undefined on this bar or the previous one.
#[derive(Debug, Clone)]
pub struct Cross {
    dir: CrossDirection,
    prev_a: f64,
    prev_b: f64,
}

impl Cross {
    /// A crossing detector.
    pub fn new(dir: CrossDirection) -> Self {
        Cross { dir, prev_a: f64::NAN, prev_b: f64::NAN }
    }

    /// Feeds this bar's values; returns 1.0, 0.0 or `NaN`.
    #[inline]
    pub fn update(&mut self, a: f64, b: f64) -> f64 {
        let (pa, pb) = (self.prev_a, self.prev_b);
        self.prev_a = a;
        self.prev_b = b;
        // Comparisons with NaN are false, so `hit` is false when anything is undefined.
        let hit = match self.dir {
            CrossDirection::Above => (a > b) & (pa <= pb),
            CrossDirection::Below => (a < b) & (pa >= pb),
        };
        let undefined = a.is_nan() | b.is_nan() | pa.is_nan() | pb.is_nan();
        if undefined { f64::NAN } else { hit as u8 as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_crossings() {
        let mut up = Cross::new(CrossDirection::Above);
        let mut down = Cross::new(CrossDirection::Below);
        let a = [1.0, 2.0, 3.0, 2.0, 1.0];
        let b = [2.0, 2.0, 2.0, 2.0, 2.0];
        let u: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| up.update(x, y)).collect();
        let d: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| down.update(x, y)).collect();
        assert!(u[0].is_nan());
        assert_eq!(&u[1..], &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(&d[1..], &[0.0, 0.0, 0.0, 1.0]);
    }
}
