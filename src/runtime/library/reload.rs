//! Hot reload: rebuild the bundle when its files change, and swap it in only if it is valid.
//!
//! A [`Reloader`] owns the current bundle behind an [`ArcSwap`]. Consumers (the bot's event
//! loop, `dsl validate --watch`) take a snapshot with `BundleHandle::load_full` whenever
//! they start an evaluation; a snapshot is a complete, validated, immutable bundle, so no
//! evaluation ever sees a half-built one, and an evaluation in flight keeps its snapshot while a
//! new bundle is swapped in.
//!
//! [`watch`] watches *directories* (editors save by writing a temporary file and renaming
//! it, or by deleting and recreating the file, which a watch on the file itself would lose),
//! debounces their events with `notify-debouncer-full`, and on any change to a `.yaml`, `.yml`
//! or `.rhai` file rebuilds the whole bundle on its own thread, off the consumers' path.
//! A valid rebuild is swapped in atomically; an invalid one is rejected and the last good
//! bundle stays. Either way a [`ReloadRecord`] says what happened: outcome, old and new
//! revision, the files that triggered it, a [`ChangeSummary`], the diagnostics and the time
//! the rebuild took.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::diagnostics::{Diagnostic, Severity, codes};
use crate::dsl::bundle::Bundle;
use crate::dsl::bundle_diff::{ChangeSummary, Changes};

use crate::runtime::data::timeparse::format_utc;
use crate::runtime::library::loader::{load_bundle, validate_paths};

/// The shared, atomically swapped current bundle.
pub type BundleHandle = Arc<ArcSwap<Bundle>>;

/// A directory to watch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchDir {
    /// The directory.
    pub path: PathBuf,
    /// Watch its subdirectories too.
    pub recursive: bool,
}

/// The result of one build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The bundle, when valid.
    pub bundle: Option<Bundle>,
    /// Every diagnostic (errors make `bundle` `None`).
    pub diags: Vec<Diagnostic>,
    /// Directories holding the files the build read.
    pub watch: Vec<WatchDir>,
}

/// Where a bundle comes from.
pub trait BundleSource: Send + Sync {
    /// Builds the bundle from the files as they are now.
    fn build(&self) -> Built;
}

/// A bot manifest and everything it references.
#[derive(Debug, Clone)]
pub struct ManifestSource(pub PathBuf);

impl BundleSource for ManifestSource {
    fn build(&self) -> Built {
        let mut dirs = vec![parent(&self.0)];
        match load_bundle(&self.0) {
            Ok(loaded) => {
                dirs.extend(loaded.bundle.sources.iter().map(|s| parent(Path::new(&s.name))));
                Built { bundle: Some(loaded.bundle), diags: loaded.warnings, watch: flat(dirs) }
            }
            Err(diags) => Built { bundle: None, diags, watch: flat(dirs) },
        }
    }
}

/// Files and directories of documents, as `dsl validate` checks them; the bundle is their
/// library (every strategy, policy and phase found).
#[derive(Debug, Clone)]
pub struct LibrarySource(pub Vec<PathBuf>);

