//! The live feed of a running bot (`dsl run --feed alpaca`): bars polled from Alpaca's Market
//! Data API (v2 stock bars, v1beta3 crypto bars, every page followed, 429s waited out after
//! `X-RateLimit-Reset` by the client).
//!
//! A bar is handed to the bot once it is **complete**: its start plus the timeframe is not
//! after now (UTC). Each poll asks for the bars after the last complete bar of each symbol,
//! so a bar is never delivered twice and none is skipped when a poll fails (the next poll asks
//! again from the same point). History for the indicators' warm-up comes from the same API.

use std::collections::BTreeMap;

use crate::config::timeframe::Timeframe;
use crate::engine::market::{Bar, BarSeries, format_utc};

use crate::runtime::broker::alpaca::{BrokerError, MarketDataClient};

/// What "now" is (UTC seconds); the system clock unless a test says otherwise.
pub type Clock = Box<dyn Fn() -> i64 + Send>;

/// Polls Alpaca for the bot's new bars.
pub struct LiveFeed {
    client: MarketDataClient,
    symbols: Vec<String>,
    timeframe: Timeframe,
    /// Time between polls.
    pub poll: std::time::Duration,
    clock: Clock,
    /// Per symbol, the start of the last complete bar delivered (`i64::MIN` before any).
    last: Vec<i64>,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFeed").field("symbols", &self.symbols).field("timeframe", &self.timeframe).finish()
    }
}

impl LiveFeed {
    /// A feed of `symbols` (the engine's order) at `timeframe`, polled every `poll`.
    pub fn new(
        client: MarketDataClient,
        symbols: Vec<String>,
        timeframe: Timeframe,
        poll: std::time::Duration,
    ) -> Self {
        let n = symbols.len();
        LiveFeed {
            client,
            symbols,
            timeframe,
            poll,
            clock: Box::new(|| chrono::Utc::now().timestamp()),
            last: vec![i64::MIN; n],
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, UTC seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The complete bars from `from` (UTC seconds) until now, one series per symbol in the
    /// feed's order (a symbol without bars gets an empty series). Later polls continue after
    /// them.
    ///
    /// A transient failure (a timeout, a lost connection, a 5xx, a rate limit that outlasted
    /// the HTTP layer's retries, or a malformed body) is tried again with exponential backoff
    /// (1 s doubling, 5 more tries), each retry logged.
    ///
    /// # Errors
    /// Any [`BrokerError`] of the Market Data API that persists through the retries, or a
    /// refusal (4xx) at once.
    pub async fn history(&mut self, from: i64) -> Result<Vec<BarSeries>, BrokerError> {
        use backon::BackoffBuilder;
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_secs(1))
            .with_max_delay(std::time::Duration::from_secs(16))
            .with_max_times(5)
            .build();
        loop {
            let mut series: Vec<BarSeries> = self.symbols.iter().map(|s| BarSeries::new(s.clone())).collect();
            match self.fetch(&mut series, Some(from)).await {
                Ok(_) => return Ok(series),
                Err(e) if !matches!(e, BrokerError::Rejected { .. } | BrokerError::Credentials { .. }) => {
                    let Some(wait) = delays.next() else { return Err(e) };
                    tracing::warn!("market data: {e}; retrying the warm-up history in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches the latest quote of every symbol (one request per asset class) and gives it to
    /// the engine (symbols in engine order), so rules read live bids, asks and spreads. A
    /// symbol without a quote, or every symbol when the request fails, falls back to the cost
    /// model's estimate; the failure is logged and trading goes on.
    pub async fn refresh_quotes(&self, engine: &mut crate::engine::pipeline::Engine) {
        match self.client.latest_quotes(&self.symbols).await {
            Ok(quotes) => {
                for (i, symbol) in self.symbols.iter().enumerate() {
                    match quotes.get(symbol) {
                        Some(q) => engine.set_quote(i, q.bp, q.ap),
                        None => engine.clear_quote(i),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "quotes unavailable: spreads fall back to the cost model's estimate");
                for i in 0..self.symbols.len() {
                    engine.clear_quote(i);
                }
            }
        }
    }

    /// Appends the bars completed since the last call to `series` (the feed's order);
    /// returns how many were added.
    ///
    /// # Errors
    /// Any [`BrokerError`]; nothing is appended then, and the next poll asks again.
    pub async fn poll(&mut self, series: &mut [BarSeries]) -> Result<usize, BrokerError> {
        self.fetch(series, None).await
    }

    async fn fetch(&mut self, series: &mut [BarSeries], from: Option<i64>) -> Result<usize, BrokerError> {
        let now = self.now();
        let step = self.timeframe.seconds().max(1);
        // One request for all symbols, from the earliest point any of them needs.
        let start = match from {
            Some(f) => f,
            None => self.last.iter().map(|&l| if l == i64::MIN { now - step } else { l + 1 }).min().unwrap_or(now),
        };
        if start > now {
            return Ok(0);
        }
        let got: BTreeMap<String, Vec<Bar>> =
            self.client.bars(&self.symbols, self.timeframe, &format_utc(start), Some(&format_utc(now))).await?;
        let mut added = 0;
        for (i, symbol) in self.symbols.iter().enumerate() {
            let Some(bars) = got.get(symbol) else { continue };
            for b in bars {
                let complete = b.ts.saturating_add(step) <= now;
                if !complete || b.ts <= self.last[i] || b.ts < start {
                    continue;
                }
                series[i].push(*b);
                self.last[i] = b.ts;
                added += 1;
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::timeframe::TimeUnit;
    use crate::runtime::broker::alpaca::{Credentials, RetryPolicy};
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn bar(t: &str, c: f64) -> serde_json::Value {
        serde_json::json!({"t": t, "o": c, "h": c, "l": c, "c": c, "v": 1})
    }

    #[tokio::test]
    async fn only_complete_bars_are_delivered_and_each_once() {
        let server = MockServer::start().await;
        // 14:00 and 14:01 are complete at 14:02:30; 14:02 is still forming.
        let body = serde_json::json!({"bars": {"SPY": [
            bar("2024-03-01T14:00:00Z", 1.0), bar("2024-03-01T14:01:00Z", 2.0), bar("2024-03-01T14:02:00Z", 3.0)
        ]}});
        Mock::given(any()).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
        let creds = Credentials::new("PKTEST", "secret");
        let client = MarketDataClient::new(&server.uri(), creds, RetryPolicy::default()).unwrap();
        let tf = Timeframe { count: 1, unit: TimeUnit::Minute };
        let now = 1_709_301_600 + 150; // 2024-03-01T14:02:30Z
        let mut feed = LiveFeed::new(client, vec!["SPY".into()], tf, std::time::Duration::from_secs(1))
            .with_clock(Box::new(move || now));
        let mut series = feed.history(now - 3600).await.unwrap();
        assert_eq!(series[0].close, vec![1.0, 2.0]);
        // The same response again: nothing new (14:02 still forming, the others delivered).
        assert_eq!(feed.poll(&mut series).await.unwrap(), 0);
        assert_eq!(series[0].len(), 2);
    }
}
