//! Executor tests against real processes, a real HTTP server and real signals. Waits are on
//! conditions with a deadline, never a fixed sleep.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::scheduler::workflow::TaskInput;
use crate::scheduler::{Executor, ResultData, Shard, TaskOrigin};

/// Longest any condition in these tests is waited for.
const WAIT: Duration = Duration::from_secs(20);

fn request(dir: &TempDir, argv: &[&str]) -> ExecRequest {
    ExecRequest {
        task_id: 7,
        attempt: 2,
        token: 1234,
        spec: TaskSpec { command: argv.iter().map(|s| s.to_string()).collect(), ..TaskSpec::default() },
        checkpoint_in: None,
        inputs: Vec::new(),
        attempt_dir: dir.path().to_path_buf(),
        timeout: None,
        limits: ExecLimits { kill_grace: Duration::from_secs(2), ..ExecLimits::default() },
        live: None,
    }
}

/// A request for a built-in executor with its arguments.
fn builtin(dir: &TempDir, executor: Executor, args: &[&str]) -> ExecRequest {
    let mut req = request(dir, args);
    req.spec.executor = executor;
    req
}

fn sh(dir: &TempDir, script: &str) -> ExecRequest {
    request(dir, &["sh", "-c", script])
}

/// Runs an attempt while draining its checkpoint channel, as the worker will.
async fn run_collecting(req: ExecRequest, cancel: CancellationToken) -> (ExecResult, Vec<Vec<u8>>) {
    let (tx, mut rx) = mpsc::channel(1);
    let collector = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(checkpoint) = rx.recv().await {
            got.push(checkpoint);
        }
        got
    });
    let result = run(req, cancel, tx).await;
    (result, collector.await.expect("collector panicked"))
}

async fn run_plain(req: ExecRequest) -> ExecResult {
    run_collecting(req, CancellationToken::new()).await.0
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a pid the task wrote to `file` (waiting for it) and the process's start time, which
/// tells it apart from a later process that reuses the pid.
async fn wait_for_pid(file: &Path) -> (i32, u64) {
    wait_for("the pid file", || std::fs::read_to_string(file).is_ok_and(|s| s.ends_with('\n'))).await;
    let pid: i32 = std::fs::read_to_string(file).unwrap().trim().parse().unwrap();
    let (_, start) = proc_stat(pid).expect("the background process should be running");
    (pid, start)
}

/// State and start time of `pid` from `/proc`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_ascii_whitespace().collect();
    Some((fields[0].chars().next()?, fields[19].parse().ok()?))
}

/// Dead: no such process, a zombie (PID 1 may not reap orphans here), or the pid was reused.
fn is_dead((pid, start): (i32, u64)) -> bool {
    match proc_stat(pid) {
        None => true,
        Some((state, s)) => s != start || state == 'Z' || state == 'X',
    }
}

// --- exec: exit status ---------------------------------------------------------------------

#[tokio::test]
async fn exit_zero_succeeds() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(sh(&dir, "exit 0")).await;
    assert_eq!((r.outcome, r.exit_code, r.error.as_deref()), (AttemptOutcome::Succeeded, Some(0), None));
    assert_eq!(r.output_tail, "");
}

#[tokio::test]
async fn nonzero_exit_fails_with_code_and_output() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(sh(&dir, "echo out; echo err >&2; exit 3")).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.error.as_deref(), Some("exited with code 3"));
    assert_eq!(r.output_tail, "--- stdout (4 bytes) ---\nout\n--- stderr (4 bytes) ---\nerr\n");
}

#[tokio::test]
async fn live_output_sees_both_streams_while_the_process_runs() {
    let dir = TempDir::new().unwrap();
    let live = LiveOutput::new(1024);
    let mut req = sh(&dir, "echo out; sleep 0.2; echo err >&2; while [ ! -e stop ]; do sleep 0.02; done");
    req.live = Some(live.clone());
    let attempt = tokio::spawn(run_plain(req));
    let deadline = Instant::now() + WAIT;
    // Both lines show up while the process still runs (it waits for the `stop` file).
    while live.read_from(0, 1024).data != b"out\nerr\n" {
        assert!(Instant::now() < deadline, "live output: {:?}", live.read_from(0, 1024));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!attempt.is_finished());
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let r = attempt.await.unwrap();
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    assert_eq!(live.total(), 8);
}

