//! Printing answers as tables (people) or JSON (scripts).

use serde::Serialize;

use crate::scheduler::Executor;
use crate::scheduler::Task;
use crate::scheduler::TaskSpec;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// Prints any serializable value as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// `s` safe to print on a terminal: control characters (newline, tab, ESC, …) shown escaped the
/// way Rust's `escape_debug` shows them (`\n`, `\t`, `\u{1b}`), and the invisible characters
/// that reorder or hide text (bidi overrides, zero-width spaces) as `\u{…}`. A task name
/// `"a\u{1b}[31mb"` can then neither colour the terminal nor break a table row.
pub fn escape(s: &str) -> String {
    escape_but(s, &[])
}

/// A task's output made safe for a terminal: like [`escape`], but newlines and tabs stay.
pub fn escape_output(s: &str) -> String {
    escape_but(s, &['\n', '\t'])
}

/// The last `lines` lines of a task's output, each as `    | line`.
pub fn output_excerpt(text: &str, lines: usize) -> String {
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.iter().rev().map(|l| format!("    | {}\n", escape_but(l, &['\t']))).collect()
}

/// [`escape`], leaving the characters in `keep` as they are.
fn escape_but(s: &str, keep: &[char]) -> String {
    if !s.chars().any(|c| needs_escape(c) && !keep.contains(&c)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep.contains(&c) || !needs_escape(c) => out.push(c),
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.extend(c.escape_unicode()),
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Rows under a header with aligned columns, every cell [`escape`]d, one line per row.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| escape(cell)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
    out
}

/// Prints rows under a header with aligned columns (see [`format_table`]).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(header, rows));
}

/// A spec's executor and arguments on one line, in the input shorthand for the built-ins
/// (`taskraft:sleep 50`) so that they do not read as a program of the same name.
pub fn command_line(spec: &TaskSpec) -> String {
    let args = spec.command.join(" ");
    match spec.executor {
        Executor::Exec => args,
        other if args.is_empty() => format!("taskraft:{other}"),
        other => format!("taskraft:{other} {args}"),
    }
}

/// One table row per task.
pub fn print_tasks(tasks: &[Task], output: Output) {
    if output == Output::Json {
        return print_json(&tasks);
    }
    print!("{}", format_tasks(tasks));
}

/// The task table.
fn format_tasks(tasks: &[Task]) -> String {
    // Schedule runs show their nominal time (a list of runs reads as the calendar it followed).
    let runs = tasks.iter().any(|t| t.spec.origin.schedule_run().is_some());
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let mut row = vec![
                t.id.to_string(),
                t.state.as_str().to_string(),
                t.spec.priority.to_string(),
                t.attempts.len().to_string(),
                t.spec.name.clone(),
                // Escaped before shortening, so the limit holds for what is shown.
                shorten(&escape(&command_line(&t.spec)), 48),
            ];
            if runs {
                row.insert(1, nominal_of(t));
            }
            row
        })
        .collect();
    if runs {
        format_table(&["ID", "NOMINAL (UTC)", "STATE", "PRIORITY", "ATTEMPTS", "NAME", "COMMAND"], &rows)
    } else {
        format_table(&["ID", "STATE", "PRIORITY", "ATTEMPTS", "NAME", "COMMAND"], &rows)
    }
}

/// A run's nominal time (`manual` for a trigger), or `-` for a task from the API.
fn nominal_of(t: &Task) -> String {
    match t.spec.origin {
        crate::scheduler::TaskOrigin::Schedule { nominal_ms, manual, .. } => {
            let at = crate::scheduler::calendar::rfc3339_utc(nominal_ms);
            if manual { format!("{at} (manual)") } else { at }
        }
        _ => "-".into(),
    }
}

/// One task in detail.
pub fn print_task(t: &Task, output: Output) {
    if output == Output::Json {
        return print_json(t);
    }
    print!("{}", format_task(t));
}

