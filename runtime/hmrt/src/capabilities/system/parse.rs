//! Pure parsers of the kernel's text files under `/proc`, so they can be tested on fixed text.
//! Each takes the file's text and returns the figures or a short reason; none panics on any
//! input (the kernel's format is trusted, but a parser that panics on a surprise would take the
//! host's worker down with it).

/// CPU time summed over all CPUs, in clock ticks, and the number of CPUs (`/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuTicks {
    /// user + nice (guest time is already counted in user).
    pub(crate) user: u64,
    /// system + irq + softirq.
    pub(crate) system: u64,
    pub(crate) idle: u64,
    pub(crate) iowait: u64,
    /// steal.
    pub(crate) other: u64,
    pub(crate) cpus: u32,
}

/// The aggregate `cpu` line of `/proc/stat` and the count of `cpuN` lines.
pub(crate) fn cpu_ticks(stat: &str) -> Result<CpuTicks, String> {
    let mut ticks = None;
    let mut cpus = 0u32;
    for line in stat.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") => {
                let n: Vec<u64> = words.map(|w| w.parse().unwrap_or(0)).collect();
                let at = |i: usize| n.get(i).copied().unwrap_or(0);
                if n.len() < 4 {
                    return Err("the cpu line of /proc/stat is short".into());
                }
                ticks = Some(CpuTicks {
                    user: at(0).saturating_add(at(1)),
                    system: at(2).saturating_add(at(5)).saturating_add(at(6)),
                    idle: at(3),
                    iowait: at(4),
                    other: at(7),
                    cpus: 0,
                });
            }
            Some(w) if w.starts_with("cpu") => cpus = cpus.saturating_add(1),
            _ => {}
        }
    }
    let mut ticks = ticks.ok_or("no cpu line in /proc/stat")?;
    ticks.cpus = cpus.max(1);
    Ok(ticks)
}

/// `ticks` in milliseconds at `hz` ticks per second.
pub(crate) fn ticks_to_ms(ticks: u64, hz: u64) -> u64 {
    let hz = hz.max(1);
    let ms = u128::from(ticks) * 1000 / u128::from(hz);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Memory and swap from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Memory {
    pub(crate) total: u64,
    pub(crate) available: u64,
    pub(crate) swap_total: u64,
    pub(crate) swap_free: u64,
}

/// Parses `/proc/meminfo` (values in kB).
pub(crate) fn meminfo(text: &str) -> Result<Memory, String> {
    let field = |name: &str| kb_field(text, name);
    let total = field("MemTotal").ok_or("no MemTotal in /proc/meminfo")?;
    // Kernels before 3.14 lack MemAvailable; free memory is the honest floor then.
    let available = field("MemAvailable")
        .or_else(|| field("MemFree"))
        .ok_or("no MemAvailable in /proc/meminfo")?;
    Ok(Memory {
        total,
        available,
        swap_total: field("SwapTotal").unwrap_or(0),
        swap_free: field("SwapFree").unwrap_or(0),
    })
}

/// The value of `Name:   123 kB` in a `/proc` status-like text, in bytes.
pub(crate) fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        let mut words = rest.split_ascii_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => Some(value.saturating_mul(1024)),
            _ => Some(value),
        }
    })
}

/// The three load averages of `/proc/loadavg`.
pub(crate) fn loadavg(text: &str) -> Result<(f64, f64, f64), String> {
    let mut words = text.split_ascii_whitespace();
    let mut next = || -> Result<f64, String> {
        words
            .next()
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("/proc/loadavg is not three numbers: {text:?}"))
    };
    Ok((next()?, next()?, next()?))
}

/// The counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NetCounters {
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) rx_errors: u64,
    pub(crate) tx_errors: u64,
}

/// The counters of `interface` in `/proc/net/dev`, or none when it is not listed.
pub(crate) fn net_dev(text: &str, interface: &str) -> Option<NetCounters> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let n: Vec<u64> = rest
            .split_ascii_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        // 8 receive columns (bytes packets errs drop fifo frame compressed multicast), then
        // the transmit ones (bytes packets errs ...).
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        (n.len() >= 11).then(|| NetCounters {
            rx_bytes: at(0),
            rx_errors: at(2),
            tx_bytes: at(8),
            tx_errors: at(10),
        })
    })
}

/// Whether `path` is a mount point in `/proc/self/mountinfo`'s text (its fifth field, with the
/// kernel's octal escapes of space, tab, newline and backslash).
pub(crate) fn is_mount_point(mountinfo: &str, path: &str) -> bool {
    mountinfo.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|field| unescape_octal(field) == path)
    })
}

