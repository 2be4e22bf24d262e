//! Abstract syntax tree of one rule expression.
//!
//! Spans are byte ranges into the *expression text*; [`crate::config::expr_source::ExprSource`]
//! maps them to file positions for diagnostics.

use crate::config::units::NumUnit;
use crate::diagnostics::Span;

/// An expression node.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is in the expression text.
    pub span: Span,
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number; `5%` is stored as 0.05 with [`NumUnit::Percent`].
    Number(f64, NumUnit),
    /// `true` or `false`.
    Bool(bool),
    /// A string literal (unescaped).
    Str(String),
    /// A name (`close`, `fast`) or a dotted path (`account.equity`).
    Path(Vec<Ident>),
    /// A function call.
    Call {
        /// Function name.
        func: Ident,
        /// Arguments in order.
        args: Vec<Expr>,
    },
    /// `-x` or `not x`.
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`; the span of the operator token is kept for messages.
    Binary(BinaryOp, Span, Box<Expr>, Box<Expr>),
    /// History: `x[k]` is the value of `x` `k` bars ago.
    Index(Box<Expr>, Box<Expr>),
    /// Output selection on a call result: `macd(close).signal`.
    Field(Box<Expr>, Ident),
    /// `x@1d`: `x` computed on the bars of a higher timeframe; the name is the timeframe as
    /// written (`1d`), its span that of the timeframe.
    Resample(Box<Expr>, Ident),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`
    Not,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }

    /// True for `== != < <= > >=`.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
}

impl Expr {
    /// Depth of the tree (a leaf has depth 1), computed without recursion.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            match &e.kind {
                ExprKind::Call { args, .. } => stack.extend(args.iter().map(|a| (a, d + 1))),
                ExprKind::Unary(_, a) | ExprKind::Field(a, _) | ExprKind::Resample(a, _) => stack.push((a, d + 1)),
                ExprKind::Binary(_, _, a, b) | ExprKind::Index(a, b) => {
                    stack.push((a, d + 1));
                    stack.push((b, d + 1));
                }
                _ => {}
            }
        }
        max
    }
}
