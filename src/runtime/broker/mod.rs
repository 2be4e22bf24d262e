//! The broker boundary: the Alpaca REST client ([`alpaca`]), the gateway that sends the
//! engine's orders and books what the broker answers ([`gateway`]), the gates that keep a bot
//! off live money until every one holds ([`live_gate`]) and the switchover test of them
//! ([`switchover`]), the journaled broker records a
//! restart replays ([`crate::runtime::journal::broker_log`]) and the execution-quality report ([`execution`]).

pub mod alpaca;
pub mod execution;
pub mod fetch;
pub mod gateway;
pub mod live_feed;
pub mod live_gate;
pub mod switchover;
