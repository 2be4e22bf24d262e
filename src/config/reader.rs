//! Schema readers: typed values out of a [`Node`] tree, collecting every problem.
//!
//! [`Reader`] holds the file and the list of diagnostics; each `read_*` method either returns
//! a value or records a diagnostic and returns `None`, so one pass over a document reports all
//! of its errors. [`MapView`] reads a mapping key by key and, in [`MapView::finish`], reports
//! every key that no one asked for as unknown, with the nearest valid key as a suggestion.

use std::sync::Arc;

use super::expr_source::ExprSource;
use super::node::{Key, Node, NodeValue};
use super::units::{NumUnit, Rate, parse_number};
use crate::diagnostics::{Diagnostic, SourceFile, Span, Spanned, codes, did_you_mean, one_of};

/// Reads typed values from the nodes of one file and collects diagnostics.
pub struct Reader<'a> {
    /// The file being read.
    pub file: &'a Arc<SourceFile>,
    /// Diagnostics found so far.
    pub diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    /// Starts reading `file`, appending problems to `diags`.
    pub fn new(file: &'a Arc<SourceFile>, diags: &'a mut Vec<Diagnostic>) -> Self {
        Reader { file, diags }
    }

    /// Records a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Records an error at a span and returns `None`, for `return r.fail(...)` chains.
    pub fn fail<T>(&mut self, code: &'static str, span: Span, msg: String, help: Option<String>) -> Option<T> {
        let d = Diagnostic::error(code, msg).at(self.file, span).maybe_help(help);
        self.diags.push(d);
        None
    }

    fn wrong_type<T>(&mut self, node: &Node, what: &str, expected: &str) -> Option<T> {
        let msg = format!("`{what}` must be {expected}, found {}", node.kind_name());
        self.fail(codes::WRONG_TYPE, node.span, msg, None)
    }

    /// Views a mapping node. `what` names it in messages ("strategy", "costs").
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<MapView<'n>> {
        match &node.value {
            NodeValue::Map(entries) => Some(MapView {
                entries,
                used: vec![false; entries.len()],
                known: Vec::new(),
                missing: Vec::new(),
                what: what.to_string(),
                span: node.span,
            }),
            _ => self.wrong_type(node, what, "a mapping"),
        }
    }

    /// A string scalar. Plain scalars keep their text (`ON` stays `"ON"`).
    pub fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match node.scalar_text(self.file) {
            Some(s) => Some(Spanned::new(s, node.span)),
            None => self.wrong_type(node, what, "a string"),
        }
    }

    /// A YAML bool (`true`/`false`).
    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<Spanned<bool>> {
        match node.value {
            NodeValue::Bool(b) => Some(Spanned::new(b, node.span)),
            _ => self.wrong_type(node, what, "`true` or `false`"),
        }
    }

    /// A non-empty string scalar.
    pub fn name(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let s = self.string(node, what)?;
        if s.value.trim().is_empty() {
            return self.fail(codes::INVALID_VALUE, node.span, format!("`{what}` must not be empty"), None);
        }
        Some(s)
    }

    /// A number: a YAML number, or a string such as `5%` or `30bps` (converted to a fraction).
    pub fn number(&mut self, node: &Node, what: &str) -> Option<Spanned<(f64, NumUnit)>> {
        let parsed = match &node.value {
            NodeValue::Int(i) => Some((*i as f64, NumUnit::Plain)),
            NodeValue::Float(f) if f.is_finite() => Some((*f, NumUnit::Plain)),
            NodeValue::Str(s) if !node.is_quoted(self.file) || parse_number(s).is_some() => parse_number(s),
            _ => None,
        };
        match parsed {
            Some(v) => Some(Spanned::new(v, node.span)),
            None => {
                let msg = format!("`{what}` must be a number, found {}", describe(node, self.file));
                self.fail(codes::WRONG_TYPE, node.span, msg, Some("write e.g. `10`, `0.05`, `5%` or `30bps`".into()))
            }
        }
    }

    /// A ratio, as a fraction. Accepts `0.05`, `5%` and `500bps`.
    pub fn rate(&mut self, node: &Node, what: &str) -> Option<Spanned<Rate>> {
        let n = self.number(node, what)?;
        Some(Spanned::new(Rate { value: n.value.0, unit: n.value.1 }, n.span))
    }

    /// A ratio that must lie in `[min, max]` (as fractions). A plain number above 1 where a
    /// fraction is expected is reported with a hint that it was probably meant as a percent.
    pub fn rate_in(&mut self, node: &Node, what: &str, min: f64, max: f64) -> Option<Spanned<Rate>> {
        let r = self.rate(node, what)?;
        let v = r.value.value;
        if v < min || v > max {
            let help = if r.value.unit == NumUnit::Plain && v > 1.0 && v <= 100.0 {
                format!("plain numbers are fractions here (0.03 is 3%); did you mean `{v}%`?")
            } else {
                "write it as a fraction (`0.03`), a percent (`3%`) or in bps (`300bps`)".to_string()
            };
            let lo = if min > 0.0 && min < 1e-4 { "just above 0%".to_string() } else { pct(min) };
            return self.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` must be between {lo} and {}, found {}", pct(max), pct(v)),
                Some(help),
            );
        }
        Some(r)
    }

    /// A positive (>= 1) whole number.
    pub fn positive_int(&mut self, node: &Node, what: &str) -> Option<Spanned<u32>> {
        let n = self.number(node, what)?;
        let (v, unit) = n.value;
        let raw = node.raw(self.file).trim().to_string();
        if unit != NumUnit::Plain {
            return self.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` is a count, but `{raw}` is a {unit}"),
                Some(format!(
                    "write a whole number such as `{}`",
                    raw.trim_end_matches('%').trim_end_matches("bps").trim()
                )),
            );
        }
        if v < 1.0 || v.fract() != 0.0 || v > u32::MAX as f64 {
            return self.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` must be a whole number of at least 1, found `{raw}`"),
                None,
            );
        }
        Some(Spanned::new(v as u32, n.span))
    }

    /// A finite number greater than zero (no unit allowed).
    pub fn positive_number(&mut self, node: &Node, what: &str) -> Option<Spanned<f64>> {
        let n = self.number(node, what)?;
        let (v, unit) = n.value;
        let raw = node.raw(self.file).trim().to_string();
        if unit != NumUnit::Plain {
            return self.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` is an amount, but `{raw}` is a {unit}"),
                Some("write a plain number such as `100000`".into()),
            );
        }
        if v <= 0.0 {
            return self.fail(
                codes::INVALID_VALUE,
                node.span,
                format!("`{what}` must be a number greater than 0, found `{raw}`"),
                None,
            );
        }
        Some(Spanned::new(v, n.span))
    }

    /// A list of non-empty strings. A single string is accepted as a one-item list.
    pub fn string_list(&mut self, node: &Node, what: &str) -> Option<Vec<Spanned<String>>> {
        match &node.value {
            NodeValue::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items {
                    match self.name(item, what) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            NodeValue::Str(_) => self.name(node, what).map(|s| vec![s]),
            _ => self.wrong_type(node, what, "a list of strings"),
        }
    }

    /// One of a fixed set of words (e.g. `deny`, `long`). Unknown words get a suggestion.
    pub fn choice(&mut self, node: &Node, what: &str, allowed: &[&'static str]) -> Option<Spanned<&'static str>> {
        let s = self.string(node, what)?;
        match allowed.iter().find(|a| **a == s.value) {
            Some(a) => Some(Spanned::new(*a, s.span)),
            None => {
                let help = match did_you_mean(&s.value, allowed.iter().copied()) {
                    Some(m) => format!("did you mean `{m}`? allowed values: {}", one_of(allowed)),
                    None => format!("allowed values: {}", one_of(allowed)),
                };
                self.fail(codes::INVALID_VALUE, s.span, format!("unknown {what} `{}`", s.value), Some(help))
            }
        }
    }

    /// A rule expression held in a scalar. Non-string scalars (`true`, `5`) are taken as written.
    pub fn expr(&mut self, node: &Node, what: &str) -> Option<ExprSource> {
        let text = match &node.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => node.raw(self.file).trim().to_string(),
            _ => return self.wrong_type(node, what, "a rule expression (a string)"),
        };
        if text.trim().is_empty() {
            return self.fail(codes::INVALID_VALUE, node.span, format!("`{what}` must not be empty"), None);
        }
        Some(ExprSource::new(self.file, text, node.span))
    }
}

/// A fraction as a percent without float noise: `0.03` → `3%`, `0.0005` → `0.05%`.
fn pct(v: f64) -> String {
    let p = format!("{:.6}", v * 100.0);
    let p = p.trim_end_matches('0').trim_end_matches('.');
    format!("{p}%")
}

fn describe(node: &Node, file: &SourceFile) -> String {
    match &node.value {
        NodeValue::Str(_) => format!("`{}`", node.raw(file).trim()),
        _ => node.kind_name().to_string(),
    }
}

/// A mapping being read key by key. Every key passed to [`MapView::get`] or
/// [`MapView::required`] counts as known; [`MapView::finish`] reports the rest.
pub struct MapView<'n> {
    entries: &'n [(Key, Node)],
    used: Vec<bool>,
    known: Vec<&'static str>,
    missing: Vec<&'static str>,
    what: String,
    span: Span,
}