impl BundleSource for LibrarySource {
    fn build(&self) -> Built {
        let mut watch: Vec<WatchDir> = self
            .0
            .iter()
            .map(|p| {
                if p.is_dir() {
                    WatchDir { path: p.clone(), recursive: true }
                } else {
                    WatchDir { path: parent(p), recursive: false }
                }
            })
            .collect();
        match validate_paths(&self.0) {
            Ok(v) => {
                watch.extend(v.read.iter().map(|f| WatchDir { path: parent(f), recursive: false }));
                let failed = v.errors() > 0;
                Built { bundle: if failed { None } else { v.library }, diags: v.diags, watch: dedup(watch) }
            }
            Err(d) => Built { bundle: None, diags: vec![d], watch: dedup(watch) },
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn flat(dirs: Vec<PathBuf>) -> Vec<WatchDir> {
    dedup(dirs.into_iter().map(|path| WatchDir { path, recursive: false }).collect())
}

/// Sorted, without duplicates; a non-recursive watch inside a recursive one is dropped.
fn dedup(mut dirs: Vec<WatchDir>) -> Vec<WatchDir> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    dirs.sort();
    dirs.dedup();
    let recursive: Vec<PathBuf> = dirs.iter().filter(|d| d.recursive).map(|d| canon(&d.path)).collect();
    dirs.retain(|d| d.recursive || !recursive.iter().any(|r| canon(&d.path).starts_with(r)));
    dirs
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A valid, different bundle was swapped in.
    Accepted,
    /// The rebuild had errors; the last good bundle stays.
    Rejected,
    /// The rebuild gave the same revision; nothing was swapped.
    Unchanged,
}

/// One reload, accepted or rejected.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadRecord {
    /// When it finished (RFC 3339, UTC).
    pub at: String,
    /// What happened.
    pub outcome: Outcome,
    /// The revision in force before (empty when there was no valid bundle yet).
    pub old_revision: String,
    /// The rebuilt revision (`None` when the rebuild was invalid).
    pub new_revision: Option<String>,
    /// Files whose change triggered the reload.
    pub trigger: Vec<String>,
    /// What changed: against the new bundle when valid; for a rejected reload, the documents
    /// that differ from the bundle in force.
    pub changes: ChangeSummary,
    /// Errors found.
    pub errors: usize,
    /// Warnings found.
    pub warnings: usize,
    /// Every diagnostic (serialize them with [`crate::diagnostics::to_json`]).
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
    /// Rebuild, comparison and swap, in milliseconds (the debounce is not included).
    pub build_ms: f64,
}

/// Owns the current bundle and rebuilds it on demand.
pub struct Reloader {
    source: Box<dyn BundleSource>,
    current: BundleHandle,
    /// There is a valid bundle (the initial build may have failed).
    valid: std::sync::atomic::AtomicBool,
    watch: Mutex<Vec<WatchDir>>,
    history: Mutex<Vec<ReloadRecord>>,
    /// One rebuild at a time.
    building: Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("revision", &self.current.load().revision).finish_non_exhaustive()
    }
}

impl Reloader {
    /// Builds the bundle once. When that build is invalid the reloader starts with an empty
    /// bundle (no strategies, no policies, revision `""`) and [`Reloader::is_valid`] is false
    /// until a valid rebuild; a bot must not start then. The returned record says how the
    /// first build went.
    pub fn new(source: impl BundleSource + 'static) -> (Reloader, ReloadRecord) {
        let r = Reloader {
            source: Box::new(source),
            current: Arc::new(ArcSwap::from_pointee(Bundle::default())),
            valid: std::sync::atomic::AtomicBool::new(false),
            watch: Mutex::new(Vec::new()),
            history: Mutex::new(Vec::new()),
            building: Mutex::new(()),
        };
        let first = r.reload(Vec::new());
        (r, first)
    }

    /// The handle consumers load snapshots from.
    pub fn handle(&self) -> BundleHandle {
        self.current.clone()
    }

    /// A snapshot of the current bundle.
    pub fn current(&self) -> Arc<Bundle> {
        self.current.load_full()
    }

    /// True once a valid bundle has been built.
    pub fn is_valid(&self) -> bool {
        self.valid.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Directories holding the files of the last build.
    pub fn watch_dirs(&self) -> Vec<WatchDir> {
        self.watch.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Every reload so far, oldest first.
    pub fn history(&self) -> Vec<ReloadRecord> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Rebuilds now; swaps the result in if it is valid and different. `trigger` names the
    /// files whose change prompted it.
    pub fn reload(&self, trigger: Vec<PathBuf>) -> ReloadRecord {
        let _one = self.building.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let built = self.source.build();
        let old = self.current.load_full();
        let errors = built.diags.iter().filter(|d| d.severity == Severity::Error).count();
        let warnings = built.diags.iter().filter(|d| d.severity == Severity::Warning).count();
        if let Ok(mut w) = self.watch.lock() {
            // Keep watching the old directories too: a rejected build may not have read them.
            let mut all = w.clone();
            all.extend(built.watch.iter().cloned());
            *w = dedup(all);
        }
        let (outcome, new_revision, changes) = match built.bundle {
            Some(new) if errors == 0 => {
                let changes = ChangeSummary::between(&old, &new);
                let rev = new.revision.clone();
                if rev == old.revision && self.is_valid() {
                    (Outcome::Unchanged, Some(rev), changes)
                } else {
                    self.current.store(Arc::new(new));
                    self.valid.store(true, std::sync::atomic::Ordering::Release);
                    (Outcome::Accepted, Some(rev), changes)
                }
            }
            _ => (
                Outcome::Rejected,
                None,
                ChangeSummary { documents: changed_files(&old, &trigger), ..Default::default() },
            ),
        };
        let record = ReloadRecord {
            at: format_utc(chrono::Utc::now().timestamp()),
            outcome,
            old_revision: old.revision.clone(),
            new_revision,
            trigger: trigger.iter().map(|p| p.display().to_string()).collect(),
            changes,
            errors,
            warnings,
            diagnostics: built.diags,
            build_ms: started.elapsed().as_secs_f64() * 1e3,
        };
        if let Ok(mut h) = self.history.lock() {
            h.push(record.clone());
        }
        record
    }
}

/// For a rejected reload: which of the triggering files differ from the bundle in force.
fn changed_files(old: &Bundle, trigger: &[PathBuf]) -> Changes {
    let mut c = Changes::default();
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    for t in trigger {
        let known = old.sources.iter().find(|s| {
            let p = Path::new(&s.name);
            p == t || (canon(p).is_some() && canon(p) == canon(t))
        });
        let name = known.map_or_else(|| t.display().to_string(), |s| s.name.clone());
        match (known, crate::runtime::files::read_document_text(t)) {
            (Some(_), Err(_)) => c.removed.push(name),
            (Some(s), Ok(text)) if text != s.text => c.changed.push(name),
            (None, Ok(_)) => c.added.push(name),
            _ => {}
        }
    }
    c
}

/// True for files whose change can change a bundle.
fn relevant(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "rhai"))
}

