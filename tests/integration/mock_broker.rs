//! A mock Alpaca Trading API with state, for tests that run the real `dsl` binary against a
//! broker: orders by `client_order_id`, fills, positions, cash, cancels. Market orders fill at
//! once, in full, at a price derived from the symbol and the `client_order_id` (so two runs
//! that send the same orders get the same fills); every fourth one answers its POST as
//! `partially_filled`. Stop and limit orders rest until cancelled. The mock can SIGKILL the bot
//! while it handles a POST: either before recording the order (as if the bot died between its
//! database write and the submit) or after (between the submit and persisting the answer).

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
    pub qty: f64,
    pub status: String,
    pub filled_qty: f64,
    pub price: Option<f64>,
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
    /// The bot's pid, and 1-in-N POSTs that kill it (0: never).
    pub victim: Option<u32>,
    pub kill_one_in: u64,
    pub rng: u64,
    pub kills_before_record: usize,
    pub kills_after_record: usize,
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

fn order_json(o: &MockOrder) -> serde_json::Value {
    serde_json::json!({
        "id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
        "type": o.order_type, "order_type": o.order_type, "time_in_force": "day",
        "qty": o.qty.to_string(), "filled_qty": o.filled_qty.to_string(),
        "filled_avg_price": o.price.map(|p| p.to_string()), "status": o.status,
        "created_at": "2026-11-22T15:00:00.123456789Z"
    })
}

fn json(status: u16, v: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(v.to_string(), "application/json")
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}

impl Respond for MockBroker {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        let query: HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        match (req.method.as_str(), path.as_str()) {
            ("POST", "/v2/orders") => {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let coid = body["client_order_id"].as_str().unwrap().to_string();
                if st.orders.iter().any(|o| o.client_order_id == coid) {
                    st.duplicate_posts += 1;
                    return json(
                        422,
                        serde_json::json!({"code": 40010001, "message": "client_order_id must be unique"}),
                    );
                }
                let mut kill_after = false;
                if st.kill_one_in > 0 && st.victim.is_some() {
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
                let symbol = body["symbol"].as_str().unwrap().to_string();
                let qty: f64 = body["qty"].as_str().unwrap().parse().unwrap();
                let side = body["side"].as_str().unwrap().to_string();
                let order_type = body["type"].as_str().unwrap().to_string();
                let h = hash(&coid);
                let mut o = MockOrder {
                    id: format!("{:08x}-0000-4000-8000-{:012x}", h >> 32, h & 0xffff_ffff_ffff),
                    client_order_id: coid,
                    symbol: symbol.clone(),
                    side: side.clone(),
                    order_type: order_type.clone(),
                    qty,
                    status: "new".into(),
                    filled_qty: 0.0,
                    price: None,
                };
                let mut answer = order_json(&o);
                if order_type == "market" {
                    let base = st.base_price.get(&symbol).copied().unwrap_or(100.0);
                    let price = ((base * (1.0 + ((h % 101) as f64 - 50.0) / 10_000.0)) * 100.0).round() / 100.0;
                    o.status = "filled".into();
                    o.filled_qty = qty;
                    o.price = Some(price);
                    let signed = if side == "buy" { qty } else { -qty };
                    *st.positions.entry(symbol).or_insert(0.0) += signed;
                    st.cash -= signed * price;
                    answer = order_json(&o);
                    if h.is_multiple_of(4) {
                        answer["status"] = "partially_filled".into();
                        answer["filled_qty"] = (qty / 2.0).to_string().into();
                    }
                }
                st.orders.push(o);
                if kill_after {
                    let pid = st.victim.take().unwrap();
                    kill(pid);
                }
                json(200, answer)
            }
            ("GET", "/v2/orders") => {
                let open: Vec<serde_json::Value> = st
                    .orders
                    .iter()
                    .filter(|o| {
                        query.get("status").is_none_or(|s| s != "open")
                            || matches!(o.status.as_str(), "new" | "partially_filled")
                    })
                    .map(order_json)
                    .collect();
                json(200, serde_json::Value::Array(open))
            }
            ("GET", "/v2/orders:by_client_order_id") => {
                let coid = query.get("client_order_id").cloned().unwrap_or_default();
                match st.orders.iter().find(|o| o.client_order_id == coid) {
                    Some(o) => json(200, order_json(o)),
                    None => json(404, serde_json::json!({"code": 40410000, "message": "order not found"})),
                }
            }
            ("DELETE", p) if p.starts_with("/v2/orders/") => {
                let id = &p["/v2/orders/".len()..];
                match st.orders.iter_mut().find(|o| o.id == id) {
                    Some(o) if o.status == "new" => {
                        o.status = "canceled".into();
                        ResponseTemplate::new(204)
                    }
                    Some(_) => json(422, serde_json::json!({"code": 42210000, "message": "order is not cancelable"})),
                    None => json(404, serde_json::json!({"code": 40410000, "message": "order not found"})),
                }
            }
            ("GET", "/v2/positions") => {
                let list: Vec<serde_json::Value> = st
                    .positions
                    .iter()
                    .filter(|(_, q)| q.abs() > 1e-12)
                    .map(|(s, q)| serde_json::json!({"symbol": s, "qty": q.abs().to_string(), "side": if *q > 0.0 {"long"} else {"short"}, "avg_entry_price": "0"}))
                    .collect();
                json(200, serde_json::Value::Array(list))
            }
            ("GET", "/v2/account") => json(
                200,
                serde_json::json!({"id": "mock", "account_number": "PAMOCK0001", "status": "ACTIVE", "currency": "USD",
                    "cash": st.cash.to_string(), "equity": st.cash.to_string(), "buying_power": st.cash.to_string()}),
            ),
            _ => json(404, serde_json::json!({"code": 40410000, "message": format!("mock: no route {path}")})),
        }
    }
}
