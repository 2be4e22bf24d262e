//! Research: running a bot over history as an experiment, not as a trading bot. Today the
//! backtest's typed plan ([`backtest`]: load the bot and its bars once, run it, journal it);
//! parameter sweeps and walk-forward windows build on it.

pub mod backtest;
