//! Bundles: validated, compiled sets of documents, identified by a content hash.
//!
//! A [`Bundle`] is what every driver (backtest, paper, live) runs: the bot settings, its
//! strategies with type-checked entry and exit rules, and its policies with type-checked rules.
//! Its [`Bundle::revision`] is a SHA-256 over the documents' texts, so the journal can say which
//! exact rules produced each decision. [`SymbolProgram::build`] turns a bundle into the compiled
//! graph and rule programs for one symbol.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::catalog::{self, Context};
use super::check::{Checker, TExpr};
use super::parser;
use super::program::{CompiledRule, GraphSpec, lower_rule};
use super::script::{self, CustomIndicator, Sandbox, Script, ScriptKind};
use crate::config::manifest::BotDoc;
use crate::config::phase::PhaseDoc;
use crate::config::policy::{Condition, PolicyDoc};
use crate::config::script_ref::ScriptRef;
use crate::config::strategy::{Param, StrategyDoc};
use crate::diagnostics::{Diagnostic, SourceFile, codes, did_you_mean, one_of};

/// A strategy with its rules type-checked (params substituted, constants folded).
#[derive(Debug, Clone)]
pub struct CompiledStrategy {
    /// The document.
    pub doc: StrategyDoc,
    /// Entry rule.
    pub entry: TExpr,
    /// Exit rule, if any.
    pub exit: Option<TExpr>,
    /// The expected return of an entry (a number), if declared.
    pub expected_return: Option<TExpr>,
    /// The series the sizing method reads (`atr(n)` for ATR risk, `volatility(n)` for a
    /// volatility target), with its text.
    pub sizing_input: Option<(TExpr, crate::config::expr_source::ExprSource)>,
    /// The sizing scale's cases, checked: `(when, scale)` in order (empty: no scale).
    pub sizing_scale: Vec<(Option<TExpr>, TExpr)>,
    /// The ATR an ATR trailing stop reads (`atr(n)`), with its text.
    pub trail_input: Option<(TExpr, crate::config::expr_source::ExprSource)>,
    /// The limit or stop price of a non-market entry order (a number), if any.
    pub entry_price: Option<TExpr>,
    /// Params no rule refers to.
    pub unused_params: Vec<String>,
    /// Custom indicators (rhai), as the rules see them.
    pub indicators: Vec<CustomIndicator>,
    /// The entry filter (rhai), if any.
    pub filter: Option<Arc<Script>>,
    /// The bot's scheduled rebalance, when this is the strategy holding its positions (see
    /// [`super::rebalance`]).
    pub rebalance: Option<Arc<super::rebalance::CompiledRebalance>>,
}

impl CompiledStrategy {
    /// The strategy's name.
    pub fn name(&self) -> &str {
        &self.doc.name.value
    }

    /// True when `symbol` is in the universe.
    pub fn trades(&self, symbol: &str) -> bool {
        self.doc.universe.iter().any(|s| s.value == symbol)
    }
}

/// A policy with its rules type-checked; `rules[i]` belongs to `doc.rules[i]`.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The document.
    pub doc: PolicyDoc,
    /// Compiled conditions, one per rule.
    pub rules: Vec<CompiledCondition>,
}

/// A policy rule's compiled condition.
#[derive(Debug, Clone)]
pub enum CompiledCondition {
    /// A typed `when:` expression (true fires the rule).
    Expr(TExpr),
    /// A rhai guardrail (`fn check(order, account, position)`).
    Script(Arc<Script>),
}

impl CompiledCondition {
    /// The typed expression of a `when:` rule.
    pub fn expr(&self) -> Option<&TExpr> {
        match self {
            CompiledCondition::Expr(t) => Some(t),
            CompiledCondition::Script(_) => None,
        }
    }
}

