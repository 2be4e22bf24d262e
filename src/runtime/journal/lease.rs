//! One running bot per journal: an exclusive OS file lock held for the bot's whole life.
//!
//! `dsl run` takes the lease of its journal before it reads or writes anything and keeps it
//! until it exits; the operating system releases it when the process ends, however it ends
//! (even `kill -9`), so a stale lease cannot outlive its holder. A second `dsl run` on the same
//! journal is refused with who holds it. `dsl halt`, `dsl resume` and `dsl approvals` probe the
//! lease to tell the person whether a running bot will apply their decision.
//!
//! The lock is taken on a file beside the journal, `<journal>.lock` (SQLite's own locks live
//! on the journal itself and must not be disturbed), with `flock`-style locks
//! ([`std::fs::File::try_lock`]). The file holds who took it (pid, command, bot, host, time) so
//! a refusal can say so. The holder checks that its lock file is still the one it locked
//! ([`Lease::still_held`]): a deleted or replaced lock file could let a second bot in.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostic, codes};

/// Who holds a lease, as written in its lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// What holds it (`dsl run`, `dsl halt`, ...).
    pub command: String,
    /// The bot.
    pub bot: String,
    /// Host name, when known.
    pub host: String,
    /// When it was taken (UTC seconds).
    pub since: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` of bot `{}` (pid {}{}, since {})",
            self.command,
            self.bot,
            self.pid,
            if self.host.is_empty() { String::new() } else { format!(" on {}", self.host) },
            crate::engine::market::format_utc(self.since)
        )
    }
}

/// A held lease; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lease {
    file: std::fs::File,
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

/// What probing a lease found.
#[derive(Debug)]
pub enum Probe {
    /// Nobody held it; now the caller does (for as long as it keeps this).
    Free(Lease),
    /// Someone holds it (`None` when the lock file could not be read).
    Held(Option<Holder>),
}

/// The lock file of the journal at `journal`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The (device, inode) of the file at `path`, when it exists (unix; `None` elsewhere).
pub fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().as_ref().and_then(identity)
}

fn io(path: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::error(codes::IO, format!("cannot use the lock file `{}`: {e}", path.display()))
}

/// Tries to take the lease of the journal at `journal` for `command` of `bot`, without
/// waiting.
///
/// # Errors
/// When the lock file cannot be created or read (its directory is missing or read-only).
pub fn probe(journal: &Path, bot: &str, command: &str) -> Result<Probe, Diagnostic> {
    let path = lock_path(journal);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(&path, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file.read_to_string(&mut text).ok().and_then(|_| serde_json::from_str(&text).ok());
            return Ok(Probe::Held(holder));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
    }
    let holder = Holder {
        pid: std::process::id(),
        command: command.to_string(),
        bot: bot.to_string(),
        host: std::env::var("HOSTNAME").unwrap_or_default(),
        since: chrono::Utc::now().timestamp(),
    };
    let text = serde_json::to_string(&holder).unwrap_or_default();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .map_err(|e| io(&path, e))?;
    let _ = file.sync_data();
    let identity = file.metadata().ok().as_ref().and_then(identity);
    Ok(Probe::Free(Lease { file, path, identity }))
}

/// Takes the lease for a running bot, retrying for up to `wait` (a `dsl halt` holds it for a
/// moment while it records a decision).
///
/// # Errors
/// A refusal naming the holder when another process keeps it; I/O errors.
pub fn acquire(journal: &Path, bot: &str, command: &str, wait: std::time::Duration) -> Result<Lease, Diagnostic> {
    let until = std::time::Instant::now() + wait;
    loop {
        match probe(journal, bot, command)? {
            Probe::Free(lease) => return Ok(lease),
            Probe::Held(holder) if std::time::Instant::now() >= until => {
                let who = holder.map_or("another process".to_string(), |h| h.to_string());
                return Err(Diagnostic::error(
                    codes::JOURNAL_CONFLICT,
                    format!("the journal `{}` is in use by {who}", journal.display()),
                )
                .help("one bot runs on a journal at a time: stop the other (Ctrl-C), or give this one its own `--journal`"));
            }
            Probe::Held(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

impl Lease {
    /// True while the lock file at its path is still the one this lease locked (not deleted
    /// or replaced).
    pub fn still_held(&self) -> bool {
        match self.identity {
            Some(id) => file_identity(&self.path) == Some(id),
            None => self.path.exists(),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_refusal_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j.sqlite");
        let first = acquire(&journal, "b", "dsl run", std::time::Duration::ZERO).unwrap();
        assert!(first.still_held());
        // flock locks are per open file: a second open in this process is refused too.
        let e = acquire(&journal, "b", "dsl run", std::time::Duration::from_millis(100)).unwrap_err();
        assert!(e.message.contains("is in use by `dsl run` of bot `b` (pid"), "{}", e.message);
        match probe(&journal, "b", "dsl halt").unwrap() {
            Probe::Held(Some(h)) => assert_eq!((h.pid, h.command.as_str()), (std::process::id(), "dsl run")),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(matches!(probe(&journal, "b", "dsl halt").unwrap(), Probe::Free(_)));
    }

    #[test]
    fn a_deleted_lock_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j.sqlite");
        let lease = acquire(&journal, "b", "dsl run", std::time::Duration::ZERO).unwrap();
        std::fs::remove_file(lease.path()).unwrap();
        assert!(!lease.still_held());
    }
}