#[tokio::test]
async fn death_by_signal_names_the_signal() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(sh(&dir, "kill -SEGV $$")).await;
    assert_eq!((r.outcome, r.exit_code), (AttemptOutcome::Failed, None));
    let error = r.error.unwrap();
    assert!(error.starts_with("killed by signal 11 (SIGSEGV"), "{error}");
}

#[tokio::test]
async fn missing_program_fails_clearly() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(request(&dir, &["/no/such/program-xyz", "arg"])).await;
    assert_eq!((r.outcome, r.exit_code), (AttemptOutcome::Failed, None));
    let error = r.error.unwrap();
    assert!(error.contains("could not start \"/no/such/program-xyz\": no such program"), "{error}");
}

#[tokio::test]
async fn empty_command_and_builtin_shorthand_programs_fail() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(request(&dir, &[])).await;
    assert_eq!((r.outcome, r.error.as_deref()), (AttemptOutcome::Failed, Some("command is empty: nothing to run")));
    let r = run_plain(request(&dir, &["taskraft:nope"])).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(r.error.unwrap().contains("unknown built-in executor taskraft:nope"));
    // A shorthand reaching the worker unexpanded is reported, not looked up on PATH.
    let r = run_plain(request(&dir, &["taskraft:sleep", "50"])).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    let error = r.error.unwrap();
    assert!(error.contains("shorthand of the sleep executor, not a program"), "{error}");
}

// --- exec: working directory -----------------------------------------------------------------

#[tokio::test]
async fn relative_working_dir_is_created_inside_the_attempt_dir() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, "pwd -P; touch here");
    req.spec.working_dir = Some("sub/dir".into());
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    let inside = std::fs::canonicalize(dir.path()).unwrap().join("sub/dir");
    assert!(r.output_tail.ends_with(&format!("{}\n", inside.display())), "{}", r.output_tail);
    assert!(inside.join("here").is_file(), "the process did not run in {}", inside.display());

    // An existing one is reused as it is.
    let mut req = sh(&dir, "test -e here");
    req.spec.working_dir = Some("./sub/dir".into());
    assert_eq!(run_plain(req).await.outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn absolute_working_dir_is_used_as_is() {
    let (dir, elsewhere) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut req = sh(&dir, "pwd -P");
    req.spec.working_dir = Some(elsewhere.path().to_str().unwrap().into());
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    let expected = std::fs::canonicalize(elsewhere.path()).unwrap();
    assert!(r.output_tail.ends_with(&format!("{}\n", expected.display())), "{}", r.output_tail);
}

#[tokio::test]
async fn working_dir_climbing_out_of_the_attempt_dir_is_refused() {
    let parent = TempDir::new().unwrap();
    let attempt_dir = parent.path().join("attempt");
    std::fs::create_dir(&attempt_dir).unwrap();
    for escape in ["..", "../escaped", "sub/../../escaped"] {
        let mut req = request(&parent, &["sh", "-c", "touch ran"]);
        req.attempt_dir = attempt_dir.clone();
        req.spec.working_dir = Some(escape.into());
        let r = run_plain(req).await;
        assert_eq!((r.outcome, r.exit_code), (AttemptOutcome::Failed, None), "{escape}");
        let error = r.error.unwrap();
        assert!(error.starts_with("working directory refused: "), "{escape}: {error}");
        assert!(error.contains("climbs out of the attempt directory"), "{escape}: {error}");
        assert!(!parent.path().join("ran").exists() && !parent.path().join("escaped").exists(), "{escape}");
        assert!(!attempt_dir.join("ran").exists() && !attempt_dir.join("sub").exists(), "{escape}");
    }
}

#[tokio::test]
async fn missing_absolute_working_dir_fails_clearly() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, "exit 0");
    req.spec.working_dir = Some("/no/such/dir-xyz".into());
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert!(r.error.unwrap().contains("working directory /no/such/dir-xyz does not exist"));
}

// --- exec: environment and checkpoints -------------------------------------------------------