/// A running watch; dropping it stops watching (and joins its thread).
pub struct Watch {
    debouncer: Arc<Mutex<Option<Debouncer<RecommendedWatcher, RecommendedCache>>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Stopping the debouncer drops its sender, which ends the thread's loop.
        if let Some(d) = self.debouncer.lock().ok().and_then(|mut d| d.take()) {
            d.stop();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_all(d: &mut Debouncer<RecommendedWatcher, RecommendedCache>, dirs: &[WatchDir]) -> Result<(), Diagnostic> {
    for w in dirs {
        let mode = if w.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        d.watch(&w.path, mode)
            .map_err(|e| Diagnostic::error(codes::IO, format!("cannot watch `{}`: {e}", w.path.display())))?;
    }
    Ok(())
}

/// Watches the reloader's directories and reloads on every debounced change to a `.yaml`,
/// `.yml` or `.rhai` file, calling `on_record` with each record (from the watch thread).
/// Directories that a later build reads are added to the watch.
///
/// # Errors
/// An I/O diagnostic when the watcher cannot start or a directory cannot be watched.
pub fn watch(
    reloader: Arc<Reloader>,
    debounce: Duration,
    mut on_record: impl FnMut(&ReloadRecord) + Send + 'static,
) -> Result<Watch, Diagnostic> {
    let (tx, rx) = channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(debounce, None, tx)
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start watching files: {e}")))?;
    let mut watched = reloader.watch_dirs();
    watch_all(&mut debouncer, &watched)?;
    let debouncer = Arc::new(Mutex::new(Some(debouncer)));
    let shared = debouncer.clone();
    let thread = std::thread::Builder::new()
        .name("dsl-reload".into())
        .spawn(move || run(&reloader, &rx, &shared, &mut watched, &mut on_record))
        .map_err(|e| Diagnostic::error(codes::IO, format!("cannot start the reload thread: {e}")))?;
    Ok(Watch { debouncer, thread: Some(thread) })
}

fn run(
    reloader: &Reloader,
    rx: &Receiver<DebounceEventResult>,
    debouncer: &Mutex<Option<Debouncer<RecommendedWatcher, RecommendedCache>>>,
    watched: &mut Vec<WatchDir>,
    on_record: &mut dyn FnMut(&ReloadRecord),
) {
    while let Ok(result) = rx.recv() {
        let Ok(events) = result else { continue };
        let mut trigger: BTreeSet<PathBuf> = BTreeSet::new();
        for e in &events {
            if matches!(e.event.kind, EventKind::Access(_)) {
                continue;
            }
            trigger.extend(e.event.paths.iter().filter(|p| relevant(p)).cloned());
        }
        if trigger.is_empty() {
            continue;
        }
        let record = reloader.reload(trigger.into_iter().collect());
        on_record(&record);
        let now = reloader.watch_dirs();
        let new: Vec<WatchDir> = now.iter().filter(|w| !watched.contains(w)).cloned().collect();
        if !new.is_empty() {
            if let Ok(mut guard) = debouncer.lock()
                && let Some(d) = guard.as_mut()
            {
                let _ = watch_all(d, &new);
            }
            *watched = now;
        }
    }
}
