//! The Alpaca client against a local mock server (wiremock) serving real Alpaca bodies from
//! `tests/data/alpaca/` (copied from `../shared/alpaca/fixtures`, sources in SOURCES.md).

use std::time::{Duration, Instant};

use tradedsl::runtime::broker::alpaca::model::OrderRequest;
use tradedsl::runtime::broker::alpaca::{BrokerError, Credentials, MarketDataClient, RetryPolicy, TradingClient};
use wiremock::matchers::{body_partial_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "PKMOCKKEY0001";
const SECRET: &str = "mock-secret-do-not-print";

fn body(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/alpaca/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn json(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body(name), "application/json")
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_millis(300),
        rate_limit_wait: Duration::from_millis(50),
        backoff: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

fn trading(server: &MockServer) -> TradingClient {
    TradingClient::new(&server.uri(), Credentials::new(KEY, SECRET), policy()).unwrap()
}

fn data(server: &MockServer) -> MarketDataClient {
    MarketDataClient::new(&server.uri(), Credentials::new(KEY, SECRET), policy()).unwrap()
}

fn order_request() -> OrderRequest {
    OrderRequest {
        symbol: "SPY".into(),
        qty: "1".into(),
        side: "buy",
        order_type: "limit",
        time_in_force: "day",
        limit_price: Some("400.00".into()),
        stop_price: None,
        client_order_id: "bot-s-SPY-1617819930-0".into(),
        order_class: None,
        take_profit: None,
        stop_loss: None,
    }
}

#[tokio::test]
async fn account_with_auth_headers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/account"))
        .and(header("APCA-API-KEY-ID", KEY))
        .and(header("APCA-API-SECRET-KEY", SECRET))
        .respond_with(json(200, "GET_v2_account__200__docs2026_example.json"))
        .expect(1)
        .mount(&server)
        .await;
    let a = trading(&server).account().await.unwrap();
    assert_eq!(a.account_number, "PALPACA_123");
    assert_eq!(a.cash, 122_086.5);
    assert_eq!(a.equity, 123_346.11);
    assert!(!a.trading_blocked);
}

#[tokio::test]
async fn the_sdk_mock_account_parses_too() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/account"))
        .respond_with(json(200, "GET_v2_account__200__alpaca-py.json"))
        .mount(&server)
        .await;
    let a = trading(&server).account().await.unwrap();
    assert!(!a.account_number.is_empty());
    assert!(a.cash.is_finite());
}

#[tokio::test]
async fn submit_order_sends_strings_and_our_client_order_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .and(body_partial_json(serde_json::json!({
            "symbol": "SPY", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day",
            "limit_price": "400.00", "client_order_id": "bot-s-SPY-1617819930-0"
        })))
        .respond_with(json(200, "POST_v2_orders__200__atapy_SPY_limit_accepted.json"))
        .expect(1)
        .mount(&server)
        .await;
    let o = trading(&server).submit_order(&order_request()).await.unwrap();
    assert_eq!(o.status, "accepted");
    assert_eq!(o.symbol, "SPY");
    assert_eq!(o.qty, Some(1.0));
    assert_eq!(o.filled(), 0.0);
    assert_eq!(o.limit_price, Some(400.0));
    assert!(!o.is_final());
}

#[tokio::test]
async fn docs_equity_order_parses() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/orders"))
        .respond_with(json(200, "POST_v2_orders__200__docs2026_equity.json"))
        .mount(&server)
        .await;
    let o = trading(&server).submit_order(&order_request()).await.unwrap();
    assert!(!o.id.is_empty());
}

#[tokio::test]
async fn lookup_by_client_order_id_found_and_missing() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/orders:by_client_order_id"))
        .and(query_param("client_order_id", "eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4"))
        .respond_with(json(200, "GET_v2_orders_by_client_order_id__200__alpaca-py.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/orders:by_client_order_id"))
        .and(query_param("client_order_id", "never-sent"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw(r#"{"code":40410000,"message":"order not found for never-sent"}"#, "application/json"),
        )
        .mount(&server)
        .await;
    let c = trading(&server);
    let o = c.order_by_client_order_id("eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4").await.unwrap().unwrap();
    // The SDK mock's quirks: qty as a JSON number, a stray backquote in the symbol.
    assert_eq!(o.qty, Some(1.0));
    assert_eq!(o.symbol, "AAPL`");
    assert_eq!(c.order_by_client_order_id("never-sent").await.unwrap(), None);
}

#[tokio::test]
async fn orders_positions_and_clock() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/orders"))
        .and(query_param("status", "open"))
        .respond_with(json(200, "GET_v2_orders__200__alpaca-py.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/positions"))
        .respond_with(json(200, "GET_v2_positions__200__alpaca-py.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/clock")).respond_with(json(200, "GET_v2_clock__200__docs2026.json")).mount(&server).await;
    let c = trading(&server);
    let orders = c.orders("open", None).await.unwrap();
    assert!(!orders.is_empty());
    let positions = c.positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!((positions[0].symbol.as_str(), positions[0].qty, positions[0].avg_entry_price), ("AAPL", 5.0, 100.0));
    assert_eq!(positions[0].signed_qty(), 5.0);
    let clock = c.clock().await.unwrap();
    assert!(clock.is_open);
}

