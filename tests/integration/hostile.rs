//! Hostile inputs met through the binary as a user would: special files, huge or binary
//! documents, cut and garbled bar files. Each gets a clear error or is skipped and reported;
//! nothing hangs, panics or is silently used.

use std::path::Path;

use crate::common::{data, dsl};

fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

#[test]
#[cfg(unix)]
fn special_files_named_like_documents_or_data_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let have_fifo = mkfifo(&fifo);
    let out = dsl().arg("validate").arg(dir.path()).timeout(std::time::Duration::from_secs(60)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("zero.yaml`: not a regular file"), "{err}");
    if have_fifo {
        assert!(err.contains("fifo.yaml`: not a regular file"), "{err}");
    }
    // Bars: the same for `dsl import` and `dsl backtest --data`.
    let csv = dir.path().join("bars.csv");
    std::os::unix::fs::symlink("/dev/zero", &csv).unwrap();
    let db = dir.path().join("b.sqlite");
    let out = dsl()
        .arg("import")
        .arg(&csv)
        .arg("--db")
        .arg(&db)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(!db.exists(), "nothing imported, nothing created");
}

#[test]
fn huge_and_binary_documents_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.yaml"), format!("kind: policy\nname: p\n# {}\n", "x".repeat(2 << 20))).unwrap();
    std::fs::write(dir.path().join("bin.yaml"), b"kind: policy\nname: \xff\xfe\n").unwrap();
    let out = dsl().arg("validate").arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("big.yaml`: larger than 1024 KiB, the most a document may hold"), "{err}");
    assert!(err.contains("bin.yaml`: not UTF-8 text (line 2)"), "{err}");
}

/// A download cut short: the last row lost its volume and most of its close. The backtest
/// skips it and says so; `dsl import --on-missing error` refuses the file naming the line.
#[test]
fn a_truncated_download_is_reported_not_traded() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("GOOG.csv")).unwrap();
    let cut = &text[..text.trim_end().rfind(',').unwrap() - 4];
    let lines = cut.lines().count();
    let csv = dir.path().join("GOOG.csv");
    std::fs::write(&csv, cut).unwrap();
    let out = dsl()
        .args(["backtest", "strategies/sma_crossover.yaml", "--no-journal", "--data"])
        .arg(format!("GOOG={}", csv.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("skipped 1 bad row(s): line {lines}: ")), "{err}");
    assert!(err.contains("fields where the header has"), "{err}");
    let db = dir.path().join("b.sqlite");
    let out = dsl().arg("import").arg(&csv).arg("--db").arg(&db).args(["--on-missing", "error"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("GOOG.csv:{lines}: bad row:")), "{err}");
    assert!(err.contains("nothing imported"), "{err}");
}
