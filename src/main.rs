//! The `taskraft` binary: see `taskraft --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    taskraft::cli::run().await
}
