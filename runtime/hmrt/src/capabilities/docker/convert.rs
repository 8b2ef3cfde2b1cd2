//! Docker's answers as the WIT's records: pure functions of what the Engine API returned, so
//! they are tested without an engine.

use bollard::models::{
    ContainerCpuStats, ContainerInspectResponse, ContainerMemoryStats, ContainerStateStatusEnum,
    ContainerStatsResponse, HealthStatusEnum,
};

use crate::sandbox::bindings::docker::{Container, ContainerStats};
use crate::sandbox::untrusted;

/// Longest id, name or timestamp passed on from Docker (an id is 64 hex digits, a name at most
/// a few hundred bytes): the engine is trusted, but nothing it says grows a guest's memory
/// without bound.
const FIELD: usize = 256;

/// Docker's "never" for `StartedAt`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The container's name as Docker keeps it (`/app`), without the leading `/`.
pub(super) fn name_of(inspect: &ContainerInspectResponse) -> &str {
    let name = inspect.name.as_deref().unwrap_or("");
    name.strip_prefix('/').unwrap_or(name)
}

/// Whether the container Docker resolved `asked` to is the one the grant names: its name or
/// its full id equals `asked`. Docker also resolves unique id prefixes, so without this a grant
/// `cafe` would reach a container whose id starts with `cafe` when none is named `cafe`.
pub(super) fn is_the_granted(asked: &str, inspect: &ContainerInspectResponse) -> bool {
    !asked.is_empty() && (name_of(inspect) == asked || inspect.id.as_deref() == Some(asked))
}

/// Whether Docker says the container runs.
pub(super) fn is_running(inspect: &ContainerInspectResponse) -> bool {
    inspect
        .state
        .as_ref()
        .is_some_and(|s| s.running == Some(true))
}

/// The WIT's `container` from an inspect answer.
pub(super) fn container(inspect: &ContainerInspectResponse) -> Container {
    let state = inspect.state.clone().unwrap_or_default();
    let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
    let running = state.running == Some(true);
    let health = state
        .health
        .and_then(|h| h.status)
        .filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
        .map(|s| s.to_string());
    // An exit code is the last exit's only once there was one: a created container's 0 is not.
    let exited = matches!(
        status,
        ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::RESTARTING
    );
    let started_at = state
        .started_at
        .filter(|t| !t.is_empty() && t != ZERO_TIME)
        .unwrap_or_default();
    Container {
        id: untrusted::line(inspect.id.as_deref().unwrap_or(""), FIELD),
        name: untrusted::line(name_of(inspect), FIELD),
        state: match status {
            ContainerStateStatusEnum::EMPTY => "unknown".to_owned(),
            other => other.to_string(),
        },
        health,
        restart_count: inspect
            .restart_count
            .map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
        exit_code: state.exit_code.filter(|_| exited && !running),
        pid: state
            .pid
            .filter(|_| running)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0),
        started_at: untrusted::line(&started_at, FIELD),
    }
}

/// The WIT's `container-stats` from one stats sample (taken with `stream=false`, so Docker
/// filled `precpu_stats` with the sample before).
pub(super) fn stats(sample: &ContainerStatsResponse) -> ContainerStats {
    let empty_cpu = ContainerCpuStats::default();
    let memory = sample.memory_stats.clone().unwrap_or_default();
    ContainerStats {
        cpu_percent: cpu_percent(
            sample.cpu_stats.as_ref().unwrap_or(&empty_cpu),
            sample.precpu_stats.as_ref().unwrap_or(&empty_cpu),
        ),
        memory_bytes: memory_in_use(&memory),
        memory_limit_bytes: memory.limit.unwrap_or(0),
    }
}

/// CPU use between two samples in percent of one CPU, as `docker stats` computes it: the
/// container's share of the whole system's CPU time, times the number of CPUs.
fn cpu_percent(now: &ContainerCpuStats, before: &ContainerCpuStats) -> f64 {
    let total = |s: &ContainerCpuStats| s.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let (Some(used_now), Some(used_before)) = (total(now), total(before)) else {
        return 0.0;
    };
    let (Some(system_now), Some(system_before)) = (now.system_cpu_usage, before.system_cpu_usage)
    else {
        return 0.0;
    };
    let used = used_now.saturating_sub(used_before) as f64;
    let system = system_now.saturating_sub(system_before) as f64;
    let cpus = now
        .online_cpus
        .filter(|n| *n > 0)
        .map(f64::from)
        .or_else(|| {
            now.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .map(|per| per.len() as f64)
        })
        .unwrap_or(1.0);
    if used <= 0.0 || system <= 0.0 {
        return 0.0;
    }
    used / system * cpus * 100.0
}

