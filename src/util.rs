//! Small helpers shared across modules.

/// Wall-clock milliseconds since the Unix epoch. Only the leader calls this, to stamp
/// commands before proposing them; `apply` never reads the clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
