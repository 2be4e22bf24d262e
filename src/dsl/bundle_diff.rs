//! What changed between two bundles: the summary every hot reload records.
//!
//! Documents are compared by file (name and text). Rules are compared by what decides them:
//! a strategy's `entry` and `exit` text (whitespace-insensitive), its custom indicators and
//! entry filter (script text and window); a policy rule's condition (text or script), action
//! and message. Params and strategy settings (universe, timeframe, stops, holding, sizing) are
//! listed with their old and new values, since they change what a rule does without changing
//! its text.

use std::collections::BTreeMap;

use super::bundle::{Bundle, CompiledCondition};

/// Names added, removed and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    /// New names.
    pub added: Vec<String>,
    /// Names that are gone.
    pub removed: Vec<String>,
    /// Names whose content changed (for params and settings: `name: old -> new`).
    pub changed: Vec<String>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Compares two keyed maps. With `show_values`, changed entries read `key: old -> new`.
    pub fn between(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>, show_values: bool) -> Self {
        let mut c = Changes::default();
        for (k, v) in new {
            match old.get(k) {
                None => c.added.push(if show_values { format!("{k}: {v}") } else { k.clone() }),
                Some(o) if o != v => c.changed.push(if show_values { format!("{k}: {o} -> {v}") } else { k.clone() }),
                Some(_) => {}
            }
        }
        c.removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
        c
    }
}

/// The differences between two bundles.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeSummary {
    /// Files (documents and scripts).
    pub documents: Changes,
    /// Rules: `strategy.entry`, `strategy.exit`, `strategy.filter`, `strategy.indicator.name`,
    /// `policy/rule_id`.
    pub rules: Changes,
    /// Strategy params: `strategy.param`.
    pub params: Changes,
    /// Strategy settings: `strategy.stop_loss`, `strategy.sizing`, ...
    pub settings: Changes,
}

impl ChangeSummary {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty() && self.rules.is_empty() && self.params.is_empty() && self.settings.is_empty()
    }

    /// Compares `old` with `new`.
    pub fn between(old: &Bundle, new: &Bundle) -> Self {
        ChangeSummary {
            documents: Changes::between(&documents(old), &documents(new), false),
            rules: Changes::between(&rules(old), &rules(new), false),
            params: Changes::between(&params(old), &params(new), true),
            settings: Changes::between(&settings(old), &settings(new), true),
        }
    }

    /// One line per kind of change, e.g. `rules changed: sma_crossover.entry`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, c) in [
            ("documents", &self.documents),
            ("rules", &self.rules),
            ("params", &self.params),
            ("settings", &self.settings),
        ] {
            for (verb, names) in [("added", &c.added), ("removed", &c.removed), ("changed", &c.changed)] {
                if !names.is_empty() {
                    out.push(format!("{what} {verb}: {}", names.join(", ")));
                }
            }
        }
        out
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn documents(b: &Bundle) -> BTreeMap<String, String> {
    b.sources.iter().map(|s| (s.name.clone(), s.text.clone())).collect()
}

fn rules(b: &Bundle) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for s in &b.strategies {
        let name = s.name();
        m.insert(format!("{name}.entry"), squash(&s.doc.entry.text));
        if let Some(e) = &s.doc.exit {
            m.insert(format!("{name}.exit"), squash(&e.text));
        }
        if let Some(f) = &s.filter {
            m.insert(format!("{name}.filter"), f.source.text.clone());
        }
        for i in &s.indicators {
            m.insert(format!("{name}.indicator.{}", i.name), format!("{}|{}", i.window, i.script.source.text));
        }
    }
    for p in &b.policies {
        for (r, c) in p.doc.rules.iter().zip(&p.rules) {
            let condition = match (c, r.condition.expr()) {
                (CompiledCondition::Script(s), _) => s.source.text.clone(),
                (_, Some(e)) => squash(&e.text),
                _ => String::new(),
            };
            m.insert(
                format!("{}/{}", p.doc.name.value, r.id.value),
                format!("{condition}|{}|{}", r.action.value.as_str(), r.message.value),
            );
        }
    }
    m
}

fn params(b: &Bundle) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for s in &b.strategies {
        for p in &s.doc.params {
            let v = match &p.value.value {
                crate::config::strategy::ParamValue::Number(x, unit) => crate::config::units::written(*x, *unit),
                crate::config::strategy::ParamValue::Bool(v) => v.to_string(),
                crate::config::strategy::ParamValue::Str(v) => format!("{v:?}"),
            };
            m.insert(format!("{}.{}", s.name(), p.name.value), v);
        }
    }
    m
}

fn settings(b: &Bundle) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for s in &b.strategies {
        let d = &s.doc;
        let name = s.name();
        let universe: Vec<&str> = d.universe.iter().map(|u| u.value.as_str()).collect();
        m.insert(format!("{name}.universe"), format!("[{}]", universe.join(", ")));
        m.insert(format!("{name}.timeframe"), d.timeframe.value.to_string());
        m.insert(format!("{name}.sizing"), d.sizing.value.to_string());
        if let Some(v) = &d.stop_loss {
            m.insert(format!("{name}.stop_loss"), crate::config::units::written(v.value.value, v.value.unit));
        }
        if let Some(v) = &d.take_profit {
            m.insert(format!("{name}.take_profit"), crate::config::units::written(v.value.value, v.value.unit));
        }
        if let Some(v) = &d.max_holding {
            m.insert(format!("{name}.max_holding"), v.value.to_string());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keyed_changes() {
        let old = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = map(&[("a", "1"), ("b", "5"), ("d", "4")]);
        let c = Changes::between(&old, &new, true);
        assert_eq!(c.added, vec!["d: 4"]);
        assert_eq!(c.removed, vec!["c"]);
        assert_eq!(c.changed, vec!["b: 2 -> 5"]);
        assert!(Changes::between(&old, &old, false).is_empty());
    }
}
