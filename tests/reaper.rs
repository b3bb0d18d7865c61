//! The worker's reaper (`taskraft __reap-task-groups`, see `worker::executor::reaper`) on real
//! processes: a group it was told about dies when its input ends (the worker died); a group it
//! was told has ended is left alone, while one listed twice (a reused id) stays listed until
//! released twice; the terminal's signals do not stop it.

use std::io::BufRead;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use taskraft::worker::executor::reaper::REAPER_ARG;

/// A `sleep` leading a process group of its own.
fn sleeper() -> std::process::Child {
    Command::new("sleep").arg("300").process_group(0).spawn().unwrap()
}

fn wait_gone(child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn the_reaper_kills_the_groups_still_listed_when_its_worker_goes() {
    let mut listed = sleeper();
    let mut twice = sleeper();
    let mut released = sleeper();
    let mut reaper = Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .arg(REAPER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(reaper.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim_end(), "reaper ready");
    let mut pipe = reaper.stdin.take().unwrap();
    writeln!(pipe, "+{}", listed.id()).unwrap();
    writeln!(pipe, "+{}", twice.id()).unwrap();
    writeln!(pipe, "+{}", twice.id()).unwrap();
    writeln!(pipe, "-{}", twice.id()).unwrap();
    writeln!(pipe, "+{}", released.id()).unwrap();
    writeln!(pipe, "-{}", released.id()).unwrap();
    pipe.flush().unwrap();
    // Ctrl-C in a terminal reaches the whole foreground group; a hangup or a polite stop may
    // reach it too. Only the worker's going ends it.
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe { libc::kill(reaper.id() as i32, signal) };
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(reaper.try_wait().unwrap().is_none(), "a signal stopped the reaper");
    assert!(listed.try_wait().unwrap().is_none(), "a listed group was killed while its worker lives");
    // The worker's end of the pipe closes: it is gone.
    drop(pipe);
    assert!(wait_gone(&mut listed), "the listed group outlived its worker");
    assert!(wait_gone(&mut twice), "a group listed twice and released once outlived its worker");
    assert!(reaper.wait().unwrap().success());
    assert!(released.try_wait().unwrap().is_none(), "a released group was killed");
    released.kill().unwrap();
    released.wait().unwrap();
}
