//! Faults: what the nemesis does, when, and how it heals.
//!
//! 1. [`schedule`] turns a seed into a fixed list of [`Step`]s: every `interval` one fault of one
//!    of the selected families starts, with a variant and a random "pick" decided up front, and
//!    stops after its own duration. The same seed gives the same schedule; targets named by role
//!    ("the leader") are resolved when the step runs, from the pick and the sorted member list.
//! 2. [`run`] plays the schedule against the [`Cluster`], recording every start and stop in the
//!    history as nemesis operations (`invoke` when about to act, `info` once done, with a
//!    detail naming the targets), so the report can shade the fault windows.
//! 3. [`heal_all`] undoes everything: flushes the iptables chain, resets clocks, resumes paused
//!    processes, restarts killed ones.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::cluster::replica_ip;
use crate::cluster::worker_ip;
use crate::history::Body;
use crate::history::NemesisValue;
use crate::history::OpType;
use crate::history::Process;
use crate::ns;
use crate::workload::Shared;

/// A fault family, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// SIGKILL the leader, a random replica or a majority; restart at the end of the window.
    Kill,
    /// SIGSTOP the leader or a random replica past the election timeout; SIGCONT at the end.
    Pause,
    /// iptables cuts: isolate the leader, majority/minority, bridge, ring, or a worker from every
    /// replica.
    Partition,
    /// Random packet loss on every replica's traffic.
    Loss,
    /// Remove a voter and add a fresh replica, sometimes while a node is cut off.
    Membership,
    /// Skew the wall clock of a replica (libfaketime); the monotonic clock is untouched.
    Clock,
    /// SIGKILL a worker; restart it at the end.
    WorkerKill,
    /// SIGSTOP a worker past its lease; SIGCONT at the end.
    WorkerPause,
}

impl Family {
    /// Every family, in command-line order.
    pub const ALL: [Family; 8] = [
        Family::Kill,
        Family::Pause,
        Family::Partition,
        Family::Loss,
        Family::Membership,
        Family::Clock,
        Family::WorkerKill,
        Family::WorkerPause,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Partition => "partition",
            Family::Loss => "loss",
            Family::Membership => "membership",
            Family::Clock => "clock",
            Family::WorkerKill => "worker-kill",
            Family::WorkerPause => "worker-pause",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Family::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
            format!("unknown nemesis `{s}`; expected one of: {}, or `all`, or `none`", names.join(", "))
        })
    }
}

