//! What rules can refer to: bar series, functions and context fields.
//!
//! The catalog is the single source of truth for names, arities, argument kinds, outputs and
//! the contexts in which a field is available; the type checker, `validate` messages and the
//! README's tables all derive from it.

use super::types::ValueKind;

/// An OHLCV field of the current bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarField {
    /// Opening price.
    Open,
    /// Highest price.
    High,
    /// Lowest price.
    Low,
    /// Closing price.
    Close,
    /// Traded volume.
    Volume,
}

/// Bar series names and their fields.
pub const BAR_FIELDS: [(&str, BarField); 5] = [
    ("open", BarField::Open),
    ("high", BarField::High),
    ("low", BarField::Low),
    ("close", BarField::Close),
    ("volume", BarField::Volume),
];

/// Functions: indicators, crossings and arithmetic helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// Simple moving average.
    Sma,
    /// Exponential moving average.
    Ema,
    /// Relative strength index.
    Rsi,
    /// MACD (line, signal, histogram).
    Macd,
    /// Average true range of the bar's high/low/close.
    Atr,
    /// Bollinger bands (upper, middle, lower).
    BBands,
    /// Standard deviation.
    StdDev,
    /// Highest value over a window.
    Highest,
    /// Lowest value over a window.
    Lowest,
    /// Rate of change in percent points.
    Roc,
    /// `a` crosses above `b`.
    CrossesAbove,
    /// `a` crosses below `b`.
    CrossesBelow,
    /// Absolute value.
    Abs,
    /// Smaller of two numbers.
    Min,
    /// Larger of two numbers.
    Max,
    /// Fractional change over `period` bars.
    Change,
    /// Realized volatility of close-to-close returns.
    Volatility,
    /// Seed 004's trend score, in ATRs.
    TrendScore,
    /// Seed 004's trending regime.
    Trending,
    /// Seed 004's ranging regime.
    Ranging,
}

impl Func {
    /// True for functions the checker writes out in terms of others (so the graph and the
    /// reference interpreter never see them).
    pub fn is_composite(self) -> bool {
        matches!(self, Func::Change | Func::Volatility | Func::TrendScore | Func::Trending | Func::Ranging)
    }
}

/// How an argument must be given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgKind {
    /// A numeric series (`close`, `sma(close, 10)`, `high - low`).
    Series,
    /// A numeric series or a constant level (for crossings).
    SeriesOrConst,
    /// A constant whole number of bars, at least 1.
    Period,
    /// A constant number greater than 0.
    PositiveConst,
    /// Any number (constant, series or context value).
    Number,
}

/// The scale a value is on, for spotting percent / fraction mix-ups in comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Nothing known (prices, counts, currency...).
    Any,
    /// Points from 0 to 100 or percent points (RSI, ROC): `30` means thirty, not `30%`.
    Points,
    /// A fraction: `0.1` is 10%.
    Fraction,
}

/// One parameter of a function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArgSpec {
    /// Name shown in messages.
    pub name: &'static str,
    /// What is accepted.
    pub kind: ArgKind,
    /// Default when omitted (only trailing arguments have defaults).
    pub default: Option<f64>,
}

/// A function's signature and documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FuncSpec {
    /// Name as written in rules.
    pub name: &'static str,
    /// Which function.
    pub func: Func,
    /// Parameters in order.
    pub args: &'static [ArgSpec],
    /// Output names when the function returns several values (select with `.name`).
    pub outputs: &'static [&'static str],
    /// What it returns.
    pub returns: ValueKind,
    /// The scale of its result.
    pub scale: Scale,
    /// One-line description, with units and formula source.
    pub doc: &'static str,
}

impl FuncSpec {
    /// Number of arguments without defaults.
    pub fn required(&self) -> usize {
        self.args.iter().filter(|a| a.default.is_none()).count()
    }

    /// `sma(src, period)` style signature for messages.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| match a.default {
                Some(d) => format!("{}={d}", a.name),
                None => a.name.to_string(),
            })
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

const fn arg(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec { name, kind, default: None }
}

const fn opt(name: &'static str, kind: ArgKind, default: f64) -> ArgSpec {
    ArgSpec { name, kind, default: Some(default) }
}

use ArgKind::{Number, Period, PositiveConst, Series, SeriesOrConst};

