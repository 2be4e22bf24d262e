//! Parsing rule text into an [`Expr`] with the pest grammar in `grammar/rules.pest`.
//!
//! Operator precedence and associativity are set here with pest's Pratt parser (lowest first):
//! `or`, `and`, `not`, comparisons, `+ -`, `* /`, unary `-`, then the postfix history `x[k]`,
//! output selection `x.name` and higher timeframe `x@1d`. Syntax errors name the token found and the tokens expected, with a
//! hint for common slips (`=` for `==`, `&&` for `and`, an unclosed parenthesis).

use std::sync::LazyLock;

use pest::Parser;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use super::ast::{BinaryOp, Expr, ExprKind, Ident, UnaryOp};
use crate::config::expr_source::ExprSource;
use crate::config::units::parse_number;
use crate::diagnostics::{Diagnostic, Span, codes};

/// Longest accepted rule text, in bytes.
pub const MAX_RULE_LEN: usize = 4096;
/// Deepest accepted nesting of parentheses and brackets.
pub const MAX_NESTING: usize = 64;
/// Deepest accepted expression tree.
pub const MAX_DEPTH: usize = 128;
/// Longest accepted run of prefix operators (`- - x`, `not not x`).
pub const MAX_PREFIX_RUN: usize = 16;

mod grammar {
    //! The pest-generated parser and its `Rule` enum.
    #![allow(missing_docs)]

    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/rules.pest"]
    pub struct RuleParser;
}

use grammar::{Rule, RuleParser};

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::prefix(Rule::not))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::postfix(Rule::index) | Op::postfix(Rule::field) | Op::postfix(Rule::at))
});

/// A syntax error inside the expression text.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Stable code ([`codes::SYNTAX`] or [`codes::BAD_NUMBER`]).
    pub code: &'static str,
    /// Where, in the expression text.
    pub span: Span,
    /// Lowercase message.
    pub message: String,
    /// Label under the span.
    pub label: String,
    /// Optional hint.
    pub help: Option<String>,
}

impl SyntaxError {
    /// Converts to a diagnostic pointing into the expression's file.
    pub fn into_diagnostic(self, src: &ExprSource) -> Diagnostic {
        Diagnostic::error(self.code, self.message)
            .at(&src.file, src.to_file_span(self.span))
            .label(self.label)
            .maybe_help(self.help)
    }
}

/// Parses a rule read from a document; errors point into its file.
pub fn parse(src: &ExprSource) -> Result<Expr, Diagnostic> {
    parse_text(&src.text).map_err(|e| e.into_diagnostic(src))
}

/// Parses rule text. Never panics, whatever the input.
pub fn parse_text(text: &str) -> Result<Expr, SyntaxError> {
    if text.len() > MAX_RULE_LEN {
        return Err(SyntaxError {
            code: codes::SYNTAX,
            span: Span::new(0, 0),
            message: format!("rule is too long ({} bytes; the limit is {MAX_RULE_LEN})", text.len()),
            label: "rule starts here".into(),
            help: Some("split the logic into several rules or params".into()),
        });
    }
    check_nesting(text)?;
    let mut pairs = RuleParser::parse(Rule::rule, text).map_err(|e| syntax_error(text, &e))?;
    let rule = pairs.next().ok_or_else(|| generic(text, 0))?;
    let expr_pair = rule.into_inner().next().ok_or_else(|| generic(text, 0))?;
    let expr = build_expr(expr_pair)?;
    if expr.depth() > MAX_DEPTH {
        return Err(SyntaxError {
            code: codes::SYNTAX,
            span: expr.span,
            message: format!("rule nests too deeply (more than {MAX_DEPTH} levels)"),
            label: "this expression".into(),
            help: Some("split it with params or simplify it".into()),
        });
    }
    Ok(expr)
}

fn generic(text: &str, pos: usize) -> SyntaxError {
    SyntaxError {
        code: codes::SYNTAX,
        span: Span::new(pos.min(text.len()), pos.min(text.len())),
        message: "invalid rule".into(),
        label: "here".into(),
        help: None,
    }
}

