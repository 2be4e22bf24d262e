//! Loading documents from disk and compiling them into a [`Bundle`].
//!
//! A bot manifest's `strategies` and `policies` paths, and its data paths, are relative to the
//! manifest's directory. A strategy file can also be run on its own (no policies, default
//! money). [`validate_paths`] checks any mix of files and directories and reports every problem
//! in every file once.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::config::manifest::StrategyRef;
use crate::config::phase::PhaseDoc;
use crate::config::policy::Condition;
use crate::config::script_ref::ScriptRef;
use crate::config::strategy::StrategyDoc;
use crate::config::{Document, read_document};
use crate::diagnostics::{Diagnostic, Severity, SourceFile, Span, codes};
use crate::dsl::bundle::{
    Bundle, CompiledCondition, CompiledPolicy, CompiledStrategy, assemble, check_phases, compile_policy,
    compile_strategy, set_params,
};

/// A loaded bundle and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The compiled bundle.
    pub bundle: Bundle,
    /// Directory that relative paths in the manifest are resolved against.
    pub base_dir: PathBuf,
    /// Warnings (errors make loading fail).
    pub warnings: Vec<Diagnostic>,
}

/// Where the loader reads documents and scripts: the disk, or the texts a journal stored for
/// a bundle revision (a restarted bot rebuilds the bundles it ran under, see
/// [`load_bundle_from`]).
pub trait Files {
    /// The text of the file at `path`.
    ///
    /// # Errors
    /// When it cannot be read (the message names no secret: paths only).
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        crate::runtime::files::read_document_text(path)
    }
}

/// Texts by the name a [`SourceFile`] was given when loaded (its path as written).
#[derive(Debug, Clone, Default)]
pub struct Stored(pub std::collections::HashMap<String, String>);

impl Files for Stored {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0.get(&path.display().to_string()).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "not among the stored texts of this revision")
        })
    }
}

impl Loaded {
    /// The journal database: `given` (a `--journal` flag), else the bot manifest's
    /// `database`, relative to the manifest; `None` without either.
    pub fn journal(&self, given: Option<&Path>) -> Option<PathBuf> {
        given.map(Path::to_path_buf).or_else(|| {
            let db = self.bundle.bot.as_ref()?.database.as_ref()?;
            Some(resolve(&self.base_dir, &db.value))
        })
    }
}

