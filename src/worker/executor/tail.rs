//! Bounded capture of a stream: only the last `cap` bytes are kept, however much is written, so
//! a chatty task can never make the worker grow without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of one read from a pipe or body.
const CHUNK_BYTES: usize = 8 * 1024;

/// The last `cap` bytes written, plus a count of everything written.
#[derive(Debug)]
pub(super) struct TailBuffer {
    buf: VecDeque<u8>,
    cap: usize,
    total: u64,
}

impl TailBuffer {
    /// An empty buffer keeping at most `cap` bytes. Memory grows only as data arrives.
    pub(super) fn new(cap: usize) -> Self {
        TailBuffer { buf: VecDeque::new(), cap, total: 0 }
    }

    /// Appends `data`, dropping the oldest bytes beyond the cap.
    pub(super) fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(data);
        assert!(self.buf.len() <= self.cap, "tail buffer holds {} bytes, over its cap {}", self.buf.len(), self.cap);
    }

    /// The kept bytes as text. When the start was cut, a partial UTF-8 sequence at the cut is
    /// skipped rather than shown as a replacement character; invalid bytes elsewhere become U+FFFD.
    pub(super) fn to_string_lossy(&self) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        let mut start = 0;
        if self.total > bytes.len() as u64 {
            while start < bytes.len().min(3) && bytes[start] & 0xC0 == 0x80 {
                start += 1;
            }
        }
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// A section of an output tail: a header naming the stream and how much was kept, then
    /// the text, ending in a newline. Empty when nothing was written.
    pub(super) fn section(&self, name: &str) -> String {
        if self.total == 0 {
            return String::new();
        }
        let kept = self.buf.len();
        let header = if self.total > kept as u64 {
            format!("--- {name} (last {kept} of {} bytes) ---\n", self.total)
        } else {
            format!("--- {name} ({kept} bytes) ---\n")
        };
        let mut text = self.to_string_lossy();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        header + &text
    }
}

/// The bytes of a live stream from one offset on, as [`LiveOutput::read_from`] answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSlice {
    /// Offset of `data`'s first byte in the stream.
    pub offset: u64,
    /// Bytes between the requested offset and `offset` were dropped (the buffer is bounded).
    pub gap: bool,
    /// The bytes (at most the requested maximum).
    pub data: Vec<u8>,
}

impl TailBuffer {
    /// Offset just after the last byte written.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// Up to `max` kept bytes from `offset` on (from the oldest kept byte if `offset` was dropped).
    fn read_from(&self, offset: u64, max: usize) -> LiveSlice {
        let first = self.total - self.buf.len() as u64;
        let from = offset.clamp(first, self.total);
        let skip = (from - first) as usize;
        let data: Vec<u8> = self.buf.range(skip..).take(max).copied().collect();
        LiveSlice { offset: from, gap: offset < first, data }
    }
}

/// An attempt's stdout and stderr as one stream, in the order the bytes arrived, bounded like a
/// [`TailBuffer`]: what the worker ships to the leader while the attempt runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveOutput(Arc<Mutex<TailBuffer>>);

impl LiveOutput {
    /// An empty stream keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        LiveOutput(Arc::new(Mutex::new(TailBuffer::new(cap))))
    }

    /// Appends bytes the process wrote.
    pub(super) fn push(&self, data: &[u8]) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(data);
    }

    /// Offset just after the last byte written.
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).total()
    }

    /// Up to `max` bytes from `offset` on; see [`LiveSlice`].
    pub fn read_from(&self, offset: u64, max: usize) -> LiveSlice {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).read_from(offset, max)
    }
}

/// A tail buffer shared between the task reading a pipe and the executor collecting the result,
/// so the executor can take what was read even if it has to abandon the reader.
pub(super) type SharedTail = Arc<Mutex<TailBuffer>>;

/// Locks a shared tail; a reader that panicked mid-push leaves consistent data, so poison is ignored.
pub(super) fn lock(tail: &SharedTail) -> std::sync::MutexGuard<'_, TailBuffer> {
    tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads `reader` to its end (or first error) into `tail`, and into the `live` stream if any.
pub(super) async fn capture(mut reader: impl AsyncRead + Unpin, tail: SharedTail, live: Option<LiveOutput>) {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                lock(&tail).push(&chunk[..n]);
                if let Some(live) = &live {
                    live.push(&chunk[..n]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let mut t = TailBuffer::new(5);
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.to_string_lossy(), "cdefg");
        t.push(b"0123456789");
        assert_eq!(t.to_string_lossy(), "56789");
        assert_eq!(t.section("stdout"), "--- stdout (last 5 of 17 bytes) ---\n56789\n");
    }

    #[test]
    fn cut_utf8_sequence_is_skipped() {
        let mut t = TailBuffer::new(4);
        t.push("xé€".as_bytes()); // 1 + 2 + 3 bytes: the cut lands inside 'é'
        assert_eq!(t.to_string_lossy(), "€");
    }

    #[test]
    fn live_output_reads_from_an_offset_and_reports_dropped_bytes() {
        let live = LiveOutput::new(4);
        live.push(b"ab");
        assert_eq!(live.read_from(0, 10), LiveSlice { offset: 0, gap: false, data: b"ab".to_vec() });
        live.push(b"cdef");
        assert_eq!(live.total(), 6);
        assert_eq!(live.read_from(0, 10), LiveSlice { offset: 2, gap: true, data: b"cdef".to_vec() });
        assert_eq!(live.read_from(3, 2), LiveSlice { offset: 3, gap: false, data: b"de".to_vec() });
        assert_eq!(live.read_from(6, 2), LiveSlice { offset: 6, gap: false, data: Vec::new() });
    }

    #[test]
    fn empty_stream_has_no_section() {
        assert_eq!(TailBuffer::new(4).section("stderr"), "");
    }
}
