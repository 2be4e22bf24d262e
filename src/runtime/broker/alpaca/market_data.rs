//! The Market Data API client: v2 stock bars and latest quotes, v1beta3 crypto bars and latest
//! quotes, following `next_page_token` pagination.

use std::collections::BTreeMap;

use super::credentials::Credentials;
use super::error::BrokerError;
use super::http::{Http, Method, RetryPolicy};
use super::model::{DataBar, Quote, utc_seconds};
use crate::config::timeframe::{TimeUnit, Timeframe};
use crate::engine::market::Bar;
use crate::engine::orders::is_crypto;

/// The Market Data API's name of a timeframe (`1Min`, `15Min`, `1Hour`, `1Day`, `1Week`,
/// `1Month`), or `None` when Alpaca has no such bars (minutes above 59, hours above 23, days
/// other than 1).
pub fn timeframe_param(tf: Timeframe) -> Option<String> {
    let n = tf.count;
    match tf.unit {
        TimeUnit::Minute if (1..=59).contains(&n) => Some(format!("{n}Min")),
        TimeUnit::Hour if (1..=23).contains(&n) => Some(format!("{n}Hour")),
        TimeUnit::Day if n == 1 => Some("1Day".into()),
        TimeUnit::Week if n == 1 => Some("1Week".into()),
        TimeUnit::Month if [1, 2, 3, 4, 6, 12].contains(&n) => Some(format!("{n}Month")),
        _ => None,
    }
}

/// A Market Data API client.
#[derive(Clone)]
pub struct MarketDataClient {
    http: Http,
    /// Stock feed: `iex` (free plans) or `sip`.
    pub feed: String,
}

#[derive(serde::Deserialize)]
struct BarsPage {
    #[serde(default)]
    bars: Option<BTreeMap<String, Vec<DataBar>>>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct QuotesLatest {
    #[serde(default)]
    quotes: BTreeMap<String, Quote>,
}

impl MarketDataClient {
    /// A client for `base_url` ([`super::DATA_URL`], or a mock server) with the `iex` feed.
    ///
    /// # Errors
    /// [`BrokerError::Transport`] when the HTTP client cannot be built.
    pub fn new(base_url: &str, creds: Credentials, policy: RetryPolicy) -> Result<Self, BrokerError> {
        Ok(MarketDataClient { http: Http::new(base_url, creds, policy)?, feed: "iex".into() })
    }

    /// Bars of `symbols` (stocks like `AAPL`, crypto pairs like `BTC/USD`; both may be mixed)
    /// between `start` and `end` (RFC 3339 or `YYYY-MM-DD`, inclusive), oldest first, every
    /// page followed. Stocks come from `GET /v2/stocks/bars` (raw prices, [`Self::feed`]),
    /// crypto from `GET /v1beta3/crypto/us/bars`. Each bar's time is its start in UTC seconds.
    ///
    /// # Errors
    /// Any [`BrokerError`]; [`BrokerError::Malformed`] for an unparsable bar time.
    pub async fn bars(
        &self,
        symbols: &[String],
        timeframe: Timeframe,
        start: &str,
        end: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<Bar>>, BrokerError> {
        let mut out: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
        self.bar_pages(symbols, timeframe, start, end, |page| {
            for (symbol, bars) in page {
                out.entry(symbol).or_default().extend(bars);
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// [`Self::bars`], handing each page to `on_page` as it arrives (symbol to its bars on the
    /// page, oldest first), so a long download can be stored page by page.
    ///
    /// # Errors
    /// Any [`BrokerError`], or the first error `on_page` returns.
    pub async fn bar_pages(
        &self,
        symbols: &[String],
        timeframe: Timeframe,
        start: &str,
        end: Option<&str>,
        mut on_page: impl FnMut(BTreeMap<String, Vec<Bar>>) -> Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        let tf = timeframe_param(timeframe).ok_or_else(|| BrokerError::Malformed {
            method: "GET",
            path: "bars".into(),
            detail: format!("Alpaca has no {timeframe} bars"),
        })?;
        let (crypto, stocks): (Vec<String>, Vec<String>) = symbols.iter().cloned().partition(|s| is_crypto(s));
        for (path, list) in [("/v2/stocks/bars", stocks), ("/v1beta3/crypto/us/bars", crypto)] {
            if list.is_empty() {
                continue;
            }
            let mut q = vec![
                ("symbols", list.join(",")),
                ("timeframe", tf.clone()),
                ("start", start.to_string()),
                ("limit", "10000".into()),
                ("sort", "asc".into()),
            ];
            if let Some(e) = end {
                q.push(("end", e.to_string()));
            }
            if path.starts_with("/v2/") {
                q.push(("adjustment", "raw".into()));
                q.push(("feed", self.feed.clone()));
            }
            self.pages(path, q, &mut on_page).await?;
        }
        Ok(())
    }

    async fn pages(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        on_page: &mut impl FnMut(BTreeMap<String, Vec<Bar>>) -> Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        let mut token: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let mut q = query.clone();
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let r = self.http.send(Method::Get, path, &q, None).await?;
            let page: BarsPage = self.http.parse(Method::Get, path, &r.body)?;
            let mut out: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
            for (symbol, bars) in page.bars.unwrap_or_default() {
                let series = out.entry(symbol).or_default();
                for b in bars {
                    let ts = utc_seconds(&b.t).ok_or_else(|| BrokerError::Malformed {
                        method: "GET",
                        path: path.into(),
                        detail: format!("bar time {:?} is not RFC 3339", b.t),
                    })?;
                    series.push(Bar { ts, open: b.o, high: b.h, low: b.l, close: b.c, volume: b.v });
                }
            }
            on_page(out)?;
            pages += 1;
            match page.next_page_token {
                Some(t) if !t.is_empty() && pages < 10_000 => token = Some(t),
                _ => return Ok(()),
            }
        }
    }

    /// The latest quote of each symbol (`GET /v2/stocks/quotes/latest` for stocks,
    /// `GET /v1beta3/crypto/us/latest/quotes` for pairs). Symbols without a quote are absent.
    ///
    /// # Errors
    /// Any [`BrokerError`].
    pub async fn latest_quotes(&self, symbols: &[String]) -> Result<BTreeMap<String, Quote>, BrokerError> {
        let (crypto, stocks): (Vec<String>, Vec<String>) = symbols.iter().cloned().partition(|s| is_crypto(s));
        let mut out = BTreeMap::new();
        for (path, list) in [("/v2/stocks/quotes/latest", stocks), ("/v1beta3/crypto/us/latest/quotes", crypto)] {
            if list.is_empty() {
                continue;
            }
            let mut q = vec![("symbols", list.join(","))];
            if path.starts_with("/v2/") {
                q.push(("feed", self.feed.clone()));
            }
            let r = self.http.send(Method::Get, path, &q, None).await?;
            let page: QuotesLatest = self.http.parse(Method::Get, path, &r.body)?;
            out.extend(page.quotes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpaca_timeframes() {
        let tf = |s: &str| timeframe_param(s.parse().unwrap());
        assert_eq!(tf("1m").as_deref(), Some("1Min"));
        assert_eq!(tf("15m").as_deref(), Some("15Min"));
        assert_eq!(tf("4h").as_deref(), Some("4Hour"));
        assert_eq!(tf("1d").as_deref(), Some("1Day"));
        assert_eq!(tf("2d"), None);
    }
}
