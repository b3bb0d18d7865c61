//! Printing answers as tables (people) or JSON (scripts).

use serde::Serialize;

use crate::scheduler::Task;

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

/// Prints rows under a header with aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// One table row per task.
pub fn print_tasks(tasks: &[Task], output: Output) {
    if output == Output::Json {
        return print_json(&tasks);
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.state.as_str().to_string(),
                t.spec.priority.to_string(),
                t.attempts.len().to_string(),
                t.spec.name.clone(),
                shorten(&t.spec.command.join(" "), 48),
            ]
        })
        .collect();
    print_table(&["ID", "STATE", "PRIORITY", "ATTEMPTS", "NAME", "COMMAND"], &rows);
}

/// One task in detail.
pub fn print_task(t: &Task, output: Output) {
    if output == Output::Json {
        return print_json(t);
    }
    println!("id:          {}", t.id);
    println!("name:        {}", t.spec.name);
    println!("state:       {}", t.state.as_str());
    println!("command:     {}", t.spec.command.join(" "));
    println!("priority:    {}", t.spec.priority);
    if let Some(key) = &t.spec.idempotency_key {
        println!("key:         {key}");
    }
    println!("version:     {}", t.version);
    println!("attempts:    {}", t.attempts.len());
    if t.cancel_requested {
        println!("cancel:      requested{}", t.cancel_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default());
    }
    if let Some(e) = &t.last_error {
        println!("last error:  {e}");
    }
    if let Some(cp) = &t.checkpoint {
        println!("checkpoint:  {} bytes from attempt {}", cp.data.len(), cp.attempt);
    }
    for a in &t.attempts {
        let outcome = a.outcome.map_or("running", |o| o.as_str());
        let exit = a.exit_code.map(|c| format!(" exit={c}")).unwrap_or_default();
        println!("  attempt {} on {} (token {}): {outcome}{exit}", a.number, a.worker_id, a.fencing_token);
        if let Some(e) = &a.error {
            println!("    error: {e}");
        }
        let tail: Vec<&str> = a.output_tail.lines().rev().take(5).collect();
        for line in tail.iter().rev() {
            println!("    | {line}");
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}