/// The longest mount point in `mountinfo` that contains `path` (for saying where a path that
/// is no mount point lives).
pub(crate) fn containing_mount(mountinfo: &str, path: &str) -> Option<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(unescape_octal))
        .filter(|mount| std::path::Path::new(path).starts_with(mount))
        .max_by_key(String::len)
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes.get(i), escaped) {
            (Some(b'\\'), Some(b)) => {
                out.push(b);
                i += 4;
            }
            (Some(&b), _) => {
                out.push(b);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since boot, the first number of `/proc/uptime`, in milliseconds.
pub(crate) fn uptime_ms(text: &str) -> Result<u64, String> {
    let secs: f64 = text
        .split_ascii_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("/proc/uptime is not a number: {text:?}"))?;
    // Saturating float-to-int cast: a bounded, non-negative value.
    Ok((secs * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  98382 20 9329 425228 742 0 88 22 0 0\n\
        cpu0 48463 8 4252 213974 147 0 15 10 0 0\n\
        cpu1 49918 12 5077 211254 595 0 73 11 0 0\n\
        intr 1 2 3\nctxt 42\n";

    #[test]
    fn cpu_line_and_count() {
        let t = cpu_ticks(STAT).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                user: 98402,
                system: 9417,
                idle: 425228,
                iowait: 742,
                other: 22,
                cpus: 2
            }
        );
        assert_eq!(ticks_to_ms(98402, 100), 984_020);
        assert_eq!(ticks_to_ms(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ms(5, 0), 5000);
        assert!(cpu_ticks("intr 1\n").is_err());
        assert!(cpu_ticks("cpu 1 2\n").is_err());
    }

    #[test]
    fn meminfo_fields() {
        let text = "MemTotal:       24683792 kB\nMemFree:        21206772 kB\n\
            MemAvailable:   22602984 kB\nSwapTotal:     0 kB\nSwapFree: 0 kB\n";
        let m = meminfo(text).unwrap();
        assert_eq!(m.total, 24683792 * 1024);
        assert_eq!(m.available, 22602984 * 1024);
        assert_eq!((m.swap_total, m.swap_free), (0, 0));
        let old = meminfo("MemTotal: 100 kB\nMemFree: 40 kB\n").unwrap();
        assert_eq!(old.available, 40 * 1024);
        assert!(meminfo("garbage").is_err());
        assert_eq!(kb_field("Threads:\t7\n", "Threads"), Some(7));
        assert_eq!(kb_field("VmRSS:\t  1234 kB\n", "VmRSS"), Some(1234 * 1024));
    }

    #[test]
    fn load_and_uptime() {
        assert_eq!(
            loadavg("1.61 0.62 0.52 3/119 19423\n").unwrap(),
            (1.61, 0.62, 0.52)
        );
        assert!(loadavg("1.0 x").is_err());
        assert!(loadavg("NaN 1 1").is_err());
        assert_eq!(uptime_ms("2675.09 4252.28\n").unwrap(), 2_675_090);
        assert!(uptime_ms("").is_err());
    }

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs|bytes\n\
            \x20   lo:  129271    1646    0    0    0     0          0         0   129272    1646    3    0    0     0       0          0\n\
            \x20 eth0: 347650102    9498    5    0    0     0          0         0   445078    5078    0    0    0     0       0          0\n";
        let lo = net_dev(text, "lo").unwrap();
        assert_eq!(
            lo,
            NetCounters {
                rx_bytes: 129271,
                tx_bytes: 129272,
                rx_errors: 0,
                tx_errors: 3
            }
        );
        assert_eq!(net_dev(text, "eth0").unwrap().rx_errors, 5);
        assert_eq!(net_dev(text, "eth1"), None);
        assert_eq!(net_dev(text, "face |bytes packets errs|bytes\n"), None);
    }

    #[test]
    fn mount_points() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            27 1 254:0 / / rw - ext4 /dev/vda rw\n\
            30 27 0:40 / /mnt/my\\040disk rw - tmpfs tmpfs rw\n";
        assert!(is_mount_point(text, "/"));
        assert!(is_mount_point(text, "/proc"));
        assert!(is_mount_point(text, "/mnt/my disk"));
        assert!(!is_mount_point(text, "/mnt"));
        assert_eq!(containing_mount(text, "/mnt/x").as_deref(), Some("/"));
        assert_eq!(
            containing_mount(text, "/mnt/my disk/a").as_deref(),
            Some("/mnt/my disk")
        );
        assert_eq!(unescape_octal("a\\"), "a\\");
        assert_eq!(unescape_octal("a\\12"), "a\\12");
    }
}
