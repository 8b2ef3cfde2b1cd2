//! hmrt's built-in `system` check: the host's CPU, memory, swap, load, disks and network,
//! each judged against `warn` (degraded) and `critical` (unhealthy) thresholds; the worst one
//! decides. CPU utilisation and network rates are differences between two runs, so the
//! previous sample is kept in the task's `scratch` store; the first run records it and says so.

mod judge;
mod settings;

use hmrt_plugin::check::{CheckResult, Guest};
use hmrt_plugin::system;
use hmrt_plugin::types::{Capability, Need, PluginInfo, Status, Task};
use serde_json::json;

use judge::{Report, error_status, keep, metric_part, now_ms, recall, show_bytes};
use settings::{Disk, Interface, Settings};

fn pct(v: f64) -> String {
    format!("{v:.1}%")
}

fn plain(v: f64) -> String {
    format!("{v:.2}")
}

fn rate(v: f64) -> String {
    format!("{}/s", show_bytes(v))
}

/// Busy and total CPU milliseconds of a sample.
fn cpu_busy_total(c: &system::CpuTimes) -> (u64, u64) {
    let busy = c
        .user_ms
        .saturating_add(c.system_ms)
        .saturating_add(c.other_ms);
    (
        busy,
        busy.saturating_add(c.idle_ms).saturating_add(c.iowait_ms),
    )
}

/// Percent busy since the kept sample, which is replaced by `now`; none on the first run (or
/// after a reboot moved the counters back).
fn cpu_percent(now: &system::CpuTimes, r: &mut Report) -> Option<f64> {
    let (busy, total) = cpu_busy_total(now);
    let before = recall("cpu");
    if let Err(e) = keep("cpu", &json!({ "busy": busy, "total": total })) {
        r.notes
            .push(format!("cpu: cannot keep the sample between runs ({e})"));
    }
    let before = before?;
    let (b0, t0) = (before["busy"].as_u64()?, before["total"].as_u64()?);
    let (db, dt) = (busy.checked_sub(b0)?, total.checked_sub(t0)?);
    (dt > 0).then(|| (db as f64 / dt as f64 * 100.0).min(100.0))
}

fn judge_cpu(s: &Settings, r: &mut Report) -> Option<u32> {
    if s.cpu.is_none() && !(s.load.is_some() && s.load_per_cpu) {
        return None;
    }
    let now = match system::cpu() {
        Ok(now) => now,
        Err(e) => {
            r.problem(error_status(&e), format!("cpu: {}", e.describe()));
            return None;
        }
    };
    r.metric("cpus", f64::from(now.cpus), "");
    if let Some(limits) = &s.cpu {
        match cpu_percent(&now, r) {
            Some(p) => {
                r.metric("cpu_percent", p, "%");
                r.judge(format!("cpu {}", pct(p)), p, limits, pct);
            }
            None => r
                .notes
                .push("cpu: first sample recorded, utilisation from the next run".into()),
        }
    }
    Some(now.cpus)
}

fn judge_memory(s: &Settings, r: &mut Report) {
    if s.memory.is_none() && s.swap.is_none() {
        return;
    }
    let m = match system::memory() {
        Ok(m) => m,
        Err(e) => return r.problem(error_status(&e), format!("memory: {}", e.describe())),
    };
    if let Some(limits) = &s.memory {
        let used = used_percent(m.total_bytes, m.available_bytes);
        r.metric("memory_used_percent", used, "%");
        r.metric("memory_total_bytes", m.total_bytes as f64, "bytes");
        r.metric("memory_available_bytes", m.available_bytes as f64, "bytes");
        r.judge(format!("memory {} used", pct(used)), used, limits, pct);
    }
    if let Some(limits) = &s.swap {
        let used = used_percent(m.swap_total_bytes, m.swap_free_bytes);
        r.metric("swap_used_percent", used, "%");
        r.metric("swap_total_bytes", m.swap_total_bytes as f64, "bytes");
        r.judge(format!("swap {} used", pct(used)), used, limits, pct);
    }
}

/// Percent of `total` not `free`; 0 when there is none at all (no swap is no swap used).
fn used_percent(total: u64, free: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (1.0 - free.min(total) as f64 / total as f64) * 100.0
}

fn judge_load(s: &Settings, cpus: Option<u32>, r: &mut Report) {
    let Some(limits) = &s.load else { return };
    let l = match system::load() {
        Ok(l) => l,
        Err(e) => return r.problem(error_status(&e), format!("load: {}", e.describe())),
    };
    r.metric("load_1", l.one, "");
    r.metric("load_5", l.five, "");
    r.metric("load_15", l.fifteen, "");
    if !s.load_per_cpu {
        return r.judge(format!("load {}", plain(l.one)), l.one, limits, plain);
    }
    // Without the CPU count (its call failed, already reported) the per-CPU load is unknown.
    if let Some(cpus) = cpus {
        let per = l.one / f64::from(cpus.max(1));
        r.metric("load_1_per_cpu", per, "");
        r.judge(format!("load {} per cpu", plain(per)), per, limits, plain);
    }
}

