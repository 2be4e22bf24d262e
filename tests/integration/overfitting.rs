//! PBO (CSCV) and the deflated Sharpe ratio against an independent computation: the fixed
//! trial matrix `tests/data/overfitting/matrix.csv` and the values `reference.py` (Python's
//! standard library only, written from the papers) computed for it.

use tradedsl::engine::overfitting::{deflated_sharpe, pbo, sharpe};

fn matrix() -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(crate::common::data("overfitting/matrix.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (0..rows[0].len()).map(|j| rows.iter().map(|r| r[j]).collect()).collect()
}

#[test]
fn pbo_and_deflated_sharpe_match_the_independent_computation() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crate::common::data("overfitting/expected.json")).unwrap())
            .unwrap();
    let m = matrix();
    assert_eq!((m.len(), m[0].len()), (12, 203));
    for s in [4usize, 8, 16] {
        let p = pbo(&m, s).unwrap();
        let want = expected[format!("pbo_{s}")].as_f64().unwrap();
        assert!((p.pbo - want).abs() < 1e-9, "S = {s}: {} vs {want}", p.pbo);
        for (i, l) in expected[format!("logits_{s}_first")].as_array().unwrap().iter().enumerate() {
            assert!((p.logits[i] - l.as_f64().unwrap()).abs() < 1e-9, "S = {s}, logit {i}");
        }
    }
    let srs: Vec<f64> = m.iter().map(|r| sharpe(r)).collect();
    let best = expected["best"].as_u64().unwrap() as usize;
    let dsr = deflated_sharpe(&m[best], &srs).unwrap();
    let want = expected["deflated_sharpe"].as_f64().unwrap();
    assert!((dsr - want).abs() < 1e-9, "{dsr} vs {want}");
}