/// One task in detail; every string that came from a user or a task is [`escape`]d.
fn format_task(t: &Task) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("id:          {}", t.id));
    line(format!("name:        {}", escape(&t.spec.name)));
    line(format!("state:       {}", t.state.as_str()));
    if let crate::scheduler::TaskOrigin::Schedule { schedule, .. } = t.spec.origin {
        line(format!("schedule:    {schedule}, nominal {}", nominal_of(t)));
    }
    line(format!("executor:    {}", t.spec.executor));
    line(format!("command:     {}", escape(&t.spec.command.join(" "))));
    line(format!("priority:    {}", t.spec.priority));
    if let Some(key) = &t.spec.idempotency_key {
        line(format!("key:         {}", escape(key)));
    }
    if let Some(key) = &t.spec.concurrency_key {
        line(format!("concurrency: {}", escape(key)));
    }
    line(format!("version:     {}", t.version));
    line(format!("attempts:    {}", t.attempts.len()));
    if t.cancel_requested {
        let reason = t.cancel_reason.as_deref().map(|r| format!(" ({})", escape(r))).unwrap_or_default();
        line(format!("cancel:      requested{reason}"));
    }
    if let Some(m) = t.preempt_requested() {
        line(format!("preempting:  asked to stop for task {} (attempt token {})", m.by, m.token));
    }
    if !t.preempted.is_empty() {
        let victims: Vec<String> =
            t.preempted.iter().map(|v| format!("task {} (token {})", v.task_id, v.token)).collect();
        line(format!("preempted:   {}", victims.join(", ")));
    }
    if let Some(e) = &t.last_error {
        line(format!("last error:  {}", escape(e)));
    }
    if let Some(cp) = &t.checkpoint {
        line(format!("checkpoint:  {} bytes from attempt {}", cp.data.len(), cp.attempt));
    }
    if let Some(r) = &t.result {
        // Text is escaped like everything else a task wrote (a newline shows as `\n`, so the
        // result stays on one line); other bytes show as base64, as in the JSON form.
        let (text, base64) = crate::scheduler::text_or_base64(&r.data);
        let shown = match (text, base64) {
            (Some(text), _) => escape(&text),
            (None, Some(b64)) => format!("(base64) {b64}"),
            (None, None) => "(empty)".to_string(),
        };
        line(format!("result:      {} bytes from attempt {}: {shown}", r.data.len(), r.attempt));
    }
    for a in &t.attempts {
        let outcome = a.outcome.map_or("running", |o| o.as_str());
        let exit = a.exit_code.map(|c| format!(" exit={c}")).unwrap_or_default();
        let mut head = String::new();
        let _ = write!(
            head,
            "  attempt {} on {} (token {}): {outcome}{exit}",
            a.number,
            escape(&a.worker_id),
            a.fencing_token
        );
        line(head);
        if let Some(e) = &a.error {
            line(format!("    error: {}", escape(e)));
        }
        // Output keeps its tabs (they cannot move the cursor off the line); the rest is escaped.
        let tail: Vec<&str> = a.output_tail.lines().rev().take(5).collect();
        for text in tail.iter().rev() {
            line(format!("    | {}", escape_but(text, &['\t'])));
        }
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Attempt, AttemptOutcome, TaskState};

    fn task(name: &str, executor: Executor, command: &[&str]) -> Task {
        let spec = TaskSpec {
            name: name.to_string(),
            executor,
            command: command.iter().map(|s| s.to_string()).collect(),
            ..TaskSpec::default()
        };
        Task {
            id: 7,
            spec,
            state: TaskState::Pending,
            version: 1,
            created_ms: 0,
            updated_ms: 0,
            finished_ms: None,
            attempts: Vec::new(),
            checkpoint: None,
            cancel_requested: false,
            cancel_reason: None,
            retry_at_ms: None,
            last_error: None,
            result: None,
            preempted_by: None,
            preempted: Vec::new(),
        }
    }

    #[test]
    fn escape_shows_control_and_invisible_characters() {
        assert_eq!(escape("plain name, é…"), "plain name, é…");
        assert_eq!(escape("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape("line\nnext\ttab\r\0"), "line\\nnext\\ttab\\r\\0");
        assert_eq!(escape("\u{7f}\u{9b}"), "\\u{7f}\\u{9b}");
        assert_eq!(escape("abc\u{202e}def\u{200b}"), "abc\\u{202e}def\\u{200b}");
        assert_eq!(escape_but("a\tb\u{1b}", &['\t']), "a\tb\\u{1b}");
    }

    #[test]
    fn tables_cannot_be_broken_or_coloured_by_user_strings() {
        let table = format_table(
            &["ID", "NAME", "NOTE"],
            &[
                vec!["1".into(), "a\u{1b}[31mb".into(), "x".into()],
                vec!["22".into(), "two\nlines\tand tab".into(), "y".into()],
            ],
        );
        assert_eq!(
            table,
            "ID  NAME                 NOTE\n\
             1   a\\u{1b}[31mb         x\n\
             22  two\\nlines\\tand tab  y\n"
        );
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(table.lines().count(), 3, "one line per row");
    }

    #[test]
    fn task_table_escapes_names_and_shows_builtins_in_shorthand() {
        let tasks = [
            task("evil\u{1b}]0;title\u{7}", Executor::Exec, &["sh", "-c", "printf '\\033[2J'\n"]),
            task("nap", Executor::Sleep, &["50"]),
            task("", Executor::Noop, &[]),
        ];
        let table = format_tasks(&tasks);
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].contains("evil\\u{1b}]0;title\\u{7}"), "{}", lines[1]);
        assert!(lines[1].ends_with("sh -c printf '\\033[2J'\\n"), "{}", lines[1]);
        assert!(lines[2].split_whitespace().rev().take(3).eq(["50", "taskraft:sleep", "nap"]), "{}", lines[2]);
        assert!(lines[3].ends_with("taskraft:noop"), "{}", lines[3]);
    }

    #[test]
    fn task_details_escape_everything_from_users_and_tasks() {
        let mut t = task("n\u{1b}[1m", Executor::Exec, &["echo", "\u{1b}c"]);
        t.last_error = Some("bad\rerror".into());
        t.result =
            Some(Box::new(crate::scheduler::TaskResult { data: b"42\n\x1b".to_vec(), attempt: 1, token: 9, at_ms: 0 }));
        t.attempts.push(Attempt {
            number: 1,
            worker_id: "w\n1".into(),
            fencing_token: 9,
            assigned_ms: 0,
            started_ms: None,
            ended_ms: None,
            outcome: Some(AttemptOutcome::Failed),
            exit_code: Some(1),
            output_tail: "col1\tcol2\n\u{1b}[31mred\n".into(),
            error: Some("x\u{1b}".into()),
        });
        let text = format_task(&t);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{text:?}");
        for expected in [
            "name:        n\\u{1b}[1m\n",
            "executor:    exec\n",
            "command:     echo \\u{1b}c\n",
            "last error:  bad\\rerror\n",
            "result:      4 bytes from attempt 1: 42\\n\\u{1b}\n",
            "  attempt 1 on w\\n1 (token 9): failed exit=1\n",
            "    error: x\\u{1b}\n",
            "    | col1\tcol2\n    | \\u{1b}[31mred\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }
}