fn judge_disk(d: &Disk, r: &mut Report) {
    let u = match system::disk(&d.mount) {
        Ok(u) => u,
        Err(e) => {
            return r.problem(
                error_status(&e),
                format!("disk {}: {}", d.mount, e.describe()),
            );
        }
    };
    let name = metric_part(&d.mount);
    // As df counts it: used over what users can have (used + available), not the raw size,
    // which includes the blocks reserved for root.
    let usable = u.used_bytes.saturating_add(u.available_bytes);
    let used = used_percent(usable, u.available_bytes);
    r.metric(&format!("disk_{name}_used_percent"), used, "%");
    r.metric(
        &format!("disk_{name}_available_bytes"),
        u.available_bytes as f64,
        "bytes",
    );
    r.judge(
        format!("disk {} {} used", d.mount, pct(used)),
        used,
        &d.used,
        pct,
    );
    if let Some(limits) = &d.inodes {
        let used = used_percent(u.inodes_total, u.inodes_free);
        r.metric(&format!("disk_{name}_inodes_used_percent"), used, "%");
        r.judge(
            format!("disk {} inodes {} used", d.mount, pct(used)),
            used,
            limits,
            pct,
        );
    }
}

fn judge_network(n: &Interface, r: &mut Report) {
    let c = match system::network(&n.name) {
        Ok(c) => c,
        Err(e) => {
            return r.problem(
                error_status(&e),
                format!("network {}: {}", n.name, e.describe()),
            );
        }
    };
    let name = metric_part(&n.name);
    let errors = c.rx_errors.saturating_add(c.tx_errors);
    r.metric(&format!("net_{name}_rx_bytes"), c.rx_bytes as f64, "bytes");
    r.metric(&format!("net_{name}_tx_bytes"), c.tx_bytes as f64, "bytes");
    r.metric(&format!("net_{name}_errors"), errors as f64, "");
    let now = now_ms();
    let key = format!("net:{}", n.name);
    let before = recall(&key);
    if let Err(e) = keep(
        &key,
        &json!({ "at": now, "rx": c.rx_bytes, "tx": c.tx_bytes, "errors": errors }),
    ) {
        r.notes.push(format!(
            "network {}: cannot keep the sample between runs ({e})",
            n.name
        ));
    }
    let delta = |field: &str, value: u64| {
        before
            .as_ref()?
            .get(field)?
            .as_u64()
            .and_then(|b| value.checked_sub(b))
    };
    let seconds = delta("at", now)
        .filter(|ms| *ms > 0)
        .map(|ms| ms as f64 / 1000.0);
    let (Some(secs), Some(drx), Some(dtx), Some(derr)) = (
        seconds,
        delta("rx", c.rx_bytes),
        delta("tx", c.tx_bytes),
        delta("errors", errors),
    ) else {
        return r.notes.push(format!(
            "network {}: first sample recorded, rates from the next run",
            n.name
        ));
    };
    let (rx, tx) = (drx as f64 / secs, dtx as f64 / secs);
    r.metric(&format!("net_{name}_rx_bytes_per_s"), rx, "bytes/s");
    r.metric(&format!("net_{name}_tx_bytes_per_s"), tx, "bytes/s");
    r.metric(&format!("net_{name}_new_errors"), derr as f64, "");
    r.judge(format!("{} rx {}", n.name, rate(rx)), rx, &n.rx, rate);
    r.judge(format!("{} tx {}", n.name, rate(tx)), tx, &n.tx, rate);
    r.judge(
        format!("{} {derr} new errors", n.name),
        derr as f64,
        &n.errors,
        |v| format!("{v}"),
    );
}

struct System;

impl Guest for System {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "system".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "Judges the host's CPU, memory, swap, load, disks and network against warn and critical thresholds.".to_owned(),
            capabilities: vec![Capability::System],
        }
    }

    fn validate(task: Task) -> Result<Vec<Need>, String> {
        Ok(Settings::from_json(&task.config)?.needs())
    }

    fn check(task: Task) -> CheckResult {
        let s = match Settings::from_json(&task.config) {
            Ok(s) => s,
            Err(e) => {
                return CheckResult {
                    status: Status::Unknown,
                    message: format!("invalid config: {e}"),
                    metrics: vec![],
                };
            }
        };
        let mut r = Report::default();
        let cpus = judge_cpu(&s, &mut r);
        judge_memory(&s, &mut r);
        judge_load(&s, cpus, &mut r);
        for d in &s.disks {
            judge_disk(d, &mut r);
        }
        for n in &s.network {
            judge_network(n, &mut r);
        }
        CheckResult {
            status: r.status,
            message: r.message(),
            metrics: r.metrics,
        }
    }
}

hmrt_plugin::export_check!(System);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_used() {
        assert_eq!(used_percent(0, 0), 0.0);
        assert_eq!(used_percent(100, 25), 75.0);
        assert_eq!(used_percent(100, 200), 0.0);
    }
}
