//! Election safety: at most one leader per term.
//!
//! Raft guarantees that a term elects at most one leader; two leaders in one term would let two
//! histories be committed. The harness polls every replica's view of (term, role, leader) often,
//! and every observation is a claim:
//! 1. a replica answering `role == "leader"` claims itself as the leader of its term;
//! 2. a replica naming `leader_id = l` claims `l` as the leader of its term.
//!
//! Claims are grouped by term; a term with two different claimed leaders is a violation, whatever
//! the times of the observations (a term never comes back). Sparse polling can miss a second
//! leader, so `true` means "none observed"; no observations at all is `unknown`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::LeaderObs;

/// This checker's name in `results.json`.
pub const NAME: &str = "leaders";

/// Judges election safety (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    // term → claimed leader → first observation that claimed it (the witness for the report).
    let mut claims: BTreeMap<u64, BTreeMap<u64, &LeaderObs>> = BTreeMap::new();
    let mut terms = BTreeSet::new();
    for o in inputs.leaders {
        terms.insert(o.term);
        let by_self = (o.role == "leader").then_some(o.node);
        for leader in by_self.into_iter().chain(o.leader_id) {
            claims.entry(o.term).or_default().entry(leader).or_insert(o);
        }
    }

    let mut conflicts = Examples::default();
    for (term, leaders) in claims.iter().filter(|(_, l)| l.len() > 1) {
        let witnesses: Vec<_> = leaders.iter().map(|(id, obs)| json!({ "leader": id, "observed": obs })).collect();
        conflicts
            .push(|| json!({ "term": term, "leaders": leaders.keys().collect::<Vec<_>>(), "witnesses": witnesses }));
    }

    let observed = !inputs.leaders.is_empty();
    let valid = Validity::from_findings(conflicts.count(), observed);
    let summary = if observed {
        format!(
            "{} observations over {} terms ({} with a known leader): {} terms with two leaders",
            inputs.leaders.len(),
            terms.len(),
            claims.len(),
            conflicts.count()
        )
    } else {
        "no leader observations".to_string()
    };
    let details = json!({
        "observations": inputs.leaders.len(),
        "terms": terms.len(),
        "terms_with_leader": claims.len(),
        "conflicting_terms": conflicts.count(),
        "examples": conflicts.to_json(),
    });
    CheckResult { name: NAME, valid, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, obs};

    fn run(leaders: Vec<LeaderObs>) -> CheckResult {
        let mut fx = Fixture::new(&Hist::new(), vec![]);
        fx.leaders = leaders;
        check(&fx.inputs())
    }

    #[test]
    fn one_leader_per_term_is_valid() {
        let r = run(vec![
            obs(1, 1, "leader", Some(1)),
            obs(2, 1, "follower", Some(1)),
            obs(3, 1, "follower", None),
            obs(2, 2, "candidate", None),
            obs(2, 3, "leader", Some(2)),
            obs(1, 3, "follower", Some(2)),
        ]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((r.details["terms"].as_u64(), r.details["terms_with_leader"].as_u64()), (Some(3), Some(2)));
    }

    #[test]
    fn two_self_declared_leaders_in_one_term_are_invalid() {
        let r = run(vec![obs(1, 4, "leader", Some(1)), obs(2, 4, "leader", Some(2))]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["examples"][0]["leaders"], json!([1, 2]));
    }

    #[test]
    fn followers_naming_different_leaders_in_one_term_are_invalid() {
        let r = run(vec![obs(1, 4, "follower", Some(2)), obs(3, 4, "follower", Some(1))]);
        assert_eq!(r.valid, Validity::False);
    }

    #[test]
    fn a_leader_naming_someone_else_conflicts_with_itself() {
        let r = run(vec![obs(1, 4, "leader", Some(2))]);
        assert_eq!(r.valid, Validity::False);
    }

    #[test]
    fn same_leader_in_different_terms_and_different_leaders_across_terms_are_fine() {
        let r = run(vec![obs(1, 1, "leader", None), obs(2, 2, "leader", None), obs(1, 3, "leader", None)]);
        assert_eq!(r.valid, Validity::True);
    }

    #[test]
    fn no_observations_is_unknown() {
        assert_eq!(run(vec![]).valid, Validity::Unknown);
    }
}