/// Memory in use without the page cache the kernel can drop, as `docker stats` shows it:
/// cgroup v1's `total_inactive_file`, else v2's `inactive_file`, else v1's `cache`.
fn memory_in_use(memory: &ContainerMemoryStats) -> u64 {
    let usage = memory.usage.unwrap_or(0);
    let cache = memory.stats.as_ref().and_then(|s| {
        ["total_inactive_file", "inactive_file", "cache"]
            .iter()
            .find_map(|key| s.get(*key).copied())
    });
    match cache {
        Some(cache) if cache < usage => usage - cache,
        _ => usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuUsage, ContainerState, Health};

    fn inspect(name: &str, id: &str, state: ContainerState) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
            state: Some(state),
            restart_count: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_container_has_a_pid_and_no_exit_code() {
        let state = ContainerState {
            status: Some(ContainerStateStatusEnum::RUNNING),
            running: Some(true),
            pid: Some(4242),
            exit_code: Some(0),
            started_at: Some("2026-01-02T03:04:05.123Z".into()),
            health: Some(Health {
                status: Some(HealthStatusEnum::STARTING),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = container(&inspect("/app", "abc", state));
        assert_eq!(c.name, "app");
        assert_eq!(c.state, "running");
        assert_eq!(c.health.as_deref(), Some("starting"));
        assert_eq!(c.pid, Some(4242));
        assert_eq!(c.exit_code, None);
        assert_eq!(c.restart_count, 3);
        assert_eq!(c.started_at, "2026-01-02T03:04:05.123Z");
    }

    #[test]
    fn an_exited_container_has_its_exit_code_and_no_pid() {
        let state = ContainerState {
            status: Some(ContainerStateStatusEnum::EXITED),
            running: Some(false),
            pid: Some(0),
            exit_code: Some(137),
            health: Some(Health {
                status: Some(HealthStatusEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = container(&inspect("/app", "abc", state));
        assert_eq!(
            (c.state.as_str(), c.exit_code, c.pid),
            ("exited", Some(137), None)
        );
        assert_eq!(c.health, None);

        let created = ContainerState {
            status: Some(ContainerStateStatusEnum::CREATED),
            exit_code: Some(0),
            started_at: Some(ZERO_TIME.into()),
            ..Default::default()
        };
        let c = container(&inspect("/app", "abc", created));
        assert_eq!((c.exit_code, c.started_at.as_str()), (None, ""));
    }

    #[test]
    fn only_the_exact_name_or_full_id_is_the_granted_container() {
        let id = "cafe0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
        let c = inspect("/other", id, ContainerState::default());
        assert!(is_the_granted("other", &c));
        assert!(is_the_granted(id, &c));
        // Docker resolves a unique id prefix, and `/other` as a name: neither is the grant.
        assert!(!is_the_granted("cafe", &c));
        assert!(!is_the_granted("cafe0123456789", &c));
        assert!(!is_the_granted("/other", &c));
        assert!(!is_the_granted("", &ContainerInspectResponse::default()));
    }

    #[test]
    fn strings_from_docker_are_one_capped_line() {
        let long = format!("/{}\n{}", "a".repeat(1000), "b");
        let c = container(&inspect(&long, "x", ContainerState::default()));
        assert!(c.name.len() <= FIELD + '…'.len_utf8(), "{:?}", c.name);
        let c = container(&inspect("/a\u{1b}[2J\nb", "x", ContainerState::default()));
        assert_eq!(c.name, "a\\u{1b}[2J\\nb");
        assert_eq!(c.state, "unknown");
    }

    fn cpu(total: u64, system: u64, cpus: u32) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(cpus),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_is_of_one_cpu() {
        // Half of a 4-CPU system's time: two CPUs busy, 200 %.
        let p = cpu_percent(&cpu(3_000, 10_000, 4), &cpu(1_000, 6_000, 4));
        assert!((p - 200.0).abs() < 1e-9, "{p}");
        assert_eq!(
            cpu_percent(&cpu(5, 10, 2), &ContainerCpuStats::default()),
            0.0
        );
        assert_eq!(cpu_percent(&cpu(5, 10, 2), &cpu(5, 10, 2)), 0.0);
        // Counters that went backwards (a restart between samples) are not negative.
        assert_eq!(cpu_percent(&cpu(1, 20, 2), &cpu(5, 10, 2)), 0.0);
    }

    #[test]
    fn memory_leaves_out_the_cache() {
        let mem = |usage: u64, stats: &[(&str, u64)]| ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            limit: Some(1 << 30),
            ..Default::default()
        };
        assert_eq!(memory_in_use(&mem(1000, &[("inactive_file", 300)])), 700);
        assert_eq!(
            memory_in_use(&mem(1000, &[("total_inactive_file", 100), ("cache", 500)])),
            900
        );
        assert_eq!(memory_in_use(&mem(1000, &[("cache", 400)])), 600);
        assert_eq!(memory_in_use(&mem(1000, &[("cache", 4000)])), 1000);
        let sample = ContainerStatsResponse {
            memory_stats: Some(mem(1000, &[])),
            ..Default::default()
        };
        let s = stats(&sample);
        assert_eq!(
            (s.memory_bytes, s.memory_limit_bytes, s.cpu_percent),
            (1000, 1 << 30, 0.0)
        );
    }
}