#[tokio::test]
async fn environment_is_set() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(
        &dir,
        r#"env | grep -E '^(TASKRAFT_|GREETING=)' | sort; pwd; [ -z "${TASKRAFT_CHECKPOINT_IN+set}" ] && echo no-checkpoint-in"#,
    );
    req.spec.env = BTreeMap::from([("GREETING".to_string(), "hello world".to_string())]);
    req.spec.shard = Some(Shard { index: 2, total: 5 });
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    let dir = std::fs::canonicalize(dir.path()).unwrap();
    let out = dir.join(CHECKPOINT_OUT_FILE);
    let result = dir.join(RESULT_OUT_FILE);
    let expected = format!(
        "GREETING=hello world\nTASKRAFT_ATTEMPT=2\nTASKRAFT_CHECKPOINT_OUT={}\nTASKRAFT_FENCING_TOKEN=1234\n\
         TASKRAFT_RESULT_OUT={}\nTASKRAFT_SHARD_COUNT=5\nTASKRAFT_SHARD_INDEX=2\nTASKRAFT_STOP_REASON_FILE={}\n\
         TASKRAFT_TASK_ID=7\n{}\nno-checkpoint-in\n",
        out.display(),
        result.display(),
        dir.join(STOP_REASON_FILE).display(),
        dir.display()
    );
    assert!(r.output_tail.ends_with(&expected), "got:\n{}\nexpected:\n{expected}", r.output_tail);
}

