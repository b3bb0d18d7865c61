//! What a checker answers: a three-valued verdict, a one-line summary and JSON details, plus the
//! small collector every checker uses to keep its list of examples short.
//!
//! The verdict is three-valued because a history can be too incomplete to judge (the final read of
//! the healed cluster failed, nothing was observed): claiming `true` there would hide a run that
//! proved nothing, claiming `false` would cry wolf. `results.json` carries the verdict as JSON
//! `true` / `false` / `"unknown"`, the shape Jepsen users expect.

use serde::Serialize;
use serde::Serializer;
use serde_json::Value;

/// Examples kept per kind of violation: enough to start debugging, small enough that a run with a
/// systematic bug still writes a readable `results.json`.
pub const MAX_EXAMPLES: usize = 20;

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The property held on everything recorded.
    True,
    /// The history proves a violation.
    False,
    /// The history is too incomplete to decide.
    Unknown,
}

impl Validity {
    /// The harness's exit code for this verdict: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::True => 0,
            Validity::False => 1,
            Validity::Unknown => 2,
        }
    }

    /// The usual shape of a verdict: any proven violation wins, otherwise an input that could not be
    /// judged (`complete == false`) leaves the question open.
    pub fn from_findings(violations: usize, complete: bool) -> Validity {
        match (violations, complete) {
            (0, true) => Validity::True,
            (0, false) => Validity::Unknown,
            _ => Validity::False,
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::True => serializer.serialize_bool(true),
            Validity::False => serializer.serialize_bool(false),
            Validity::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

/// One checker's answer, as it appears in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The checker (`queue`, `reads`, `fencing`, `leaders`, `replicas`, `liveness`).
    pub name: &'static str,
    /// Its verdict.
    pub valid: Validity,
    /// One line for a human reading the console.
    pub summary: String,
    /// Counts and examples; the shape is each checker's own.
    pub details: Value,
}

/// Counts every violation of one kind and keeps the first [`MAX_EXAMPLES`] of them.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    count: usize,
    kept: Vec<Value>,
}

impl Examples {
    /// Records one violation; `example` is only built while there is room for it.
    pub fn push(&mut self, example: impl FnOnce() -> Value) {
        self.count += 1;
        if self.kept.len() < MAX_EXAMPLES {
            self.kept.push(example());
        }
    }

    /// How many were recorded (not just kept).
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept examples as a JSON array.
    pub fn to_json(&self) -> Value {
        Value::Array(self.kept.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validity_serializes_as_jepsen_does() {
        let all = [Validity::True, Validity::False, Validity::Unknown];
        assert_eq!(serde_json::to_value(all).unwrap(), json!([true, false, "unknown"]));
    }

    #[test]
    fn examples_count_everything_but_keep_few() {
        let mut ex = Examples::default();
        for i in 0..(MAX_EXAMPLES + 5) {
            ex.push(|| json!(i));
        }
        assert_eq!(ex.count(), MAX_EXAMPLES + 5);
        assert_eq!(ex.to_json().as_array().unwrap().len(), MAX_EXAMPLES);
    }

    #[test]
    fn findings_decide_the_verdict() {
        assert_eq!(Validity::from_findings(0, true), Validity::True);
        assert_eq!(Validity::from_findings(0, false), Validity::Unknown);
        assert_eq!(Validity::from_findings(2, false), Validity::False);
    }
}
