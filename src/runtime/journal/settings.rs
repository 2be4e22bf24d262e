//! The settings a run is journaled with (`runs.settings`, JSON), typed and versioned.
//!
//! A backtest or paper run records its starting cash, costs and fill timing; a paper run adds
//! where its bars came from, which broker it traded at, the live feed's history window and the
//! phase it ran in. A restarted bot reads them back ([`RunSettings::parse`]) to resume the same
//! way (the same warm-up window, the same phase limits). Journals written before the version
//! field read as version 1; fields they lack take their defaults. Gate metrics read
//! `starting_cash` and `environment` with SQLite's `json_extract`, so the names are a contract.

use serde::{Deserialize, Serialize};

use crate::engine::pipeline::EngineSettings;

/// The version written by this build.
pub const SETTINGS_VERSION: u32 = 1;

fn version_one() -> u32 {
    1
}

/// Where a running bot's bars come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// The bot's own stored bars, replayed.
    Replay,
    /// Alpaca's market data, polled.
    Alpaca,
}

/// Where a running bot's orders go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// The simulated broker.
    Sim,
    /// An Alpaca account.
    Alpaca,
}

/// The phase a run started in, and the limits it put on the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PhaseSettings {
    /// The phase's name.
    pub phase: String,
    /// Its mode (`backtest`, `paper`, `live`).
    pub mode: String,
    /// Its limits as written in the phase document (JSON).
    pub limits: serde_json::Value,
    /// The scale-up was earned.
    pub scaled_up: bool,
}

/// A backtest's or paper run's settings, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// The settings' format ([`SETTINGS_VERSION`]).
    #[serde(default = "version_one")]
    pub settings_version: u32,
    /// Starting cash (currency).
    pub starting_cash: f64,
    /// Commission (fraction of each fill's notional).
    pub commission: f64,
    /// Commission per share (currency per unit).
    pub commission_per_share: f64,
    /// Slippage (fraction of the price, against the fill).
    pub slippage: f64,
    /// Spread estimate (fraction of the price).
    pub spread: f64,
    /// Market impact (fraction of the price).
    pub impact: f64,
    /// Fill timing: `next_open` or `close`.
    pub fill: String,
    /// Where a running bot's bars come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedKind>,
    /// Where a running bot's orders go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerKind>,
    /// The broker account's environment (`paper`, `live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The live feed's timeframe (e.g. `1d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<String>,
    /// The live feed's warm-up history starts here (UTC seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_from: Option<i64>,
    /// Bars up to here (UTC seconds) only warm the indicators up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_until: Option<i64>,
    /// The phase the run started in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<PhaseSettings>,
    /// A switchover test: a live manifest traded on the paper account (`dsl run
    /// --switchover`); a restart must ask for the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub switchover: bool,
    /// A replay's CSV time format (`--time-format`), to read the same bars again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv_time_format: Option<String>,
    /// A replay's zone of naive CSV times (`--timezone`, IANA name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv_timezone: Option<String>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            settings_version: SETTINGS_VERSION,
            starting_cash: 0.0,
            commission: 0.0,
            commission_per_share: 0.0,
            slippage: 0.0,
            spread: 0.0,
            impact: 0.0,
            fill: String::new(),
            feed: None,
            broker: None,
            environment: None,
            timeframe: None,
            history_from: None,
            warmup_until: None,
            phase: None,
            switchover: false,
            csv_time_format: None,
            csv_timezone: None,
        }
    }
}

impl RunSettings {
    /// The engine's settings: cash, costs, fill timing (a backtest's whole settings).
    pub fn of(s: &EngineSettings) -> Self {
        RunSettings {
            starting_cash: s.starting_cash,
            commission: s.costs.commission,
            commission_per_share: s.costs.commission_per_unit,
            slippage: s.costs.slippage,
            spread: s.costs.spread,
            impact: s.costs.impact,
            fill: s.fill.as_str().to_string(),
            ..RunSettings::default()
        }
    }

    /// As journaled (JSON).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The bars a replay read, asked for again: the manifest's data with the run's CSV time
    /// options.
    pub fn bars_request(&self) -> crate::runtime::library::source::DataRequest {
        crate::runtime::library::source::DataRequest {
            time_format: self.csv_time_format.clone(),
            timezone: self.csv_timezone.as_deref().and_then(|z| z.parse().ok()),
            ..Default::default()
        }
    }

    /// Settings read back from the journal; `None` when the text is not a settings object.
    pub fn parse(text: &str) -> Option<RunSettings> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        if !value.is_object() {
            return None;
        }
        serde_json::from_value(value).ok()
    }
}

/// A stress run's settings: which stress document, which of its scenarios, and the shock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressSettings {
    /// The `kind: stress` document's name.
    pub stress: String,
    /// The scenario (`baseline` for the unchanged replay).
    pub scenario: String,
    /// The shock, as people read it (`crash 50% at 2020-03-09`).
    pub shock: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_older_journals() {
        let s = RunSettings {
            starting_cash: 1000.0,
            fill: "next_open".into(),
            feed: Some(FeedKind::Alpaca),
            broker: Some(BrokerKind::Sim),
            history_from: Some(5),
            warmup_until: Some(9),
            phase: Some(PhaseSettings { phase: "p".into(), ..Default::default() }),
            ..RunSettings::default()
        };
        let json = s.to_json();
        assert_eq!(json["feed"], "alpaca");
        assert_eq!(json["broker"], "sim");
        assert_eq!(json["settings_version"], 1);
        assert_eq!(RunSettings::parse(&json.to_string()), Some(s));
        // Written before the version and the typed fields: still read.
        let old = RunSettings::parse(r#"{"starting_cash": 5.0, "fill": "close", "feed": "replay"}"#).unwrap();
        assert_eq!((old.settings_version, old.starting_cash, old.feed), (1, 5.0, Some(FeedKind::Replay)));
        assert_eq!(RunSettings::parse("[1]"), None);
    }
}