/// Joins `rel` to `base` and removes `.` and `..` components lexically, so paths stay as short
/// and relative as the user wrote them.
pub fn resolve(base: &Path, rel: &str) -> PathBuf {
    let joined = if Path::new(rel).is_absolute() { PathBuf::from(rel) } else { base.join(rel) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// Reads a document and the rhai scripts it names (relative to its file). Problems go to
/// `diags`: a script that cannot be read is an error at its path in the document.
pub fn read_document_with_scripts(src: &Arc<SourceFile>, diags: &mut Vec<Diagnostic>) -> Option<Document> {
    read_with_scripts(src, &Disk, diags)
}

fn read_with_scripts(src: &Arc<SourceFile>, files: &dyn Files, diags: &mut Vec<Diagnostic>) -> Option<Document> {
    let mut doc = read_document(src, diags)?;
    let base = dir_of(Path::new(&src.name));
    let refs: Vec<&mut ScriptRef> = match &mut doc {
        Document::Strategy(s) => {
            let mut v: Vec<&mut ScriptRef> = s.indicators.iter_mut().map(|i| &mut i.script).collect();
            v.extend(s.filter.as_mut());
            v
        }
        Document::Policy(p) => p
            .rules
            .iter_mut()
            .filter_map(|r| match &mut r.condition {
                Condition::Script(s) => Some(s),
                Condition::When(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for r in refs {
        let path = resolve(&base, &r.path.value);
        match files.read(&path) {
            Ok(text) => r.source = Some(SourceFile::new(path.display().to_string(), text)),
            Err(e) => diags.push(
                Diagnostic::error(codes::UNRESOLVED_REFERENCE, format!("cannot read script `{}`: {e}", path.display()))
                    .at(src, r.path.span)
                    .label("script")
                    .help("the path is relative to this file"),
            ),
        }
    }
    Some(doc)
}

/// The script files a compiled bundle's documents use (for its revision and for watching).
pub fn script_sources(strategies: &[CompiledStrategy], policies: &[CompiledPolicy]) -> Vec<Arc<SourceFile>> {
    let mut out: Vec<Arc<SourceFile>> = Vec::new();
    for s in strategies {
        out.extend(s.indicators.iter().map(|i| i.script.source.clone()));
        out.extend(s.filter.iter().map(|f| f.source.clone()));
    }
    for p in policies {
        for c in &p.rules {
            if let CompiledCondition::Script(s) = c {
                out.push(s.source.clone());
            }
        }
    }
    out
}

/// Reads a text file as a [`SourceFile`] named by its path.
///
/// # Errors
/// A `E9001` diagnostic when the file cannot be read.
pub fn read_source(path: &Path) -> Result<Arc<SourceFile>, Diagnostic> {
    read_source_from(path, &Disk)
}

fn read_source_from(path: &Path, files: &dyn Files) -> Result<Arc<SourceFile>, Diagnostic> {
    files
        .read(path)
        .map(|t| SourceFile::new(path.display().to_string(), t))
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot read `{}`: {e}", path.display())))
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."))
}

/// Applies a bot's overrides (name, universe, param values, sizing) to a strategy it uses.
/// Returns `false` (with diagnostics) when an override names a param the strategy lacks.
fn apply_overrides(
    doc: &mut StrategyDoc,
    r: &StrategyRef,
    manifest: &Arc<SourceFile>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if let Some(name) = &r.name {
        doc.name = name.clone();
        doc.name_file = manifest.clone();
    }
    if let Some(universe) = &r.universe {
        doc.universe = universe.clone();
        doc.universe_file = manifest.clone();
    }
    if let Some(sizing) = &r.sizing {
        doc.sizing = sizing.0.clone();
        doc.sizing_limits = sizing.1;
        // The strategy's scale stays unless the bot gives its own.
        if sizing.2.is_some() {
            doc.sizing_scale = sizing.2.clone();
        }
    }
    set_params(doc, &r.params, manifest, diags)
}

/// Problems of a referenced document that is missing or of the wrong kind.
fn reference_error(manifest: &Arc<SourceFile>, span: Span, msg: String, help: String) -> Diagnostic {
    Diagnostic::error(codes::UNRESOLVED_REFERENCE, msg).at(manifest, span).label("referenced here").help(help)
}

/// Loads a document that can be run: a bot manifest, or a single strategy.
///
/// # Errors
/// Every diagnostic found (errors and warnings) when any error was found.
pub fn load_bundle(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_bundle_from(path, &Disk)
}

/// [`load_bundle`] reading through `files`: with [`Stored`] texts, rebuilds a bundle revision
/// exactly as it was loaded (same names, same texts, hence the same revision).
///
/// # Errors
/// Every diagnostic found (errors and warnings) when any error was found.
pub fn load_bundle_from(path: &Path, files: &dyn Files) -> Result<Loaded, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let src = read_source_from(path, files).map_err(|d| vec![d])?;
    let doc = read_with_scripts(&src, files, &mut diags);
    let base_dir = dir_of(path);
    let bundle = match doc {
        None => None,
        Some(Document::Strategy(s)) => {
            let compiled = compile_strategy(s, &mut diags);
            compiled.and_then(|c| {
                let mut sources = vec![src.clone()];
                sources.extend(script_sources(std::slice::from_ref(&c), &[]));
                assemble(None, vec![c], vec![], vec![], &sources, &mut diags)
            })
        }
        Some(Document::Policy(p)) => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_KIND, "a policy cannot be run on its own")
                    .at(&src, p.name.span)
                    .help("run a bot manifest (`kind: bot`) that lists this policy, or a strategy file"),
            );
            None
        }
        Some(Document::Bot(bot)) => {
            let mut sources = vec![src.clone()];
            let mut strategies: Vec<CompiledStrategy> = Vec::new();
            let mut policies: Vec<CompiledPolicy> = Vec::new();
            let mut phases: Vec<PhaseDoc> = Vec::new();
            let mut ok = true;
            for sref in &bot.strategies {
                let p = resolve(&base_dir, &sref.path.value);
                let Some((file, Document::Strategy(mut doc))) =
                    load_referenced(&src, sref.path.span, &p, "strategy", files, &mut diags)
                else {
                    ok = false;
                    continue;
                };
                sources.push(file);
                if !apply_overrides(&mut doc, sref, &src, &mut diags) {
                    ok = false;
                    continue;
                }
                match compile_strategy(doc, &mut diags) {
                    Some(c) => strategies.push(c),
                    None => ok = false,
                }
            }
            for pref in &bot.policies {
                let p = resolve(&base_dir, &pref.value);
                match load_referenced(&src, pref.span, &p, "policy", files, &mut diags) {
                    Some((file, Document::Policy(doc))) => {
                        sources.push(file);
                        match compile_policy(doc, &mut diags) {
                            Some(c) => policies.push(c),
                            None => ok = false,
                        }
                    }
                    _ => ok = false,
                }
            }
            for pref in &bot.phases {
                let p = resolve(&base_dir, &pref.value);
                match load_referenced(&src, pref.span, &p, "phase", files, &mut diags) {
                    Some((file, Document::Phase(doc))) => {
                        sources.push(file);
                        phases.push(doc);
                    }
                    _ => ok = false,
                }
            }
            ok &= check_phases(&bot, &phases, &mut diags);
            // Scripts count in the revision: editing one is a new bundle.
            sources.extend(script_sources(&strategies, &policies));
            if ok { assemble(Some(bot), strategies, policies, phases, &sources, &mut diags) } else { None }
        }
        Some(Document::Test(t)) => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_KIND, "a test file is not a bot")
                    .at(&src, t.name.span)
                    .help(format!("run its cases with `dsl test {}`", path.display())),
            );
            None
        }
        Some(Document::Sweep(s)) => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_KIND, "a sweep file is not a bot")
                    .at(&src, s.name.span)
                    .help(format!("run it with `dsl sweep BOT.yaml --sweep {}`", path.display())),
            );
            None
        }
        Some(Document::Stress(s)) => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_KIND, "a stress file is not a bot")
                    .at(&src, s.name.span)
                    .help(format!("run its scenarios with `dsl stress BOT.yaml --scenarios {}`", path.display())),
            );
            None
        }
        Some(Document::Phase(p)) => {
            diags.push(
                Diagnostic::error(codes::UNKNOWN_KIND, "a phase cannot be run on its own")
                    .at(&src, p.name.span)
                    .help("list it under `phases` in a bot manifest"),
            );
            None
        }
    };
    add_warnings(bundle.as_ref(), &mut diags);
    match bundle {
        Some(bundle) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded { bundle, base_dir, warnings: diags }),
        _ => Err(diags),
    }
}

