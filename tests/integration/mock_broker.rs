//! A mock Alpaca Trading API with state, for tests that run the real `dsl` binary against a
//! broker: orders by `client_order_id` and by id, fills, positions, cash, cancels, OCO pairs.
//!
//! It enforces the two order rules Alpaca documents that a bot most easily breaks, and answers
//! like Alpaca when they are broken (HTTP 422 code 42210000 "fractional orders must be DAY
//! orders"; HTTP 403 code 40310000 "insufficient qty available for order (requested: X,
//! available: Y)" with `existing_qty`, `held_for_orders` and `available`, the body of
//! `tests/data/alpaca/DELETE_v2_positions__207__alpaca-py.json`):
//! - a fractional `qty` only in a `market` order with `time_in_force: day`;
//! - a sell only up to the shares not held for other open sell orders (an OCO pair holds its
//!   shares once).
//!
//! Market orders fill at once, in full, at a price derived from the symbol and the
//! `client_order_id` (so two runs that send the same orders get the same fills); every fourth
//! one answers its POST as `partially_filled`. Stop and limit orders rest; with
//! `trigger_after` set, a resting stop fills at its stop price on the Nth listing of open
//! orders after it was placed (the bot lists them once a bar), cancelling its OCO sibling.
//! With `limit_partial_after` set, a resting buy limit fills half its quantity at its limit
//! price on the Nth listing and stays open (partially filled) until cancelled.
//! With `fill_on_cancel`, a cancel request for a resting order is accepted but the order fills
//! first (the race a strategy exit meets when a stop triggers at that moment).
//!
//! The mock can SIGKILL the bot while it handles a POST: either before recording the order
//! (as if the bot died between its database write and the submit) or after (between the
//! submit and persisting the answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wiremock::{Request, Respond, ResponseTemplate};

/// One order at the mock broker.
#[derive(Debug, Clone)]
pub struct MockOrder {
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub time_in_force: String,
    pub qty: f64,
    pub status: String,
    pub filled_qty: f64,
    pub price: Option<f64>,
    pub limit_price: Option<f64>,
    pub stop_price: Option<f64>,
    pub order_class: String,
    /// The OCO sibling (both ways).
    pub sibling: Option<String>,
    /// A leg (not listed at the top level; carried in its parent's `legs`).
    pub leg: bool,
    /// Open-order listings seen while it rested.
    pub listings: u32,
    /// What the broker reports of it, when that is a lie (`overfill`, `negative_price`).
    pub lie: Option<&'static str>,
}

impl MockOrder {
    fn open(&self) -> bool {
        matches!(self.status.as_str(), "new" | "partially_filled" | "accepted")
    }
}

/// The broker's books and what the test wants it to do.
#[derive(Debug, Default)]
pub struct State {
    pub orders: Vec<MockOrder>,
    pub cash: f64,
    pub positions: HashMap<String, f64>,
    pub base_price: HashMap<String, f64>,
    /// POSTs whose `client_order_id` was already used.
    pub duplicate_posts: usize,
    /// POSTs refused by the fractional rule (422) and the available-quantity rule (403).
    pub refused_fractional: usize,
    pub refused_quantity: usize,
    /// Sells that took a position below zero (a double sale).
    pub oversold: usize,
    /// Per bar (per account read): symbols whose whole shares were not covered by open stop
    /// orders, and the longest run of consecutive bars with a gap, per symbol.
    pub unprotected_runs: HashMap<String, u32>,
    pub longest_unprotected: HashMap<String, u32>,
    /// Symbols to check for protection (empty: none).
    pub protected_symbols: Vec<String>,
    /// Fill resting stops after this many open-order listings (0: never).
    pub trigger_after: u32,
    /// Cancel requests answered 204 while the order fills instead.
    pub fill_on_cancel: bool,
    pub filled_on_cancel: usize,
    /// The bot's pid, and 1-in-N POSTs that kill it (0: never).
    pub victim: Option<u32>,
    pub kill_one_in: u64,
    pub rng: u64,
    pub kills_before_record: usize,
    pub kills_after_record: usize,
    /// Every request, `METHOD path`, in order.
    pub log: Vec<String>,
    /// Every request is answered HTTP 500 (a broker outage).
    pub outage: bool,
    /// Kill the victim at the next POST: `Some(false)` before recording the order,
    /// `Some(true)` after.
    pub kill_next_post: Option<bool>,
    /// Open-order listings so far, and an outside change of a position at the Nth of them
    /// (someone trading in the account while the bot runs).
    pub listings: u32,
    pub change_at_listing: Option<(u32, String, f64)>,
    /// One lie about the first filled market order, or the account: `overfill` (reports ten
    /// times the quantity filled), `negative_price`, `wrong_id` (answers the POST with another
    /// `client_order_id`), `foreign_position` (a position in a symbol the bot never traded).
    pub anomaly: Option<&'static str>,
    /// 1-in-N requests meet a fault (0: never): a 500 before anything happens, a 429, a
    /// malformed 200 body after the request took effect, or a 500 after it took effect (the
    /// answer lost).
    pub fault_one_in: u64,
    pub faults: usize,
    /// Per symbol, the most stop orders open at the same time.
    pub max_open_stops: HashMap<String, usize>,
    /// A resting buy limit fills half its quantity at its limit price on this open-order
    /// listing after it was placed, and stays open (0: never); how many did.
    pub limit_partial_after: u32,
    pub partial_fills: usize,
}

