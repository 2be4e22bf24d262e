//! Types of rule expressions.
//!
//! A type is a value kind (number, bool, string) and a *variability*:
//!
//! - [`Variability::Const`]: known when the rule is compiled (literals, params). Folded away.
//! - [`Variability::Series`]: changes once per bar and keeps a history (`close`, `sma(close, 10)`,
//!   `close > open`). Series can be indexed (`x[1]`) and fed to indicators. They are computed
//!   once per bar per symbol in the shared indicator graph.
//! - [`Variability::Scalar`]: read from the evaluation context (`account.equity`,
//!   `order.notional`, `position.entry_price`). No history.
//!
//! Combining values takes the widest variability (a series plus a constant is a series; anything
//! with a scalar is a scalar).

use std::fmt;

/// The kind of value an expression produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// A number (f64).
    Num,
    /// A bool.
    Bool,
    /// A string.
    Str,
}

/// When an expression's value can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variability {
    /// Known at compile time.
    Const,
    /// Changes per bar; has history.
    Series,
    /// Changes per evaluation; read from the context.
    Scalar,
}

/// The type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ty {
    /// Value kind.
    pub kind: ValueKind,
    /// Variability.
    pub var: Variability,
}

impl Ty {
    /// A type.
    pub const fn new(kind: ValueKind, var: Variability) -> Self {
        Ty { kind, var }
    }

    /// True when the value is a numeric or bool series.
    pub fn is_series(&self) -> bool {
        self.var == Variability::Series
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match (self.kind, self.var) {
            (ValueKind::Num, Variability::Series) => "series",
            (ValueKind::Bool, Variability::Series) => "bool series",
            (ValueKind::Num, _) => "number",
            (ValueKind::Bool, _) => "bool",
            (ValueKind::Str, _) => "string",
        };
        f.write_str(s)
    }
}
