//! The engine: one event pipeline for every driver (backtest now; paper and live later).
//!
//! Nothing here does I/O. Bars come in through [`pipeline::Engine::on_bar`] (or the
//! [`backtest`] driver), events go out through [`events::EventSink`].

pub mod allocation;
pub mod approvals;
pub mod backtest;
pub mod broker;
pub mod case;
pub mod costs;
pub mod curve;
pub mod entry_check;
pub mod event_loop;
pub mod events;
pub mod external;
pub mod gate_metrics;
pub mod graph;
pub mod guard;
pub mod market;
pub mod metrics;
pub mod orders;
pub mod overfitting;
pub mod pipeline;
pub mod portfolio;
pub mod resample;
mod risk_gate;
pub mod rules;
pub mod session;
pub mod signal;
pub mod stress;
pub mod sweep;
pub mod trading_state;
pub mod walkforward;
