//! The HTML reports (`dsl backtest --html`, `dsl report html` of a paper run) are one
//! self-contained page each, and they draw in a real browser: headless Chromium loads each
//! page (`--dump-dom`), and the page's own script records the charts that drew, any script
//! error or `console.error`, and whether clicking the pnl column sorted the trade table. CI
//! installs Chromium (`.ci/run`); where it is missing and cannot be installed, the browser
//! part says it is skipped and the page checks still run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::dsl;

/// The Chromium to use: `TRADEDSL_CHROMIUM`, else the first of the usual names on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRADEDSL_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// The page's root element's attributes after Chromium loaded `page#selftest` and ran its
/// script.
fn render(browser: &Path, page: &Path, profile: &Path) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}#selftest", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The page comes back on stdout, read as it comes (it is larger than a pipe's buffer).
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    // A hang guard only: a healthy start takes a second or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("Chromium did not finish loading {}", page.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    let start = dom.find("<html").unwrap_or_else(|| panic!("no page came back: {dom}"));
    dom[start..start + dom[start..].find('>').unwrap()].to_string()
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// What every page must hold, whether or not a browser is at hand.
fn check_page(html: &str, symbols: &[&str]) {
    for id in ["equity", "underwater", "monthly", "trades"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    for s in symbols {
        assert!(html.contains(&format!("id=\"price-{s}\"")), "no price chart of {s}");
    }
    assert!(html.contains("buy and hold"), "the benchmark line is labelled");
    assert!(html.contains("class=\"sortable\""));
    // Self-contained: nothing is fetched when it is viewed.
    for needle in ["src=\"http", "href=\"http", "src='http", "@import", "url(http"] {
        assert!(!html.contains(needle), "the page fetches something: {needle}");
    }
}

#[test]
fn the_reports_draw_in_a_headless_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let symbols = ["AAPL", "MSFT", "NVDA", "JPM", "XOM"];
    let backtest = d.join("backtest.html");
    let out =
        dsl().args(["backtest", "examples/bot.yaml", "--no-journal", "--quiet", "--html"]).arg(&backtest).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = d.join("j.sqlite");
    let out = dsl().args(["run", "examples/bot.yaml", "--quiet", "--journal"]).arg(&db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paper = d.join("paper.html");
    let out =
        dsl().args(["report", "html", "examples/bot.yaml", "--journal"]).arg(&db).arg("--out").arg(&paper).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in [&backtest, &paper] {
        check_page(&std::fs::read_to_string(page).unwrap(), &symbols);
    }
    let paper_text = std::fs::read_to_string(&paper).unwrap();
    assert!(paper_text.contains("Paper run 1: example") && paper_text.contains("287 closed"), "the run's own numbers");

    let Some(browser) = chromium() else {
        eprintln!(
            "skipped: the browser part of this test needs Chromium (install Debian's `chromium`, which .ci/run does, \
             or set TRADEDSL_CHROMIUM); the pages' structure was checked"
        );
        return;
    };
    for (i, page) in [&backtest, &paper].into_iter().enumerate() {
        let root = render(&browser, page, &d.join(format!("profile{i}")));
        assert_eq!(attribute(&root, "data-errors").as_deref(), Some(""), "script errors in {}: {root}", page.display());
        let charts: usize = attribute(&root, "data-charts").and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(charts >= 3 + symbols.len(), "{charts} charts drew in {}: {root}", page.display());
        assert_eq!(attribute(&root, "data-selftest").as_deref(), Some("ok"), "sorting by pnl: {root}");
    }
}
