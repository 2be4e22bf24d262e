//! Graduation phases: gate reports and the metrics they read from the journal ([`gates`]),
//! approvals, promotions, demotions and the phase log ([`phase_store`]), the limits the
//! active phase puts on a run ([`phase_limits`]), and a run compared with its backtest
//! ([`divergence`]).

pub mod divergence;
pub mod gates;
pub mod phase_limits;
pub mod phase_store;
