//! The context fields rules read (`account.*`, `symbol.*`, `position.*`, `order.*`,
//! `bucket.*`, `metric.*`): each field's path, kind, scale (fraction, currency, count), the
//! contexts it exists in and its documentation. Most of this file is that one table
//! ([`FIELDS`]), kept whole so that a field's id, path and meaning sit on adjacent lines.

use super::Scale;
use crate::dsl::types::ValueKind;

/// Where a rule is evaluated; decides which context fields exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// A strategy's entry rule (evaluated while flat).
    Entry,
    /// A strategy's exit rule (evaluated while in a position).
    Exit,
    /// A policy rule (evaluated for each order).
    Policy,
    /// `dsl eval`: bar data only.
    Eval,
    /// A phase's gate or demotion rule: metrics over the journal (`metric.*`), no bar data.
    Gate,
}

impl Context {
    /// How the context is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Context::Entry => "an entry rule",
            Context::Exit => "an exit rule",
            Context::Policy => "a policy rule",
            Context::Eval => "`dsl eval`",
            Context::Gate => "a gate rule",
        }
    }
}

/// A context field, read at evaluation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldId {
    /// `account.equity`
    AccountEquity,
    /// `account.cash`
    AccountCash,
    /// `account.exposure`
    AccountExposure,
    /// `account.peak_equity`
    AccountPeakEquity,
    /// `account.drawdown`
    AccountDrawdown,
    /// `account.open_positions`
    AccountOpenPositions,
    /// `position.quantity`
    PositionQuantity,
    /// `position.entry_price`
    PositionEntryPrice,
    /// `position.notional`
    PositionNotional,
    /// `position.unrealized_pnl`
    PositionUnrealizedPnl,
    /// `position.unrealized_return`
    PositionUnrealizedReturn,
    /// `position.bars_held`
    PositionBarsHeld,
    /// `order.symbol`
    OrderSymbol,
    /// `order.strategy`
    OrderStrategy,
    /// `order.side`
    OrderSide,
    /// `order.intent`
    OrderIntent,
    /// `order.quantity`
    OrderQuantity,
    /// `order.price`
    OrderPrice,
    /// `order.notional`
    OrderNotional,
    /// `account.daily_pnl`
    AccountDailyPnl,
    /// `account.daily_return`
    AccountDailyReturn,
    /// `account.loss_streak`
    AccountLossStreak,
    /// `account.orders_last_minute`
    AccountOrdersLastMinute,
    /// `account.orders_last_hour`
    AccountOrdersLastHour,
    /// `account.orders_today`
    AccountOrdersToday,
    /// `symbol.name`
    SymbolName,
    /// `symbol.daily_change`
    SymbolDailyChange,
    /// `symbol.weight`
    SymbolWeight,
    /// `order.stop_loss`
    OrderStopLoss,
    /// `order.expected_return`
    OrderExpectedReturn,
    /// `order.round_trip_cost`
    OrderRoundTripCost,
    /// `bucket.name`
    BucketName,
    /// `bucket.weight`
    BucketWeight,
    /// `metric.trades`
    MetricTrades,
    /// `metric.win_rate`
    MetricWinRate,
    /// `metric.profit_factor`
    MetricProfitFactor,
    /// `metric.avg_pnl`
    MetricAvgPnl,
    /// `metric.net_pnl`
    MetricNetPnl,
    /// `metric.max_loss`
    MetricMaxLoss,
    /// `metric.risk_reward`
    MetricRiskReward,
    /// `metric.max_drawdown`
    MetricMaxDrawdown,
    /// `metric.total_return`
    MetricTotalReturn,
    /// `metric.monthly_return`
    MetricMonthlyReturn,
    /// `metric.months`
    MetricMonths,
    /// `metric.months_positive`
    MetricMonthsPositive,
    /// `metric.risk_breaches`
    MetricRiskBreaches,
    /// `metric.denials`
    MetricDenials,
    /// `metric.halts`
    MetricHalts,
    /// `metric.reductions`
    MetricReductions,
    /// `metric.avg_slippage_bps`
    MetricAvgSlippageBps,
    /// `metric.t_stat`
    MetricTStat,
    /// `metric.p_value`
    MetricPValue,
    /// `metric.luck`
    MetricLuck,
    /// `metric.trades_per_param`
    MetricTradesPerParam,
    /// `metric.stress_max_drawdown`
    MetricStressMaxDrawdown,
    /// `metric.stress_scenarios`
    MetricStressScenarios,
    /// `metric.backtest_years`
    MetricBacktestYears,
    /// `metric.sharpe`
    MetricSharpe,
    /// `metric.sortino`
    MetricSortino,
    /// `metric.cagr`
    MetricCagr,
    /// `metric.exposure`
    MetricExposure,
    /// `metric.trials`
    MetricTrials,
    /// `metric.pbo`
    MetricPbo,
    /// `metric.deflated_sharpe`
    MetricDeflatedSharpe,
    /// `metric.wfe`
    MetricWfe,
}

