//! Worker leases: last heartbeat per worker on the monotonic clock.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The leader's lease table. Cheap to lock: one short critical section per heartbeat.
pub struct Leases {
    ttl: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Leases {
    /// An empty table with leases of `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, last: Mutex::new(HashMap::new()) }
    }

    /// The lease length.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Renews `worker`'s lease from now.
    pub fn renew(&self, worker: &str) {
        let mut last = self.last.lock().expect("lease lock");
        match last.get_mut(worker) {
            Some(at) => *at = Instant::now(),
            None => {
                last.insert(worker.to_string(), Instant::now());
            }
        }
    }

    /// A new leader's grace: every worker's lease starts over now.
    pub fn grant_all(&self, workers: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        let mut last = self.last.lock().expect("lease lock");
        last.clear();
        last.extend(workers.into_iter().map(|w| (w, now)));
    }

    /// Forgets a worker (lost or removed).
    pub fn forget(&self, worker: &str) {
        self.last.lock().expect("lease lock").remove(worker);
    }

    /// Workers whose lease is still valid.
    pub fn live(&self) -> BTreeSet<String> {
        let now = Instant::now();
        let last = self.last.lock().expect("lease lock");
        last.iter().filter(|(_, at)| now.duration_since(**at) < self.ttl).map(|(w, _)| w.clone()).collect()
    }

    /// How long ago each worker was last heard from (the dashboard shows it).
    pub fn ages(&self) -> BTreeMap<String, Duration> {
        let now = Instant::now();
        let last = self.last.lock().expect("lease lock");
        last.iter().map(|(w, at)| (w.clone(), now.duration_since(*at))).collect()
    }

    /// Workers whose lease has run out (and how long ago they were last heard from).
    pub fn expired(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        let last = self.last.lock().expect("lease lock");
        last.iter()
            .map(|(w, at)| (w.clone(), now.duration_since(*at)))
            .filter(|(_, silent)| *silent >= self.ttl)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leases_expire_after_the_ttl_and_renewals_extend_them() {
        let leases = Leases::new(Duration::from_secs(3));
        leases.grant_all(["a".to_string(), "b".to_string()]);
        tokio::time::advance(Duration::from_secs(2)).await;
        leases.renew("a");
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(leases.live(), BTreeSet::from(["a".to_string()]));
        let expired: Vec<String> = leases.expired().into_iter().map(|(w, _)| w).collect();
        assert_eq!(expired, vec!["b".to_string()]);
        leases.forget("b");
        assert!(leases.expired().is_empty());
    }
}