fn load_referenced(
    manifest: &Arc<SourceFile>,
    span: Span,
    path: &Path,
    want: &str,
    files: &dyn Files,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Arc<SourceFile>, Document)> {
    let file = match files.read(path) {
        Ok(t) => SourceFile::new(path.display().to_string(), t),
        Err(e) => {
            diags.push(reference_error(
                manifest,
                span,
                format!("cannot read {want} file `{}`: {e}", path.display()),
                "paths are relative to the manifest's directory".into(),
            ));
            return None;
        }
    };
    let doc = read_with_scripts(&file, files, diags)?;
    if doc.kind() != want {
        diags.push(reference_error(
            manifest,
            span,
            format!("`{}` is a {}, not a {want}", path.display(), doc.kind()),
            format!("list it under `{}s`", doc.kind().replace("policys", "policies")),
        ));
        return None;
    }
    Some((file, doc))
}

/// Warnings that need the whole bundle: unused params, and policy rules that deny every
/// entry a strategy can make ([`crate::engine::entry_check`]).
fn add_warnings(bundle: Option<&Bundle>, diags: &mut Vec<Diagnostic>) {
    if let Some(b) = bundle {
        unused_param_warnings(&b.strategies, diags);
        let costs = b.bot.as_ref().map(|bot| crate::engine::costs::CostModel::from(&bot.costs)).unwrap_or_default();
        diags.extend(crate::engine::entry_check::blocked_entries(b, &costs));
    }
}

