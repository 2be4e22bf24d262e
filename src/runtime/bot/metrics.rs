//! A running bot's metrics for Prometheus (`dsl run --metrics 127.0.0.1:9464`): a read-only
//! HTTP endpoint serving `GET /metrics` in the OpenMetrics text format (the format Prometheus
//! scrapes; encoded by the Prometheus project's own `prometheus-client` crate, served by
//! `tiny_http` on a thread of its own, so a scrape never waits for the trading loop).
//!
//! Every metric carries the label `bot`. Values are those of this process (counters start at
//! zero when the bot starts; a restarted bot's replayed bars are not counted again):
//!
//! | metric | type | unit |
//! | --- | --- | --- |
//! | `tradedsl_equity` | gauge | account currency, at the last checkpoint |
//! | `tradedsl_drawdown_ratio` | gauge | fraction below the peak equity (0.05 = 5%) |
//! | `tradedsl_exposure_ratio` | gauge | market value of open positions / equity (fraction) |
//! | `tradedsl_trading_state{state}` | gauge | 1 for the current state (`ACTIVE`, `REDUCING`, `HALTED`), 0 for the others |
//! | `tradedsl_orders_total{status}` | counter | orders by final status (`submitted` when sent, then `filled`, `cancelled`, `rejected`, `expired`) |
//! | `tradedsl_fills_total` | counter | fills |
//! | `tradedsl_rejections_total{rule}` | counter | orders denied, by `policy/rule_id` |
//! | `tradedsl_slippage_bps` | histogram | each fill's distance from its unslipped price, basis points: for the simulated broker the fill bar's open (the cost model's spread and slippage), for an outside broker the price the order was decided at (`dsl report execution` measures those against the quote) |
//! | `tradedsl_heartbeat_age_seconds` | gauge | wall-clock seconds since the last heartbeat, computed at the scrape |
//! | `tradedsl_last_bar_timestamp_seconds` | gauge | the last bar processed, UTC seconds |
//! | `tradedsl_broker_failing` | gauge | 1 while the broker is failing, else 0 |
//! | `tradedsl_reloads_total{outcome}` | counter | hot reloads, `accepted` or `rejected` |
//!
//! The endpoint binds to a loopback address unless the operator allows another one
//! explicitly: equity and positions are not for the network at large.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::diagnostics::{Diagnostic, codes};
use crate::engine::events::{Decision, EventSink, OrderStatus};
use crate::engine::orders::{ClientOrderId, Fill, Order};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics of one running bot (cheap to clone: every handle is shared).
#[derive(Clone)]
pub struct BotMetrics {
    registry: Arc<Registry>,
    equity: FloatGauge,
    drawdown: FloatGauge,
    exposure: FloatGauge,
    state: Family<Labels, Gauge>,
    orders: Family<Labels, Counter>,
    fills: Counter,
    rejections: Family<Labels, Counter>,
    slippage: Histogram,
    heartbeat_age: Gauge,
    last_bar: Gauge,
    broker_failing: Gauge,
    reloads: Family<Labels, Counter>,
    /// Wall-clock time of the last heartbeat (UTC seconds; 0 before the first).
    heartbeat_wall: Arc<AtomicI64>,
}

/// What a checkpoint tells the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Equity (currency).
    pub equity: f64,
    /// Peak equity so far (currency).
    pub peak_equity: f64,
    /// Market value of the open positions (currency).
    pub positions_value: f64,
    /// The trading state (`ACTIVE`, `REDUCING`, `HALTED`).
    pub state: &'a str,
    /// The last bar processed (UTC seconds).
    pub last_bar: Option<i64>,
    /// The broker is failing.
    pub broker_failing: bool,
    /// Wall clock now (UTC seconds).
    pub wall: i64,
}

const STATES: [&str; 3] = ["ACTIVE", "REDUCING", "HALTED"];

