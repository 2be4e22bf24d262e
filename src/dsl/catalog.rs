//! What rules can refer to: bar series, functions and context fields.
//!
//! The catalog is the single source of truth for names, arities, argument kinds, outputs and
//! the contexts in which a field is available; the type checker, `validate` messages and the
//! README's tables all derive from it.

use super::types::ValueKind;

mod field_id;
mod fields;
pub use fields::{Context, FIELD_COUNT, FIELDS, FieldId, FieldSpec, field, field_spec};

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

/// Names that cannot be used as params: bar fields, function names, field namespaces, keywords.
pub fn is_reserved(name: &str) -> bool {
    BAR_FIELDS.iter().any(|(n, _)| *n == name)
        || function(name).is_some()
        || matches!(
            name,
            "account"
                | "position"
                | "order"
                | "symbol"
                | "bucket"
                | "session"
                | "and"
                | "or"
                | "not"
                | "true"
                | "false"
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
