//! Bounded versions of the fuzz targets in `fuzz/` (see `tradedsl::fuzz`): the shipped
//! documents, rules and real bar files, mutated at random (bytes inserted, deleted, replaced,
//! slices duplicated or cut), fed to the YAML reader, the rule parser and checker, and the CSV
//! reader. Each must answer with a value or diagnostics, never a panic; accepted bars keep the
//! reader's promises. The number of inputs is fixed (`PROPTEST_CASES` raises it), so the run
//! is bounded.

use std::path::Path;

use proptest::prelude::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn files(dirs: &[&str], ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join(d)) else { continue };
        let mut paths: Vec<_> =
            entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
        paths.sort();
        for p in paths {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out
}

/// The first `n` lines of each file (bar files are long; their shape is in the first lines).
fn heads(files: Vec<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    files
        .into_iter()
        .map(|f| {
            let end = f.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(n).map_or(f.len(), |(i, _)| i + 1);
            f[..end].to_vec()
        })
        .collect()
}

/// Applies `ops` random edits chosen by `seed` to `input`.
fn mutate(input: &[u8], seed: u64, ops: usize) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut v = input.to_vec();
    const SPICE: &[&[u8]] = &[
        b"\n", b",", b":", b"\"", b"'", b"[", b"{", b"&a", b"*a", b"-", b"1e308", b"NaN", b"\xff", b"\r", b"\t", b"  ",
        b"#", b"%", b"sma(", b")",
    ];
    for _ in 0..ops {
        let len = v.len().max(1);
        let at = (next() as usize) % len;
        match next() % 6 {
            0 => {
                let end = (at + (next() as usize) % 16).min(v.len());
                v.drain(at.min(v.len())..end);
            }
            1 => {
                let piece = SPICE[(next() as usize) % SPICE.len()];
                let at = at.min(v.len());
                v.splice(at..at, piece.iter().copied());
            }
            2 => {
                if let Some(b) = v.get_mut(at) {
                    *b = next() as u8;
                }
            }
            3 => {
                let end = (at + (next() as usize) % 64).min(v.len());
                let slice = v[at.min(v.len())..end].to_vec();
                let to = ((next() as usize) % len).min(v.len());
                v.splice(to..to, slice);
            }
            4 => v.truncate(at),
            _ => {
                let at = at.min(v.len());
                let n = (next() as usize) % 8;
                v.splice(at..at, std::iter::repeat_n(b'9', n));
            }
        }
    }
    v
}

/// The rule texts of the shipped documents (`entry:`, `exit:` and `when:` values).
fn rules() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files(&["strategies", "policies", "phases"], "yaml") {
        for line in String::from_utf8_lossy(&f).lines() {
            let l = line.trim_start().trim_start_matches("- ");
            for key in ["entry: ", "exit: ", "when: "] {
                if let Some(rule) = l.strip_prefix(key) {
                    out.push(rule.split(" #").next().unwrap().as_bytes().to_vec());
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn mutated_documents_never_panic(pick in any::<usize>(), seed in any::<u64>(), ops in 1usize..12) {
        let docs = files(&["strategies", "policies", "phases", "phases/sprints", "examples"], "yaml");
        let input = mutate(&docs[pick % docs.len()], seed, ops);
        tradedsl::fuzz::yaml_document(&input);
    }

    #[test]
    fn mutated_rules_never_panic(pick in any::<usize>(), seed in any::<u64>(), ops in 1usize..8) {
        let rules = rules();
        let input = mutate(&rules[pick % rules.len()], seed, ops);
        tradedsl::fuzz::rule(&input);
    }

    #[test]
    fn mutated_bar_files_never_panic_and_accepted_bars_hold(pick in any::<usize>(), seed in any::<u64>(), ops in 1usize..10) {
        let data = heads(files(&["tests/data", "examples/data"], "csv"), 40);
        let input = mutate(&data[pick % data.len()], seed, ops);
        tradedsl::fuzz::csv_bars(&input);
    }
}

/// The seeds themselves pass through each target unchanged (the targets accept real input).
#[test]
fn the_seeds_pass_through_each_target() {
    let started = std::time::Instant::now();
    for d in files(&["strategies", "policies", "phases", "examples"], "yaml") {
        tradedsl::fuzz::yaml_document(&d);
    }
    let rules = rules();
    assert!(rules.len() > 40, "{}", rules.len());
    for r in &rules {
        tradedsl::fuzz::rule(r);
    }
    for d in heads(files(&["tests/data", "examples/data"], "csv"), 40) {
        tradedsl::fuzz::csv_bars(&d);
    }
    eprintln!("seeds through the targets in {:?}", started.elapsed());
}
