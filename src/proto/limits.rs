//! `/v1/limits…`: cluster-wide concurrency limits.
//!
//! A task that carries `concurrency_key: K` runs only while fewer than `max_running` tasks
//! with key `K` hold a permit. Answers are [`LimitView`]s: the key, its maximum (absent for a
//! key in use without a limit) and the tasks holding its permits.

use serde::Deserialize;
use serde::Serialize;

pub use crate::scheduler::LimitView;
pub use crate::scheduler::limit::MAX_LIMIT_RUNNING;

/// Longest concurrency key, in bytes (the same bound as a task's `concurrency_key`).
pub const MAX_LIMIT_KEY_BYTES: usize = crate::scheduler::MAX_KEY_BYTES;

/// Body of `PUT /v1/limits/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    /// Most tasks with this key running at once, 0 to 1 000 000. 0 holds every task with the
    /// key; lowering it below the running count stops nobody, it only holds new ones back.
    pub max_running: u32,
}

/// Answer of `GET /v1/limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitList {
    /// Every limit, and every key in use without one, in key order.
    pub limits: Vec<LimitView>,
}

/// The path of the limit of `key`: `/v1/limits/<key, percent-encoded>`. Keys are free text, so
/// everything but unreserved characters is escaped (a `/` or `?` in a key stays in the key).
pub fn limit_path(key: &str) -> String {
    let mut path = String::from("/v1/limits/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_paths_escape_all_but_unreserved_characters() {
        assert_eq!(limit_path("db-backup_1.x~"), "/v1/limits/db-backup_1.x~");
        assert_eq!(limit_path("a/b?c d%"), "/v1/limits/a%2Fb%3Fc%20d%25");
        assert_eq!(limit_path("é"), "/v1/limits/%C3%A9");
    }
}