/// The mock, shared between the server and the test.
#[derive(Clone)]
pub struct MockBroker(pub Arc<Mutex<State>>);

impl MockBroker {
    pub fn new(cash: f64, base_price: HashMap<String, f64>) -> Self {
        MockBroker(Arc::new(Mutex::new(State { cash, base_price, rng: 0x2545_f491_4f6c_dd1d, ..State::default() })))
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn text(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl State {
    fn order_json(&self, o: &MockOrder) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
            "type": o.order_type, "order_type": o.order_type, "time_in_force": o.time_in_force,
            "qty": text(o.qty),
            "filled_qty": text(if o.lie == Some("overfill") { o.filled_qty * 10.0 } else { o.filled_qty }),
            "filled_avg_price": o.price.map(|p| text(if o.lie == Some("negative_price") { -p } else { p })),
            "status": o.status,
            "limit_price": o.limit_price.map(text), "stop_price": o.stop_price.map(text),
            "order_class": o.order_class, "legs": null,
            "created_at": "2026-11-22T15:00:00.123456789Z"
        });
        if !o.leg
            && let Some(s) = &o.sibling
            && let Some(leg) = self.orders.iter().find(|x| &x.id == s)
        {
            v["legs"] = serde_json::Value::Array(vec![self.order_json(leg)]);
        }
        v
    }

    /// Units of `symbol` held for open sell orders (an OCO pair once).
    fn held_for_orders(&self, symbol: &str) -> f64 {
        self.orders
            .iter()
            .filter(|o| o.symbol == symbol && o.side == "sell" && o.open() && !o.leg)
            .map(|o| o.qty - o.filled_qty)
            .sum()
    }

    fn fill(&mut self, k: usize, price: f64) {
        let o = &mut self.orders[k];
        let qty = o.qty - o.filled_qty;
        o.status = "filled".into();
        o.filled_qty = o.qty;
        o.price = Some(price);
        let signed = if o.side == "buy" { qty } else { -qty };
        let (symbol, sibling) = (o.symbol.clone(), o.sibling.clone());
        let p = self.positions.entry(symbol).or_insert(0.0);
        *p += signed;
        if *p < -1e-9 {
            self.oversold += 1;
        }
        self.cash -= signed * price;
        if let Some(s) = sibling
            && let Some(sib) = self.orders.iter_mut().find(|x| x.id == s && x.open())
        {
            sib.status = "canceled".into();
        }
    }

    /// Fills half of order `k` (whole units, at least one) at `price`; it stays open.
    fn partial_fill(&mut self, k: usize, price: f64) {
        let o = &mut self.orders[k];
        let qty = (o.qty / 2.0).floor().max(1.0).min(o.qty);
        o.status = "partially_filled".into();
        o.filled_qty = qty;
        o.price = Some(price);
        let symbol = o.symbol.clone();
        *self.positions.entry(symbol).or_insert(0.0) += qty;
        self.cash -= qty * price;
        self.partial_fills += 1;
    }

