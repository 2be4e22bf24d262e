//! Research: running a bot over history as an experiment, not as a trading bot. The backtest's
//! typed plan ([`backtest`]: load the bot and its bars once, run it, journal it) and the stress
//! test's ([`stress`]: the baseline and every scenario), and parameter sweeps ([`sweep`]: one
//! bot, many params, on every core); walk-forward windows build on them.

pub mod backtest;
pub mod stress;
pub mod sweep;
pub mod sweep_report;
pub mod tpe;
pub mod walkforward;