/// Compiles the script `r` names (its source must have been loaded) for `kind`. Problems go
/// to `diags`, located in the script, or at the reference when the script was not loaded.
pub fn compile_script(
    r: &ScriptRef,
    kind: ScriptKind,
    doc: &Arc<SourceFile>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Arc<Script>> {
    let Some(source) = &r.source else {
        // The loader reports a script it could not read; say nothing twice.
        let reported =
            diags.iter().any(|d| d.is_error() && d.span == Some(r.path.span) && d.source.as_ref() == Some(doc));
        if reported {
            return None;
        }
        diags.push(
            Diagnostic::error(codes::UNRESOLVED_REFERENCE, format!("script `{}` was not loaded", r.path.value))
                .at(doc, r.path.span)
                .help("the path is relative to this file"),
        );
        return None;
    };
    match script::compile(kind, source, Sandbox::shared()) {
        Ok(s) => Some(Arc::new(s)),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

/// A compiled, validated set of documents.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// First 16 hex digits of the SHA-256 of the documents' texts.
    pub revision: String,
    /// The bot manifest, when the bundle was loaded from one.
    pub bot: Option<BotDoc>,
    /// Strategies, in manifest order.
    pub strategies: Vec<CompiledStrategy>,
    /// Policies, in the order they apply.
    pub policies: Vec<CompiledPolicy>,
    /// Graduation phases.
    pub phases: Vec<PhaseDoc>,
    /// Their gate and demotion rules, compiled (same order as `phases`).
    pub phase_rules: Vec<PhaseRules>,
    /// Every file the bundle was built from (documents and scripts), in load order.
    pub sources: Vec<Arc<SourceFile>>,
}

impl Bundle {
    /// All symbols traded by any strategy, sorted, without duplicates.
    pub fn symbols(&self) -> Vec<String> {
        let set: BTreeSet<String> =
            self.strategies.iter().flat_map(|s| s.doc.universe.iter().map(|u| u.value.clone())).collect();
        set.into_iter().collect()
    }
}

/// Replaces param values of `doc` with `params` (a bot's overrides, a rule test's `params:`, a
/// sweep trial's values), which were written in `file`; a param given a value has no search
/// space any more. Returns `false` (with an error at the param's name in `file`)
/// when one names a param the strategy does not declare.
pub fn set_params(
    doc: &mut StrategyDoc,
    params: &[Param],
    file: &Arc<SourceFile>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut ok = true;
    for p in params {
        match doc.params.iter_mut().find(|d| d.name.value == p.name.value) {
            Some(d) => {
                // A value set from outside is fixed: a sweep does not search it.
                d.value = p.value.clone();
                d.space = None;
            }
            None => {
                let declared: Vec<&str> = doc.params.iter().map(|d| d.name.value.as_str()).collect();
                let help = match did_you_mean(&p.name.value, declared.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if declared.is_empty() => format!("`{}` declares no params", doc.source.name),
                    None => format!("params of `{}`: {}", doc.name.value, one_of(&declared)),
                };
                diags.push(
                    Diagnostic::error(
                        codes::BAD_PARAM,
                        format!("strategy `{}` has no param `{}`", doc.name.value, p.name.value),
                    )
                    .at(file, p.name.span)
                    .label("not a param of this strategy")
                    .help(help),
                );
                ok = false;
            }
        }
    }
    ok
}

/// Type-checks a strategy's rules. Problems go to `diags`; `None` when any is an error.
pub fn compile_strategy(doc: StrategyDoc, diags: &mut Vec<Diagnostic>) -> Option<CompiledStrategy> {
    let mut ok = true;
    for p in &doc.params {
        if catalog::is_reserved(&p.name.value) {
            diags.push(
                Diagnostic::error(codes::BAD_PARAM, format!("param `{}` shadows a built-in name", p.name.value))
                    .at(&doc.source, p.name.span)
                    .label("reserved name")
                    .help("rename the param; bar series, functions and `account`/`position`/`order`/`symbol` are reserved"),
            );
            ok = false;
        }
    }
    let mut indicators = Vec::new();
    let mut broken = Vec::new();
    for d in &doc.indicators {
        let name = &d.name.value;
        let clash = if catalog::is_reserved(name) {
            Some("a built-in name".to_string())
        } else {
            doc.param(name).map(|_| "a param".to_string())
        };
        if let Some(what) = clash {
            diags.push(
                Diagnostic::error(codes::BAD_PARAM, format!("indicator `{name}` has the name of {what}"))
                    .at(&doc.source, d.name.span)
                    .label("name taken")
                    .help("give the indicator another name"),
            );
            ok = false;
        }
        match compile_script(&d.script, ScriptKind::Indicator, &doc.source, diags) {
            Some(script) => indicators.push(CustomIndicator { name: name.clone(), script, window: d.window.value }),
            None => {
                broken.push(name.clone());
                ok = false;
            }
        }
    }
    let filter = match &doc.filter {
        Some(f) => match compile_script(f, ScriptKind::Filter, &doc.source, diags) {
            Some(s) => Some(s),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let mut used = BTreeSet::new();
    let known = (&indicators[..], &broken[..]);
    let entry = check_rule(&doc, known, &doc.entry, Context::Entry, "entry", diags, &mut used);
    let exit = doc.exit.as_ref().map(|e| check_rule(&doc, known, e, Context::Exit, "exit", diags, &mut used));
    let expected = doc
        .expected_return
        .as_ref()
        .map(|e| check_rule(&doc, known, e, Context::Entry, "expected_return", diags, &mut used));
    let entry_price =
        doc.entry_order.as_ref().map(|o| check_rule(&doc, known, &o.price, Context::Entry, "price", diags, &mut used));
    let mut sizing_scale = Vec::new();
    let mut scale_ok = true;
    for case in doc.sizing_scale.iter().flat_map(|s| &s.cases) {
        let when = case.when.as_ref().map(|w| check_rule(&doc, known, w, Context::Entry, "when", diags, &mut used));
        let scale = check_rule(&doc, known, &case.scale, Context::Entry, "scale", diags, &mut used);
        match (when, scale) {
            (Some(Some(w)), Some(k)) => sizing_scale.push((Some(w), k)),
            (None, Some(k)) => sizing_scale.push((None, k)),
            _ => scale_ok = false,
        }
    }
    let entry = entry?;
    if !scale_ok {
        return None;
    }
    let entry_price = match entry_price {
        Some(Some(p)) => Some(p),
        Some(None) => return None,
        None => None,
    };
    let exit = match exit {
        Some(Some(e)) => Some(e),
        Some(None) => return None,
        None => None,
    };
    let expected_return = match expected {
        Some(Some(e)) => Some(e),
        Some(None) => return None,
        None => None,
    };
    if !ok {
        return None;
    }
    let unused_params = doc.params.iter().map(|p| p.name.value.clone()).filter(|n| !used.contains(n)).collect();
    let sizing_input = sizing_input(&doc.sizing.value);
    let trail_input = match doc.trailing_stop.as_ref().map(|t| t.value) {
        Some(crate::config::strategy::TrailingStop::Atr { period, .. }) => series_of(&format!("atr({period})")),
        _ => None,
    };
    let compiled = CompiledStrategy {
        rebalance: None,
        doc,
        entry,
        exit,
        expected_return,
        sizing_input,
        sizing_scale,
        trail_input,
        entry_price,
        unused_params,
        indicators,
        filter,
    };
    diags.extend(super::lint::lint_strategy(&compiled));
    Some(compiled)
}

fn check_rule(
    doc: &StrategyDoc,
    (indicators, broken): (&[CustomIndicator], &[String]),
    src: &crate::config::expr_source::ExprSource,
    ctx: Context,
    what: &str,
    diags: &mut Vec<Diagnostic>,
    used: &mut BTreeSet<String>,
) -> Option<TExpr> {
    let ast = match parser::parse(src) {
        Ok(a) => a,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let mut c = Checker::new(src, ctx, &doc.params)
        .with_indicators(indicators)
        .with_broken_indicators(broken)
        .with_timeframe(doc.timeframe.value, doc.aggregation);
    // `expected_return` and a sizing `scale` are numbers; every other strategy rule is a bool.
    let t = if matches!(what, "expected_return" | "scale" | "price") {
        c.check_number(&ast, what)
    } else {
        c.check_rule(&ast, what)
    };
    used.extend(c.used_params);
    let failed = c.diags.iter().any(Diagnostic::is_error);
    diags.extend(c.diags);
    if failed { None } else { t }
}

/// The series a sizing method reads, compiled from its text (always valid: periods are
/// checked when the document is read).
fn sizing_input(sizing: &crate::config::strategy::Sizing) -> Option<(TExpr, crate::config::expr_source::ExprSource)> {
    use crate::config::strategy::Sizing;
    let text = match sizing {
        Sizing::AtrRisk { atr_period, .. } => format!("atr({atr_period})"),
        Sizing::VolatilityTarget { period, .. } => format!("volatility({period})"),
        _ => return None,
    };
    series_of(&text)
}

/// A built-in series (`atr(14)`) compiled from its text.
fn series_of(text: &str) -> Option<(TExpr, crate::config::expr_source::ExprSource)> {
    let src = crate::config::expr_source::ExprSource::standalone("sizing", text);
    let ast = parser::parse(&src).ok()?;
    let t = Checker::new(&src, Context::Entry, &[]).check(&ast)?;
    Some((t, src))
}

/// Type-checks a policy's rules and checks that rule ids are unique.
pub fn compile_policy(doc: PolicyDoc, diags: &mut Vec<Diagnostic>) -> Option<CompiledPolicy> {
    let mut ok = true;
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for r in &doc.rules {
        if seen.insert(r.id.value.as_str(), ()).is_some() {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("rule id `{}` is used twice in this policy", r.id.value))
                    .at(&doc.source, r.id.span)
                    .label("duplicate id")
                    .help("rule ids must be unique: they name the rule in the journal"),
            );
            ok = false;
        }
    }
    let mut rules = Vec::new();
    for r in &doc.rules {
        let when = match &r.condition {
            Condition::When(e) => e,
            Condition::Script(s) => {
                match compile_script(s, ScriptKind::Guard, &doc.source, diags) {
                    Some(script) => rules.push(CompiledCondition::Script(script)),
                    None => ok = false,
                }
                continue;
            }
        };
        let ast = match parser::parse(when) {
            Ok(a) => a,
            Err(d) => {
                diags.push(d);
                ok = false;
                continue;
            }
        };
        let mut c = Checker::new(when, Context::Policy, &[]);
        let t = c.check_rule(&ast, "when");
        if c.diags.iter().any(Diagnostic::is_error) {
            ok = false;
        }
        diags.extend(c.diags);
        if let Some(t) = t {
            rules.push(CompiledCondition::Expr(t));
        }
    }
    if !ok {
        return None;
    }
    let compiled = CompiledPolicy { doc, rules };
    diags.extend(super::lint::lint_policy(&compiled));
    Some(compiled)
}

/// A phase's gate and demotion rules, type-checked (same order as in the document).
#[derive(Debug, Clone)]
pub struct PhaseRules {
    /// The phase.
    pub phase: String,
    /// Its `gates`.
    pub gates: Vec<TExpr>,
    /// Its `demotion` rules.
    pub demotion: Vec<TExpr>,
}

/// Type-checks a phase's gate and demotion rules: booleans over `metric.*` fields, no bar
/// data. Errors go to `diags`; `None` when any rule has one.
pub fn compile_phase_rules(doc: &PhaseDoc, diags: &mut Vec<Diagnostic>) -> Option<PhaseRules> {
    let mut ok = true;
    let check = |rule: &crate::config::phase::GateRule, diags: &mut Vec<Diagnostic>| -> Option<TExpr> {
        let ast = match parser::parse(&rule.when) {
            Ok(a) => a,
            Err(d) => {
                diags.push(d);
                return None;
            }
        };
        let mut c = Checker::new(&rule.when, Context::Gate, &[]);
        let t = c.check_rule(&ast, "when");
        let failed = c.diags.iter().any(Diagnostic::is_error);
        diags.extend(c.diags);
        let t = t.filter(|_| !failed)?;
        if t.ty.var == super::types::Variability::Series {
            diags.push(
                Diagnostic::error(codes::FIELD_NOT_AVAILABLE, "gate rules read metrics of the journal, not bar data")
                    .at(&rule.when.file, rule.when.span)
                    .label("reads bars")
                    .help("use `metric.*` fields such as `metric.win_rate >= 45%`"),
            );
            return None;
        }
        Some(t)
    };
    let mut gates = Vec::new();
    for g in &doc.gates {
        match check(g, diags) {
            Some(t) => gates.push(t),
            None => ok = false,
        }
    }
    let mut demotion = Vec::new();
    for g in &doc.demotion {
        match check(g, diags) {
            Some(t) => demotion.push(t),
            None => ok = false,
        }
    }
    ok.then(|| PhaseRules { phase: doc.name.value.clone(), gates, demotion })
}

/// Assembles compiled documents into a bundle: checks that strategy and policy names are
/// unique and computes the revision from `sources` (every document's file, in load order).
pub fn assemble(
    bot: Option<BotDoc>,
    mut strategies: Vec<CompiledStrategy>,
    policies: Vec<CompiledPolicy>,
    phases: Vec<PhaseDoc>,
    sources: &[Arc<SourceFile>],
    diags: &mut Vec<Diagnostic>,
) -> Option<Bundle> {
    let mut ok = true;
    // A scheduled rebalance holds its positions in a strategy of its own.
    match bot.as_ref().map(|b| super::rebalance::compile_rebalance(b, diags)) {
        Some(None) => ok = false,
        Some(Some(Some(s))) => strategies.push(s),
        _ => {}
    }
    let mut names: BTreeMap<&str, &StrategyDoc> = BTreeMap::new();
    for s in &strategies {
        if let Some(first) = names.insert(&s.doc.name.value, &s.doc) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("strategy name `{}` is used twice", s.doc.name.value))
                    .at(&s.doc.name_file, s.doc.name.span)
                    .label("duplicate name")
                    .help(format!(
                        "it is also the name of the strategy in `{}`; a bot using a strategy twice must rename one (`name:`)",
                        first.source.name
                    )),
            );
            ok = false;
        }
    }
    let mut pnames: BTreeMap<&str, &PolicyDoc> = BTreeMap::new();
    for p in &policies {
        if let Some(first) = pnames.insert(&p.doc.name.value, &p.doc) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("policy name `{}` is used twice", p.doc.name.value))
                    .at(&p.doc.source, p.doc.name.span)
                    .label("duplicate name")
                    .help(format!("it is also the name of the policy in `{}`", first.source.name)),
            );
            ok = false;
        }
    }
    let mut phase_rules = Vec::new();
    for p in &phases {
        match compile_phase_rules(p, diags) {
            Some(r) => phase_rules.push(r),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    // Loose documents validated together are not a bot: only a bot trades its universe.
    if bot.is_some() {
        warn_unallocated(&strategies, &policies, diags);
    }
    Some(Bundle {
        revision: revision(sources),
        bot,
        strategies,
        policies,
        phases,
        phase_rules,
        sources: sources.to_vec(),
    })
}

/// Warns about every traded symbol that a policy's allocation leaves out of its buckets: each
/// entry in it would be denied (`allocation.unassigned`).
fn warn_unallocated(strategies: &[CompiledStrategy], policies: &[CompiledPolicy], diags: &mut Vec<Diagnostic>) {
    for p in policies {
        let Some(a) = &p.doc.allocation else { continue };
        let mut warned = BTreeSet::new();
        for s in strategies {
            for u in &s.doc.universe {
                let held = a.buckets.iter().any(|b| b.symbols.iter().any(|m| m.value == u.value));
                if !held && warned.insert(u.value.clone()) {
                    diags.push(
                        Diagnostic::warning(
                            codes::UNALLOCATED_SYMBOL,
                            format!(
                                "`{}` (traded by `{}`) is in no bucket of policy `{}`",
                                u.value, s.doc.name.value, p.doc.name.value
                            ),
                        )
                        .at(&p.doc.source, p.doc.name.span)
                        .help("every entry in it will be denied (allocation.unassigned); add it to a bucket"),
                    );
                }
            }
        }
    }
}

/// Checks a bot's phases: unique names, every `next` among them, no cycle, and the active
/// `phase` among them. Returns `false` (with diagnostics) on any error.
pub fn check_phases(bot: &BotDoc, phases: &[PhaseDoc], diags: &mut Vec<Diagnostic>) -> bool {
    let mut ok = true;
    let mut by_name: BTreeMap<&str, &PhaseDoc> = BTreeMap::new();
    for p in phases {
        if let Some(first) = by_name.insert(&p.name.value, p) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("phase name `{}` is used twice", p.name.value))
                    .at(&p.source, p.name.span)
                    .label("duplicate name")
                    .help(format!("it is also the name of the phase in `{}`", first.source.name)),
            );
            ok = false;
        }
    }
    let names: Vec<&str> = by_name.keys().copied().collect();
    let suggest = |missing: &str| match did_you_mean(missing, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if names.is_empty() => "the bot lists no phases".to_string(),
        None => format!("the bot's phases: {}", one_of(&names)),
    };
    for p in phases {
        if let Some(next) = p.next.as_ref().filter(|n| !by_name.contains_key(n.value.as_str())) {
            diags.push(
                Diagnostic::error(
                    codes::UNRESOLVED_REFERENCE,
                    format!("phase `{}` leads to `{}`, which is not among the bot's phases", p.name.value, next.value),
                )
                .at(&p.source, next.span)
                .label("unknown phase")
                .help(suggest(&next.value)),
            );
            ok = false;
        }
    }
    // Cycles: follow `next` from every phase; reaching a phase already on the path is a cycle.
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for start in phases {
        let mut path: Vec<&str> = vec![&start.name.value];
        let mut at = start;
        while let Some(next) = at.next.as_ref().and_then(|n| by_name.get(n.value.as_str())) {
            if let Some(i) = path.iter().position(|n| *n == next.name.value) {
                let cycle: Vec<&str> = path[i..].to_vec();
                if cycle.iter().all(|n| !reported.contains(n)) {
                    reported.extend(cycle.iter().copied());
                    let shown = format!("{} → {}", cycle.join(" → "), cycle[0]);
                    let d = Diagnostic::error(codes::PHASE_CYCLE, format!("phases form a cycle: {shown}"))
                        .label("this successor closes the cycle")
                        .help("the chain of `next` must end in a final phase without `next`");
                    let d = match &at.next {
                        Some(n) => d.at(&at.source, n.span),
                        None => d,
                    };
                    diags.push(d);
                    ok = false;
                }
                break;
            }
            path.push(&next.name.value);
            at = next;
        }
    }
    if let Some(active) = bot.phase.as_ref().filter(|a| !by_name.contains_key(a.value.as_str())) {
        diags.push(
            Diagnostic::error(
                codes::UNRESOLVED_REFERENCE,
                format!("the active phase `{}` is not among the bot's phases", active.value),
            )
            .at(&bot.source, active.span)
            .label("unknown phase")
            .help(suggest(&active.value)),
        );
        ok = false;
    }
    ok
}