#[tokio::test]
async fn a_result_written_to_result_out_comes_back_with_the_ending() {
    let dir = TempDir::new().unwrap();
    // A leftover of an earlier run in the same directory is not this attempt's result.
    std::fs::write(dir.path().join(RESULT_OUT_FILE), "stale").unwrap();
    let r = run_plain(sh(&dir, r#"[ ! -e "$TASKRAFT_RESULT_OUT" ] && echo 42 > "$TASKRAFT_RESULT_OUT""#)).await;
    assert_eq!((r.outcome, r.result.as_deref()), (AttemptOutcome::Succeeded, Some(&b"42\n"[..])), "{r:?}");
    // No file, no result; a failed attempt's result is reported too (apply decides what counts).
    assert_eq!(run_plain(sh(&dir, "true")).await.result, None);
    let r = run_plain(sh(&dir, r#"printf 'half' > "$TASKRAFT_RESULT_OUT"; exit 3"#)).await;
    assert_eq!((r.outcome, r.result.as_deref()), (AttemptOutcome::Failed, Some(&b"half"[..])));
}

#[tokio::test]
async fn a_result_over_the_limit_fails_the_attempt() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, r#"printf '12345' > "$TASKRAFT_RESULT_OUT""#);
    req.limits.result_max_bytes = 4;
    let r = run_plain(req).await;
    assert_eq!((r.outcome, r.result.as_deref()), (AttemptOutcome::Failed, None), "{r:?}");
    assert!(r.error.unwrap().contains("over the limit of 4 bytes"));
    let mut req = sh(&dir, r#"printf '1234' > "$TASKRAFT_RESULT_OUT""#);
    req.limits.result_max_bytes = 4;
    assert_eq!(run_plain(req).await.result.as_deref(), Some(&b"1234"[..]), "exactly the limit is fine");
}

/// A request for a task of workflow 1's node 2, with these parent results.
fn workflow_child(dir: &TempDir, script: &str, inputs: &[(&str, Option<u32>, &[u8])]) -> ExecRequest {
    let mut req = sh(dir, script);
    req.spec.origin = TaskOrigin::Workflow { workflow: 1, node: 2 };
    req.inputs = inputs
        .iter()
        .map(|&(node, shard, data)| TaskInput { node: node.to_string(), shard, data: ResultData(data.to_vec()) })
        .collect();
    req
}

#[tokio::test]
async fn a_workflow_task_reads_its_parents_results_from_inputs_dir() {
    let dir = TempDir::new().unwrap();
    // A leftover of an earlier run in the same directory is not this attempt's input.
    std::fs::create_dir_all(dir.path().join(INPUTS_DIR).join("old")).unwrap();
    let script = r#"set -e
        in="$TASKRAFT_INPUTS_DIR"
        out="$TASKRAFT_RESULT_OUT"
        { cat "$in/a"; cat "$in/m/0"; cat "$in/m/1"; ls "$in" | tr '\n' ' '; ls "$in/m" | tr '\n' ' '; } > "$out"
        od -An -tx1 "$in/bin" | tr -d ' \n' >> "$TASKRAFT_RESULT_OUT""#;
    let inputs: &[(&str, Option<u32>, &[u8])] =
        &[("a", None, b"A\n"), ("m", Some(0), b"m0\n"), ("m", Some(1), b"m1\n"), ("bin", None, &[0xff, 0, 0x0a])];
    let r = run_plain(workflow_child(&dir, script, inputs)).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    let got = String::from_utf8(r.result.expect("a result")).unwrap();
    assert_eq!(got, "A\nm0\nm1\na bin m 0 1 ff000a");
    let expected = std::fs::canonicalize(dir.path()).unwrap().join(INPUTS_DIR);
    let r =
        run_plain(workflow_child(&dir, r#"printf %s "$TASKRAFT_INPUTS_DIR" > "$TASKRAFT_RESULT_OUT""#, inputs)).await;
    assert_eq!(r.result, Some(expected.display().to_string().into_bytes()), "{r:?}");
}

#[tokio::test]
async fn inputs_dir_is_set_and_empty_for_a_workflow_task_without_inputs_and_unset_outside_workflows() {
    let dir = TempDir::new().unwrap();
    let script = r#"[ -d "$TASKRAFT_INPUTS_DIR" ] && [ -z "$(ls -A "$TASKRAFT_INPUTS_DIR")" ] && echo empty"#;
    let r = run_plain(workflow_child(&dir, script, &[])).await;
    assert_eq!((r.outcome, r.output_tail.ends_with("empty\n")), (AttemptOutcome::Succeeded, true), "{r:?}");
    let r = run_plain(sh(&dir, r#"[ -z "${TASKRAFT_INPUTS_DIR+set}" ] && echo unset"#)).await;
    assert_eq!((r.outcome, r.output_tail.ends_with("unset\n")), (AttemptOutcome::Succeeded, true), "{r:?}");
}

#[tokio::test]
async fn an_input_that_is_not_a_plain_file_name_fails_the_attempt_before_it_runs() {
    let dir = TempDir::new().unwrap();
    let ran = dir.path().join("ran");
    let script = format!("touch {}", ran.display());
    for node in ["../escape", "a/b", "..", ".", ""] {
        let r = run_plain(workflow_child(&dir, &script, &[(node, None, b"x")])).await;
        assert_eq!((r.outcome, r.exit_code), (AttemptOutcome::Failed, None), "{node:?}: {r:?}");
        assert!(r.error.as_deref().unwrap().contains("must be a plain file name"), "{node:?}: {r:?}");
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    // Two inputs for one file: the second is not allowed to win quietly.
    let r = run_plain(workflow_child(&dir, &script, &[("a", None, b"1"), ("a", None, b"2")])).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed, "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("could not write the input"), "{r:?}");
    assert!(!ran.exists(), "the process must not have run");
}

#[tokio::test]
async fn builtin_executors_ignore_inputs() {
    let dir = TempDir::new().unwrap();
    let mut req = workflow_child(&dir, "", &[("a", None, b"A"), ("m", Some(0), b"m0")]);
    req.spec.executor = Executor::Noop;
    assert_eq!(run_plain(req).await, ExecResult::new(AttemptOutcome::Succeeded));
    assert!(!dir.path().join(INPUTS_DIR).exists());
}

#[tokio::test]
async fn checkpoint_in_holds_the_given_bytes() {
    let dir = TempDir::new().unwrap();
    let mut req =
        sh(&dir, r#"printf 'resume-from-42' | cmp - "$TASKRAFT_CHECKPOINT_IN" && echo "$TASKRAFT_CHECKPOINT_IN""#);
    req.checkpoint_in = Some(b"resume-from-42".to_vec());
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    assert!(r.output_tail.ends_with(&format!("{CHECKPOINT_IN_FILE}\n")), "{}", r.output_tail);
}

#[tokio::test]
async fn checkpoints_are_delivered_while_running_and_at_exit() {
    let dir = TempDir::new().unwrap();
    let go = dir.path().join("go");
    let mut req = sh(
        &dir,
        r#"save() { printf '%s' "$1" > ckpt.tmp && mv ckpt.tmp "$TASKRAFT_CHECKPOINT_OUT"; }
           save progress-1
           while [ ! -e go ]; do sleep 0.01; done
           save progress-1
           save final"#,
    );
    req.limits.checkpoint_poll = Duration::from_millis(20);
    let (tx, mut rx) = mpsc::channel(1);
    let attempt = tokio::spawn(run(req, CancellationToken::new(), tx));

    let first = tokio::time::timeout(WAIT, rx.recv()).await.expect("no checkpoint while running");
    assert_eq!(first.as_deref(), Some(&b"progress-1"[..]));
    std::fs::write(&go, b"").unwrap();
    let mut rest = Vec::new();
    while let Some(checkpoint) = tokio::time::timeout(WAIT, rx.recv()).await.expect("channel never closed") {
        rest.push(checkpoint);
    }
    let r = attempt.await.unwrap();
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    // Rewriting the same bytes ships nothing; the one written just before exit is not lost.
    assert_eq!(rest, vec![b"final".to_vec()]);
}

#[tokio::test]
async fn checkpoint_written_just_before_exit_is_delivered_by_the_final_read() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, r#"printf last > t && mv t "$TASKRAFT_CHECKPOINT_OUT""#);
    req.limits.checkpoint_poll = Duration::from_secs(3600); // only the immediate first tick polls
    let (r, got) = run_collecting(req, CancellationToken::new()).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    assert_eq!(got, vec![b"last".to_vec()]);
}

#[tokio::test]
async fn full_channel_coalesces_to_the_newest_checkpoint() {
    let dir = TempDir::new().unwrap();
    let mut req =
        sh(&dir, r#"for i in 1 2 3 4 5; do printf "c$i" > t && mv t "$TASKRAFT_CHECKPOINT_OUT"; sleep 0.05; done"#);
    req.limits.checkpoint_poll = Duration::from_millis(10);
    // Capacity 1 and nobody reading until the process has exited: c1 fills the channel, later
    // ones replace each other as pending, and the final send delivers the newest.
    let (tx, mut rx) = mpsc::channel(1);
    let attempt = tokio::spawn(run(req, CancellationToken::new(), tx));
    wait_for("the attempt to finish writing", || dir.path().join(CHECKPOINT_OUT_FILE).exists()).await;
    wait_for("the last checkpoint", || std::fs::read(dir.path().join(CHECKPOINT_OUT_FILE)).unwrap() == b"c5").await;
    let mut got = Vec::new();
    while let Some(checkpoint) = rx.recv().await {
        got.push(checkpoint);
    }
    assert_eq!(attempt.await.unwrap().outcome, AttemptOutcome::Succeeded);
    assert!(got.len() <= 2, "channel should hold at most one stale checkpoint, got {got:?}");
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"c5"[..]));
}

#[tokio::test]
async fn oversized_checkpoint_is_refused_with_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, r#"head -c 100 /dev/zero > t && mv t "$TASKRAFT_CHECKPOINT_OUT""#);
    req.limits.checkpoint_max_bytes = 10;
    let (r, got) = run_collecting(req, CancellationToken::new()).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "the task itself did fine");
    assert!(got.is_empty(), "nothing over the limit may be shipped");
    assert_eq!(r.error.as_deref(), Some("checkpoint of 100 bytes refused: the limit is 10 bytes; it was not saved"));
}

// --- exec: output --------------------------------------------------------------------------

#[tokio::test]
async fn output_tail_keeps_only_the_last_bytes() {
    let dir = TempDir::new().unwrap();
    let mut req =
        sh(&dir, "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done; head -c 3000000 /dev/zero >&2");
    req.limits.output_tail_bytes = 100;
    let r = run_plain(req).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    let (stdout, stderr) = r.output_tail.split_once("--- stderr").unwrap();
    let stdout_header = "--- stdout (last 100 of 8890 bytes) ---\n";
    assert!(stdout.starts_with(stdout_header), "{stdout}");
    assert_eq!(stdout.len(), stdout_header.len() + 100);
    assert!(stdout.ends_with("line-998\nline-999\n"));
    assert!(stderr.starts_with(" (last 100 of 3000000 bytes) ---\n"), "{stderr}");
}

// --- exec: stopping the process group ----------------------------------------------------------

/// Starts a background grandchild, records its pid, then waits in the foreground.
const GROUP_SCRIPT: &str = "sleep 100 & echo $! > bg.pid; sleep 100";

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, GROUP_SCRIPT);
    req.timeout = Some(Duration::from_secs(2));
    let attempt = tokio::spawn(run_collecting(req, CancellationToken::new()));
    let grandchild = wait_for_pid(&dir.path().join("bg.pid")).await;
    let (r, _) = attempt.await.unwrap();
    assert_eq!((r.outcome, r.exit_code), (AttemptOutcome::TimedOut, None));
    assert_eq!(r.error.as_deref(), Some("timed out after 2s; the process group was killed"));
    assert!(is_dead(grandchild), "the background grandchild survived the timeout");
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let dir = TempDir::new().unwrap();
    let cancel = CancellationToken::new();
    let attempt = tokio::spawn(run_collecting(sh(&dir, GROUP_SCRIPT), cancel.clone()));
    let grandchild = wait_for_pid(&dir.path().join("bg.pid")).await;
    cancel.cancel();
    let (r, _) = tokio::time::timeout(WAIT, attempt).await.expect("cancel did not stop the attempt").unwrap();
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);
    assert!(is_dead(grandchild), "the background grandchild survived the cancel");
}

#[tokio::test]
async fn term_ignoring_group_gets_killed_after_the_grace() {
    let dir = TempDir::new().unwrap();
    let mut req = sh(&dir, "trap '' TERM; sleep 100 & echo $! > bg.pid; wait");
    req.limits.kill_grace = Duration::from_millis(300);
    let cancel = CancellationToken::new();
    let attempt = tokio::spawn(run_collecting(req, cancel.clone()));
    let grandchild = wait_for_pid(&dir.path().join("bg.pid")).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let (r, _) = tokio::time::timeout(WAIT, attempt).await.expect("KILL did not stop the attempt").unwrap();
    assert!(cancelled_at.elapsed() >= Duration::from_millis(300), "KILL came before the grace ended");
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);
    assert!(is_dead(grandchild));
}

#[tokio::test]
async fn background_processes_do_not_outlive_a_normal_exit() {
    let dir = TempDir::new().unwrap();
    let started = Instant::now();
    // The grandchild holds stdout open: without the group stop, reading output would hang.
    let r = run_plain(sh(&dir, "sleep 100 & echo $! > bg.pid; echo done")).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded);
    assert!(started.elapsed() < Duration::from_secs(2), "waited for the grace instead of TERM working");
    let pid: i32 = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap().trim().parse().unwrap();
    assert!(proc_stat(pid).is_none_or(|(state, _)| state == 'Z'), "the leftover sleep is still alive");
}

#[tokio::test]
async fn dropping_the_attempt_kills_the_group() {
    let dir = TempDir::new().unwrap();
    let attempt = tokio::spawn(run_collecting(sh(&dir, GROUP_SCRIPT), CancellationToken::new()));
    let grandchild = wait_for_pid(&dir.path().join("bg.pid")).await;
    attempt.abort();
    wait_for("the group to be killed on drop", || is_dead(grandchild)).await;
}

// --- built-ins -----------------------------------------------------------------------------

#[test]
fn only_exec_needs_an_attempt_dir() {
    for executor in Executor::ALL {
        let spec = TaskSpec { executor, ..TaskSpec::default() };
        assert_eq!(needs_attempt_dir(&spec), executor == Executor::Exec, "{executor}");
    }
}

#[tokio::test]
async fn noop_succeeds() {
    let dir = TempDir::new().unwrap();
    let r = run_plain(builtin(&dir, Executor::Noop, &[])).await;
    assert_eq!(r, ExecResult::new(AttemptOutcome::Succeeded));
}

#[tokio::test]
async fn sleep_reads_its_milliseconds_from_command_0() {
    let dir = TempDir::new().unwrap();
    let started = Instant::now();
    let r = run_plain(builtin(&dir, Executor::Sleep, &["50"])).await;
    assert_eq!((r.outcome, r.error.as_deref()), (AttemptOutcome::Succeeded, None));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(r.exit_code, None, "no process ran");
}

#[tokio::test]
async fn sleep_times_out_cancels_and_refuses_bad_arguments() {
    let dir = TempDir::new().unwrap();
    let mut req = builtin(&dir, Executor::Sleep, &["100000"]);
    req.timeout = Some(Duration::from_millis(50));
    let r = run_plain(req).await;
    assert_eq!((r.outcome, r.error.as_deref()), (AttemptOutcome::TimedOut, Some("timed out after 50ms")));

    let cancel = CancellationToken::new();
    let attempt = tokio::spawn(run_collecting(builtin(&dir, Executor::Sleep, &["100000"]), cancel.clone()));
    cancel.cancel();
    let (r, _) = tokio::time::timeout(WAIT, attempt).await.unwrap().unwrap();
    assert_eq!(r.outcome, AttemptOutcome::Cancelled);

    for (args, got) in [
        (vec!["soon"], "got \"soon\""),
        (vec![], "got nothing"),
        // The old argv shape: the milliseconds are command[0] now.
        (vec!["taskraft:sleep", "50"], "got 2 arguments"),
    ] {
        let r = run_plain(builtin(&dir, Executor::Sleep, &args)).await;
        assert_eq!(r.outcome, AttemptOutcome::Failed, "{args:?}");
        let error = r.error.unwrap();
        assert!(error.contains("takes one argument, a duration in milliseconds") && error.ends_with(got), "{error}");
    }
}

// --- http ----------------------------------------------------------------------------------

/// A tiny server on a free loopback port; returns its base URL.
async fn http_server() -> String {
    let app = Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route("/fail", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .route("/echo", post(|body: String| async move { format!("got {body}") }))
        .route("/slow", get(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_2xx_succeeds_with_the_body() {
    let (dir, base) = (TempDir::new().unwrap(), http_server().await);
    let r = run_plain(builtin(&dir, Executor::Http, &[&format!("{base}/ok")])).await;
    assert_eq!((r.outcome, r.error.as_deref()), (AttemptOutcome::Succeeded, None));
    assert_eq!(r.output_tail, "HTTP 200 OK\n--- body (5 bytes) ---\nhello\n");

    // command is [url, method, body]: the method is command[1], the body command[2].
    let r = run_plain(builtin(&dir, Executor::Http, &[&format!("{base}/echo"), "post", "ping"])).await;
    assert_eq!(r.outcome, AttemptOutcome::Succeeded, "{r:?}");
    assert_eq!(r.output_tail, "HTTP 200 OK\n--- body (8 bytes) ---\ngot ping\n");
}

#[tokio::test]
async fn http_500_fails_with_the_status() {
    let (dir, base) = (TempDir::new().unwrap(), http_server().await);
    let url = format!("{base}/fail");
    let r = run_plain(builtin(&dir, Executor::Http, &[&url])).await;
    assert_eq!(r.outcome, AttemptOutcome::Failed);
    assert_eq!(r.error, Some(format!("GET {url} answered HTTP 500 Internal Server Error")));
    assert!(r.output_tail.ends_with("boom\n"));
}

#[tokio::test]
async fn http_timeout_cancel_and_bad_input() {
    let (dir, base) = (TempDir::new().unwrap(), http_server().await);
    let mut req = builtin(&dir, Executor::Http, &[&format!("{base}/slow")]);
    req.timeout = Some(Duration::from_millis(100));
    assert_eq!(run_plain(req).await.outcome, AttemptOutcome::TimedOut);

    let cancel = CancellationToken::new();
    let slow = builtin(&dir, Executor::Http, &[&format!("{base}/slow")]);
    let attempt = tokio::spawn(run_collecting(slow, cancel.clone()));
    cancel.cancel();
    assert_eq!(tokio::time::timeout(WAIT, attempt).await.unwrap().unwrap().0.outcome, AttemptOutcome::Cancelled);

    for (argv, expected) in [
        (vec![], "needs a URL"),
        (vec!["not a url"], "invalid URL"),
        (vec!["https://example.com/"], "built without TLS"),
        (vec!["http://127.0.0.1:1/", "BAD METHOD"], "invalid HTTP method"),
        (vec!["http://127.0.0.1:1/", "POST", "body", "extra"], "at most 3 arguments, got 4"),
        (vec!["http://127.0.0.1:1/"], "failed"),
        // The old argv shape: the URL is command[0] now.
        (vec!["taskraft:http", "http://127.0.0.1:1/"], "unsupported URL scheme \"taskraft\""),
    ] {
        let r = run_plain(builtin(&dir, Executor::Http, &argv)).await;
        assert_eq!(r.outcome, AttemptOutcome::Failed, "{argv:?}");
        let error = r.error.unwrap();
        assert!(error.contains(expected), "{argv:?}: {error}");
    }
}
