//! Streaming technical indicators with TA-Lib's values, seeding and first defined bar.
//!
//! Every indicator is a small struct with an `update` method taking the newest input and
//! returning the newest output, in O(1) time per bar (amortised O(1) for [`Highest`] and
//! [`Lowest`]). Outputs are `f64::NAN` while undefined, exactly where TA-Lib (0.8, default
//! settings, no unstable period) returns no value.
//!
//! Undefined inputs: an input of `NaN` yields `NaN` and leaves the state untouched, so an
//! indicator fed from another indicator starts at the first defined input (as if TA-Lib were
//! called on the defined part of the series), and a gap in the middle is skipped rather than
//! poisoning the state.
//!
//! | indicator | source of the formula |
//! | --- | --- |
//! | [`Sma`] | arithmetic mean of the last n inputs |
//! | [`Ema`] | alpha = 2/(n+1), seeded with the SMA of the first n inputs (TA-Lib default) |
//! | [`Rsi`] | Wilder (1978) smoothing, seeded with simple means of the first n changes |
//! | [`Macd`] | Appel; TA-Lib seeds the fast EMA late so both EMAs start on the same bar |
//! | [`Atr`] | Wilder (1978); true range undefined on the first bar; seed = mean of TR[1..=n] |
//! | [`BBands`] | Bollinger; SMA middle, population standard deviation (divide by n) |
//! | [`StdDev`] | population standard deviation over n inputs, times `nbdev` |
//! | [`Highest`], [`Lowest`] | TA-Lib MAX / MIN: window includes the current bar |
//! | [`Roc`] | TA-Lib ROC: `(x / x[n] - 1) * 100`, in percent points |
//! | [`Cross`] | `a > b and a[1] <= b[1]` (above) / `a < b and a[1] >= b[1]` (below) |

mod atr;
mod bbands;
mod cross;
mod ema;
mod extremes;
mod macd;
mod roc;
mod rsi;
mod sma;
mod window;

pub use atr::Atr;
pub use bbands::{BBands, StdDev};
pub use cross::{Cross, CrossDirection};
pub use ema::Ema;
pub use extremes::{Highest, Lowest};
pub use macd::Macd;
pub use roc::Roc;
pub use rsi::Rsi;
pub use sma::Sma;
pub use window::{RollingMoments, Window, two_sum};

/// TA-Lib's `TA_IS_ZERO`: |v| < 1e-8.
pub(crate) fn ta_is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// TA-Lib's `TA_IS_ZERO_OR_NEG`: v < 1e-8.
pub(crate) fn ta_is_zero_or_neg(v: f64) -> bool {
    v < 0.000_000_01
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Asserts two series are equal to `rel` relative tolerance, NaN matching NaN.
    pub fn assert_series(got: &[f64], want: &[f64], rel: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            if w.is_nan() {
                assert!(g.is_nan(), "index {i}: expected undefined, got {g}");
            } else {
                let tol = rel * w.abs().max(1e-12);
                assert!((g - w).abs() <= tol, "index {i}: got {g}, want {w}");
            }
        }
    }
}