#[tokio::test]
async fn cancel_all_multi_status() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v2/orders"))
        .respond_with(json(207, "DELETE_v2_orders__207__alpaca-py.json"))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/orders/497f6eca-6276-4993-bfeb-53cbbbba6f08"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let c = trading(&server);
    let results = c.cancel_all_orders().await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].status, 200);
    assert_eq!(results[1].status, 404);
    assert_eq!(results[1].body.as_ref().unwrap().code, Some(40410000));
    c.cancel_order("497f6eca-6276-4993-bfeb-53cbbbba6f08").await.unwrap();
}

#[tokio::test]
async fn rejections_422_403_404_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .and(body_partial_json(serde_json::json!({"symbol": "SPY"})))
        .respond_with(json(422, "POST_v2_orders__422__atapy_qty_or_notional_required.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .and(body_partial_json(serde_json::json!({"symbol": "TSLA"})))
        .respond_with(json(403, "POST_v2_positions_exercise__403__docs2026_no_position.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/orders/not-a-uuid"))
        .respond_with(json(422, "GET_v2_orders_id__422__issue135_order_id_missing.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/orders/0c8e4cf8-0000-4000-8000-000000000000"))
        .respond_with(json(404, "GET_v2_options_contracts_id__404__docs2026.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = trading(&server);
    let e = c.submit_order(&order_request()).await.unwrap_err();
    assert!(matches!(&e, BrokerError::Rejected { status: 422, code: Some(40010001), .. }), "{e:?}");
    assert!(e.to_string().contains("qty or notional is required"), "{e}");
    assert!(!e.outcome_unknown());
    let mut tsla = order_request();
    tsla.symbol = "TSLA".into();
    let e = c.submit_order(&tsla).await.unwrap_err();
    assert!(matches!(&e, BrokerError::Rejected { status: 403, code: Some(40310000), .. }), "{e:?}");
    let e = c.order("not-a-uuid").await.unwrap_err();
    assert!(e.to_string().contains("order_id is missing"), "{e}");
    let e = c.order("0c8e4cf8-0000-4000-8000-000000000000").await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn rate_limit_with_a_plain_text_body_waits_for_the_reset_then_succeeds() {
    let server = MockServer::start().await;
    // Two seconds ahead: at least one whole second to wait, wherever in a second this starts.
    let reset = chrono::Utc::now().timestamp() + 2;
    Mock::given(path("/v2/clock"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_string("Too Many Requests")
                .insert_header("X-RateLimit-Limit", "200")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/clock")).respond_with(json(200, "GET_v2_clock__200__docs2026.json")).mount(&server).await;
    let started = Instant::now();
    let clock = trading(&server).clock().await.unwrap();
    assert!(clock.is_open);
    // It waited for the reset second rather than the short default.
    let now = chrono::Utc::now().timestamp();
    assert!(now >= reset, "retried before X-RateLimit-Reset ({now} < {reset})");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn rate_limit_every_time_gives_up_with_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Too Many Requests"))
        .mount(&server)
        .await;
    let e = trading(&server).submit_order(&order_request()).await.unwrap_err();
    match &e {
        BrokerError::RateLimited { tries, body, .. } => {
            assert_eq!(*tries, RetryPolicy::default().rate_limit_tries);
            assert_eq!(body, "Too Many Requests");
        }
        other => panic!("{other:?}"),
    }
    // A 429 was refused, so retrying even an order is safe: every try reached the server.
    assert_eq!(server.received_requests().await.unwrap().len(), RetryPolicy::default().rate_limit_tries);
    assert!(!e.outcome_unknown());
}

#[tokio::test]
async fn a_timed_out_order_is_not_retried_but_a_read_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .respond_with(json(200, "POST_v2_orders__200__atapy_SPY_limit_accepted.json").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/positions"))
        .respond_with(json(200, "GET_v2_positions__200__alpaca-py.json").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let c = trading(&server);
    let e = c.submit_order(&order_request()).await.unwrap_err();
    assert!(matches!(e, BrokerError::Timeout { .. }), "{e:?}");
    assert!(e.outcome_unknown(), "a timed-out submission must be looked up before a retry");
    let posts = server.received_requests().await.unwrap().len();
    assert_eq!(posts, 1, "a timed-out POST must not be sent again");
    let e = c.positions().await.unwrap_err();
    assert!(matches!(e, BrokerError::Timeout { .. }), "{e:?}");
    let gets = server.received_requests().await.unwrap().len() - posts;
    assert_eq!(gets, RetryPolicy::default().idempotent_tries);
}

#[tokio::test]
async fn server_errors_and_malformed_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>upstream unavailable</html>"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/account"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"id\": \"x\", \"cash\": "))
        .mount(&server)
        .await;
    let c = trading(&server);
    let e = c.submit_order(&order_request()).await.unwrap_err();
    assert!(matches!(e, BrokerError::Server { status: 503, .. }), "{e:?}");
    assert!(e.outcome_unknown());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let e = c.account().await.unwrap_err();
    assert!(matches!(e, BrokerError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("/v2/account"), "{e}");
}

#[tokio::test]
async fn errors_never_carry_the_keys() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/account"))
        .respond_with(ResponseTemplate::new(403).set_body_string(format!("forbidden: key {KEY} secret {SECRET}")))
        .mount(&server)
        .await;
    let e = trading(&server).account().await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET) && !text.contains(KEY), "{text}");
}

#[tokio::test]
async fn stock_bars_follow_every_page() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/stocks/bars"))
        .and(query_param("symbols", "META"))
        .and(query_param("timeframe", "1Day"))
        .and(query_param_is_missing("page_token"))
        .respond_with(json(200, "GET_v2_stocks_bars__200__go_META_1Day_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/stocks/bars"))
        .and(query_param("page_token", "TUVUQXxEfDIwMjItMDYtMDlUMDQ6MDA6MDAuMDAwMDAwMDAwWg=="))
        .respond_with(json(200, "GET_v2_stocks_bars__200__go_META_1Day_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/stocks/bars"))
        .and(query_param("page_token", "TUVUQXxEfDIwMjItMDYtMTNUMDQ6MDA6MDAuMDAwMDAwMDAwWg=="))
        .respond_with(json(200, "GET_v2_stocks_bars__200__alpaca-py_empty_1.json"))
        .expect(1)
        .mount(&server)
        .await;
    let bars = data(&server).bars(&["META".into()], "1d".parse().unwrap(), "2022-06-08", None).await.unwrap();
    let meta = &bars["META"];
    assert_eq!(meta.len(), 4);
    assert_eq!(meta[0].ts, 1_654_660_800); // 2022-06-08T04:00:00Z
    assert_eq!((meta[0].open, meta[0].close), (194.67, 196.64));
    assert_eq!(meta[3].close, 164.26);
    assert!(meta.windows(2).all(|w| w[0].ts < w[1].ts));
}

#[tokio::test]
async fn crypto_bars_and_latest_quotes() {
    let server = MockServer::start().await;
    Mock::given(path("/v1beta3/crypto/us/bars"))
        .and(query_param("symbols", "BTC/USD,ETH/USD"))
        .respond_with(json(200, "GET_v1beta3_crypto_us_bars__200__go_multi.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/stocks/quotes/latest"))
        .respond_with(json(200, "GET_v2_stocks_quotes_latest__200__go_multi.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v1beta3/crypto/us/latest/quotes"))
        .respond_with(json(200, "GET_v1beta3_crypto_us_latest_quotes__200__go_multi.json"))
        .mount(&server)
        .await;
    let d = data(&server);
    let bars = d.bars(&["BTC/USD".into(), "ETH/USD".into()], "1h".parse().unwrap(), "2021-11-20", None).await.unwrap();
    assert_eq!(bars["BTC/USD"][0].close, 59660.38);
    assert!(bars["BTC/USD"][0].volume.fract() != 0.0, "crypto volume is fractional");
    let quotes = d.latest_quotes(&["TSLA".into(), "F".into(), "BTC/USD".into()]).await.unwrap();
    assert_eq!((quotes["TSLA"].bp, quotes["TSLA"].ap), (792.0, 792.6));
    assert!((quotes["TSLA"].mid() - 792.3).abs() < 1e-9);
    assert!(quotes.keys().any(|k| k.contains('/')), "{:?}", quotes.keys().collect::<Vec<_>>());
}
