//! Many runs: each nemesis family on its own, `runs` times with consecutive seeds.
//!
//! Kill, partition and membership alternate between the base size and 5 replicas. The verdict of the suite is the worst verdict of its runs (invalid > unknown > valid). A
//! failing run keeps its directory and prints its seed, so `taskraft-jepsen run --nemesis F
//! --seed S` replays the same fault schedule. `suite.json` in the store lists every run.

use std::time::Instant;

use serde::Serialize;

use crate::checkers::Validity;
use crate::nemesis::Family;
use crate::run::RunOptions;
use crate::run::run;

#[derive(Serialize)]
struct SuiteRun {
    family: String,
    seed: u64,
    nodes: usize,
    valid: Validity,
    dir: String,
    seconds: f64,
    /// What retention forgot in the run (from its `results.json`).
    retention: Option<crate::report::Retention>,
}

/// The `retention` part of a run's `results.json`, if it has one.
fn retention_of(dir: &str) -> Option<crate::report::Retention> {
    let text = std::fs::read(std::path::Path::new(dir).join(crate::report::RESULTS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    serde_json::from_value(v.get("retention")?.clone()).ok()
}

/// Runs every family in `families` `runs` times; returns the worst verdict.
pub async fn suite(base: &RunOptions, families: &[Family], runs: u32) -> anyhow::Result<Validity> {
    let mut all = Vec::new();
    for &family in families {
        for k in 0..runs {
            // Every other run of the families whose shapes depend on cluster size uses 5 replicas
            // (ring partitions, two-node minorities, a 3-node majority to kill).
            let five = k % 2 == 1 && matches!(family, Family::Partition | Family::Membership | Family::Kill);
            let nodes = if five { 5 } else { base.nodes };
            let opts = RunOptions { nemesis: vec![family], seed: base.seed + u64::from(k), nodes, ..base.clone() };
            let started = Instant::now();
            let (valid, dir) = match run(&opts).await {
                Ok(o) => (o.valid, o.dir.display().to_string()),
                Err(e) => {
                    eprintln!("run {family} seed {} failed to complete: {e:#}", opts.seed);
                    (Validity::Unknown, String::new())
                }
            };
            let retention = retention_of(&dir);
            println!(
                "== {family} run {}/{runs} seed {} ({nodes} replicas): {valid:?}; retention {}",
                k + 1,
                opts.seed,
                retention.as_ref().map_or("unknown".to_string(), |r| r.text())
            );
            all.push(SuiteRun {
                family: family.name().into(),
                seed: opts.seed,
                nodes,
                valid,
                dir,
                seconds: started.elapsed().as_secs_f64(),
                retention,
            });
            std::fs::create_dir_all(&base.store)?;
            std::fs::write(base.store.join("suite.json"), serde_json::to_vec_pretty(&all)?)?;
        }
    }
    println!("\nsuite summary (valid / invalid / unknown per family; tasks / reads forgotten):");
    for &family in families {
        let runs = || all.iter().filter(|r| r.family == family.name());
        let of = |v: Validity| runs().filter(|r| r.valid == v).count();
        let forgotten: Vec<String> =
            runs().map(|r| r.retention.as_ref().map_or("?".into(), |x| format!("{}/{}", x.tasks, x.reads))).collect();
        println!(
            "  {:<13} {:>3} / {:>3} / {:>3}   forgotten {}",
            family.name(),
            of(Validity::True),
            of(Validity::False),
            of(Validity::Unknown),
            forgotten.join(", ")
        );
    }
    match crate::aggregate::aggregate(&base.store) {
        Ok(aggs) => {
            println!("\npooled over every run in {}:", base.store.display());
            print!("{}", crate::aggregate::summary(&aggs));
            std::fs::write(base.store.join("aggregate.json"), serde_json::to_vec_pretty(&aggs)?)?;
        }
        Err(e) => println!("could not pool the runs: {e:#}"),
    }
    for r in all.iter().filter(|r| r.valid != Validity::True) {
        println!("  not valid: {} seed {} -> {:?} {}", r.family, r.seed, r.valid, r.dir);
    }
    let worst = if all.iter().any(|r| r.valid == Validity::False) {
        Validity::False
    } else if all.iter().any(|r| r.valid == Validity::Unknown) {
        Validity::Unknown
    } else {
        Validity::True
    };
    Ok(worst)
}
