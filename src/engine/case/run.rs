//! Running a prepared case: the graph over the case's bars, then the policy's rules in order
//! (with the values each saw), or the strategy's protective orders, exit or entry rule, entry
//! filter and sizing scale, as the engine would on that bar.
//!
//! `run` (about 200 lines) is one match over the target, policy or strategy, sharing the
//! evaluated graph, the fields and the traces it collects; split, each half would pass all of
//! them around.

use super::*;

/// Runs a prepared case.
pub fn run(case: &Prepared) -> CaseRun {
    let mut graph = Graph::new(&case.program.graph, case.base);
    let mut before = graph.values().to_vec();
    for (i, bar) in case.bars.iter().enumerate() {
        if i + 1 == case.bars.len() {
            before = graph.values().to_vec();
        }
        graph.update(bar);
    }
    graph.pin(&case.pins);
    let now = graph.values().to_vec();
    let fields = case.fields;
    let strings = |v: f64| case.strings.get(&v.to_bits()).cloned();
    let mut spec = case.program.graph.clone();
    let given: Vec<NodeId> = case.pins.iter().map(|p| p.0).collect();
    let values = Values { now: &now, before: &before, fields: &fields, strings: &strings, given: &given };
    let mut rules = Vec::new();
    let mut notes = Vec::new();
    let mut scratch = Vec::new();
    let mut scale = f64::NAN;
    let mut entry_price = f64::NAN;
    let budgets = crate::dsl::script::ScriptBudgets::default();
    let outcome = match &case.target {
        Target::Policy(p) => {
            let policies = std::slice::from_ref(&**p);
            let names = |path: &str| catalog::field(path).and_then(|f| strings(fields[f.id as usize]));
            let mut verdicts = Vec::new();
            let denial = check_order(
                policies,
                &case.program.policies,
                &now,
                &fields,
                &names,
                &mut scratch,
                false,
                &budgets,
                |v, _| verdicts.push(v.clone()),
            );
            for ((c, r), v) in p.rules.iter().zip(&p.doc.rules).zip(&verdicts) {
                let tree = match (c.expr(), r.condition.expr(), c) {
                    (Some(e), Some(src), _) => render(&explain(e, src, &mut spec, &values)),
                    (_, _, CompiledCondition::Script(script)) => {
                        let said = match (&v.error, &v.message, v.fired) {
                            (Some(e), _, _) => format!("failed: {e}"),
                            (None, Some(m), _) => format!("deny: {m}"),
                            (None, None, true) => "deny".to_string(),
                            (None, None, false) => "allow".to_string(),
                        };
                        format!("script `{}` = {said}\n", script.source.name)
                    }
                    _ => String::new(),
                };
                rules.push(RuleTrace { name: r.id.value.clone(), value: v.value, tree });
            }
            // A `reduce` rule lets an exit through (the engine's rule, see the pipeline).
            let exit = fields[catalog::FieldId::OrderIntent as usize] == crate::dsl::semantics::string_id("exit");
            let warned = p
                .doc
                .rules
                .iter()
                .zip(&verdicts)
                .filter(|(r, v)| v.fired && r.action.value == crate::config::policy::Action::Warn)
                .map(|(r, _)| r.id.value.clone())
                .collect();
            match denial {
                Some(d) if d.action == crate::config::policy::Action::Reduce && exit => Outcome::Allow { warned },
                Some(d) => Outcome::Deny { rule: d.rule_id(policies), reason: d.reason(policies) },
                None => Outcome::Allow { warned },
            }
        }
        Target::Strategy(s) => {
            let compiled = case.program.strategies[0].as_ref();
            // Protective orders fill against the bar's range before any rule runs.
            let mut protective = None;
            if let (Some((qty, entry, _)), Some(bar)) = (case.position, case.bars.last()) {
                let mut broker = SimBroker::new(
                    FillModel {
                        costs: crate::engine::costs::CostModel::default(),
                        timing: crate::config::manifest::FillTiming::NextOpen,
                    },
                    1,
                );
                let ids = OrderIds::new("test", 0, s.name(), "");
                // A percent trailing stop starts below the entry price (the case gives no
                // history of highs since the entry); the higher stop applies, as in the engine.
                let mut levels = protective_orders(&s.doc, entry);
                if let Some(crate::config::strategy::TrailingStop::Percent(p)) =
                    s.doc.trailing_stop.as_ref().map(|t| t.value)
                {
                    let trail = entry * (1.0 - p);
                    let fixed = levels.iter().position(|(t, _)| matches!(t, crate::engine::orders::OrderType::Stop(_)));
                    match fixed {
                        Some(i) if matches!(levels[i].0, crate::engine::orders::OrderType::Stop(f) if f >= trail) => {}
                        Some(i) => {
                            levels[i] = (
                                crate::engine::orders::OrderType::Stop(trail),
                                crate::engine::orders::ExitReason::TrailingStop,
                            )
                        }
                        None => levels.push((
                            crate::engine::orders::OrderType::Stop(trail),
                            crate::engine::orders::ExitReason::TrailingStop,
                        )),
                    }
                }
                for (k, (order_type, reason)) in levels.into_iter().enumerate() {
                    let level = match order_type {
                        crate::engine::orders::OrderType::Stop(p) | crate::engine::orders::OrderType::Limit(p) => p,
                        crate::engine::orders::OrderType::Market => f64::NAN,
                    };
                    notes.push(format!(
                        "{} at {} (entry price {entry}); last bar: open {} low {} high {}",
                        reason.as_str(),
                        price(level),
                        bar.open,
                        bar.low,
                        bar.high
                    ));
                    broker.submit(Order {
                        client_order_id: ids.id(0, k as u32),
                        slot: 0,
                        strategy: 0,
                        symbol: 0,
                        side: Side::Sell,
                        intent: Intent::Exit,
                        order_type,
                        time_in_force: TimeInForce::Gtc,
                        quantity: Quantity::ClosePosition,
                        estimated_units: qty,
                        reference_price: entry,
                        created_ts: 0,
                        reason: OrderReason::Exit(reason),
                        expected_return: f64::NAN,
                        group: None,
                    });
                }
                if let Some(OrderReason::Exit(r)) = broker.in_range(0, bar).into_iter().next().map(|ex| ex.order.reason)
                {
                    protective = Some(Signal::Exit(r));
                }
            }
            let signal = match protective {
                Some(sig) => Some(sig),
                None => {
                    let max_holding = s.doc.max_holding.as_ref().map_or(u32::MAX, |m| m.value);
                    decide(case.position.map(|p| p.2), max_holding, |kind| {
                        let (rule, e, src) = match kind {
                            RuleKind::Entry => (compiled.map(|r| &r.entry), Some(&s.entry), Some(&s.doc.entry)),
                            RuleKind::Exit => {
                                (compiled.and_then(|r| r.exit.as_ref()), s.exit.as_ref(), s.doc.exit.as_ref())
                            }
                        };
                        if let (Some(e), Some(src)) = (e, src) {
                            let x = explain(e, src, &mut spec, &values);
                            let name = if kind == RuleKind::Entry { "entry" } else { "exit" };
                            rules.push(RuleTrace { name: name.into(), value: x.value, tree: render(&x) });
                        }
                        rule.map(|r| fires(eval_rule(r, &now, &fields, &mut scratch)))
                    })
                }
            };
            // The entry filter may veto an entry, as in the engine.
            let signal = match (signal, &s.filter) {
                (Some(Signal::Entry), Some(filter)) => {
                    let bar = case.bars.last();
                    let ctx = FilterContext {
                        symbol: s.doc.universe.first().map(|u| u.value.clone()).unwrap_or_default(),
                        strategy: s.name().to_string(),
                        time: bar.map_or(0, |b| b.ts),
                        bar: bar.map_or([f64::NAN; 5], |b| [b.open, b.high, b.low, b.close, b.volume]),
                        fields: fields.to_vec(),
                    };
                    match filter.filter(Sandbox::shared(), &ctx) {
                        Ok(true) => {
                            notes.push(format!("filter `{}` let the entry through", filter.source.name));
                            signal
                        }
                        Ok(false) => {
                            notes.push(format!("filter `{}` vetoed the entry", filter.source.name));
                            None
                        }
                        Err(e) => {
                            notes.push(format!("filter `{}` failed, so the entry is skipped: {e}", filter.source.name));
                            None
                        }
                    }
                }
                _ => signal,
            };
            if let (Some((_, _, held)), Some(m)) = (case.position, &s.doc.max_holding) {
                notes.push(format!("max_holding {} bars; held {held}", m.value));
            }
            if let Some(r) = compiled {
                scale = crate::engine::rules::eval_scale(&r.sizing_scale, &now, &fields, &mut scratch);
                if !r.sizing_scale.is_empty() {
                    notes.push(format!("sizing scale {}", crate::config::units::trim_float(scale)));
                }
                // The entry order's price as the engine sends it: an equity's on the tick grid,
                // a buy limit rounded down, a buy stop up.
                if let (Some(p), Some(o)) = (&r.entry_price, &s.doc.entry_order) {
                    let raw = eval_rule(p, &now, &fields, &mut scratch);
                    let stop = o.order_type.value == crate::config::strategy::EntryOrderType::Stop;
                    entry_price = if crate::engine::orders::is_crypto(&case.symbol) {
                        raw
                    } else {
                        crate::engine::orders::to_tick(raw, stop)
                    };
                    notes.push(format!(
                        "{} entry at {}",
                        if stop { "stop" } else { "limit" },
                        crate::config::units::trim_float(entry_price)
                    ));
                }
            }
            Outcome::Signal(signal)
        }
    };
    CaseRun { outcome, rules, notes, scale, price: entry_price }
}
