//! A running bot: the paper/live run loop ([`paper`]), its control records (trading state,
//! halt and resume requests, the approval queue: [`control`]), the lease that keeps one bot
//! per journal ([`lease`]) and its status for `dsl status` ([`status`]).

pub mod paper;
mod paper_driver;
pub mod status;
