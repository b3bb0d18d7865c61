//! The `taskraft` binary: see `taskraft --help`.

/// mimalloc instead of glibc's malloc: a replica allocates and frees many small objects per
/// request (HTTP, JSON, log entries), and under glibc that was about a fifth of the leader's CPU
/// (`_int_malloc`, `_int_free`, `malloc_consolidate` in a perf profile at 256 clients).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // A worker's helper that kills its tasks if it dies (see `worker::executor::reaper`): not a
    // command for users, so not in `--help`, and no runtime.
    if std::env::args_os().nth(1).is_some_and(|a| a == taskraft::worker::executor::reaper::REAPER_ARG) {
        taskraft::worker::executor::reaper::run();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(taskraft::cli::run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