    /// Protection check, once per bar (the bot reads the account once per reconciliation,
    /// which is every bar for daily bars): whole shares not covered by open stop orders.
    fn check_protection(&mut self) {
        for symbol in self.protected_symbols.clone() {
            let whole = self.positions.get(&symbol).copied().unwrap_or(0.0).floor();
            let covered: f64 = self
                .orders
                .iter()
                .filter(|o| o.symbol == symbol && o.side == "sell" && o.open() && o.order_type == "stop")
                .map(|o| o.qty - o.filled_qty)
                .sum();
            let run = self.unprotected_runs.entry(symbol.clone()).or_insert(0);
            *run = if whole >= 1.0 && covered + 1e-9 < whole { *run + 1 } else { 0 };
            let run = *run;
            let longest = self.longest_unprotected.entry(symbol).or_insert(0);
            *longest = (*longest).max(run);
        }
    }

    /// One open-order listing: resting stops may trigger.
    fn listing(&mut self) {
        self.listings += 1;
        if let Some((n, symbol, qty)) = self.change_at_listing.clone()
            && self.listings == n
        {
            *self.positions.entry(symbol).or_insert(0.0) += qty;
        }
        for k in 0..self.orders.len() {
            if !self.orders[k].open() || self.orders[k].order_type == "market" {
                continue;
            }
            self.orders[k].listings += 1;
            if self.trigger_after > 0
                && self.orders[k].order_type == "stop"
                && self.orders[k].listings >= self.trigger_after
                && let Some(p) = self.orders[k].stop_price
            {
                self.fill(k, p);
            }
            if self.limit_partial_after > 0
                && self.orders[k].order_type == "limit"
                && self.orders[k].side == "buy"
                && self.orders[k].filled_qty == 0.0
                && self.orders[k].listings >= self.limit_partial_after
                && let Some(p) = self.orders[k].limit_price
            {
                self.partial_fill(k, p);
            }
        }
    }
}

fn json(status: u16, v: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(v.to_string(), "application/json")
}

fn not_found() -> ResponseTemplate {
    json(404, serde_json::json!({"code": 40410000, "message": "order not found"}))
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}

fn price(v: &serde_json::Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64())
}

