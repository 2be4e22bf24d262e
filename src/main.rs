//! The `dsl` binary: see [`tradedsl::cli`].

/// mimalloc keeps freed memory for reuse instead of returning it to the kernel between the
/// CSV reader's blocks, which saved page faults and copies on large files (see the commit).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tradedsl::cli::main()
}
