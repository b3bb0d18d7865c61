//! The `taskraft` binary: see `taskraft --help`.

/// mimalloc instead of glibc's malloc: a replica allocates and frees many small objects per
/// request (HTTP, JSON, log entries), and under glibc that was about a fifth of the leader's CPU
/// (`_int_malloc`, `_int_free`, `malloc_consolidate` in a perf profile at 256 clients).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    taskraft::cli::run().await
}
