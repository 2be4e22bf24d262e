//! Reading any document: dispatch on its `kind` key.

use std::sync::Arc;

use super::manifest::{BotDoc, read_bot};
use super::node::{Node, NodeValue, parse_yaml};
use super::phase::{PhaseDoc, read_phase};
use super::policy::{PolicyDoc, read_policy};
use super::reader::Reader;
use super::rule_test::{TestDoc, read_test};
use super::strategy::{StrategyDoc, read_strategy};
use crate::diagnostics::{Diagnostic, SourceFile, codes, did_you_mean, one_of};

/// The document kinds, as written in `kind:`.
pub const KINDS: [&str; 7] = ["strategy", "policy", "bot", "phase", "test", "stress", "sweep"];

/// Any tradedsl document.
// Documents are read once per load; boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `kind: strategy`
    Strategy(StrategyDoc),
    /// `kind: policy`
    Policy(PolicyDoc),
    /// `kind: bot`
    Bot(BotDoc),
    /// `kind: phase`
    Phase(PhaseDoc),
    /// `kind: test`
    Test(TestDoc),
    /// `kind: stress`
    Stress(super::stress::StressDoc),
    /// `kind: sweep`
    Sweep(super::sweep::SweepDoc),
}

impl Document {
    /// The `kind` word.
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Strategy(_) => "strategy",
            Document::Policy(_) => "policy",
            Document::Bot(_) => "bot",
            Document::Phase(_) => "phase",
            Document::Test(_) => "test",
            Document::Stress(_) => "stress",
            Document::Sweep(_) => "sweep",
        }
    }
}

/// Reads one YAML document of any kind. Returns the document when it is valid at the schema
/// level; all problems (YAML syntax, schema) are appended to `diags`.
pub fn read_document(file: &Arc<SourceFile>, diags: &mut Vec<Diagnostic>) -> Option<Document> {
    let root = match parse_yaml(file) {
        Ok(root) => root,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let mut r = Reader::new(file, diags);
    let kind = read_kind(&mut r, &root)?;
    match kind {
        "strategy" => read_strategy(&mut r, &root).map(Document::Strategy),
        "policy" => read_policy(&mut r, &root).map(Document::Policy),
        "phase" => read_phase(&mut r, &root).map(Document::Phase),
        "test" => read_test(&mut r, &root).map(Document::Test),
        "stress" => super::stress::read_stress(&mut r, &root).map(Document::Stress),
        "sweep" => super::sweep::read_sweep(&mut r, &root).map(Document::Sweep),
        _ => read_bot(&mut r, &root).map(Document::Bot),
    }
}

fn read_kind(r: &mut Reader<'_>, root: &Node) -> Option<&'static str> {
    let NodeValue::Map(entries) = &root.value else {
        return r.fail(
            codes::WRONG_TYPE,
            root.span,
            format!("a document must be a mapping, found {}", root.kind_name()),
            Some(format!("start the file with `kind: ` and one of {}", one_of(&KINDS))),
        );
    };
    let Some((_, node)) = entries.iter().find(|(k, _)| k.name == "kind") else {
        let guess = guess_kind(entries.iter().map(|(k, _)| k.name.as_str()));
        let span = entries.first().map(|(k, _)| k.span).unwrap_or(root.span);
        return r.fail(
            codes::UNKNOWN_KIND,
            span,
            "missing key `kind`".into(),
            Some(match guess {
                Some(g) => format!("this looks like a {g}; add `kind: {g}`"),
                None => format!("add `kind:` with one of {}", one_of(&KINDS)),
            }),
        );
    };
    let text = node.scalar_text(r.file).unwrap_or_default();
    match KINDS.iter().find(|k| **k == text) {
        Some(k) => Some(*k),
        None => {
            let help = match did_you_mean(&text, KINDS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of {}", one_of(&KINDS)),
            };
            r.fail(codes::UNKNOWN_KIND, node.span, format!("unknown document kind `{text}`"), Some(help))
        }
    }
}

fn guess_kind<'a>(keys: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    for k in keys {
        match k {
            "entry" | "exit" | "universe" | "sizing" => return Some("strategy"),
            "rules" => return Some("policy"),
            "strategies" | "starting_cash" => return Some("bot"),
            "next" | "approval" | "mode" | "gates" | "demotion" | "limits" => return Some("phase"),
            "cases" => return Some("test"),
            "scenarios" => return Some("stress"),
            "objective" | "constraints" | "heatmap" => return Some("sweep"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Option<Document>, Vec<Diagnostic>) {
        let f = SourceFile::new("t.yaml", text);
        let mut diags = Vec::new();
        let doc = read_document(&f, &mut diags);
        (doc, diags)
    }

    #[test]
    fn reads_a_strategy() {
        let (doc, diags) = read(
            "kind: strategy\nname: s\nuniverse: [GOOG]\ntimeframe: 1d\nparams: {fast: 10, th: 5%}\n\
             entry: close > 1\nexit: close < 1\nstop_loss: 3%\nsizing: {percent_of_equity: 5%}\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Document::Strategy(s)) = doc else { panic!() };
        assert_eq!(s.universe[0].value, "GOOG");
        assert_eq!(s.params.len(), 2);
        assert_eq!(s.stop_loss.unwrap().value.value, 0.03);
        assert_eq!(s.sizing.value, crate::config::strategy::Sizing::PercentOfEquity(0.05));
    }

    #[test]
    fn reports_every_problem_in_a_file() {
        let (doc, diags) = read(
            "kind: strategy\nnmae: s\nuniverse: [GOOG]\ntimeframe: 1y\nentry: x\nexitt: y\nsizing: all_cash\nstop_loss: 3\n",
        );
        // The reading goes on past errors (so rules can still be checked); the errors say the
        // document must not be used.
        assert!(doc.is_some());
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        // bad timeframe, bad stop_loss, two unknown keys (one of which explains the missing name)
        assert_eq!(codes.len(), 4, "{diags:#?}");
        assert!(diags.iter().any(|d| d.help.as_deref() == Some("did you mean `name`? (it is required)")));
        assert!(diags.iter().any(|d| d.help.as_deref() == Some("did you mean `exit`?")));
    }

    #[test]
    fn missing_kind_guesses() {
        let (_, diags) = read("name: x\nrules: []\n");
        assert_eq!(diags[0].code, codes::UNKNOWN_KIND);
        assert!(diags[0].help.as_deref().unwrap().contains("policy"));
    }

    #[test]
    fn reads_a_bot() {
        let (doc, diags) = read(
            "kind: bot\nname: b\nstrategies: [s.yaml]\ndata: {csv: {GOOG: g.csv}}\nstarting_cash: 100000\n\
             costs: {commission: 0.1%, slippage: 5bps}\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Document::Bot(b)) = doc else { panic!() };
        assert_eq!(b.data.csv[0].symbol.value, "GOOG");
        assert!((b.costs.slippage.value - 0.0005).abs() < 1e-15);
        assert_eq!(b.fill.value, crate::config::manifest::FillTiming::NextOpen);
    }
}