fn unused_param_warnings(strategies: &[CompiledStrategy], diags: &mut Vec<Diagnostic>) {
    for s in strategies {
        for name in &s.unused_params {
            if let Some(p) = s.doc.param(name) {
                diags.push(
                    Diagnostic::warning(codes::UNUSED_PARAM, format!("param `{name}` is never used"))
                        .at(&s.doc.source, p.name.span)
                        .label("unused")
                        .help("remove it, or refer to it in a rule"),
                );
            }
        }
    }
}

/// The outcome of validating paths.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Files checked.
    pub files: Vec<PathBuf>,
    /// Every diagnostic, each once.
    pub diags: Vec<Diagnostic>,
    /// Every strategy, policy and phase found, compiled into one bundle (`None` when any
    /// document has errors). Bots and tests are checked but not part of it.
    pub library: Option<Bundle>,
    /// Every file read: the documents, the scripts they name and what bots reference.
    pub read: BTreeSet<PathBuf>,
}

impl Validation {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diags.iter().filter(|d| d.severity == Severity::Warning).count()
    }
}

/// Another tool's manifest (a top-level `apiVersion:` key, as Kubernetes writes them, e.g.
/// `examples/k8s/sweep-job.yaml`): not one of ours, so a directory walk leaves it out (named
/// on the command line, it is read and reported like any file).
fn foreign_manifest(path: &Path) -> bool {
    use std::io::Read;
    // Only a regular file is looked into (a FIFO would block the open; the reader reports the
    // special files).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    read.is_ok() && String::from_utf8_lossy(&head).lines().any(|l| l.starts_with("apiVersion:"))
}

fn collect_yaml(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                collect_yaml(&e, out)?;
            } else if matches!(e.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) && !foreign_manifest(&e) {
                out.push(e);
            }
        }
        Ok(())
    } else {
        out.push(path.to_path_buf());
        Ok(())
    }
}

