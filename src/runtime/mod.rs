//! The runtime layer: every piece of I/O, one room per concern.
//!
//! Rooms depend on earlier rooms only, in this order: [`data`] → [`library`] → [`journal`] →
//! [`broker`] → [`phases`] → [`research`] → [`bot`] (a test checks it); [`files`] (opening regular files
//! only) and [`log_repeats`] (repeated log lines summarised) are used by all. Nothing here is used by `engine`, `dsl` or `config`.
//!
//! | room | holds |
//! | --- | --- |
//! | [`data`] | CSV bars in the layouts found in the wild, time parsing and zones, the SQLite bar store |
//! | [`library`] | loading documents from disk, the market data a bundle names, rule tests, hot reload |
//! | [`journal`] | the SQLite journal: its writer and resume, its lock (one bot per journal), the bot's control records (trading state, requests, approvals), broker records, reload records, the run's own evidence, reports and the trading log |
//! | [`broker`] | the Alpaca REST client and live bar feed, the gateway that sends orders and books what the broker answers, the live gates, execution quality |
//! | [`phases`] | gate reports and their metrics, the phase store (approvals, promotions, demotions), phase limits |
//! | [`research`] | running a bot over history as an experiment: the backtest's typed plan |
//! | [`bot`] | a start's typed plan and checks, the paper/live run loop, a bot's status |

pub mod bot;
pub mod broker;
pub mod data;
pub mod files;
pub mod journal;
pub mod library;
pub mod log_repeats;
pub mod phases;
pub mod research;