/// Rejects absurd nesting and runs of prefix operators before pest recurses into them.
fn check_nesting(text: &str) -> Result<(), SyntaxError> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prefix_run = 0usize;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if quote.is_none() && !c.is_whitespace() {
            let is_not = c == 'n'
                && text[i..].starts_with("not")
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
                && !text[i + 3..].starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_');
            let continues_not = i > 0 && matches!(c, 'o' | 't') && prefix_run > 0 && bytes[i - 1].is_ascii_alphabetic();
            if c == '-' || c == '!' || is_not {
                prefix_run += 1;
                if prefix_run > MAX_PREFIX_RUN {
                    return Err(SyntaxError {
                        code: codes::SYNTAX,
                        span: Span::new(i, i + 1),
                        message: format!("too many prefix operators in a row (more than {MAX_PREFIX_RUN})"),
                        label: "here".into(),
                        help: None,
                    });
                }
            } else if !continues_not && c != '(' {
                prefix_run = 0;
            }
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(SyntaxError {
                        code: codes::SYNTAX,
                        span: Span::new(i, i + 1),
                        message: format!("rule nests too deeply (more than {MAX_NESTING} brackets)"),
                        label: "too deep here".into(),
                        help: None,
                    });
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

fn build_expr(pair: Pair<'_, Rule>) -> Result<Expr, SyntaxError> {
    PRATT
        .map_primary(build_primary)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let uop = if op.as_rule() == Rule::not { UnaryOp::Not } else { UnaryOp::Neg };
            let span = span_of(&op).join(rhs.span);
            Ok(Expr { kind: ExprKind::Unary(uop, Box::new(rhs)), span })
        })
        .map_postfix(|lhs, op| {
            let lhs = lhs?;
            let span = lhs.span.join(span_of(&op));
            match op.as_rule() {
                Rule::index => {
                    let inner =
                        op.into_inner().find(|p| p.as_rule() == Rule::expr).ok_or_else(|| generic("", span.start))?;
                    let idx = build_expr(inner)?;
                    Ok(Expr { kind: ExprKind::Index(Box::new(lhs), Box::new(idx)), span })
                }
                Rule::at => {
                    let tf = op
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::timeframe)
                        .ok_or_else(|| generic("", span.start))?;
                    let name = Ident { name: tf.as_str().to_string(), span: span_of(&tf) };
                    Ok(Expr { kind: ExprKind::Resample(Box::new(lhs), name), span })
                }
                _ => {
                    let ident =
                        op.into_inner().find(|p| p.as_rule() == Rule::ident).ok_or_else(|| generic("", span.start))?;
                    let name = Ident { name: ident.as_str().to_string(), span: span_of(&ident) };
                    Ok(Expr { kind: ExprKind::Field(Box::new(lhs), name), span })
                }
            }
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let bop = match op.as_rule() {
                Rule::or => BinaryOp::Or,
                Rule::and => BinaryOp::And,
                Rule::eq => BinaryOp::Eq,
                Rule::ne => BinaryOp::Ne,
                Rule::lt => BinaryOp::Lt,
                Rule::le => BinaryOp::Le,
                Rule::gt => BinaryOp::Gt,
                Rule::ge => BinaryOp::Ge,
                Rule::add => BinaryOp::Add,
                Rule::sub => BinaryOp::Sub,
                Rule::mul => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            let span = lhs.span.join(rhs.span);
            Ok(Expr { kind: ExprKind::Binary(bop, span_of(&op), Box::new(lhs), Box::new(rhs)), span })
        })
        .parse(pair.into_inner())
}

