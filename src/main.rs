//! The `dsl` binary: see [`tradedsl::cli`].

fn main() -> std::process::ExitCode {
    tradedsl::cli::main()
}
