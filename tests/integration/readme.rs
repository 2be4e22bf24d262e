//! What the README says is what happens: every command in a `console` block runs and its output
//! must match (trycmd; `[..]` and `...` elide what changes from run to run), and every `dsl`
//! command in any other code block is one the command line accepts.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn console_blocks_print_what_the_readme_shows() {
    trycmd::TestCases::new()
        .register_bin("dsl", trycmd::cargo::cargo_bin("dsl"))
        .env("NO_COLOR", "1")
        .case(Path::new(ROOT).join("README.md"));
}

/// The `dsl ...` (or `cargo run --release -- ...`) command lines of the README's `sh` blocks,
/// without comments and continuation lines joined.
fn shell_commands(readme: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for block in readme.split("```sh\n").skip(1) {
        let body = &block[..block.find("```").unwrap()];
        let joined = body.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.split(" #").next().unwrap().trim();
            let rest = line.strip_prefix("dsl ").or_else(|| line.strip_prefix("cargo run --release -- "));
            if let Some(rest) = rest {
                out.push(shlex::split(rest).unwrap_or_else(|| panic!("unbalanced quotes: {line}")));
            }
        }
    }
    out
}

#[test]
fn every_command_the_readme_shows_is_accepted() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let commands = shell_commands(&readme);
    assert!(commands.len() >= 10, "{commands:?}");
    for args in commands {
        let argv = std::iter::once("dsl".to_string()).chain(args.iter().cloned());
        if let Err(e) = <tradedsl::cli::Cli as clap::Parser>::try_parse_from(argv) {
            panic!("the README shows `dsl {}`, which the command line refuses:\n{e}", args.join(" "));
        }
    }
}
