//! The journal's typed error, and its one conversion to a diagnostic.
//!
//! Every room that reads or writes the journal (the writer, control records, phase store,
//! gate reports, reports) reports a SQLite failure as a [`JournalError`]: what the failure means
//! for the file (not a journal, damaged, read-only, a full disk, a lock held by another
//! process) and what to do about it, always naming the file.

use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, codes};

/// A failure of the journal at `path`.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused or failed.
    #[error("journal `{}` {}", path.display(), sqlite_words(source))]
    Sqlite {
        /// The journal file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file system refused (creating the journal's folder, reading its lock).
    #[error("journal `{}`: {source}", path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A value the journal stores as JSON does not parse (a damaged or hand-edited row).
    #[error("journal `{}`: a stored JSON value does not parse ({source})", path.display())]
    Json {
        /// The journal file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// What can fail on a journal: SQLite, the file system, a stored JSON value.
pub trait Cause {
    /// The failure, at the journal `path`.
    fn at(self, path: &Path) -> JournalError;
}

impl Cause for rusqlite::Error {
    fn at(self, path: &Path) -> JournalError {
        JournalError::Sqlite { path: path.to_path_buf(), source: self }
    }
}

impl Cause for std::io::Error {
    fn at(self, path: &Path) -> JournalError {
        JournalError::Io { path: path.to_path_buf(), source: self }
    }
}

impl Cause for serde_json::Error {
    fn at(self, path: &Path) -> JournalError {
        JournalError::Json { path: path.to_path_buf(), source: self }
    }
}

/// What a SQLite error means for the file.
fn sqlite_words(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase) => "is not a SQLite journal (damaged, or another kind of file)".to_string(),
        Some(C::DatabaseCorrupt) => "is damaged (SQLite reports corruption)".to_string(),
        Some(C::ReadOnly) => "is read-only here, and this command writes to it".to_string(),
        Some(C::DiskFull) => "cannot grow: the disk is full".to_string(),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            "is locked by another process (longer than the 10 s busy timeout)".to_string()
        }
        Some(C::CannotOpen) => format!("cannot be opened ({e})"),
        _ => format!("failed: {e}"),
    }
}

/// What to do about a SQLite error, when there is something to say.
fn sqlite_help(e: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => {
            Some("it is left as it is: move it aside (or restore a backup) and point the bot at a new journal")
        }
        Some(C::DiskFull) => Some("free some space; the run resumes from its last committed bar"),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            Some("another program holds a write lock on it; close it, then start again")
        }
        _ => None,
    }
}

impl From<JournalError> for Diagnostic {
    fn from(e: JournalError) -> Diagnostic {
        match &e {
            JournalError::Sqlite { path, source } => journal_error(path, source),
            _ => Diagnostic::error(codes::IO, e.to_string()),
        }
    }
}

/// A SQLite failure of the journal at `path` borrowed from elsewhere, as a diagnostic.
pub fn journal_error(path: &Path, e: &rusqlite::Error) -> Diagnostic {
    let d = Diagnostic::error(codes::IO, format!("journal `{}` {}", path.display(), sqlite_words(e)));
    match sqlite_help(e) {
        Some(h) => d.help(h),
        None => d,
    }
}

/// A failure of the journal at `path`, as a diagnostic (see [`JournalError`]).
pub fn db_err(path: &Path, e: impl Cause) -> Diagnostic {
    e.at(path).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_file_and_what_to_do() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let d = db_err(Path::new("j.sqlite"), e);
        assert_eq!(d.message, "journal `j.sqlite` cannot grow: the disk is full");
        assert!(d.help.as_deref().is_some_and(|h| h.contains("free some space")), "{d:?}");
    }
}
