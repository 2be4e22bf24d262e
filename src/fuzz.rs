//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer) and for their bounded
//! property-test versions in `cargo test`: each feeds arbitrary bytes to a reader the user's
//! input goes through and checks that it answers with a value or with diagnostics (which
//! render), never a panic, and that what it accepts keeps the reader's promises.
//!
//! - [`yaml_document`]: the YAML document reader (every `kind`), with diagnostics rendered.
//! - [`rule`]: the rule parser and type checker in every context, and the compiler.
//! - [`csv_bars`]: the CSV bar reader: accepted bars are in strictly increasing time, with
//!   finite, positive, consistent prices (`low <= open, close <= high`) and plausible times.

use crate::config::expr_source::ExprSource;
use crate::diagnostics::{SourceFile, render_human};
use crate::dsl::catalog::Context;
use crate::dsl::check::Checker;
use crate::runtime::data::csv_bars::{CsvOptions, MAX_PRICE, MAX_TS, MIN_TS, OnMissing, parse_csv};

/// Reads `data` as a YAML document and renders every diagnostic.
pub fn yaml_document(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let f = SourceFile::new("fuzz.yaml", text);
    let mut diags = Vec::new();
    let _ = crate::config::read_document(&f, &mut diags);
    for d in &diags {
        let _ = render_human(d, false);
    }
}

/// Parses `data` as a rule, checks it in every context and lowers it into a graph; renders
/// the diagnostics.
pub fn rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let src = ExprSource::standalone("fuzz", text);
    match crate::dsl::parser::parse(&src) {
        Ok(e) => {
            let minutes =
                crate::config::timeframe::Timeframe { count: 1, unit: crate::config::timeframe::TimeUnit::Minute };
            for (ctx, base) in
                [(Context::Entry, None), (Context::Exit, Some(minutes)), (Context::Policy, None), (Context::Eval, None)]
            {
                let mut c = Checker::new(&src, ctx, &[]);
                if let Some(tf) = base {
                    c = c.with_timeframe(tf, crate::config::timeframe::Aggregation::Utc);
                }
                if let Some(t) = c.check_rule(&e, "rule") {
                    let mut g = crate::dsl::program::GraphSpec::new();
                    let _ = g.lower(&t);
                }
                for d in &c.diags {
                    let _ = render_human(d, false);
                }
            }
        }
        Err(d) => {
            let _ = render_human(&d, false);
        }
    }
}

/// Reads `data` as a bar file, with both missing-value policies, and checks what it accepts.
///
/// # Panics
/// When an accepted series breaks a promise of the reader (that is the finding).
pub fn csv_bars(data: &[u8]) {
    for on_missing in [OnMissing::Skip, OnMissing::Error] {
        let opts = CsvOptions { on_missing, ..Default::default() };
        let Ok(load) = parse_csv("fuzz.csv", "FUZZ", data, &opts) else { continue };
        for s in &load.series {
            assert!(!s.is_empty());
            assert!(s.ts.windows(2).all(|w| w[0] < w[1]), "times not strictly increasing");
            for i in 0..s.len() {
                let b = s.bar(i);
                assert!((MIN_TS..MAX_TS).contains(&b.ts), "implausible time {}", b.ts);
                for p in [b.open, b.high, b.low, b.close] {
                    assert!(p.is_finite() && p > 0.0 && p <= MAX_PRICE, "bad price {p}");
                }
                assert!(b.volume.is_finite() && b.volume >= 0.0);
                let eps = 1e-9;
                assert!(b.low <= b.open.min(b.close) * (1.0 + eps) && b.high >= b.open.max(b.close) * (1.0 - eps));
            }
        }
    }
}
