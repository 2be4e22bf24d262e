//! The risk gate's records: the [`TradingStatus`] (ACTIVE, REDUCING, HALTED), the `halt` and
//! `reduce` rules checked at every mark ([`MarkRule`]), the order counters policies read
//! (`account.orders_today`, `…_last_minute`, `…_last_hour`), the losing streak
//! (`account.loss_streak`), the policies' allocation buckets, and the broker's outage windows
//! of a stress scenario.
//!
//! The policy rules themselves are compiled in the bundle and evaluated by the engine's
//! admission step, which asks this part what the state admits and records here what it sent;
//! the engine reaches these records only through the methods below. A bundle swap hands the
//! state, counters and outages to the new bundle's gate ([`RiskGate::hand_over`]); the mark
//! rules and buckets are the new bundle's.

use std::collections::VecDeque;

use crate::config::policy::Action;
use crate::dsl::bundle::{Bundle, SymbolProgram};
use crate::dsl::catalog::FieldId;
use crate::dsl::program::RuleEval;
use crate::dsl::semantics::string_id;

use super::allocation::Allocation;
use super::trading_state::TradingStatus;

/// The risk gate's state (see the module doc).
pub(crate) struct RiskGate {
    status: TradingStatus,
    /// `halt`/`reduce` rules checked at every mark.
    mark_rules: Vec<MarkRule>,
    /// Market orders sent on the current UTC day.
    orders_today: u32,
    /// Bar times (UTC seconds) of the market orders sent in the last hour, oldest first.
    recent_orders: VecDeque<i64>,
    /// Consecutive losing round trips, most recent first.
    loss_streak: u32,
    /// Times `[from, to)` (UTC seconds) in which the broker refuses new orders (stress tests).
    outages: Vec<(i64, i64)>,
    /// The policies' allocation buckets, in bundle order.
    allocations: Vec<Allocation>,
    /// Each symbol's bucket name (as a string id) in the first allocation, or `NaN`.
    bucket_ids: Vec<f64>,
    /// Some rule reads `bucket.*` (the bucket weights are then computed for its fields).
    reads_buckets: bool,
}

impl RiskGate {
    /// The gate of `bundle` for the engine's `symbols`, whose compiled programs are
    /// `programs` (same order), ACTIVE, with no orders counted.
    pub fn new(bundle: &Bundle, symbols: &[String], programs: &[&SymbolProgram]) -> Self {
        let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
        let allocations: Vec<Allocation> = bundle
            .policies
            .iter()
            .enumerate()
            .filter_map(|(pi, p)| Some(Allocation::new(p.doc.allocation.as_ref()?, pi, &names)))
            .collect();
        let bucket_ids = (0..symbols.len())
            .map(|si| allocations.first().and_then(|a| a.bucket_name(si)).map_or(f64::NAN, string_id))
            .collect();
        let reads_buckets = !allocations.is_empty() && programs.iter().any(|p| reads_bucket_fields(p));
        RiskGate {
            status: TradingStatus::default(),
            mark_rules: mark_rules(bundle, programs.first().copied()),
            orders_today: 0,
            recent_orders: VecDeque::new(),
            loss_streak: 0,
            outages: Vec::new(),
            allocations,
            bucket_ids,
            reads_buckets,
        }
    }

    /// The trading state.
    pub fn status(&self) -> &TradingStatus {
        &self.status
    }

    /// The trading state, to move it (its transitions are [`TradingStatus`]'s methods).
    pub fn status_mut(&mut self) -> &mut TradingStatus {
        &mut self.status
    }

    /// Puts `status` in force as it is (a restart restoring the bot's state).
    pub fn set_status(&mut self, status: TradingStatus) {
        self.status = status;
    }

    /// The rules checked at every mark.
    pub fn mark_rules(&self) -> &[MarkRule] {
        &self.mark_rules
    }

    /// Counts a market order sent at bar time `ts` (UTC seconds).
    pub fn count_order(&mut self, ts: i64) {
        self.orders_today += 1;
        while self.recent_orders.front().is_some_and(|t| *t <= ts - 3_600) {
            self.recent_orders.pop_front();
        }
        self.recent_orders.push_back(ts);
    }

    /// A new UTC day began: `account.orders_today` starts again from 0.
    pub fn start_day(&mut self) {
        self.orders_today = 0;
    }

    /// Market orders sent on the current UTC day.
    pub fn orders_today(&self) -> u32 {
        self.orders_today
    }

    /// Market orders sent in the `secs` seconds up to `now` (UTC seconds; at most an hour).
    pub fn orders_within(&self, now: i64, secs: i64) -> usize {
        self.recent_orders.iter().rev().take_while(|t| **t > now - secs).count()
    }

    /// Records a closed round trip's profit or loss (currency).
    pub fn record_round_trip(&mut self, pnl: f64) {
        self.loss_streak = if pnl < 0.0 { self.loss_streak + 1 } else { 0 };
    }

    /// Consecutive losing round trips.
    pub fn loss_streak(&self) -> u32 {
        self.loss_streak
    }

    /// The broker refuses new orders in the windows `[from, to)` (UTC seconds).
    pub fn set_outages(&mut self, windows: Vec<(i64, i64)>) {
        self.outages = windows;
    }

