//! A running bot: the typed plan of a start and its checks ([`plan`]), the run loop's setup
//! and end ([`paper`]) with what the bot does around each timestamp (`paper_driver`, the
//! bot's driver of the engine's one event loop), its scheduled reports ([`reports`]) and
//! alerts ([`alerts`]), its Prometheus endpoint ([`metrics`]), the HTML report of a run ([`run_html`]), and its status for `dsl status` ([`status`]). Its control records, lease and journal are the journal's room.

pub mod alerts;
pub mod metrics;
pub mod paper;
mod paper_driver;
pub mod plan;
pub mod reports;
pub mod run_html;
pub mod status;
