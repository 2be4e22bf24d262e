//! The shape of the code: layers and runtime rooms depend one way only.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code lines of a file (comment lines left out: a doc may name any module).
fn code(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `engine`, `dsl`, `config`, `indicators` and `diagnostics` never reach up into the runtime or
/// the CLI, and the language (`dsl`) never into the engine.
#[test]
fn layers_point_down() {
    let forbidden: &[(&str, &[&str])] = &[
        ("engine", &["crate::runtime", "crate::cli"]),
        ("dsl", &["crate::runtime", "crate::cli", "crate::engine"]),
        ("config", &["crate::runtime", "crate::cli", "crate::engine", "crate::dsl"]),
        ("indicators", &["crate::runtime", "crate::cli", "crate::engine", "crate::dsl", "crate::config"]),
        ("runtime", &["crate::cli"]),
    ];
    let mut bad = Vec::new();
    for (layer, uses) in forbidden {
        let mut files = Vec::new();
        rust_files(&Path::new(ROOT).join("src").join(layer), &mut files);
        for f in files {
            let text = code(&f);
            for u in *uses {
                if text.contains(&format!("{u}::")) {
                    bad.push(format!("{} uses {u}", f.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The runtime's rooms depend on earlier rooms only: no import circles.
#[test]
fn runtime_rooms_depend_one_way() {
    let order = ["data", "library", "journal", "broker", "phases", "research", "bot"];
    let mut bad = Vec::new();
    for (i, room) in order.iter().enumerate() {
        let mut files = Vec::new();
        rust_files(&Path::new(ROOT).join("src/runtime").join(room), &mut files);
        assert!(!files.is_empty(), "room {room} is empty");
        for f in files {
            let text = code(&f);
            for later in &order[i + 1..] {
                if text.contains(&format!("crate::runtime::{later}::")) {
                    bad.push(format!("{} (room {room}) uses the later room {later}", f.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// No file in `src/` passes 800 lines, and a function over 120 lines is named, with why, in its
/// module's `//!` doc.
#[test]
fn files_and_functions_stay_readable() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 800 {
            bad.push(format!("{}: {} lines", f.display(), lines.len()));
        }
        let doc: String = lines.iter().filter(|l| l.starts_with("//!")).copied().collect::<Vec<_>>().join("\n");
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let indent = l.len() - l.trim_start().len();
            let rest = l.trim_start();
            let rest = rest.strip_prefix("pub(super) ").or_else(|| rest.strip_prefix("pub(crate) ")).unwrap_or(rest);
            let rest = rest.strip_prefix("pub ").unwrap_or(rest);
            let rest = rest.strip_prefix("async ").unwrap_or(rest);
            if let Some(sig) = rest.strip_prefix("fn ") {
                let name: String = sig.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let close = format!("{}}}", " ".repeat(indent));
                let end = (i + 1..lines.len()).find(|&j| lines[j] == close).unwrap_or(i);
                let n = end - i + 1;
                if n > 120 && !doc.contains(&format!("`{name}`")) {
                    bad.push(format!("{}:{}: fn {name} has {n} lines", f.display(), i + 1));
                }
                i = end;
            }
            i += 1;
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
