//! How each strategy picks one worker among those that fit a task.
//!
//! Every chooser sees the fitting seats in worker-id order and breaks ties by the lower id, so a
//! choice depends only on the state, the round so far and the planner's memory:
//!
//! | strategy                         | picks                                                   |
//! |----------------------------------|---------------------------------------------------------|
//! | priority_fcfs, sjf, least_loaded | lowest `used_slots / slots`                             |
//! | best_fit                         | least cpu + memory left after placing, then fewest free slots |
//! | round_robin                      | the next worker id after the last one chosen, wrapping  |
//! | weighted_round_robin             | smooth weighted round-robin (nginx), weight = slots     |
//! | random                           | uniform, from a seeded xorshift64* generator            |
//! | consistent_hash                  | highest rendezvous hash of (key, worker id)             |
//!
//! The round-robin cursor and the weighted credits are shared by all tasks of that strategy and
//! survive across rounds; they only steer, so losing them with a leader change is harmless.

use std::collections::BTreeMap;

use super::super::task::{PlacementStrategy, TaskSpec};
use super::seat::{Scale, Seat};

/// The strategies' memory across rounds.
#[derive(Debug, Clone)]
pub(super) struct Chooser {
    rng: XorShift64Star,
    /// Id of the worker the last round-robin task went to.
    rr_cursor: Option<String>,
    /// Smooth weighted round-robin credit per worker.
    wrr_credit: BTreeMap<String, i64>,
}

impl Chooser {
    pub(super) fn new(seed: u64) -> Self {
        Chooser { rng: XorShift64Star::new(seed), rr_cursor: None, wrr_credit: BTreeMap::new() }
    }

    /// Drops the credits of workers that are no longer candidates, so the map stays as small as
    /// the cluster and a returning worker starts even.
    pub(super) fn forget_all_but(&mut self, seats: &[Seat<'_>]) {
        self.wrr_credit.retain(|id, _| seats.binary_search_by(|s| s.id().cmp(id.as_str())).is_ok());
    }

    /// One of `fitting` (indexes into `seats`, ascending, non-empty).
    pub(super) fn choose(
        &mut self,
        strategy: &PlacementStrategy,
        fitting: &[usize],
        seats: &[Seat<'_>],
        spec: &TaskSpec,
        scale: &Scale,
    ) -> usize {
        assert!(!fitting.is_empty(), "choose needs at least one fitting worker");
        match strategy {
            PlacementStrategy::PriorityFcfs | PlacementStrategy::ShortestJobFirst | PlacementStrategy::LeastLoaded => {
                least_loaded(fitting, seats)
            }
            PlacementStrategy::BestFit => best_fit(fitting, seats, spec, scale),
            PlacementStrategy::RoundRobin => self.round_robin(fitting, seats),
            PlacementStrategy::WeightedRoundRobin => self.weighted_round_robin(fitting, seats),
            PlacementStrategy::Random => fitting[self.rng.below(fitting.len())],
            PlacementStrategy::ConsistentHash { key } => {
                // Strictly greater keeps the lowest id on a (practically impossible) tie.
                let mut best = fitting[0];
                let mut best_hash = rendezvous_hash(key, seats[best].id());
                for &i in &fitting[1..] {
                    let h = rendezvous_hash(key, seats[i].id());
                    if h > best_hash {
                        (best, best_hash) = (i, h);
                    }
                }
                best
            }
        }
    }

    fn round_robin(&mut self, fitting: &[usize], seats: &[Seat<'_>]) -> usize {
        let after = |i: &&usize| self.rr_cursor.as_deref().is_none_or(|c| seats[**i].id() > c);
        let chosen = *fitting.iter().find(after).unwrap_or(&fitting[0]);
        self.rr_cursor = Some(seats[chosen].id().to_string());
        chosen
    }

    /// Every fitting worker earns its weight, the richest is chosen and pays the total. Over a
    /// stable set each worker is chosen in proportion to its weight, evenly spread.
    fn weighted_round_robin(&mut self, fitting: &[usize], seats: &[Seat<'_>]) -> usize {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for &i in fitting {
            let weight = i64::from(seats[i].info.slots);
            total += weight;
            let credit = self.wrr_credit.entry(seats[i].id().to_string()).or_insert(0);
            *credit += weight;
            if best.is_none_or(|(_, c)| *credit > c) {
                best = Some((i, *credit));
            }
        }
        let (chosen, _) = best.expect("fitting is not empty");
        *self.wrr_credit.get_mut(seats[chosen].id()).expect("credited above") -= total;
        chosen
    }
}

fn least_loaded(fitting: &[usize], seats: &[Seat<'_>]) -> usize {
    // a/b < c/d  ⇔  a·d < c·b for positive denominators (slots ≥ 1): exact, no floats.
    let load = |i: usize| (u128::from(seats[i].used_slots), u128::from(seats[i].slots().max(1)));
    *fitting
        .iter()
        .min_by(|&&a, &&b| {
            let ((ua, sa), (ub, sb)) = (load(a), load(b));
            (ua * sb).cmp(&(ub * sa))
        })
        .expect("fitting is not empty")
}

fn best_fit(fitting: &[usize], seats: &[Seat<'_>], spec: &TaskSpec, scale: &Scale) -> usize {
    *fitting
        .iter()
        .min_by_key(|&&i| (scale.leftover(&seats[i], spec), seats[i].free_slots()))
        .expect("fitting is not empty")
}

/// The rendezvous score of `worker_id` for `key`: FNV-1a 64 over `key`, one 0xFF byte (which
/// never occurs in UTF-8, so `("ab","c")` and `("a","bc")` differ) and `worker_id`, finished by
/// the SplitMix64 mixer because plain FNV barely stirs its last bytes. Fixed by this definition,
/// not by the Rust version or platform: a key keeps its worker across builds. The worker with
/// the highest score wins; adding a worker moves only the keys that the newcomer wins.
pub fn rendezvous_hash(key: &str, worker_id: &str) -> u64 {
    splitmix64_mix(fnv1a64(&[key.as_bytes(), &[0xFF], worker_id.as_bytes()]))
}

/// FNV-1a, 64 bits, over the concatenation of `parts`.
pub(super) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The SplitMix64 finalizer: a bijection that spreads every input bit over the output.
pub(super) fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Marsaglia's xorshift64 with Vigna's multiplicative output (xorshift64*): small, fast, and
/// good enough to spread tasks. Not for anything secret.
#[derive(Debug, Clone)]
pub(super) struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// Seeds through the SplitMix64 mixer so that small seeds (0, 1, 2, …) start far apart; the
    /// state must never be 0.
    pub(super) fn new(seed: u64) -> Self {
        let state = splitmix64_mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
        XorShift64Star { state: if state == 0 { 0x9e37_79b9_7f4a_7c15 } else { state } }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n` (multiply-shift; the bias is below 2⁻⁵⁰ for any cluster size).
    pub(super) fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0) has no answer");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}