/// Validates files and directories (every `.yaml`/`.yml` below a directory but other tools'
/// manifests): each document on its own, and each bot manifest with everything it references.
///
/// # Errors
/// An I/O diagnostic when a path cannot be listed.
pub fn validate_paths(paths: &[PathBuf]) -> Result<Validation, Diagnostic> {
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(Diagnostic::error(codes::IO, format!("`{}` does not exist", p.display())));
        }
        collect_yaml(p, &mut files)
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot list `{}`: {e}", p.display())))?;
    }
    let mut v = Validation { files: files.clone(), ..Validation::default() };
    let mut lib = LibraryParts { ok: true, strategies: vec![], policies: vec![], phases: vec![], sources: vec![] };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut push = |v: &mut Validation, d: Diagnostic| {
        let key = format!("{:?}|{:?}|{}|{}", d.location(), d.span, d.code, d.message);
        if seen.insert(key) {
            v.diags.push(d);
        }
    };
    for f in &files {
        let src = match read_source(f) {
            Ok(s) => s,
            Err(d) => {
                push(&mut v, d);
                continue;
            }
        };
        let mut diags = Vec::new();
        match read_document_with_scripts(&src, &mut diags) {
            Some(Document::Strategy(s)) => match compile_strategy(s, &mut diags) {
                Some(c) => {
                    unused_param_warnings(std::slice::from_ref(&c), &mut diags);
                    lib.sources.push(src.clone());
                    lib.sources.extend(script_sources(std::slice::from_ref(&c), &[]));
                    lib.strategies.push(c);
                }
                None => lib.ok = false,
            },
            Some(Document::Policy(p)) => match compile_policy(p, &mut diags) {
                Some(c) => {
                    lib.sources.push(src.clone());
                    lib.sources.extend(script_sources(&[], std::slice::from_ref(&c)));
                    lib.policies.push(c);
                }
                None => lib.ok = false,
            },
            Some(Document::Phase(p)) => {
                lib.sources.push(src.clone());
                lib.phases.push(p);
            }
            Some(Document::Test(t)) => {
                crate::runtime::library::rule_tests::check(&t, &mut diags);
            }
            Some(Document::Stress(_)) => {}
            Some(Document::Sweep(s)) => {
                // The objective is checked here; the constraints name a bot's params and are
                // checked by `dsl sweep` against the bot.
                if let Some(o) = &s.objective
                    && let Err(more) = crate::engine::sweep::compile_objective(o)
                {
                    diags.extend(more);
                }
                for c in &s.constraints {
                    if let Err(d) = crate::dsl::parser::parse(c) {
                        diags.push(d);
                    }
                }
            }
            Some(Document::Bot(_)) => match load_bundle(f) {
                Ok(loaded) => {
                    v.read.extend(loaded.bundle.sources.iter().map(|s| PathBuf::from(&s.name)));
                    diags.extend(loaded.warnings.clone());
                    diags.extend(crate::runtime::library::source::check_data(&loaded));
                }
                Err(more) => diags.extend(more),
            },
            None => lib.ok = false,
        }
        if diags.iter().any(Diagnostic::is_error) {
            lib.ok = false;
        }
        // Source order within a file; diagnostics without a location last.
        diags.sort_by_key(|d| (d.source.as_ref().map(|s| s.name.clone()), d.span.map_or(usize::MAX, |s| s.start)));
        for d in diags {
            push(&mut v, d);
        }
    }
    // Every strategy, policy and phase found, as one bundle: names must be unique across them.
    v.read.extend(lib.sources.iter().map(|s| PathBuf::from(&s.name)));
    if lib.ok {
        let mut diags = Vec::new();
        v.library = assemble(None, lib.strategies, lib.policies, lib.phases, &lib.sources, &mut diags);
        for d in diags {
            push(&mut v, d);
        }
    }
    Ok(v)
}

/// The documents of a validation, gathered into its library bundle.
struct LibraryParts {
    ok: bool,
    strategies: Vec<CompiledStrategy>,
    policies: Vec<CompiledPolicy>,
    phases: Vec<PhaseDoc>,
    sources: Vec<Arc<SourceFile>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_lexically() {
        assert_eq!(resolve(Path::new("examples"), "../strategies/a.yaml"), PathBuf::from("strategies/a.yaml"));
        assert_eq!(resolve(Path::new("."), "./a.yaml"), PathBuf::from("a.yaml"));
        assert_eq!(resolve(Path::new("../x"), "../../y.yaml"), PathBuf::from("../../y.yaml"));
        assert_eq!(resolve(Path::new("a/b"), "/abs/c.yaml"), PathBuf::from("/abs/c.yaml"));
    }

    #[test]
    fn a_bundle_rebuilds_from_its_stored_texts() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bot.yaml"));
        let disk = load_bundle(path).expect("the example bot loads").bundle;
        let texts = disk.sources.iter().map(|s| (s.name.clone(), s.text.clone())).collect();
        let stored = load_bundle_from(Path::new(&disk.sources[0].name), &Stored(texts)).expect("rebuilt").bundle;
        assert_eq!(stored.revision, disk.revision);
        assert_eq!(stored.strategies.len(), disk.strategies.len());
        let missing = load_bundle_from(path, &Stored::default()).unwrap_err();
        assert!(missing[0].message.contains("not among the stored texts"), "{}", missing[0].message);
    }
}