impl<'n> MapView<'n> {
    /// The value under `key`, if present.
    pub fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        let i = self.entries.iter().position(|(k, _)| k.name == key)?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// The value under `key`; a missing key is reported by [`MapView::finish`] (folded into
    /// the "did you mean" of an unknown key when one looks like a misspelling of it).
    pub fn required(&mut self, _r: &mut Reader<'_>, key: &'static str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            self.missing.push(key);
        }
        found
    }

    /// The key and value entries not yet read (for maps with free-form keys such as `params`).
    pub fn rest(&mut self) -> Vec<(&'n Key, &'n Node)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                out.push((k, v));
            }
        }
        out
    }

    /// The span of the mapping (for errors about the whole mapping).
    pub fn span(&self) -> Span {
        self.span
    }

    /// Reports every key that was never asked for as unknown, suggesting the nearest known key,
    /// and every required key that is missing (unless an unknown key is its misspelling).
    pub fn finish(self, r: &mut Reader<'_>) {
        let mut explained: Vec<&str> = Vec::new();
        for (i, (key, _)) in self.entries.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let missing = did_you_mean(&key.name, self.missing.iter().copied());
            let help = match (&missing, did_you_mean(&key.name, self.known.iter().copied())) {
                (Some(m), _) => {
                    explained.push(self.missing.iter().copied().find(|k| k == m).unwrap_or(""));
                    format!("did you mean `{m}`? (it is required)")
                }
                (None, Some(s)) => format!("did you mean `{s}`?"),
                (None, None) => format!("valid keys: {}", one_of(&self.known)),
            };
            let d = Diagnostic::error(codes::UNKNOWN_KEY, format!("unknown key `{}` in {}", key.name, self.what))
                .at(r.file, key.span)
                .label("unknown key")
                .help(help);
            r.push(d);
        }
        for key in self.missing.iter().filter(|k| !explained.contains(k)) {
            let d = Diagnostic::error(codes::MISSING_KEY, format!("missing key `{key}` in {}", self.what))
                .at(r.file, self.span)
                .label(format!("this {} has no `{key}`", self.what));
            r.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse_yaml;

    #[test]
    fn reports_all_unknown_keys_with_suggestions() {
        let f = SourceFile::new("t.yaml", "nmae: x\nentyr: y\nexit: z\n");
        let root = parse_yaml(&f).unwrap();
        let mut diags = Vec::new();
        let mut r = Reader::new(&f, &mut diags);
        let mut m = r.map(&root, "strategy").unwrap();
        m.get("name");
        m.get("entry");
        m.get("exit");
        m.finish(&mut r);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `name`?"));
        assert_eq!(diags[1].help.as_deref(), Some("did you mean `entry`?"));
    }

    #[test]
    fn a_misspelled_required_key_is_one_error() {
        let f = SourceFile::new("t.yaml", "nmae: x\n");
        let root = parse_yaml(&f).unwrap();
        let mut diags = Vec::new();
        let mut r = Reader::new(&f, &mut diags);
        let mut m = r.map(&root, "strategy").unwrap();
        assert!(m.required(&mut r, "name").is_none());
        assert!(m.required(&mut r, "entry").is_none());
        m.finish(&mut r);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `name`? (it is required)"));
        assert_eq!(diags[1].message, "missing key `entry` in strategy");
    }

    #[test]
    fn rates_accept_units_and_flag_percent_written_as_plain() {
        let f = SourceFile::new("t.yaml", "a: 5%\nb: 30bps\nc: 0.03\nd: 3\n");
        let root = parse_yaml(&f).unwrap();
        let mut diags = Vec::new();
        let mut r = Reader::new(&f, &mut diags);
        let mut m = r.map(&root, "x").unwrap();
        let a = m.get("a").unwrap();
        assert_eq!(r.rate(a, "a").unwrap().value.value, 0.05);
        let b = m.get("b").unwrap();
        assert!((r.rate(b, "b").unwrap().value.value - 0.003).abs() < 1e-15);
        let c = m.get("c").unwrap();
        assert_eq!(r.rate_in(c, "c", 0.0, 1.0).unwrap().value.value, 0.03);
        let d = m.get("d").unwrap();
        assert!(r.rate_in(d, "stop_loss", 0.0, 1.0).is_none());
        assert!(diags[0].help.as_deref().unwrap().contains("`3%`"), "{:?}", diags[0]);
    }
}