impl MockBroker {
    fn post(&self, st: &mut State, body: &serde_json::Value) -> ResponseTemplate {
        let coid = body["client_order_id"].as_str().unwrap().to_string();
        if st.orders.iter().any(|o| o.client_order_id == coid) {
            st.duplicate_posts += 1;
            return json(422, serde_json::json!({"code": 40010001, "message": "client_order_id must be unique"}));
        }
        let symbol = body["symbol"].as_str().unwrap().to_string();
        let qty: f64 = body["qty"].as_str().unwrap().parse().unwrap();
        let side = body["side"].as_str().unwrap().to_string();
        let order_type = body["type"].as_str().unwrap().to_string();
        let tif = body["time_in_force"].as_str().unwrap().to_string();
        let class = body["order_class"].as_str().unwrap_or("simple").to_string();
        // Alpaca: fractional quantities only in day market orders.
        if qty.fract() != 0.0 && !(order_type == "market" && tif == "day" && class == "simple") {
            st.refused_fractional += 1;
            return json(422, serde_json::json!({"code": 42210000, "message": "fractional orders must be DAY orders"}));
        }
        // Alpaca: a sell only up to the shares not held for other orders.
        if side == "sell" {
            let existing = st.positions.get(&symbol).copied().unwrap_or(0.0);
            let held = st.held_for_orders(&symbol);
            let available = (existing - held).max(0.0);
            if qty > available + 1e-9 {
                st.refused_quantity += 1;
                return json(
                    403,
                    serde_json::json!({"available": text(available), "code": 40310000, "existing_qty": text(existing),
                        "held_for_orders": text(held), "symbol": symbol,
                        "message": format!("insufficient qty available for order (requested: {}, available: {})", text(qty), text(available))}),
                );
            }
        }
        let mut kill_after = false;
        if let (Some(after), Some(pid)) = (st.kill_next_post, st.victim) {
            st.kill_next_post = None;
            if after {
                kill_after = true;
            } else {
                st.victim = None;
                st.kills_before_record += 1;
                kill(pid);
                return ResponseTemplate::new(500);
            }
        } else if st.kill_one_in > 0 && st.victim.is_some() {
            st.rng ^= st.rng << 13;
            st.rng ^= st.rng >> 7;
            st.rng ^= st.rng << 17;
            if st.rng.is_multiple_of(st.kill_one_in) {
                let pid = st.victim.take().unwrap();
                if (st.rng / st.kill_one_in).is_multiple_of(2) {
                    st.kills_before_record += 1;
                    kill(pid);
                    return ResponseTemplate::new(500);
                }
                st.kills_after_record += 1;
                kill_after = true;
                st.victim = Some(pid);
            }
        }
        let h = hash(&coid);
        let id = format!("{:08x}-0000-4000-8000-{:012x}", h >> 32, h & 0xffff_ffff_ffff);
        let mut o = MockOrder {
            id: id.clone(),
            client_order_id: coid,
            symbol: symbol.clone(),
            side,
            order_type: order_type.clone(),
            time_in_force: tif.clone(),
            qty,
            status: "new".into(),
            filled_qty: 0.0,
            price: None,
            limit_price: price(&body["limit_price"]),
            stop_price: price(&body["stop_price"]),
            order_class: class.clone(),
            sibling: None,
            leg: false,
            listings: 0,
            lie: None,
        };
        if class == "oco" {
            // The parent is the take-profit limit; the stop-loss leg gets its own ids.
            o.limit_price = price(&body["take_profit"]["limit_price"]);
            let leg_id = format!("{:08x}-0000-4000-9000-{:012x}", h >> 32, h & 0xffff_ffff_ffff);
            o.sibling = Some(leg_id.clone());
            let leg = MockOrder {
                id: leg_id,
                client_order_id: format!("leg-{}", o.id),
                order_type: "stop".into(),
                limit_price: None,
                stop_price: price(&body["stop_loss"]["stop_price"]),
                sibling: Some(id.clone()),
                leg: true,
                ..o.clone()
            };
            st.orders.push(leg);
        }
        st.orders.push(o);
        // The most stop orders (a stop, or an OCO pair's stop leg) open at once per symbol.
        let open_stops = st.orders.iter().filter(|o| o.symbol == symbol && o.order_type == "stop" && o.open()).count();
        let most = st.max_open_stops.entry(symbol.clone()).or_insert(0);
        *most = (*most).max(open_stops);
        let k = st.orders.len() - 1;
        let mut answer;
        if order_type == "market" {
            let base = st.base_price.get(&symbol).copied().unwrap_or(100.0);
            let p = ((base * (1.0 + ((h % 101) as f64 - 50.0) / 10_000.0)) * 100.0).round() / 100.0;
            st.fill(k, p);
            if let Some(a @ ("overfill" | "negative_price")) = st.anomaly {
                st.anomaly = None;
                st.orders[k].lie = Some(a);
            }
            answer = st.order_json(&st.orders[k]);
            if st.anomaly == Some("wrong_id") {
                st.anomaly = None;
                answer["client_order_id"] = "td-000000000000000000000000".into();
            }
            if h.is_multiple_of(4) {
                answer["status"] = "partially_filled".into();
                answer["filled_qty"] = text(qty / 2.0).into();
            }
        } else {
            answer = st.order_json(&st.orders[k]);
        }
        if kill_after {
            let pid = st.victim.take().unwrap();
            kill(pid);
        }
        json(200, answer)
    }

