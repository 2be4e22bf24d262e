//! `dsl completions SHELL` and `dsl man`: shell completion scripts (`clap_complete`) and a
//! roff man page (`clap_mangen`), both generated from the command definitions, so they never
//! drift from the flags `dsl` accepts.
//!
//! ```sh
//! dsl completions bash > ~/.local/share/bash-completion/completions/dsl
//! dsl completions zsh > ~/.zfunc/_dsl
//! dsl man > ~/.local/share/man/man1/dsl.1
//! dsl man run > ~/.local/share/man/man1/dsl-run.1
//! ```

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, EXIT_OK, EXIT_USAGE};

/// Arguments of `dsl completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the completion script for the shell to standard output.
pub fn completions(args: CompletionArgs) -> u8 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "dsl", &mut out);
    write_out(&out)
}

/// Arguments of `dsl man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A command's own page (`dsl man run` is dsl-run(1)); without it, dsl(1), which lists
    /// every command.
    command: Option<String>,
}

/// Writes the man page to standard output.
pub fn man(args: ManArgs) -> u8 {
    let cmd = Cli::command();
    let page = match &args.command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone().name(format!("dsl-{name}")),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                eprintln!("error: no command `{name}`; commands: {}", names.join(", "));
                return EXIT_USAGE;
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        eprintln!("error: cannot render the man page: {e}");
        return EXIT_USAGE;
    }
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            EXIT_USAGE
        }
    }
}
