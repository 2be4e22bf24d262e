//! An outside broker fills an exit in part and cancels the rest: the rest of the position
//! stays, and a stop for the remaining units replaces the one cancelled before the exit (so
//! the broker is never asked to sell more than is free); the round trip is recorded once the
//! position is closed, at the average exit price.

use tradedsl::config::manifest::FillTiming;
use tradedsl::engine::events::NullSink;
use tradedsl::engine::external::BrokerRequest;
use tradedsl::engine::market::Bar;
use tradedsl::engine::orders::{OrderType, Quantity};
use tradedsl::engine::pipeline::{Engine, EngineSettings};

use crate::common::bundle;

fn bar(ts: i64, close: f64) -> Bar {
    Bar { ts, open: close, high: close, low: close, close, volume: 1.0 }
}

#[test]
fn a_partial_exit_keeps_the_rest_of_the_position_and_resizes_its_stop() {
    let s = "kind: strategy\nname: s\nuniverse: [X]\ntimeframe: 1d\nentry: close < 150\nexit: close > 150\n\
             stop_loss: 10%\nsizing:\n  fixed_quantity: 100\n";
    let settings = EngineSettings {
        bot: "b".into(),
        run: 0,
        starting_cash: 100_000.0,
        costs: Default::default(),
        fill: FillTiming::NextOpen,
    };
    let mut e = Engine::new(bundle(&[s], &[]), &["X".to_string()], settings);
    e.use_external_broker();
    let mut sink = NullSink;
    e.on_bar(0, &bar(86_400, 100.0), &mut sink);
    let entry = match e.take_requests().as_slice() {
        [BrokerRequest::Submit(o)] => o.clone(),
        other => panic!("{other:?}"),
    };
    assert!(e.apply_fill(entry.client_order_id, 100.0, 100.0, 2 * 86_400, &mut sink));
    let stop = match e.take_requests().as_slice() {
        [BrokerRequest::Submit(o)] if matches!(o.order_type, OrderType::Stop(_)) => o.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stop.estimated_units, 100.0);
    // The exit rule fires: the stop is cancelled first (it holds the shares), then the sell.
    e.on_bar(0, &bar(3 * 86_400, 200.0), &mut sink);
    let requests = e.take_requests();
    assert!(
        matches!(&requests[0], BrokerRequest::Cancel(o) if o.client_order_id == stop.client_order_id),
        "{requests:?}"
    );
    let exit = requests
        .into_iter()
        .find_map(|r| match r {
            BrokerRequest::Submit(o) if o.order_type == OrderType::Market => Some(o),
            _ => None,
        })
        .expect("an exit");
    assert_eq!(exit.quantity, Quantity::ClosePosition);
    // The broker fills 40 of 100 and cancels the rest.
    assert!(e.apply_fill(exit.client_order_id, 40.0, 200.0, 4 * 86_400, &mut sink));
    assert_eq!(e.units_by_symbol(), vec![60.0]);
    assert!(e.trades().is_empty(), "the round trip is not over");
    // A stop for the 60 units left goes out.
    let requests = e.take_requests();
    let new_stop = requests.iter().find_map(|r| match r {
        BrokerRequest::Submit(o) if matches!(o.order_type, OrderType::Stop(_)) => Some(o.clone()),
        _ => None,
    });
    assert_eq!(new_stop.expect("a new stop").quantity, Quantity::Units(60.0));
    assert!((e.cash() - (100_000.0 - 10_000.0 + 8_000.0)).abs() < 1e-9);
    // The rest goes at 150 later: one round trip of 100 units.
    e.on_bar(0, &bar(5 * 86_400, 200.0), &mut sink);
    let exit = e
        .take_requests()
        .into_iter()
        .find_map(|r| match r {
            BrokerRequest::Submit(o) if o.order_type == OrderType::Market => Some(o),
            _ => None,
        })
        .expect("an exit");
    assert!(e.apply_fill(exit.client_order_id, 60.0, 150.0, 6 * 86_400, &mut sink));
    let trade = &e.trades()[0];
    assert_eq!(trade.quantity, 100.0);
    assert!((trade.exit_price - 170.0).abs() < 1e-9, "{}", trade.exit_price);
    assert!((trade.pnl - (40.0 * 100.0 + 60.0 * 50.0)).abs() < 1e-9, "{}", trade.pnl);
}