    fn delete(&self, st: &mut State, id: &str) -> ResponseTemplate {
        let Some(k) = st.orders.iter().position(|o| o.id == id) else { return not_found() };
        if !st.orders[k].open() {
            return json(422, serde_json::json!({"code": 42210000, "message": "order is not cancelable"}));
        }
        if st.fill_on_cancel && st.orders[k].order_type != "market" {
            st.filled_on_cancel += 1;
            let p = st.orders[k].stop_price.or(st.orders[k].limit_price).unwrap_or(100.0);
            st.fill(k, p);
            return ResponseTemplate::new(204);
        }
        st.orders[k].status = "canceled".into();
        // One-cancels-other: the pair goes together.
        if let Some(s) = st.orders[k].sibling.clone()
            && let Some(sib) = st.orders.iter_mut().find(|o| o.id == s && o.open())
        {
            sib.status = "canceled".into();
        }
        ResponseTemplate::new(204)
    }
}

impl Respond for MockBroker {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        st.log.push(format!("{} {}", req.method, path));
        if st.outage {
            return json(500, serde_json::json!({"code": 50010000, "message": "internal server error"}));
        }
        let mut fault_after = None;
        if st.fault_one_in > 0 {
            st.rng ^= st.rng << 13;
            st.rng ^= st.rng >> 7;
            st.rng ^= st.rng << 17;
            if st.rng.is_multiple_of(st.fault_one_in) {
                st.faults += 1;
                match (st.rng / st.fault_one_in) % 4 {
                    0 => return json(500, serde_json::json!({"code": 50010000, "message": "internal server error"})),
                    1 => {
                        return ResponseTemplate::new(429)
                            .insert_header("Retry-After", "0")
                            .set_body_string("Too Many Requests");
                    }
                    k => fault_after = Some(k),
                }
            }
        }
        let answer = self.route(&mut st, req, &path);
        match fault_after {
            Some(2) => ResponseTemplate::new(200).set_body_string("{\"id\": "),
            Some(_) => json(500, serde_json::json!({"code": 50010000, "message": "internal server error"})),
            None => answer,
        }
    }
}

impl MockBroker {
    fn route(&self, st: &mut State, req: &Request, path: &str) -> ResponseTemplate {
        let query: HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        match (req.method.as_str(), path) {
            ("POST", "/v2/orders") => {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                self.post(st, &body)
            }
            ("GET", "/v2/orders") => {
                let open_only = query.get("status").is_some_and(|s| s == "open");
                if open_only {
                    st.listing();
                }
                let list: Vec<serde_json::Value> =
                    st.orders.iter().filter(|o| !o.leg && (!open_only || o.open())).map(|o| st.order_json(o)).collect();
                json(200, serde_json::Value::Array(list))
            }
            ("GET", "/v2/orders:by_client_order_id") => {
                let coid = query.get("client_order_id").cloned().unwrap_or_default();
                match st.orders.iter().find(|o| o.client_order_id == coid) {
                    Some(o) => json(200, st.order_json(o)),
                    None => not_found(),
                }
            }
            ("GET", p) if p.starts_with("/v2/orders/") => {
                let id = &p["/v2/orders/".len()..];
                match st.orders.iter().find(|o| o.id == id) {
                    Some(o) => json(200, st.order_json(o)),
                    None => not_found(),
                }
            }
            ("DELETE", p) if p.starts_with("/v2/orders/") => {
                let id = p["/v2/orders/".len()..].to_string();
                self.delete(st, &id)
            }
            ("GET", "/v2/positions") => {
                if st.anomaly == Some("foreign_position") {
                    st.positions.insert("ZZZZ".into(), 5.0);
                }
                let list: Vec<serde_json::Value> = st
                    .positions
                    .iter()
                    .filter(|(_, q)| q.abs() > 1e-12)
                    .map(|(s, q)| serde_json::json!({"symbol": s, "qty": text(q.abs()), "side": if *q > 0.0 {"long"} else {"short"}, "avg_entry_price": "0"}))
                    .collect();
                json(200, serde_json::Value::Array(list))
            }
            ("GET", "/v2/account") => {
                st.check_protection();
                json(
                    200,
                    serde_json::json!({"id": "mock", "account_number": "PAMOCK0001", "status": "ACTIVE", "currency": "USD",
                    "cash": st.cash.to_string(), "equity": st.cash.to_string(), "buying_power": st.cash.to_string()}),
                )
            }
            _ => json(404, serde_json::json!({"code": 40410000, "message": format!("mock: no route {path}")})),
        }
    }
}
