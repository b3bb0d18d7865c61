//! JSON Lines, the format of every recorded file: one value per line, so a run that dies mid-way
//! still leaves every complete line readable and a file can be appended to while the run goes on.

use std::fs::File;
use std::io::BufRead;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads every value of a JSON Lines file, skipping blank lines.
///
/// Any malformed line is an error naming the file and line: silently dropping a recorded operation
/// could turn an invalid history into a valid one.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("read {} line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).with_context(|| format!("parse {} line {}", path.display(), i + 1))?);
    }
    Ok(out)
}

/// Appends values to a JSON Lines file through a buffer.
///
/// Dropping it flushes but swallows errors; call [`JsonlWriter::flush`] at the points where the
/// file must be complete on disk (end of run, before the checkers read it) to see them.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlWriter {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(JsonlWriter { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Writes one value as one line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, value).with_context(|| format!("write {}", self.path.display()))?;
        self.out.write_all(b"\n").with_context(|| format!("write {}", self.path.display()))?;
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().with_context(|| format!("flush {}", self.path.display()))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::SinkEvent;
    use crate::history::SinkKind;

    #[test]
    fn written_lines_read_back_and_bad_lines_name_their_number() {
        let path = std::env::temp_dir().join(format!(
            "taskraft-jsonl-{}-{:?}.jsonl",
            std::process::id(),
            std::thread::current().id()
        ));
        let events: Vec<SinkEvent> = (0..3)
            .map(|i| SinkEvent {
                time_ns: i,
                task_id: 1,
                attempt: 1,
                token: 2,
                event: SinkKind::Checkpoint { n: i },
                wf: None,
            })
            .collect();
        let mut w = JsonlWriter::create(&path).unwrap();
        for ev in &events {
            w.write(ev).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(read_jsonl::<SinkEvent>(&path).unwrap(), events);

        std::fs::write(&path, format!("{}\n\nnot json\n", serde_json::to_string(&events[0]).unwrap())).unwrap();
        let err = read_jsonl::<SinkEvent>(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
    }
}
