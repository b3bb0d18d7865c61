//! Worker leases: last heartbeat per worker on the monotonic clock.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::proto::workers::WorkerLoad;

/// The leader's lease table. Cheap to lock: one short critical section per heartbeat.
pub struct Leases {
    ttl: Duration,
    last: Mutex<HashMap<String, Instant>>,
    /// Each worker's latest reported load (from its heartbeats; memory only, like the leases).
    loads: Mutex<HashMap<String, WorkerLoad>>,
    /// Workers whose latest heartbeat said they obey the `preempted` stop order.
    knows_preempted: Mutex<BTreeSet<String>>,
    /// Workers whose latest heartbeat said they obey the `migrated` stop order.
    knows_migrated: Mutex<BTreeSet<String>>,
}

impl Leases {
    /// An empty table with leases of `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
            knows_preempted: Mutex::new(BTreeSet::new()),
            knows_migrated: Mutex::new(BTreeSet::new()),
        }
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

    /// Records the load `worker` reported with its latest heartbeat.
    pub fn record_load(&self, worker: &str, mut load: WorkerLoad) {
        // A report is the worker's word: kept within its meaning whatever it says.
        load.cpu_busy = if load.cpu_busy.is_finite() { load.cpu_busy.clamp(0.0, 1.0) } else { 0.0 };
        load.mem_used_bytes = load.mem_used_bytes.min(load.mem_total_bytes);
        self.loads.lock().expect("load lock").insert(worker.to_string(), load);
    }

    /// Records whether `worker`'s latest heartbeat said it obeys the `preempted` stop order.
    pub fn record_knows_preempted(&self, worker: &str, knows: bool) {
        let mut set = self.knows_preempted.lock().expect("preempted lock");
        if knows {
            if !set.contains(worker) {
                set.insert(worker.to_string());
            }
        } else {
            set.remove(worker);
        }
    }

    /// Records whether `worker`'s latest heartbeat said it obeys the `migrated` stop order.
    pub fn record_knows_migrated(&self, worker: &str, knows: bool) {
        let mut set = self.knows_migrated.lock().expect("migrated lock");
        if knows {
            if !set.contains(worker) {
                set.insert(worker.to_string());
            }
        } else {
            set.remove(worker);
        }
    }

    /// Workers whose attempts may be migrated: their latest heartbeat to this leader said they
    /// obey the `migrated` stop order.
    pub fn knows_migrated(&self) -> BTreeSet<String> {
        self.knows_migrated.lock().expect("migrated lock").clone()
    }

    /// Workers whose attempts may be preempted: their latest heartbeat to this leader said they
    /// obey the `preempted` stop order.
    pub fn knows_preempted(&self) -> BTreeSet<String> {
        self.knows_preempted.lock().expect("preempted lock").clone()
    }

    /// Each worker's latest reported load (workers that reported none to this leader are absent).
    pub fn loads(&self) -> BTreeMap<String, WorkerLoad> {
        self.loads.lock().expect("load lock").iter().map(|(w, l)| (w.clone(), *l)).collect()
    }

    /// A new leader's grace: every worker's lease starts over now.
    pub fn grant_all(&self, workers: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        let mut last = self.last.lock().expect("lease lock");
        last.clear();
        last.extend(workers.into_iter().map(|w| (w, now)));
        // Loads heard by an earlier term of this node are stale.
        self.loads.lock().expect("load lock").clear();
        self.knows_preempted.lock().expect("preempted lock").clear();
        self.knows_migrated.lock().expect("migrated lock").clear();
    }

    /// Forgets a worker (lost or removed).
    pub fn forget(&self, worker: &str) {
        self.last.lock().expect("lease lock").remove(worker);
        self.loads.lock().expect("load lock").remove(worker);
        self.knows_preempted.lock().expect("preempted lock").remove(worker);
        self.knows_migrated.lock().expect("migrated lock").remove(worker);
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

    #[test]
    fn workers_that_know_the_preempted_order_are_those_whose_latest_heartbeat_said_so() {
        let leases = Leases::new(Duration::from_secs(3));
        leases.record_knows_preempted("a", true);
        leases.record_knows_preempted("b", true);
        leases.record_knows_preempted("c", false);
        assert_eq!(leases.knows_preempted(), BTreeSet::from(["a".to_string(), "b".to_string()]));
        // A worker downgraded (or restarted as an older build) says nothing any more.
        leases.record_knows_preempted("b", false);
        leases.forget("a");
        assert!(leases.knows_preempted().is_empty());
        leases.record_knows_preempted("c", true);
        leases.grant_all(["c".to_string()]);
        assert!(leases.knows_preempted().is_empty(), "a new term hears every worker again");
    }

    #[test]
    fn workers_that_know_the_migrated_order_are_those_whose_latest_heartbeat_said_so() {
        let leases = Leases::new(Duration::from_secs(3));
        leases.record_knows_migrated("a", true);
        leases.record_knows_migrated("b", true);
        leases.record_knows_preempted("c", true);
        assert_eq!(leases.knows_migrated(), BTreeSet::from(["a".to_string(), "b".to_string()]));
        leases.record_knows_migrated("b", false);
        leases.forget("a");
        assert!(leases.knows_migrated().is_empty());
        leases.record_knows_migrated("c", true);
        leases.grant_all(["c".to_string()]);
        assert!(leases.knows_migrated().is_empty(), "a new term hears every worker again");
    }

    #[test]
    fn loads_are_kept_in_range_and_forgotten_with_the_worker_or_the_term() {
        let leases = Leases::new(Duration::from_secs(3));
        let load = |cpu_busy, used| WorkerLoad { cpu_busy, mem_used_bytes: used, mem_total_bytes: 100 };
        leases.record_load("a", load(0.5, 40));
        leases.record_load("b", load(7.0, 400));
        leases.record_load("c", load(-1.0, 1));
        let loads = leases.loads();
        assert_eq!(loads["a"], load(0.5, 40));
        assert_eq!(loads["b"], load(1.0, 100));
        assert_eq!(loads["c"], load(0.0, 1));
        leases.forget("a");
        assert!(!leases.loads().contains_key("a"));
        leases.grant_all(["b".to_string()]);
        assert!(leases.loads().is_empty());
    }
}