/// The revision of a set of documents: SHA-256 over each text (length-prefixed, in order),
/// first 16 hex digits. File names do not count, so moving a file keeps its revision.
pub fn revision(sources: &[Arc<SourceFile>]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update((s.text.len() as u64).to_le_bytes());
        h.update(s.text.as_bytes());
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Compiled rules of one strategy on one symbol.
#[derive(Debug, Clone)]
pub struct StrategyRules {
    /// Entry rule.
    pub entry: CompiledRule,
    /// Exit rule.
    pub exit: Option<CompiledRule>,
    /// The expected return of an entry, if declared.
    pub expected_return: Option<CompiledRule>,
    /// The series the sizing method reads, if any.
    pub sizing_input: Option<CompiledRule>,
    /// The sizing scale's cases `(when, scale)` in order; empty without a scale.
    pub sizing_scale: Vec<(Option<CompiledRule>, CompiledRule)>,
    /// The ATR an ATR trailing stop reads, if any.
    pub trail_input: Option<CompiledRule>,
    /// The limit or stop price of a non-market entry, if any.
    pub entry_price: Option<CompiledRule>,
    /// The symbol's target weight, for the strategy holding a scheduled rebalance.
    pub target_weight: Option<CompiledRule>,
}

/// Everything evaluated for one symbol: its graph and the compiled rules that read it.
#[derive(Debug, Clone)]
pub struct SymbolProgram {
    /// The shared indicator graph of the symbol.
    pub graph: GraphSpec,
    /// Per strategy of the bundle (same index): its rules, or `None` if it does not trade the
    /// symbol.
    pub strategies: Vec<Option<StrategyRules>>,
    /// Per policy, per rule: the compiled condition.
    pub policies: Vec<Vec<CompiledRule>>,
}

impl SymbolProgram {
    /// Every compiled rule of the symbol: each policy rule, then each strategy's entry, exit,
    /// expected return, sizing input, sizing scale cases, trailing-stop input, entry price and
    /// target weight.
    pub fn rules(&self) -> impl Iterator<Item = &CompiledRule> {
        let strategies = self.strategies.iter().flatten().flat_map(|s| {
            std::iter::once(&s.entry)
                .chain(&s.exit)
                .chain(&s.expected_return)
                .chain(&s.sizing_input)
                .chain(s.sizing_scale.iter().flat_map(|(w, k)| w.iter().chain(std::iter::once(k))))
                .chain(&s.trail_input)
                .chain(&s.entry_price)
                .chain(&s.target_weight)
        });
        self.policies.iter().flatten().chain(strategies)
    }

    /// True when a rule of the symbol reads a context field that `pred` accepts.
    pub fn reads_field(&self, pred: impl Fn(crate::dsl::catalog::FieldId) -> bool) -> bool {
        use crate::dsl::program::Input;
        self.rules().any(|r| r.inputs.iter().any(|(_, i)| matches!(i, Input::Field(f) if pred(*f))))
    }

    /// Compiles the bundle's rules that concern `symbol` into one shared graph.
    pub fn build(bundle: &Bundle, symbol: &str) -> SymbolProgram {
        let mut graph = GraphSpec::new();
        let strategies = bundle
            .strategies
            .iter()
            .map(|s| {
                if !s.trades(symbol) {
                    return None;
                }
                let entry = lower_rule(&mut graph, &s.entry, &s.doc.entry);
                let exit = match (&s.exit, &s.doc.exit) {
                    (Some(t), Some(src)) => Some(lower_rule(&mut graph, t, src)),
                    _ => None,
                };
                let expected_return = match (&s.expected_return, &s.doc.expected_return) {
                    (Some(t), Some(src)) => Some(lower_rule(&mut graph, t, src)),
                    _ => None,
                };
                let sizing_input = s.sizing_input.as_ref().map(|(t, src)| lower_rule(&mut graph, t, src));
                let scale_cases = s.doc.sizing_scale.iter().flat_map(|k| &k.cases);
                let sizing_scale = s
                    .sizing_scale
                    .iter()
                    .zip(scale_cases)
                    .map(|((when, scale), src)| {
                        let when = match (when, &src.when) {
                            (Some(t), Some(w)) => Some(lower_rule(&mut graph, t, w)),
                            _ => None,
                        };
                        (when, lower_rule(&mut graph, scale, &src.scale))
                    })
                    .collect();
                let trail_input = s.trail_input.as_ref().map(|(t, src)| lower_rule(&mut graph, t, src));
                let entry_price = match (&s.entry_price, &s.doc.entry_order) {
                    (Some(t), Some(o)) => Some(lower_rule(&mut graph, t, &o.price)),
                    _ => None,
                };
                let target_weight = s.rebalance.as_ref().and_then(|r| {
                    let (_, t, src) = r.weights.iter().find(|(w, _, _)| w == symbol)?;
                    Some(lower_rule(&mut graph, t, src))
                });
                Some(StrategyRules {
                    entry,
                    exit,
                    expected_return,
                    sizing_input,
                    sizing_scale,
                    trail_input,
                    entry_price,
                    target_weight,
                })
            })
            .collect();
        let policies = bundle
            .policies
            .iter()
            .map(|p| {
                p.rules
                    .iter()
                    .zip(&p.doc.rules)
                    .map(|(c, r)| match (c, &r.condition) {
                        (CompiledCondition::Expr(t), Condition::When(src)) => lower_rule(&mut graph, t, src),
                        (CompiledCondition::Script(s), _) => CompiledRule::script(s.clone()),
                        // A compiled policy pairs each condition with its own rule.
                        (CompiledCondition::Expr(_), Condition::Script(_)) => CompiledRule::undefined(),
                    })
                    .collect()
            })
            .collect();
        SymbolProgram { graph, strategies, policies }
    }
}
