//! A worker as one round sees it: what it offers (from the replicated record) and what is
//! already promised on it (its live attempts, plus this round's placements).
//!
//! A resource a worker offers as 0 is *untracked* on that worker: it never limits placement
//! there. Workers that do not measure cpu or memory still take work by slots.

use super::super::state::State;
use super::super::task::TaskSpec;
use super::super::worker::WorkerInfo;

/// One candidate worker during a round.
#[derive(Debug, Clone)]
pub(super) struct Seat<'a> {
    pub(super) info: &'a WorkerInfo,
    /// Live attempts plus placements this round.
    pub(super) used_slots: u64,
    /// Millicores reserved by those attempts.
    pub(super) used_cpu: u64,
    /// MiB reserved by those attempts.
    pub(super) used_mem: u64,
}

impl<'a> Seat<'a> {
    /// The seat of `info`, accounting its live attempts in `state`.
    pub(super) fn of(state: &'a State, info: &'a WorkerInfo) -> Self {
        let mut seat = Seat { info, used_slots: 0, used_cpu: 0, used_mem: 0 };
        for id in state.live_tasks_on(&info.id) {
            seat.used_slots += 1;
            if let Some(task) = state.task(id) {
                seat.used_cpu += u64::from(task.spec.resources.cpu_millis);
                seat.used_mem += u64::from(task.spec.resources.memory_mib);
            }
        }
        seat
    }

    pub(super) fn id(&self) -> &'a str {
        &self.info.id
    }

    pub(super) fn slots(&self) -> u64 {
        u64::from(self.info.slots)
    }

    pub(super) fn free_slots(&self) -> u64 {
        self.slots().saturating_sub(self.used_slots)
    }

    /// Free millicores, `None` when the worker does not track cpu.
    pub(super) fn free_cpu(&self) -> Option<u64> {
        tracked(self.info.cpu_millis).map(|cap| cap.saturating_sub(self.used_cpu))
    }

    /// Free MiB, `None` when the worker does not track memory.
    pub(super) fn free_mem(&self) -> Option<u64> {
        tracked(self.info.memory_mib).map(|cap| cap.saturating_sub(self.used_mem))
    }

    pub(super) fn matches(&self, spec: &TaskSpec) -> bool {
        self.info.satisfies(&spec.constraints)
    }

    /// Could the worker hold the task's cpu if it ran nothing else?
    pub(super) fn cpu_capable(&self, spec: &TaskSpec) -> bool {
        tracked(self.info.cpu_millis).is_none_or(|cap| u64::from(spec.resources.cpu_millis) <= cap)
    }

    /// Could the worker hold the task's memory if it ran nothing else?
    pub(super) fn mem_capable(&self, spec: &TaskSpec) -> bool {
        tracked(self.info.memory_mib).is_none_or(|cap| u64::from(spec.resources.memory_mib) <= cap)
    }

    pub(super) fn cpu_fits(&self, spec: &TaskSpec) -> bool {
        self.free_cpu().is_none_or(|free| u64::from(spec.resources.cpu_millis) <= free)
    }

    pub(super) fn mem_fits(&self, spec: &TaskSpec) -> bool {
        self.free_mem().is_none_or(|free| u64::from(spec.resources.memory_mib) <= free)
    }

    /// Labels match, a slot is free, and the task's resources fit what is left.
    pub(super) fn fits(&self, spec: &TaskSpec) -> bool {
        self.free_slots() > 0 && self.cpu_fits(spec) && self.mem_fits(spec) && self.matches(spec)
    }

    /// Books the task on this seat for the rest of the round.
    pub(super) fn take(&mut self, spec: &TaskSpec) {
        assert!(self.fits(spec), "task placed on worker {} that does not fit it", self.info.id);
        self.used_slots += 1;
        self.used_cpu += u64::from(spec.resources.cpu_millis);
        self.used_mem += u64::from(spec.resources.memory_mib);
    }
}

fn tracked(capacity: u32) -> Option<u64> {
    (capacity > 0).then_some(u64::from(capacity))
}

/// Fixed-point unit of best-fit scores: a whole largest-worker's capacity of one resource.
pub(super) const SCALE: u128 = 1 << 20;

/// The largest cpu and memory offered among the round's candidates: best-fit measures leftovers
/// in these units, so millicores and MiB can be added without one drowning the other.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    max_cpu: u64,
    max_mem: u64,
}

impl Scale {
    pub(super) fn of(seats: &[Seat<'_>]) -> Self {
        let max_cpu = seats.iter().map(|s| u64::from(s.info.cpu_millis)).max().unwrap_or(0);
        let max_mem = seats.iter().map(|s| u64::from(s.info.memory_mib)).max().unwrap_or(0);
        Scale { max_cpu, max_mem }
    }

    /// What would be left of cpu and memory on `seat` after placing `spec`, each as a fraction of
    /// the largest candidate's capacity (× [`SCALE`]), summed. An untracked resource counts as a
    /// whole largest worker left over: it is the loosest fit there is.
    pub(super) fn leftover(&self, seat: &Seat<'_>, spec: &TaskSpec) -> u128 {
        let part = |free: Option<u64>, need: u32, max: u64| match free {
            _ if max == 0 => 0,
            None => SCALE,
            Some(free) => u128::from(free.saturating_sub(u64::from(need))) * SCALE / u128::from(max),
        };
        part(seat.free_cpu(), spec.resources.cpu_millis, self.max_cpu)
            + part(seat.free_mem(), spec.resources.memory_mib, self.max_mem)
    }
}
