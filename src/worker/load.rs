//! The machine's load, as a worker reports it in its heartbeats: the CPU busy fraction since
//! the previous heartbeat (from `/proc/stat`) and the memory in use (from `/proc/meminfo`).
//!
//! The leader keeps the latest report in memory beside the lease (it is never replicated) and
//! shows it in `GET /v1/dashboard/leases`; migration off overloaded workers reads it.

use crate::proto::workers::WorkerLoad;

/// Cumulative CPU time of the whole machine, in clock ticks: the first `cpu` line of
/// `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every tick counted (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Ticks spent idle or waiting for I/O.
    pub idle: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`. `guest` and `guest_nice` are already
/// counted in `user` and `nice`, so they are left out of the total.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
    if fields.len() < 4 {
        return None;
    }
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total: fields.iter().sum(), idle })
}

/// `(total, used)` bytes from `/proc/meminfo`: used is `MemTotal - MemAvailable`.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
        line[key.len() + 1..].split_whitespace().next()?.parse::<u64>().ok()
    };
    let total = kib("MemTotal")?;
    let available = kib("MemAvailable")?;
    Some((total * 1024, total.saturating_sub(available) * 1024))
}

/// The busy fraction between two samples (0 when no tick passed).
pub fn busy_between(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let idle = after.idle.saturating_sub(before.idle).min(total);
    (total - idle) as f64 / total as f64
}

/// Samples the machine between heartbeats.
#[derive(Debug, Default)]
pub struct LoadSampler {
    previous: Option<CpuTimes>,
    /// `worker --load-file`: report what this file says instead.
    file: Option<std::path::PathBuf>,
}

/// The memory total reported with a load file's memory fraction (1 GiB: only the fraction
/// matters to the leader).
const LOAD_FILE_MEM_TOTAL: u64 = 1 << 30;

/// Parses a load file: "CPU MEM", two fractions from 0 to 1 (MEM may be left out: 0).
pub fn parse_load_file(text: &str) -> Option<WorkerLoad> {
    let mut words = text.split_whitespace();
    let cpu: f64 = words.next()?.parse().ok()?;
    let mem: f64 = words.next().map_or(Some(0.0), |w| w.parse().ok())?;
    let ok = |f: f64| f.is_finite() && (0.0..=1.0).contains(&f);
    if !ok(cpu) || !ok(mem) {
        return None;
    }
    let used = (mem * LOAD_FILE_MEM_TOTAL as f64).round() as u64;
    Some(WorkerLoad { cpu_busy: cpu, mem_used_bytes: used, mem_total_bytes: LOAD_FILE_MEM_TOTAL })
}

impl LoadSampler {
    /// A sampler of this machine, or of `file` when given (see [`parse_load_file`]).
    pub fn with_override(file: Option<std::path::PathBuf>) -> Self {
        LoadSampler { previous: None, file }
    }

    /// The load since the previous call. `None` on the first call (no interval yet) or where
    /// `/proc` cannot be read: the heartbeat then carries no load. With a load file, what it
    /// says now; while it is missing or malformed, the machine is sampled as usual.
    pub fn sample(&mut self) -> Option<WorkerLoad> {
        if let Some(path) = &self.file
            && let Some(load) = std::fs::read_to_string(path).ok().as_deref().and_then(parse_load_file)
        {
            return Some(load);
        }
        let now = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let before = self.previous.replace(now)?;
        let (mem_total_bytes, mem_used_bytes) = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
        Some(WorkerLoad { cpu_busy: busy_between(before, now), mem_used_bytes, mem_total_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 356 584 3699 23 23 0 0 0 0\ncpu0 1393 280 234 852 5 3 0 0 0 0\nintr 114930548\n";
    const MEMINFO: &str = "MemTotal:       16307140 kB\nMemFree:         1418296 kB\nMemAvailable:   12233860 kB\nBuffers:          571216 kB\n";

    #[test]
    fn the_aggregate_cpu_line_is_read_without_guest_time() {
        let t = parse_proc_stat(STAT).unwrap();
        assert_eq!(t, CpuTimes { total: 4705 + 356 + 584 + 3699 + 23 + 23, idle: 3699 + 23 });
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2 x 4\n"), None);
    }

    #[test]
    fn memory_used_is_total_minus_available() {
        let (total, used) = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(total, 16_307_140 * 1024);
        assert_eq!(used, (16_307_140 - 12_233_860) * 1024);
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), None);
    }

    #[test]
    fn busy_is_the_share_of_non_idle_ticks_in_the_interval() {
        let a = CpuTimes { total: 1000, idle: 800 };
        assert_eq!(busy_between(a, CpuTimes { total: 1100, idle: 825 }), 0.75);
        assert_eq!(busy_between(a, a), 0.0);
        assert_eq!(busy_between(a, CpuTimes { total: 1100, idle: 900 }), 0.0);
    }

    #[test]
    fn a_load_file_says_cpu_and_memory_fractions() {
        let l = parse_load_file("0.97 0.25\n").unwrap();
        assert_eq!(l.cpu_busy, 0.97);
        assert_eq!(l.mem_used_bytes as f64 / l.mem_total_bytes as f64, 0.25);
        assert_eq!(parse_load_file("0.1").unwrap().mem_used_bytes, 0);
        assert_eq!(parse_load_file(""), None);
        assert_eq!(parse_load_file("1.5 0"), None);
        assert_eq!(parse_load_file("x 0"), None);
        let dir = std::env::temp_dir().join(format!("taskraft-load-{}", std::process::id()));
        std::fs::write(&dir, "0.5 0.5").unwrap();
        let mut s = LoadSampler::with_override(Some(dir.clone()));
        assert_eq!(s.sample().unwrap().cpu_busy, 0.5, "a file is read from the first call on");
        std::fs::remove_file(&dir).unwrap();
        // Without the file, /proc again (whose first sample has no interval yet).
        assert_eq!(s.sample(), None);
    }

    #[test]
    fn this_machine_is_sampled_from_the_second_call_on() {
        let mut s = LoadSampler::default();
        assert!(s.sample().is_none());
        // Some work between the samples, so at least one tick may pass.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let load = s.sample().expect("/proc is readable on Linux");
        assert!((0.0..=1.0).contains(&load.cpu_busy), "{load:?}");
        assert!(load.mem_total_bytes > 0 && load.mem_used_bytes <= load.mem_total_bytes, "{load:?}");
    }
}