fn build_primary(p: Pair<'_, Rule>) -> Result<Expr, SyntaxError> {
    let span = span_of(&p);
    let kind = match p.as_rule() {
        Rule::number => match parse_number(p.as_str()) {
            Some((v, unit)) => ExprKind::Number(v, unit),
            None => {
                return Err(SyntaxError {
                    code: codes::BAD_NUMBER,
                    span,
                    message: format!("number `{}` is out of range", p.as_str()),
                    label: "not a finite number".into(),
                    help: None,
                });
            }
        },
        Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
        Rule::string => {
            let raw = p.into_inner().next().map(|i| i.as_str()).unwrap_or("");
            ExprKind::Str(unescape(raw))
        }
        Rule::path => ExprKind::Path(
            p.into_inner()
                .filter(|i| i.as_rule() == Rule::ident)
                .map(|i| Ident { name: i.as_str().to_string(), span: span_of(&i) })
                .collect(),
        ),
        Rule::call => {
            let mut inner = p.into_inner();
            let name = inner.next().ok_or_else(|| generic("", span.start))?;
            let func = Ident { name: name.as_str().to_string(), span: span_of(&name) };
            let mut args = Vec::new();
            for a in inner.filter(|i| i.as_rule() == Rule::expr) {
                args.push(build_expr(a)?);
            }
            ExprKind::Call { func, args }
        }
        Rule::paren => {
            let inner = p.into_inner().find(|i| i.as_rule() == Rule::expr).ok_or_else(|| generic("", span.start))?;
            let e = build_expr(inner)?;
            return Ok(Expr { kind: e.kind, span });
        }
        Rule::expr => return build_expr(p),
        _ => return Err(generic("", span.start)),
    };
    Ok(Expr { kind, span })
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Human names for the tokens pest says it expected.
fn expected_name(r: Rule) -> Option<(u8, &'static str)> {
    Some(match r {
        Rule::expr
        | Rule::number
        | Rule::boolean
        | Rule::string
        | Rule::call
        | Rule::path
        | Rule::paren
        | Rule::not
        | Rule::neg
        | Rule::ident => (0, "an expression"),
        Rule::rparen => (1, "`)`"),
        Rule::rbracket => (2, "`]`"),
        Rule::comma => (3, "`,`"),
        Rule::lparen => (4, "`(`"),
        Rule::or
        | Rule::and
        | Rule::eq
        | Rule::ne
        | Rule::lt
        | Rule::le
        | Rule::gt
        | Rule::ge
        | Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div => (5, "an operator"),
        Rule::EOI => (6, "end of rule"),
        Rule::timeframe => (7, "a timeframe such as `1h` or `1d`"),
        _ => return None,
    })
}

/// The token at `pos` as it should appear in a message.
fn found_at(text: &str, pos: usize) -> String {
    let rest = text.get(pos..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return "end of rule".into();
    };
    let word: String = if first.is_ascii_alphanumeric() || first == '_' || first == '.' {
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '%').collect()
    } else {
        let two: String = rest.chars().take(2).collect();
        if matches!(two.as_str(), "==" | "!=" | "<=" | ">=" | "&&" | "||") { two } else { first.to_string() }
    };
    format!("`{word}`")
}

fn syntax_error(text: &str, e: &pest::error::Error<Rule>) -> SyntaxError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<(u8, &'static str)> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().filter_map(|r| expected_name(*r)).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort();
    expected.dedup();
    let names: Vec<&str> = expected.iter().map(|(_, n)| *n).collect();
    let list = match names.len() {
        0 => String::new(),
        1 => names[0].to_string(),
        n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
    };
    let found = found_at(text, pos);
    let message =
        if list.is_empty() { format!("unexpected {found}") } else { format!("unexpected {found}; expected {list}") };
    let end = (pos + found.len().saturating_sub(2)).min(text.len()).max(pos);
    let end =
        if end == pos && pos < text.len() { pos + text[pos..].chars().next().map_or(0, |c| c.len_utf8()) } else { end };
    SyntaxError {
        code: codes::SYNTAX,
        span: Span::new(pos, end),
        message,
        label: if list.is_empty() { "unexpected here".into() } else { format!("expected {list}") },
        help: hint(text, pos),
    }
}

