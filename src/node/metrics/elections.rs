//! Elections seen by this replica: term changes and leader changes.
//!
//! A scrape every 15 s would miss an election settled in between, so a small task follows
//! openraft's *server* metrics (vote, role, leader, membership: they change only on such
//! events, not on every append) and counts what it sees. Per replica, not cluster-wide: a
//! replica that was partitioned away sees fewer changes than one that voted in each.

use openraft::rt::watch::WatchReceiver;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::node::TypeConfig;

type ServerMetricsRx =
    openraft::type_config::alias::WatchReceiverOf<TypeConfig, openraft::metrics::RaftServerMetrics<TypeConfig>>;

/// The election counters.
#[derive(Debug, Clone)]
pub struct Elections {
    terms: Counter,
    leaders: Counter,
}

impl Elections {
    /// Creates and registers the counters.
    pub fn register(registry: &mut Registry) -> Self {
        let terms = Counter::default();
        registry.register(
            "taskraft_raft_term_changes",
            "Times this replica saw the term grow (elections started, won or not)",
            terms.clone(),
        );
        let leaders = Counter::default();
        registry.register(
            "taskraft_raft_leader_changes",
            "Times this replica learned of a new leader (the first one after start included)",
            leaders.clone(),
        );
        Elections { terms, leaders }
    }

    /// Counts changes until `shutdown`. Several changes between two wake-ups count once each
    /// only if the watch showed them; a term that jumped by more than one counts once.
    pub async fn follow(self, mut rx: ServerMetricsRx, shutdown: CancellationToken) {
        let (mut term, mut leader) = {
            let m = rx.borrow_and_update();
            (m.vote.leader_id().term, None)
        };
        loop {
            let (t, l) = {
                let m = rx.borrow_and_update();
                (m.vote.leader_id().term, m.current_leader)
            };
            if t > term {
                self.terms.inc();
                term = t;
            }
            if l.is_some() && l != leader {
                self.leaders.inc();
                leader = l;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}