impl BotMetrics {
    /// Metrics of bot `bot`, all at zero.
    pub fn new(bot: &str) -> Self {
        let mut registry =
            Registry::with_prefix_and_labels("tradedsl", [("bot".into(), bot.to_string().into())].into_iter());
        let m = BotMetrics {
            registry: Arc::new(Registry::default()),
            equity: FloatGauge::default(),
            drawdown: FloatGauge::default(),
            exposure: FloatGauge::default(),
            state: Family::default(),
            orders: Family::default(),
            fills: Counter::default(),
            rejections: Family::default(),
            // 0.5 bps to about 512 bps; adverse slippage is positive, price improvement lands
            // in the first bucket.
            slippage: Histogram::new(
                std::iter::once(0.0).chain(prometheus_client::metrics::histogram::exponential_buckets(0.5, 2.0, 11)),
            ),
            heartbeat_age: Gauge::default(),
            last_bar: Gauge::default(),
            broker_failing: Gauge::default(),
            reloads: Family::default(),
            heartbeat_wall: Arc::new(AtomicI64::new(0)),
        };
        registry.register("equity", "Equity at the last checkpoint (account currency)", m.equity.clone());
        registry.register("drawdown_ratio", "Fraction below the peak equity", m.drawdown.clone());
        registry.register("exposure_ratio", "Market value of open positions over equity", m.exposure.clone());
        registry.register("trading_state", "1 for the bot's current trading state", m.state.clone());
        registry.register("orders", "Orders by status", m.orders.clone());
        registry.register("fills", "Fills", m.fills.clone());
        registry.register("rejections", "Orders denied, by policy/rule_id", m.rejections.clone());
        registry.register("slippage_bps", "Fill price against the unslipped price, basis points", m.slippage.clone());
        registry.register("heartbeat_age_seconds", "Seconds since the last heartbeat", m.heartbeat_age.clone());
        registry.register("last_bar_timestamp_seconds", "The last bar processed (UTC seconds)", m.last_bar.clone());
        registry.register("broker_failing", "1 while the broker is failing", m.broker_failing.clone());
        registry.register("reloads", "Hot reloads by outcome", m.reloads.clone());
        for s in STATES {
            m.state.get_or_create(&vec![("state".into(), s.into())]).set(i64::from(s == "ACTIVE"));
        }
        BotMetrics { registry: Arc::new(registry), ..m }
    }

    /// Takes in a checkpoint (or an idle heartbeat).
    pub fn observe(&self, s: Snapshot<'_>) {
        self.equity.set(s.equity);
        let drawdown = if s.peak_equity > 0.0 { (1.0 - s.equity / s.peak_equity).max(0.0) } else { 0.0 };
        self.drawdown.set(drawdown);
        self.exposure.set(if s.equity > 0.0 { s.positions_value.abs() / s.equity } else { 0.0 });
        for st in STATES {
            self.state.get_or_create(&vec![("state".into(), st.into())]).set(i64::from(st == s.state));
        }
        if let Some(t) = s.last_bar {
            self.last_bar.set(t);
        }
        self.broker_failing.set(i64::from(s.broker_failing));
        self.heartbeat_wall.store(s.wall, Ordering::Relaxed);
    }

    /// Counts a hot reload (`accepted` or `rejected`).
    pub fn reload(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "rejected" };
        self.reloads.get_or_create(&vec![("outcome".into(), outcome.into())]).inc();
    }

    /// The exposition as of wall-clock time `now` (UTC seconds; the heartbeat's age is
    /// computed from it).
    pub fn render(&self, now: i64) -> String {
        let beat = self.heartbeat_wall.load(Ordering::Relaxed);
        self.heartbeat_age.set(if beat > 0 { (now - beat).max(0) } else { 0 });
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// An event tap for the journal: counts orders, fills, denials and slippage.
    pub fn tap(&self) -> MetricsTap {
        MetricsTap(self.clone())
    }
}

/// The [`EventSink`] side of [`BotMetrics`] (see [`BotMetrics::tap`]).
pub struct MetricsTap(BotMetrics);

impl MetricsTap {
    fn count_order(&self, status: OrderStatus) {
        self.0.orders.get_or_create(&vec![("status".into(), status.as_str().into())]).inc();
    }
}

impl EventSink for MetricsTap {
    fn order(&mut self, _order: &Order, _strategy: &str, _symbol: &str, status: OrderStatus, _reason: &str) {
        self.count_order(status);
    }

    fn order_status(&mut self, _id: ClientOrderId, status: OrderStatus, _ts: i64, _reason: &str) {
        self.count_order(status);
    }