fn hint(text: &str, pos: usize) -> Option<String> {
    let rest = text.get(pos..).unwrap_or("");
    if rest.starts_with("&&") {
        return Some("write `and` instead of `&&`".into());
    }
    if rest.starts_with("||") {
        return Some("write `or` instead of `||`".into());
    }
    if rest.starts_with('=') && !rest.starts_with("==") {
        return Some("use `==` to compare".into());
    }
    if rest.starts_with('!') && !rest.starts_with("!=") {
        return Some("write `not` instead of `!`".into());
    }
    // Unbalanced parentheses outside strings.
    let mut open: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' => open.push(i),
            ')' if open.pop().is_none() => {
                let col = text[..i].chars().count() + 1;
                return Some(format!("the `)` at character {col} of the rule has no matching `(`"));
            }
            _ => {}
        }
    }
    if let Some(&first) = open.first() {
        let col = text[..first].chars().count() + 1;
        return Some(format!("the `(` at character {col} of the rule is never closed"));
    }
    if quote.is_some() {
        return Some("a string is not closed; add the closing quote".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_text(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Number(v, _) => format!("{v}"),
            ExprKind::Bool(b) => format!("{b}"),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Path(ids) => ids.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join("."),
            ExprKind::Call { func, args } => {
                format!("{}({})", func.name, args.iter().map(shape).collect::<Vec<_>>().join(", "))
            }
            ExprKind::Unary(op, a) => format!("({op:?} {})", shape(a)),
            ExprKind::Binary(op, _, a, b) => format!("({} {} {})", shape(a), op.symbol(), shape(b)),
            ExprKind::Index(a, b) => format!("{}[{}]", shape(a), shape(b)),
            ExprKind::Field(a, f) => format!("{}.{}", shape(a), f.name),
            ExprKind::Resample(a, tf) => format!("{}@{}", shape(a), tf.name),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(shape(&p("1 + 2 * 3")), "(1 + (2 * 3))");
        assert_eq!(shape(&p("a or b and c")), "(a or (b and c))");
        assert_eq!(shape(&p("not a > b and c")), "((Not (a > b)) and c)");
        assert_eq!(shape(&p("-x[1] * 2")), "((Neg x[1]) * 2)");
        assert_eq!(shape(&p("(1 + 2) * 3")), "((1 + 2) * 3)");
        assert_eq!(shape(&p("1 - 2 - 3")), "((1 - 2) - 3)");
    }

    #[test]
    fn atoms() {
        assert_eq!(shape(&p("5%")), "0.05");
        assert_eq!(shape(&p("30bps")), "0.003");
        assert_eq!(shape(&p("account.equity")), "account.equity");
        assert_eq!(shape(&p("macd(close, 12, 26, 9).signal")), "macd(close, 12, 26, 9).signal");
        assert_eq!(shape(&p("order.side == \"buy\"")), "(order.side == \"buy\")");
        assert_eq!(shape(&p("android or nothing")), "(android or nothing)");
        assert_eq!(shape(&p("f()")), "f()");
    }

    #[test]
    fn higher_timeframes_bind_like_history() {
        assert_eq!(shape(&p("sma(close, 50)@1d")), "sma(close, 50)@1d");
        assert_eq!(shape(&p("close > sma(close@1d, 50)")), "(close > sma(close@1d, 50))");
        assert_eq!(shape(&p("close@1d[1]")), "close@1d[1]");
        assert_eq!(shape(&p("-close@4h * 2")), "((Neg close@4h) * 2)");
        assert_eq!(shape(&p("(close - open)@1w")), "(close - open)@1w");
        assert_eq!(shape(&p("close@1mo")), "close@1mo");
        let e = p("atr(14)@1d");
        let ExprKind::Resample(_, tf) = &e.kind else { panic!() };
        assert_eq!((tf.span.start, tf.span.end), (8, 10));
        let e = parse_text("close@ > 1").unwrap_err();
        assert!(e.message.contains("a timeframe such as"), "{}", e.message);
        assert!(parse_text("close@d").is_err());
        assert!(parse_text("close @1d").is_ok(), "spaces are allowed around the `@`, as around `[`");
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = parse_text("(close > 3").unwrap_err();
        assert_eq!(e.message, "unexpected end of rule; expected `)` or an operator");
        assert!(e.help.unwrap().contains("never closed"));
        let e = parse_text("close = 3").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("use `==` to compare"));
        assert_eq!(e.span.start, 6);
        let e = parse_text("sma(close, 10").unwrap_err();
        assert!(e.message.contains("`)`") && e.message.contains("`,`"), "{}", e.message);
        let e = parse_text("close >").unwrap_err();
        assert!(e.message.contains("expected an expression"), "{}", e.message);
        assert!(parse_text("").is_err());
        assert!(parse_text("1e999").unwrap_err().code == codes::BAD_NUMBER);
    }

    #[test]
    fn refuses_absurd_nesting_without_overflowing() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_text(&deep).is_err());
        let negs = "-".repeat(3000) + "1";
        assert!(parse_text(&negs).is_err());
        let long = "1 + ".repeat(2000) + "1";
        assert!(parse_text(&long).is_err());
        let chain = "1 + ".repeat(200) + "1";
        assert!(parse_text(&chain).is_err(), "deeper than MAX_DEPTH");
        let max_parens = format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse_text(&max_parens).is_ok());
        let max_prefix = "- ".repeat(MAX_PREFIX_RUN) + "1";
        assert!(parse_text(&max_prefix).is_ok());
        assert!(parse_text("not not close > 1").is_ok());
        assert!(parse_text("a - -b").is_ok());
    }
}
