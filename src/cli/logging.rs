//! Operator logs: `tracing` events on standard error, as text lines or one JSON object per
//! line (`--log-format json`, for log shippers), each with a UTC timestamp (RFC 3339), a level
//! and the fields of its spans (`bot`, `run`) and event (`client_order_id`, `symbol`, ...).
//!
//! The level comes from `RUST_LOG` when it is set (`RUST_LOG=tradedsl=debug`), else from the
//! flags: `info` by default, `debug` with `-v`, `trace` with `-vv`, `error` only with a
//! command's `--quiet`. Other crates log at `warn` and above. A log line that cannot be written
//! (a closed terminal, a full pipe) is dropped, never a panic: the journal is the durable
//! record, logs are for operators. No secret is ever a field (the broker client scrubs the API
//! keys from every text before it is logged). A warning or error whose exact text repeats is
//! written three times, then counted and summarised ([`crate::runtime::log_repeats`]).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Lets a warning or an error through while its text has not repeated too often
/// ([`crate::runtime::log_repeats::admit`]).
struct Repeats;

impl<S> Filter<S> for Repeats {
    fn enabled(&self, _meta: &tracing::Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _cx: &Context<'_, S>) -> bool {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return true;
        }
        let mut text = Message(String::new());
        event.record(&mut text);
        crate::runtime::log_repeats::admit(level, &text.0)
    }
}

/// The `message` field of an event, as written.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, the fields and
    /// spans).
    Json,
}

/// The filter for `verbose` (-v count) and `quiet`, unless `RUST_LOG` says otherwise.
fn filter(verbose: u8, quiet: bool) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    EnvFilter::new(format!("warn,tradedsl={level}"))
}

/// Installs the global subscriber (once per process; a second call changes nothing). Lines
/// are written by a thread of their own (`tracing-appender`'s non-blocking writer), so a slow
/// terminal or a full pipe never holds up the trading loop; keep the returned guard until the
/// end of `main`: dropping it writes what is left.
pub fn init(verbose: u8, quiet: bool, format: LogFormat, color: bool) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::Layer as _;
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_target(false).log_internal_errors(false);
    let layer = match format {
        LogFormat::Text => fmt.with_ansi(color).with_filter(Repeats).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(false).with_filter(Repeats).boxed(),
    };
    let _ = tracing_subscriber::registry().with(filter(verbose, quiet)).with(layer).try_init();
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_flags() {
        if std::env::var_os("RUST_LOG").is_some() {
            return;
        }
        assert_eq!(filter(0, false).to_string(), "tradedsl=info,warn");
        assert_eq!(filter(1, false).to_string(), "tradedsl=debug,warn");
        assert_eq!(filter(3, false).to_string(), "tradedsl=trace,warn");
        assert_eq!(filter(2, true).to_string(), "tradedsl=error,warn");
    }
}