    fn fill(&mut self, fill: &Fill, order: &Order, _symbol: &str) {
        self.0.fills.inc();
        if fill.quantity > 0.0 && fill.price > 0.0 {
            // The unslipped price: the fill price less the slippage per unit, against the side.
            let per_unit = fill.slippage_cost / fill.quantity;
            let base = match order.side {
                crate::engine::orders::Side::Buy => fill.price - per_unit,
                crate::engine::orders::Side::Sell => fill.price + per_unit,
            };
            if base > 0.0 {
                self.0.slippage.observe(per_unit / base * 10_000.0);
            }
        }
    }

    fn decision(&mut self, d: &Decision<'_>) {
        if d.fired && d.action == "deny" && d.order.is_some() {
            let rule = format!("{}/{}", d.policy, d.rule_id);
            self.0.rejections.get_or_create(&vec![("rule".into(), rule)]).inc();
        }
    }

    fn wants_decisions(&self) -> bool {
        true
    }
}

/// The endpoint: serves until dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` from a thread of its own. `allow_remote`: bind to an
    /// address that is not loopback.
    ///
    /// # Errors
    /// A non-loopback address without `allow_remote`, or an address that cannot be bound (in
    /// use, not this machine's): the bot does not start.
    pub fn start(addr: SocketAddr, allow_remote: bool, metrics: BotMetrics) -> Result<Self, Diagnostic> {
        if !addr.ip().is_loopback() && !allow_remote {
            return Err(Diagnostic::error(
                codes::RUNTIME_REFUSED,
                format!("--metrics {addr} is not a loopback address; the bot's equity and positions would be on the network"),
            )
            .help("bind to 127.0.0.1 (and let the scraper reach it through a tunnel or a proxy), or add --metrics-allow-remote"));
        }
        let server = tiny_http::Server::http(addr).map_err(|e| {
            Diagnostic::error(codes::IO, format!("cannot serve metrics on {addr}: {e}"))
                .help("pick a free port, e.g. --metrics 127.0.0.1:9465")
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&serving, &metrics))
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the metrics thread: {e}")))?;
        Ok(MetricsServer { server, thread: Some(thread), addr })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers requests until the server is unblocked: `GET /metrics` (and `HEAD`), a pointer to
/// it at `/`, 404 elsewhere, 405 for other methods. Nothing is read from the request body.
fn serve(server: &tiny_http::Server, metrics: &BotMetrics) {
    use tiny_http::{Header, Method, Response};
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let method = request.method().clone();
        let response = match (&method, path.as_str()) {
            (Method::Get | Method::Head, "/metrics") => {
                let body = metrics.render(chrono::Utc::now().timestamp());
                let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                Response::from_string(body)
                    .with_header(Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()).expect("a valid header"))
            }
            (Method::Get | Method::Head, "/") => Response::from_string("tradedsl bot metrics: GET /metrics\n"),
            (Method::Get | Method::Head, _) => Response::from_string("not found\n").with_status_code(404),
            _ => Response::from_string("read-only: GET /metrics\n")
                .with_status_code(405)
                .with_header(Header::from_bytes(&b"Allow"[..], &b"GET, HEAD"[..]).expect("a valid header")),
        };
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_and_a_reload_show_in_the_exposition() {
        let m = BotMetrics::new("demo");
        m.observe(Snapshot {
            equity: 75_000.0,
            peak_equity: 100_000.0,
            positions_value: 37_500.0,
            state: "REDUCING",
            last_bar: Some(1_700_000_000),
            broker_failing: false,
            wall: 1_000,
        });
        m.reload(true);
        let text = m.render(1_030);
        for line in [
            "tradedsl_equity{bot=\"demo\"} 75000.0",
            "tradedsl_drawdown_ratio{bot=\"demo\"} 0.25",
            "tradedsl_exposure_ratio{bot=\"demo\"} 0.5",
            "tradedsl_trading_state{bot=\"demo\",state=\"REDUCING\"} 1",
            "tradedsl_trading_state{bot=\"demo\",state=\"ACTIVE\"} 0",
            "tradedsl_heartbeat_age_seconds{bot=\"demo\"} 30",
            "tradedsl_last_bar_timestamp_seconds{bot=\"demo\"} 1700000000",
            "tradedsl_reloads_total{bot=\"demo\",outcome=\"accepted\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_public_address_needs_an_explicit_allowance() {
        let err = MetricsServer::start("0.0.0.0:0".parse().unwrap(), false, BotMetrics::new("b")).err().unwrap();
        assert!(err.message.contains("not a loopback address"), "{}", err.message);
    }
}
