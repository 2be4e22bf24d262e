//! The meaning of operators, shared by constant folding, the reference interpreter and the
//! runtime, so the three can never disagree.
//!
//! Every value is an `f64`:
//!
//! - numbers are themselves;
//! - bools are `1.0` (true) and `0.0` (false);
//! - strings are [`string_id`]s (a 52-bit hash, exact as an `f64`), so equality is `==`;
//! - *undefined* is `NaN`: an indicator before its first defined bar, `x[k]` before `k` bars of
//!   history, a division by zero.
//!
//! Undefined propagates through arithmetic and comparisons. `and` / `or` follow Kleene's
//! three-valued logic (`false and undefined` is false; `true or undefined` is true). A rule fires
//! only when its value is exactly true, so an undefined rule never fires, and `not undefined`
//! is still undefined (it does not fire either).

/// True.
pub const TRUE: f64 = 1.0;
/// False.
pub const FALSE: f64 = 0.0;
/// Undefined.
pub const UNDEFINED: f64 = f64::NAN;

/// A bool as a value.
#[inline]
pub fn from_bool(b: bool) -> f64 {
    if b { TRUE } else { FALSE }
}

/// A value as a bool; `None` when undefined.
#[inline]
pub fn truth(v: f64) -> Option<bool> {
    if v.is_nan() { None } else { Some(v != 0.0) }
}

/// True only when `v` is defined and true: the firing condition of every rule.
#[inline]
pub fn fires(v: f64) -> bool {
    v == TRUE
}

/// The value of a string: FNV-1a, folded to 52 bits so it is an exact integer in an `f64`.
pub fn string_id(s: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h ^ (h >> 52)) & ((1u64 << 52) - 1)) as f64
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `not x`
    Not,
    /// `abs(x)`
    Abs,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (undefined when dividing by zero)
    Div,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `and` (Kleene)
    And,
    /// `or` (Kleene)
    Or,
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Min => "min",
            BinOp::Max => "max",
        }
    }
}

/// Applies a unary operator.
#[inline]
pub fn unary(op: UnOp, a: f64) -> f64 {
    match op {
        UnOp::Neg => -a,
        UnOp::Abs => a.abs(),
        UnOp::Not => {
            if a.is_nan() {
                UNDEFINED
            } else {
                from_bool(a == 0.0)
            }
        }
    }
}

/// Applies a binary operator.
#[inline]
pub fn binary(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                UNDEFINED
            } else {
                a / b
            }
        }
        BinOp::And => {
            if a == FALSE || b == FALSE {
                FALSE
            } else if a.is_nan() || b.is_nan() {
                UNDEFINED
            } else {
                TRUE
            }
        }
        BinOp::Or => {
            if a == TRUE || b == TRUE {
                TRUE
            } else if a.is_nan() || b.is_nan() {
                UNDEFINED
            } else {
                FALSE
            }
        }
        _ if a.is_nan() || b.is_nan() => UNDEFINED,
        BinOp::Lt => from_bool(a < b),
        BinOp::Le => from_bool(a <= b),
        BinOp::Gt => from_bool(a > b),
        BinOp::Ge => from_bool(a >= b),
        BinOp::Eq => from_bool(a == b),
        BinOp::Ne => from_bool(a != b),
        BinOp::Min => a.min(b),
        BinOp::Max => a.max(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kleene_logic() {
        let u = UNDEFINED;
        assert_eq!(binary(BinOp::And, FALSE, u), FALSE);
        assert!(binary(BinOp::And, TRUE, u).is_nan());
        assert_eq!(binary(BinOp::Or, TRUE, u), TRUE);
        assert!(binary(BinOp::Or, FALSE, u).is_nan());
        assert!(unary(UnOp::Not, u).is_nan());
        assert!(!fires(unary(UnOp::Not, u)));
    }

    #[test]
    fn undefined_propagates() {
        assert!(binary(BinOp::Gt, UNDEFINED, 1.0).is_nan());
        assert!(binary(BinOp::Div, 1.0, 0.0).is_nan());
        assert!(binary(BinOp::Max, UNDEFINED, 1.0).is_nan());
    }

    #[test]
    fn string_ids_are_exact_and_distinct() {
        let a = string_id("buy");
        let b = string_id("sell");
        assert_ne!(a, b);
        assert_eq!(a, string_id("buy"));
        assert_eq!(a.fract(), 0.0);
        assert!(a < 2f64.powi(52));
    }
}