/// Parses `kill,pause`, `all` or `none`.
pub fn parse_list(s: &str) -> Result<Vec<Family>, String> {
    match s.trim() {
        "all" => Ok(Family::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => {
            let set: BTreeSet<Family> = list.split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>()?;
            Ok(set.into_iter().collect())
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When it starts, from the beginning of the run.
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Which family.
    pub family: Family,
    /// Which variant of the family (leader / random / majority, …).
    pub variant: u32,
    /// Random number that picks targets among the sorted candidates.
    pub pick: u64,
}

/// The fault schedule of a run: one fault every `interval`, the last one stopping before
/// `time_limit`. Families rotate in a seeded order.
pub fn schedule(seed: u64, families: &[Family], time_limit: Duration, interval: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    if families.is_empty() {
        return steps;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order = families.to_vec();
    order.shuffle(&mut rng);
    // A short warm-up first, so the history has a baseline without faults.
    let mut at = Duration::from_secs(2).min(interval);
    let mut i = 0usize;
    loop {
        let family = order[i % order.len()];
        i += 1;
        let (lo, hi) = match family {
            // Past the 3 s worker lease, so the worker is declared lost while paused.
            Family::WorkerPause => (4.5, 7.0),
            Family::Membership => (3.0, 5.0),
            _ => (0.35, 0.65),
        };
        let secs = if lo < 1.0 { interval.as_secs_f64() * rng.gen_range(lo..hi) } else { rng.gen_range(lo..hi) };
        let duration = Duration::from_secs_f64(secs.max(1.0));
        if at + duration + Duration::from_secs(1) > time_limit {
            break;
        }
        steps.push(Step { at, duration, family, variant: rng.r#gen(), pick: rng.r#gen() });
        at += interval.max(duration + Duration::from_secs(1));
    }
    steps
}

/// What is currently broken, so the stop phase can undo it.
enum Active {
    Killed(Vec<u64>),
    Paused(Vec<u64>),
    Net,
    Clock,
    WorkerKilled(u32),
    WorkerPaused(u32),
    /// A voter was removed (maybe under a partition); the stop phase heals and adds a replica.
    Membership,
    Nothing,
}

/// Plays `steps` until they run out or `stop` is cancelled, then heals everything.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    shared: Arc<Shared>,
    steps: Vec<Step>,
    target_size: usize,
    epoch: Instant,
    stop: CancellationToken,
) {
    for step in steps {
        tokio::select! {
            _ = tokio::time::sleep_until(epoch + step.at) => {}
            _ = stop.cancelled() => break,
        }
        let family = step.family.name();
        record(&shared, OpType::Invoke, family, "start", "");
        let (active, detail) = {
            let mut c = cluster.lock().await;
            match start(&mut c, &shared, &step, target_size).await {
                Ok(x) => x,
                Err(e) => (Active::Nothing, format!("could not start: {e:#}")),
            }
        };
        record(&shared, OpType::Info, family, "start", &detail);
        tokio::select! {
            _ = tokio::time::sleep_until(epoch + step.at + step.duration) => {}
            _ = stop.cancelled() => {}
        }
        record(&shared, OpType::Invoke, family, "stop", "");
        let detail = {
            let mut c = cluster.lock().await;
            match finish(&mut c, &shared, active, target_size).await {
                Ok(d) => d,
                Err(e) => format!("could not heal: {e:#}"),
            }
        };
        record(&shared, OpType::Info, family, "stop", &detail);
        if stop.is_cancelled() {
            break;
        }
    }
}

fn record(shared: &Shared, kind: OpType, fault: &str, phase: &str, detail: &str) {
    let body = Body::Nemesis(NemesisValue { fault: fault.into(), phase: phase.into(), detail: detail.into() });
    shared.rec.record(Process::Nemesis, None, kind, body, None);
}

fn pick<T: Copy>(items: &[T], pick: u64) -> Option<T> {
    if items.is_empty() { None } else { Some(items[(pick % items.len() as u64) as usize]) }
}

fn names(ids: &[u64]) -> String {
    ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>().join(",")
}

async fn start(c: &mut Cluster, shared: &Shared, step: &Step, target_size: usize) -> anyhow::Result<(Active, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(step.pick);
    let live = c.live();
    match step.family {
        Family::Kill => {
            let (targets, how) = match step.variant % 3 {
                0 => match c.leader().await {
                    Some(l) => (vec![l], "leader"),
                    None => (pick(&live, step.pick).into_iter().collect(), "random (no leader known)"),
                },
                1 => (pick(&live, step.pick).into_iter().collect(), "random"),
                _ => {
                    let mut all = live.clone();
                    all.shuffle(&mut rng);
                    all.truncate(live.len() / 2 + 1);
                    all.sort();
                    (all, "majority")
                }
            };
            for &t in &targets {
                c.kill(t);
            }
            Ok((Active::Killed(targets.clone()), format!("kill {how} {}", names(&targets))))
        }
        Family::Pause => {
            let (target, how) = match step.variant % 2 {
                0 => (c.leader().await, "leader"),
                _ => (pick(&live, step.pick), "random"),
            };
            let Some(t) = target.or_else(|| pick(&live, step.pick)) else { bail!("nothing to pause") };
            c.pause(t, true);
            Ok((Active::Paused(vec![t]), format!("pause {how} n{t}")))
        }
        Family::Partition if step.variant % 5 == 4 => {
            // A worker cut off from every replica: it keeps running, must fence itself off
            // (stop its processes) and see its tasks resume elsewhere.
            let Some(w) = pick(&c.workers(), step.pick) else { bail!("no workers") };
            let wip = worker_ip(w).to_string();
            for id in c.members() {
                let rip = replica_ip(id).to_string();
                ns::iptables(&["-A", ns::CHAIN, "-s", &wip, "-d", &rip, "-j", "DROP"])?;
                ns::iptables(&["-A", ns::CHAIN, "-s", &rip, "-d", &wip, "-j", "DROP"])?;
            }
            Ok((Active::Net, format!("partition isolate worker w{w} from every replica")))
        }
        Family::Partition => {
            let leader = c.leader().await;
            let (cuts, desc) = partition_shape(&live, leader, step.variant, &mut rng);
            apply_cuts(&cuts)?;
            Ok((Active::Net, format!("partition {desc}")))
        }
        Family::Loss => {
            let p = rng.gen_range(0.1..0.3);
            for &id in &c.members() {
                let ip = replica_ip(id).to_string();
                let p = format!("{p:.2}");
                ns::iptables(&[
                    "-A",
                    ns::CHAIN,
                    "-s",
                    &ip,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ])?;
            }
            Ok((Active::Net, format!("loss {:.0}% on every replica", p * 100.0)))
        }
        Family::Clock => {
            let mut detail = Vec::new();
            let targets = match step.variant % 3 {
                0 => c.leader().await.into_iter().collect(),
                1 => pick(&live, step.pick).into_iter().collect(),
                _ => live.clone(),
            };
            for t in targets {
                let secs: i64 = rng.gen_range(2..60) * if rng.gen_bool(0.5) { 1 } else { -1 };
                c.set_clock_offset(t, secs)?;
                detail.push(format!("n{t} {secs:+}s"));
            }
            Ok((Active::Clock, format!("clock skew {}", detail.join(", "))))
        }
        Family::WorkerKill => {
            let Some(w) = pick(&c.workers(), step.pick) else { bail!("no workers") };
            c.kill_worker(w);
            Ok((Active::WorkerKilled(w), format!("kill worker w{w}")))
        }
        Family::WorkerPause => {
            let Some(w) = pick(&c.workers(), step.pick) else { bail!("no workers") };
            c.pause_worker(w, true);
            Ok((Active::WorkerPaused(w), format!("pause worker w{w}")))
        }
        Family::Membership => membership_start(c, shared, step, target_size, &mut rng).await,
    }
}

/// Directed links to cut, and a description like `{1} | {2,3}`.
fn partition_shape(live: &[u64], leader: Option<u64>, variant: u32, rng: &mut ChaCha8Rng) -> (Vec<(u64, u64)>, String) {
    let mut nodes = live.to_vec();
    nodes.shuffle(rng);
    let both = |a: &[u64], b: &[u64]| {
        let mut cuts = Vec::new();
        for &x in a {
            for &y in b {
                cuts.push((x, y));
                cuts.push((y, x));
            }
        }
        cuts
    };
    let set = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort();
        format!("{{{}}}", v.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
    };
    match variant % 4 {
        0 if leader.is_some() => {
            let l = leader.unwrap_or_default();
            let rest: Vec<u64> = live.iter().copied().filter(|&x| x != l).collect();
            (both(&[l], &rest), format!("isolate leader {} | {}", set(&[l]), set(&rest)))
        }
        2 if nodes.len() >= 3 => {
            let bridge = nodes[0];
            let half = (nodes.len() - 1).div_ceil(2);
            let (a, b) = nodes[1..].split_at(half);
            (both(a, b), format!("bridge {} <n{bridge}> {}", set(a), set(b)))
        }
        3 if nodes.len() >= 4 => {
            // Ring: each node keeps only its two neighbours.
            let n = nodes.len();
            let mut cuts = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    let d = (i + n - j) % n;
                    if i != j && d != 1 && d != n - 1 {
                        cuts.push((nodes[i], nodes[j]));
                    }
                }
            }
            let ring: Vec<String> = nodes.iter().map(|x| x.to_string()).collect();
            (cuts, format!("ring {}", ring.join("-")))
        }
        _ => {
            let minority = nodes.len() / 2;
            let (a, b) = nodes.split_at(minority.max(1));
            (both(a, b), format!("majority/minority {} | {}", set(a), set(b)))
        }
    }
}

fn apply_cuts(cuts: &[(u64, u64)]) -> anyhow::Result<()> {
    for &(from, to) in cuts {
        let (s, d) = (replica_ip(from).to_string(), replica_ip(to).to_string());
        ns::iptables(&["-A", ns::CHAIN, "-s", &s, "-d", &d, "-j", "DROP"])?;
    }
    Ok(())
}

async fn membership_start(
    c: &mut Cluster,
    shared: &Shared,
    step: &Step,
    target_size: usize,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(Active, String)> {
    // A removal left unknown by an earlier step is finished first: the cluster may still be in
    // the joint configuration it left, which the next change would silently drop.
    let mut detail = String::new();
    for id in settle_removals(c, shared, Duration::from_secs(5)).await {
        detail.push_str(&format!("removal of n{id} settled; "));
    }
    let members = c.members();
    if members.len() < target_size {
        detail.push_str("no removal (below size, will add)");
        return Ok((Active::Membership, detail));
    }
    let live = c.live();
    let leader = c.leader().await;
    // Variant 1: cut one node off first, so the change happens during a partition.
    if step.variant % 3 == 1 {
        let cut = pick(&live, rng.r#gen()).unwrap_or(1);
        let rest: Vec<u64> = live.iter().copied().filter(|&x| x != cut).collect();
        let mut cuts = Vec::new();
        for &r in &rest {
            cuts.push((cut, r));
            cuts.push((r, cut));
        }
        apply_cuts(&cuts)?;
        detail.push_str(&format!("isolate n{cut}; "));
    }
    let target = match step.variant % 3 {
        2 => leader.or_else(|| pick(&members, step.pick)),
        _ => pick(&members, step.pick),
    };
    let Some(target) = target else { bail!("no member to remove") };
    let via: Vec<u64> = live.iter().copied().filter(|&x| x != target).collect();
    let via = pick(&via, rng.r#gen()).unwrap_or(target);
    match c.remove_member(via, target).await {
        Ok((status, _)) if (200..300).contains(&status) => {
            c.retire(target);
            shared.members.lock().unwrap().retain(|&m| m != target);
            detail.push_str(&format!("removed n{target} via n{via}"));
        }
        Ok((status, body)) => {
            // A 5xx (504 `outcome_unknown` through a cut-off node) may still commit later;
            // a 4xx is a refusal.
            if status >= 500 {
                c.removal_unknown(target);
            }
            detail.push_str(&format!("remove n{target} via n{via}: {status} {}", body.trim()))
        }
        Err(e) => {
            c.removal_unknown(target);
            detail.push_str(&format!("remove n{target} via n{via}: {e}"))
        }
    }
    Ok((Active::Membership, detail))
}

async fn finish(c: &mut Cluster, shared: &Shared, active: Active, target_size: usize) -> anyhow::Result<String> {
    match active {
        Active::Killed(ids) => {
            for &id in &ids {
                c.restart(id)?;
            }
            Ok(format!("restarted {}", names(&ids)))
        }
        Active::Paused(ids) => {
            for &id in &ids {
                c.pause(id, false);
            }
            Ok(format!("resumed {}", names(&ids)))
        }
        Active::Net => {
            ns::iptables(&["-F", ns::CHAIN])?;
            Ok("healed network".into())
        }
        Active::Clock => {
            c.reset_clocks()?;
            Ok("clocks reset".into())
        }
        Active::WorkerKilled(w) => {
            c.restart_worker(w)?;
            Ok(format!("restarted worker w{w}"))
        }
        Active::WorkerPaused(w) => {
            c.pause_worker(w, false);
            Ok(format!("resumed worker w{w}"))
        }
        Active::Membership => {
            ns::iptables(&["-F", ns::CHAIN])?;
            membership_refill(c, shared, target_size).await
        }
        Active::Nothing => Ok("nothing to undo".into()),
    }
}

/// [`Cluster::settle_removals`], and the clients stop using the members it retired.
async fn settle_removals(c: &mut Cluster, shared: &Shared, limit: Duration) -> Vec<u64> {
    let retired = c.settle_removals(limit).await;
    shared.members.lock().unwrap().retain(|m| !retired.contains(m));
    retired
}

/// Adds fresh replicas until the cluster has `target_size` members again, waiting (bounded) for
/// each to become a voter.
async fn membership_refill(c: &mut Cluster, shared: &Shared, target_size: usize) -> anyhow::Result<String> {
    let mut detail = Vec::new();
    // A removal that timed out may have committed since the network healed: the cluster, not
    // the request's answer, says whether that member is gone.
    for id in settle_removals(c, shared, Duration::from_secs(10)).await {
        detail.push(format!("removal of n{id} settled (its outcome had been unknown)"));
    }
    while c.members().len() < target_size {
        let id = c.add_replica()?;
        let want: Vec<u64> = c.members();
        match c.wait_members(&want, Duration::from_secs(30)).await {
            Ok(()) => {
                shared.members.lock().unwrap().push(id);
                detail.push(format!("added n{id}"));
            }
            Err(e) => {
                // Still let clients use it: it may finish joining later.
                shared.members.lock().unwrap().push(id);
                detail.push(format!("n{id} not a voter yet: {e:#}"));
                break;
            }
        }
    }
    if detail.is_empty() {
        detail.push("nothing to add".into());
    }
    Ok(detail.join("; "))
}

/// Undoes every fault: network, clocks, paused and killed processes, membership size.
pub async fn heal_all(cluster: &Arc<Mutex<Cluster>>, shared: &Shared, target_size: usize) -> anyhow::Result<()> {
    let mut c = cluster.lock().await;
    ns::iptables(&["-F", ns::CHAIN])?;
    c.reset_clocks()?;
    c.revive_all()?;
    // Also settles removals whose outcome was unknown, before the final checks count members.
    membership_refill(&mut c, shared, target_size).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_faults_stop_before_the_end() {
        let fams = Family::ALL.to_vec();
        let a = schedule(7, &fams, Duration::from_secs(60), Duration::from_secs(8));
        let b = schedule(7, &fams, Duration::from_secs(60), Duration::from_secs(8));
        let c = schedule(8, &fams, Duration::from_secs(60), Duration::from_secs(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() >= 5, "{a:?}");
        for s in &a {
            assert!(s.at + s.duration < Duration::from_secs(60));
        }
        for w in a.windows(2) {
            assert!(w[0].at + w[0].duration <= w[1].at, "faults overlap: {w:?}");
        }
    }

    #[test]
    fn parse_list_accepts_all_none_and_names() {
        assert_eq!(parse_list("all").unwrap().len(), 8);
        assert!(parse_list("none").unwrap().is_empty());
        assert_eq!(parse_list("kill,worker-pause").unwrap(), vec![Family::Kill, Family::WorkerPause]);
        assert!(parse_list("kil").unwrap_err().contains("unknown nemesis `kil`"));
    }

    #[test]
    fn partition_shapes_cut_the_right_links() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (cuts, desc) = partition_shape(&[1, 2, 3], Some(2), 0, &mut rng);
        assert!(desc.starts_with("isolate leader {2}"), "{desc}");
        assert_eq!(cuts.len(), 4);
        assert!(cuts.iter().all(|&(a, b)| a == 2 || b == 2));
        let (cuts, desc) = partition_shape(&[1, 2, 3, 4, 5], None, 3, &mut rng);
        assert!(desc.starts_with("ring"), "{desc}");
        // Each of 5 nodes loses 2 of its 4 peers, in both directions: 5 * 2 directed cuts.
        assert_eq!(cuts.len(), 10);
        let (cuts, desc) = partition_shape(&[1, 2, 3, 4, 5], None, 2, &mut rng);
        assert!(desc.starts_with("bridge"), "{desc}");
        assert_eq!(cuts.len(), 2 * 2 * 2);
    }
}
