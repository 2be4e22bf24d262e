//! Reading the user's files safely: only regular files (a FIFO named `bot.yaml` would block
//! forever, `/dev/zero` would never end), and documents only up to a size cap.

use std::io::Read;
use std::path::Path;

use crate::diagnostics::{Diagnostic, codes};

/// Largest document (YAML, rhai script, rule test, approval file) read: 1 MiB.
pub const DOCUMENT_CAP: u64 = 1 << 20;

/// Opens `path` for reading when it is a regular file.
///
/// # Errors
/// An `E9001` diagnostic naming the file, and what it is instead when it is not a regular
/// file.
pub fn open_regular(path: &Path) -> Result<std::fs::File, Diagnostic> {
    let io = |e: std::io::Error| Diagnostic::error(codes::IO, format!("cannot read `{}`: {e}", path.display()));
    let not_regular = || {
        Diagnostic::error(codes::IO, format!("cannot read `{}`: not a regular file", path.display()))
            .help("give a file, not a directory, pipe or device")
    };
    // Checked before opening (opening a FIFO blocks until a writer comes) and again on the
    // open file (the path may have been swapped meanwhile).
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(not_regular());
    }
    let f = std::fs::File::open(path).map_err(io)?;
    if !f.metadata().map_err(io)?.is_file() {
        return Err(not_regular());
    }
    Ok(f)
}

/// Reads a document: a regular file of UTF-8 text of at most [`DOCUMENT_CAP`] bytes.
///
/// # Errors
/// An I/O error whose message says what is wrong (not a regular file, too large, not UTF-8).
pub fn read_document_text(path: &Path) -> std::io::Result<String> {
    let f = open_regular(path).map_err(|d| std::io::Error::other(short(&d.message, path)))?;
    let mut bytes = Vec::new();
    f.take(DOCUMENT_CAP + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > DOCUMENT_CAP {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB, the most a document may hold",
            DOCUMENT_CAP / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text (line {line})"))
    })
}

/// The reason of an `open_regular` message without its `cannot read `path`: ` prefix.
fn short(message: &str, path: &Path) -> String {
    let prefix = format!("cannot read `{}`: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_capped_regular_utf8_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; DOCUMENT_CAP as usize + 1]).unwrap();
        assert!(read_document_text(&big).unwrap_err().to_string().contains("larger than 1024 KiB"));
        let bin = dir.path().join("bin.yaml");
        std::fs::write(&bin, b"kind: bot\nname: \xff\n").unwrap();
        assert_eq!(read_document_text(&bin).unwrap_err().to_string(), "not UTF-8 text (line 2)");
        assert!(read_document_text(dir.path()).unwrap_err().to_string().contains("not a regular file"));
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, "kind: bot\n").unwrap();
        assert_eq!(read_document_text(&ok).unwrap(), "kind: bot\n");
    }
}