/// Every function the rule language knows.
pub const FUNCTIONS: &[FuncSpec] = &[
    FuncSpec {
        name: "sma",
        func: Func::Sma,
        args: &[arg("src", Series), arg("period", Period)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "simple moving average of the last `period` values (TA-Lib SMA)",
    },
    FuncSpec {
        name: "ema",
        func: Func::Ema,
        args: &[arg("src", Series), arg("period", Period)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "exponential moving average, alpha 2/(period+1), seeded with the SMA (TA-Lib EMA)",
    },
    FuncSpec {
        name: "rsi",
        func: Func::Rsi,
        args: &[arg("src", Series), opt("period", Period, 14.0)],
        outputs: &[],
        scale: Scale::Points,
        returns: ValueKind::Num,
        doc: "relative strength index, 0..100, Wilder (1978) smoothing (TA-Lib RSI)",
    },
    FuncSpec {
        name: "macd",
        func: Func::Macd,
        args: &[arg("src", Series), opt("fast", Period, 12.0), opt("slow", Period, 26.0), opt("signal", Period, 9.0)],
        outputs: &["line", "signal", "histogram"],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "MACD line, signal and histogram with TA-Lib's seeding (TA-Lib MACD)",
    },
    FuncSpec {
        name: "atr",
        func: Func::Atr,
        args: &[opt("period", Period, 14.0)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "average true range of the bar's high, low and close, Wilder (1978) (TA-Lib ATR)",
    },
    FuncSpec {
        name: "bbands",
        func: Func::BBands,
        args: &[arg("src", Series), arg("period", Period), opt("k", PositiveConst, 2.0)],
        outputs: &["upper", "middle", "lower"],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "Bollinger bands: SMA ± k population standard deviations (TA-Lib BBANDS, SMA)",
    },
    FuncSpec {
        name: "stddev",
        func: Func::StdDev,
        args: &[arg("src", Series), arg("period", Period), opt("k", PositiveConst, 1.0)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "population standard deviation over `period` values, times k (TA-Lib STDDEV)",
    },
    FuncSpec {
        name: "highest",
        func: Func::Highest,
        args: &[arg("src", Series), arg("period", Period)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "highest value of the last `period` values, current bar included (TA-Lib MAX)",
    },
    FuncSpec {
        name: "lowest",
        func: Func::Lowest,
        args: &[arg("src", Series), arg("period", Period)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "lowest value of the last `period` values, current bar included (TA-Lib MIN)",
    },
    FuncSpec {
        name: "roc",
        func: Func::Roc,
        args: &[arg("src", Series), arg("period", Period)],
        outputs: &[],
        scale: Scale::Points,
        returns: ValueKind::Num,
        doc: "rate of change in percent points: (x / x[period] - 1) * 100 (TA-Lib ROC)",
    },
    FuncSpec {
        name: "crosses_above",
        func: Func::CrossesAbove,
        args: &[arg("a", SeriesOrConst), arg("b", SeriesOrConst)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Bool,
        doc: "true on the bar where a > b after a <= b on the previous bar",
    },
    FuncSpec {
        name: "crosses_below",
        func: Func::CrossesBelow,
        args: &[arg("a", SeriesOrConst), arg("b", SeriesOrConst)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Bool,
        doc: "true on the bar where a < b after a >= b on the previous bar",
    },
    FuncSpec {
        name: "abs",
        func: Func::Abs,
        args: &[arg("x", Number)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "absolute value",
    },
    FuncSpec {
        name: "min",
        func: Func::Min,
        args: &[arg("a", Number), arg("b", Number)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "the smaller of a and b",
    },
    FuncSpec {
        name: "max",
        func: Func::Max,
        args: &[arg("a", Number), arg("b", Number)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "the larger of a and b",
    },
    FuncSpec {
        name: "change",
        func: Func::Change,
        args: &[arg("src", Series), opt("period", Period, 1.0)],
        outputs: &[],
        scale: Scale::Fraction,
        returns: ValueKind::Num,
        doc: "src / src[period] - 1: the change over `period` bars as a fraction (0.05 = 5%; ROC / 100)",
    },
    FuncSpec {
        name: "volatility",
        func: Func::Volatility,
        args: &[opt("period", Period, 20.0)],
        outputs: &[],
        scale: Scale::Fraction,
        returns: ValueKind::Num,
        doc: "realized volatility: population standard deviation of the last `period` close-to-close returns `close / close[1] - 1`, per bar, not annualized (fraction; seed 004's std(returns, 20))",
    },
    FuncSpec {
        name: "trend_score",
        func: Func::TrendScore,
        args: &[opt("period", Period, 50.0), opt("atr_period", Period, 14.0)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Num,
        doc: "(close - sma(close, period)) / atr(atr_period): how many ATRs the close is from its trend (seed 004)",
    },
    FuncSpec {
        name: "trending",
        func: Func::Trending,
        args: &[opt("threshold", PositiveConst, 1.5), opt("period", Period, 50.0), opt("atr_period", Period, 14.0)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Bool,
        doc: "abs(trend_score(period, atr_period)) > threshold: the market is trending (seed 004)",
    },
    FuncSpec {
        name: "ranging",
        func: Func::Ranging,
        args: &[opt("period", Period, 20.0), opt("k", PositiveConst, 2.0), opt("atr_period", Period, 14.0)],
        outputs: &[],
        scale: Scale::Any,
        returns: ValueKind::Bool,
        doc: "the close lies within sma(close, period) ± k * atr(atr_period): the market is ranging (seed 004)",
    },
];

/// Looks up a function by name.
pub fn function(name: &str) -> Option<&'static FuncSpec> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Looks up a function by its [`Func`].
pub fn spec(func: Func) -> &'static FuncSpec {
    FUNCTIONS.iter().find(|f| f.func == func).unwrap_or(&FUNCTIONS[0])
}

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
}

/// Number of [`FieldId`] values (size of a field-value array).
pub const FIELD_COUNT: usize = 57;

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
];

/// Looks up a context field by its dotted path.
pub fn field(path: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.path == path)
}

/// The spec of a field id.
pub fn field_spec(id: FieldId) -> &'static FieldSpec {
    FIELDS.iter().find(|f| f.id == id).unwrap_or(&FIELDS[0])
}

/// Names that cannot be used as params: bar fields, function names, field namespaces, keywords.
pub fn is_reserved(name: &str) -> bool {
    BAR_FIELDS.iter().any(|(n, _)| *n == name)
        || function(name).is_some()
        || matches!(
            name,
            "account" | "position" | "order" | "symbol" | "bucket" | "and" | "or" | "not" | "true" | "false"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ids_are_dense_and_unique() {
        assert_eq!(FIELDS.len(), FIELD_COUNT);
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{} out of order", f.path);
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(function("macd").unwrap().signature(), "macd(src, fast=12, slow=26, signal=9)");
        assert_eq!(function("sma").unwrap().required(), 2);
    }
}