/// Number of [`FieldId`] values (size of a field-value array).
pub const FIELD_COUNT: usize = 65;

/// A context field's name, type, unit and availability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldSpec {
    /// Dotted path as written.
    pub path: &'static str,
    /// Which field.
    pub id: FieldId,
    /// Its value kind.
    pub kind: ValueKind,
    /// Contexts where it exists.
    pub contexts: &'static [Context],
    /// For string fields, the values it can take.
    pub values: &'static [&'static str],
    /// The scale of its value.
    pub scale: Scale,
    /// Meaning and unit.
    pub doc: &'static str,
}

use Context::{Entry, Exit, Gate, Policy};

/// Every context field.
pub const FIELDS: &[FieldSpec] = &[
    FieldSpec {
        path: "account.equity",
        id: FieldId::AccountEquity,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "cash plus open positions marked at the last close (currency)",
    },
    FieldSpec {
        path: "account.cash",
        id: FieldId::AccountCash,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "uninvested cash (currency)",
    },
    FieldSpec {
        path: "account.exposure",
        id: FieldId::AccountExposure,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "gross market value of all open positions at the last close, plus the notional of entry orders still working or awaiting approval (currency)",
    },
    FieldSpec {
        path: "account.peak_equity",
        id: FieldId::AccountPeakEquity,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "highest equity so far, starting cash included (currency)",
    },
    FieldSpec {
        path: "account.drawdown",
        id: FieldId::AccountDrawdown,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "(peak_equity - equity) / peak_equity (fraction)",
    },
    FieldSpec {
        path: "account.open_positions",
        id: FieldId::AccountOpenPositions,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "number of open positions (count)",
    },
    FieldSpec {
        path: "position.quantity",
        id: FieldId::PositionQuantity,
        kind: ValueKind::Num,
        contexts: &[Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "units held (in a policy: all strategies' units of the order's symbol)",
    },
    FieldSpec {
        path: "position.entry_price",
        id: FieldId::PositionEntryPrice,
        kind: ValueKind::Num,
        contexts: &[Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "average entry fill price (currency per unit)",
    },
    FieldSpec {
        path: "position.notional",
        id: FieldId::PositionNotional,
        kind: ValueKind::Num,
        contexts: &[Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "units held times the last close (currency)",
    },
    FieldSpec {
        path: "position.unrealized_pnl",
        id: FieldId::PositionUnrealizedPnl,
        kind: ValueKind::Num,
        contexts: &[Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "(last close - entry price) * units, before exit costs (currency)",
    },
    FieldSpec {
        path: "position.unrealized_return",
        id: FieldId::PositionUnrealizedReturn,
        kind: ValueKind::Num,
        contexts: &[Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "last close / entry price - 1 (fraction)",
    },
    FieldSpec {
        path: "position.bars_held",
        id: FieldId::PositionBarsHeld,
        kind: ValueKind::Num,
        contexts: &[Exit],
        scale: Scale::Any,
        values: &[],
        doc: "bars since the entry fill, the current bar included (count)",
    },
    FieldSpec {
        path: "order.symbol",
        id: FieldId::OrderSymbol,
        kind: ValueKind::Str,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &[],
        doc: "symbol of the order",
    },
    FieldSpec {
        path: "order.strategy",
        id: FieldId::OrderStrategy,
        kind: ValueKind::Str,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &[],
        doc: "name of the strategy that sent the order",
    },
    FieldSpec {
        path: "order.side",
        id: FieldId::OrderSide,
        kind: ValueKind::Str,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &["buy", "sell"],
        doc: "`buy` or `sell`",
    },
    FieldSpec {
        path: "order.intent",
        id: FieldId::OrderIntent,
        kind: ValueKind::Str,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &["entry", "exit"],
        doc: "`entry` (opens or adds to a position) or `exit` (reduces or closes one)",
    },
    FieldSpec {
        path: "order.quantity",
        id: FieldId::OrderQuantity,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &[],
        doc: "units ordered",
    },
    FieldSpec {
        path: "order.price",
        id: FieldId::OrderPrice,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &[],
        doc: "reference price: the close of the signal bar (currency per unit)",
    },
    FieldSpec {
        path: "order.notional",
        id: FieldId::OrderNotional,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Any,
        values: &[],
        doc: "quantity times reference price (currency)",
    },
    FieldSpec {
        path: "account.daily_pnl",
        id: FieldId::AccountDailyPnl,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "equity now minus equity at the start of the current UTC day (the last valuation before 00:00 UTC; starting cash on the first day) (currency)",
    },
    FieldSpec {
        path: "account.daily_return",
        id: FieldId::AccountDailyReturn,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "daily_pnl / equity at the start of the UTC day (fraction)",
    },
    FieldSpec {
        path: "account.loss_streak",
        id: FieldId::AccountLossStreak,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "consecutive losing round trips (pnl after costs below 0), most recent first; any other trade ends the streak (count)",
    },
    FieldSpec {
        path: "account.orders_last_minute",
        id: FieldId::AccountOrdersLastMinute,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "market orders sent to the broker with a bar time in the 60 seconds up to the current bar's (count; protective stops not counted; the order being checked not included)",
    },
    FieldSpec {
        path: "account.orders_last_hour",
        id: FieldId::AccountOrdersLastHour,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "as orders_last_minute, over 3600 seconds (count)",
    },
    FieldSpec {
        path: "account.orders_today",
        id: FieldId::AccountOrdersToday,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "as orders_last_minute, since 00:00 UTC of the current bar's day (count)",
    },
    FieldSpec {
        path: "symbol.name",
        id: FieldId::SymbolName,
        kind: ValueKind::Str,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "the symbol the rule runs for: the bar's in a strategy, the order's in a policy, each symbol in turn when a halt or reduce rule is checked at a valuation",
    },
    FieldSpec {
        path: "symbol.daily_change",
        id: FieldId::SymbolDailyChange,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "last close / last close of the previous UTC day - 1 (fraction; on the first day of data, against that day's first open)",
    },
    FieldSpec {
        path: "symbol.weight",
        id: FieldId::SymbolWeight,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "market value of all strategies' positions in the symbol, plus the notional of its entry orders still working or awaiting approval, / equity (fraction)",
    },
    FieldSpec {
        path: "order.stop_loss",
        id: FieldId::OrderStopLoss,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "distance of the protective stop the entry will carry, as a fraction of the reference price (the strategy's `stop_loss`, or k * ATR / price with ATR sizing); undefined when it carries none",
    },
    FieldSpec {
        path: "order.expected_return",
        id: FieldId::OrderExpectedReturn,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "the strategy's `expected_return` for this entry (fraction of price, before costs); undefined when the strategy declares none",
    },
    FieldSpec {
        path: "order.round_trip_cost",
        id: FieldId::OrderRoundTripCost,
        kind: ValueKind::Num,
        contexts: &[Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "expected cost of entering and leaving: spread + 2 * (slippage + commission + impact), as a fraction of the reference price (seed 003's cost model)",
    },
    FieldSpec {
        path: "bucket.name",
        id: FieldId::BucketName,
        kind: ValueKind::Str,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Any,
        values: &[],
        doc: "the allocation bucket of `symbol.name` (the first policy's `allocation:` that declares buckets); undefined when the symbol is in none",
    },
    FieldSpec {
        path: "bucket.weight",
        id: FieldId::BucketWeight,
        kind: ValueKind::Num,
        contexts: &[Entry, Exit, Policy],
        scale: Scale::Fraction,
        values: &[],
        doc: "market value of the bucket's positions (plus its working entries, plus free cash for a `cash: true` bucket) / equity (fraction); undefined when the symbol is in no bucket",
    },
    FieldSpec {
        path: "metric.trades",
        id: FieldId::MetricTrades,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "trades closed (count)",
    },
    FieldSpec {
        path: "metric.win_rate",
        id: FieldId::MetricWinRate,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "winning trades / trades (fraction)",
    },
    FieldSpec {
        path: "metric.profit_factor",
        id: FieldId::MetricProfitFactor,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "gross profit / gross loss of closed trades (ratio; undefined without a loss)",
    },
    FieldSpec {
        path: "metric.avg_pnl",
        id: FieldId::MetricAvgPnl,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "average pnl per trade as a fraction of its entry notional",
    },
    FieldSpec {
        path: "metric.net_pnl",
        id: FieldId::MetricNetPnl,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "sum of closed trades' pnl, fees included (currency)",
    },
    FieldSpec {
        path: "metric.max_loss",
        id: FieldId::MetricMaxLoss,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "the largest loss of one trade, as a positive fraction of its entry notional (0 when none lost)",
    },
    FieldSpec {
        path: "metric.risk_reward",
        id: FieldId::MetricRiskReward,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "average win / average loss (ratio; 3 means 1:3 risk/reward)",
    },
    FieldSpec {
        path: "metric.max_drawdown",
        id: FieldId::MetricMaxDrawdown,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "peak-to-trough decline of equity (fraction): daily marks of a paper or live run, else the closed-trade equity curve",
    },
    FieldSpec {
        path: "metric.total_return",
        id: FieldId::MetricTotalReturn,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "equity at the end / equity at the start - 1 over the window (fraction)",
    },
    FieldSpec {
        path: "metric.monthly_return",
        id: FieldId::MetricMonthlyReturn,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "average calendar-month return of equity (fraction)",
    },
    FieldSpec {
        path: "metric.months",
        id: FieldId::MetricMonths,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "calendar months with equity data in the window (count)",
    },
    FieldSpec {
        path: "metric.months_positive",
        id: FieldId::MetricMonthsPositive,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "calendar months with a positive return (count)",
    },
    FieldSpec {
        path: "metric.risk_breaches",
        id: FieldId::MetricRiskBreaches,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "guardrail rules that fired with `deny`, `reduce` or `halt` (count; `warn` is not a breach)",
    },
    FieldSpec {
        path: "metric.denials",
        id: FieldId::MetricDenials,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "guardrail rules that fired with `deny` (count)",
    },
    FieldSpec {
        path: "metric.halts",
        id: FieldId::MetricHalts,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "changes of the trading state to HALTED (count)",
    },
    FieldSpec {
        path: "metric.reductions",
        id: FieldId::MetricReductions,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "guardrail rules that fired with `reduce` (count)",
    },
    FieldSpec {
        path: "metric.avg_slippage_bps",
        id: FieldId::MetricAvgSlippageBps,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "mean slippage of filled market orders against the mid at submission (bps, + = paid)",
    },
    FieldSpec {
        path: "metric.t_stat",
        id: FieldId::MetricTStat,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "t statistic of the per-trade returns' mean against zero (Student's t-test)",
    },
    FieldSpec {
        path: "metric.p_value",
        id: FieldId::MetricPValue,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "one-sided p-value of that t-test: the chance of so high a mean if the true mean were zero (fraction)",
    },
    FieldSpec {
        path: "metric.luck",
        id: FieldId::MetricLuck,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "share of 1,000 reshuffled trade orders (seeded) whose max drawdown is deeper than the actual one; near 1 = a lucky path (fraction)",
    },
    FieldSpec {
        path: "metric.trades_per_param",
        id: FieldId::MetricTradesPerParam,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "closed trades / params of the strategies (ratio; few trades per param = overfitting risk)",
    },
    FieldSpec {
        path: "metric.stress_max_drawdown",
        id: FieldId::MetricStressMaxDrawdown,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "the worst max drawdown among the latest stress run of each scenario (fraction)",
    },
    FieldSpec {
        path: "metric.stress_scenarios",
        id: FieldId::MetricStressScenarios,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "scenarios with a stress run (count)",
    },
    FieldSpec {
        path: "metric.backtest_years",
        id: FieldId::MetricBacktestYears,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "years of bars covered by the latest backtest run (years)",
    },
    FieldSpec {
        path: "metric.sharpe",
        id: FieldId::MetricSharpe,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "annualised Sharpe ratio of the run's per-bar equity returns: mean / sample stdev * sqrt(bars per year), risk-free rate 0 (Sharpe 1994); a sweep's or walk-forward's trials only, undefined in gate rules",
    },
    FieldSpec {
        path: "metric.sortino",
        id: FieldId::MetricSortino,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "annualised Sortino ratio of the run's per-bar equity returns: mean / downside deviation * sqrt(bars per year) (Sortino and Price 1994); a sweep's or walk-forward's trials only",
    },
    FieldSpec {
        path: "metric.cagr",
        id: FieldId::MetricCagr,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "compound annual growth rate, (final / starting equity)^(1 / years) - 1 (fraction); a sweep's or walk-forward's trials only",
    },
    FieldSpec {
        path: "metric.exposure",
        id: FieldId::MetricExposure,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "share of the run's timestamps with an open position (fraction); a sweep's or walk-forward's trials only",
    },
    FieldSpec {
        path: "metric.trials",
        id: FieldId::MetricTrials,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "trials of the bot's latest completed `dsl sweep` (count; 0 when it has none), whatever `from` says",
    },
    FieldSpec {
        path: "metric.pbo",
        id: FieldId::MetricPbo,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "probability of backtest overfitting of the bot's latest completed sweep: CSCV over its trials' daily returns, 16 blocks (Bailey, Borwein, López de Prado and Zhu 2017) (fraction); undefined without a sweep",
    },
    FieldSpec {
        path: "metric.deflated_sharpe",
        id: FieldId::MetricDeflatedSharpe,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Fraction,
        values: &[],
        doc: "deflated Sharpe ratio of the best trial of the bot's latest completed sweep, given its trial count and the skewness and kurtosis of its daily returns (Bailey and López de Prado 2014) (a probability); undefined without a sweep",
    },
    FieldSpec {
        path: "metric.wfe",
        id: FieldId::MetricWfe,
        kind: ValueKind::Num,
        contexts: &[Gate],
        scale: Scale::Any,
        values: &[],
        doc: "walk-forward efficiency of the bot's latest completed `dsl walkforward`: stitched out-of-sample annualised return / mean in-sample annualised return of the chosen trials (Pardo 2008) (ratio), whatever `from` says; undefined without one",
    },
];

/// Looks up a context field by its dotted path.
pub fn field(path: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.path == path)
}

/// The spec of a field id.
pub fn field_spec(id: FieldId) -> &'static FieldSpec {
    FIELDS.iter().find(|f| f.id == id).unwrap_or(&FIELDS[0])
}