    /// The broker is out at `ts` (UTC seconds).
    pub fn broker_out(&self, ts: i64) -> bool {
        self.outages.iter().any(|(a, b)| (*a..*b).contains(&ts))
    }

    /// The policies' allocation buckets.
    pub fn allocations(&self) -> &[Allocation] {
        &self.allocations
    }

    /// Symbol index `si`'s bucket name in the first allocation, as a string id (`NaN`: none).
    pub fn bucket_id(&self, si: usize) -> f64 {
        self.bucket_ids[si]
    }

    /// Some rule reads `bucket.*`.
    pub fn reads_buckets(&self) -> bool {
        self.reads_buckets
    }

    /// Hands the trading state, the order counters, the losing streak and the outages to
    /// `next`, the gate of a swapped-in bundle.
    pub fn hand_over(&mut self, next: &mut RiskGate) {
        next.status = self.status.clone();
        next.orders_today = self.orders_today;
        next.recent_orders = std::mem::take(&mut self.recent_orders);
        next.loss_streak = self.loss_streak;
        next.outages = std::mem::take(&mut self.outages);
    }
}

/// A `halt`/`reduce` rule that needs no order: it reads `account.*` and `symbol.*` fields and
/// bar series only. Checked after every mark, once, or once per symbol when it reads
/// anything of a symbol (a BTC daily-move halt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MarkRule {
    /// Policy index in the bundle.
    pub policy: usize,
    /// Rule index in the policy.
    pub rule: usize,
    /// Evaluated once per symbol (it reads a `symbol.*` field or a series).
    pub per_symbol: bool,
}

/// The `halt`/`reduce` rules whose conditions read no `order.*` or `position.*` field.
fn mark_rules(bundle: &Bundle, program: Option<&SymbolProgram>) -> Vec<MarkRule> {
    use crate::dsl::program::Input;
    let Some(program) = program else { return Vec::new() };
    let mut out = Vec::new();
    for (pi, p) in bundle.policies.iter().enumerate() {
        for (ri, r) in p.doc.rules.iter().enumerate() {
            let Some(compiled) = program.policies[pi].get(ri) else { continue };
            if compiled.inputs.is_empty()
                || matches!(compiled.eval, RuleEval::Script(_))
                || !matches!(r.action.value, Action::Halt | Action::Reduce)
            {
                continue;
            }
            let account =
                |label: &str, input: &Input| matches!(input, Input::Field(_)) && label.starts_with("account.");
            let needs_order = compiled.inputs.iter().any(|(label, input)| {
                matches!(input, Input::Field(_)) && (label.starts_with("order.") || label.starts_with("position."))
            });
            if !needs_order {
                let per_symbol = !compiled.inputs.iter().all(|(l, i)| account(l, i));
                out.push(MarkRule { policy: pi, rule: ri, per_symbol });
            }
        }
    }
    out
}

/// True when a compiled rule of `program` reads `bucket.name` or `bucket.weight`.
fn reads_bucket_fields(program: &SymbolProgram) -> bool {
    program.reads_field(|f| matches!(f, FieldId::BucketName | FieldId::BucketWeight))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> RiskGate {
        RiskGate {
            status: TradingStatus::default(),
            mark_rules: Vec::new(),
            orders_today: 0,
            recent_orders: VecDeque::new(),
            loss_streak: 0,
            outages: Vec::new(),
            allocations: Vec::new(),
            bucket_ids: Vec::new(),
            reads_buckets: false,
        }
    }

    #[test]
    fn order_counters_keep_the_day_and_the_last_hour() {
        let mut g = gate();
        for ts in [0, 3_000, 3_590, 3_600] {
            g.count_order(ts);
        }
        assert_eq!(g.orders_today(), 4);
        // At 3,600 s: the orders after 3,540 s are in the last minute, those after 0 s in the
        // last hour (the one at 0 is exactly an hour old: out).
        assert_eq!(g.orders_within(3_600, 60), 2);
        assert_eq!(g.orders_within(3_600, 3_600), 3);
        g.start_day();
        assert_eq!(g.orders_today(), 0);
        assert_eq!(g.orders_within(3_600, 3_600), 3, "a new day does not forget the last hour");
    }

    #[test]
    fn the_losing_streak_resets_on_a_win_and_outages_are_half_open() {
        let mut g = gate();
        for pnl in [-1.0, -2.0, 0.5, -1.0, -1.0] {
            g.record_round_trip(pnl);
        }
        assert_eq!(g.loss_streak(), 2);
        g.set_outages(vec![(100, 200)]);
        assert!(!g.broker_out(99));
        assert!(g.broker_out(100));
        assert!(!g.broker_out(200));
    }

    #[test]
    fn a_swap_hands_over_the_state_and_counters() {
        let mut old = gate();
        old.count_order(10);
        old.record_round_trip(-1.0);
        old.set_outages(vec![(0, 5)]);
        let _ = old.status_mut().halt(10, "manual");
        let mut next = gate();
        old.hand_over(&mut next);
        assert_eq!(next.orders_today(), 1);
        assert_eq!(next.orders_within(10, 60), 1);
        assert_eq!(next.loss_streak(), 1);
        assert!(next.broker_out(1));
        assert_eq!(next.status(), old.status());
    }
}
