//! What holds notices for a while without stopping checks: silences (made through the API,
//! durable) and recurring maintenance windows (from the config, in their time zone).

use std::collections::BTreeMap;

use hmrt_config::{MaintenanceWindow, TaskMatcher};
use hmrt_policy::Timestamp;
use serde::{Deserialize, Serialize};

/// A silence: notices of the tasks it matches are held from `starts_at` until `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Task names or globs; empty: every task (narrowed by `labels`).
    pub tasks: Vec<String>,
    /// Labels a task must all carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it begins.
    pub starts_at: Timestamp,
    /// When it ends.
    pub ends_at: Timestamp,
    /// Why, as its author said.
    pub comment: String,
    /// Who made it: the name of the token's variable.
    pub author: String,
}

impl Silence {
    fn covers(&self, task: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.tasks.is_empty() || self.tasks.iter().any(|p| TaskMatcher::new(p).matches(task)))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    fn active(&self, at: Timestamp) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// A maintenance window with its time zone resolved.
pub struct Window {
    config: MaintenanceWindow,
    tz: jiff::tz::TimeZone,
}

impl Window {
    /// The window of `config`; its time zone was checked when the config was read, so an
    /// unknown one here (the tz database changed under us) falls back to UTC with a warning.
    pub fn new(config: MaintenanceWindow) -> Window {
        let tz = jiff::tz::TimeZone::get(&config.timezone).unwrap_or_else(|e| {
            tracing::warn!(window = %config.name, "time zone {:?}: {e}; using UTC", config.timezone);
            jiff::tz::TimeZone::UTC
        });
        Window { config, tz }
    }

    fn zoned(&self, at: Timestamp) -> Option<jiff::Zoned> {
        let ms = i64::try_from(at.0).ok()?;
        Some(
            jiff::Timestamp::from_millisecond(ms)
                .ok()?
                .to_zoned(self.tz.clone()),
        )
    }

    /// Whether the window is open at `at`.
    pub fn active(&self, at: Timestamp) -> bool {
        let Some(zoned) = self.zoned(at) else {
            return false;
        };
        let day = zoned.weekday().to_monday_zero_offset() as u8;
        let secs = u32::from(zoned.hour().unsigned_abs()) * 3600
            + u32::from(zoned.minute().unsigned_abs()) * 60
            + u32::from(zoned.second().unsigned_abs());
        let (from, to, days) = (self.config.from, self.config.to, &self.config.weekdays);
        if from < to {
            days.contains(&day) && from <= secs && secs < to
        } else {
            // Past midnight: it began the day before.
            (days.contains(&day) && secs >= from) || (days.contains(&((day + 6) % 7)) && secs < to)
        }
    }

    /// The first instant after `after` at which the window opens or closes.
    pub fn next_boundary(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = self.zoned(after)?;
        let mut best: Option<Timestamp> = None;
        for offset in 0..9 {
            let date = zoned
                .date()
                .checked_add(jiff::Span::new().days(offset))
                .ok()?;
            let day = date.weekday().to_monday_zero_offset() as u8;
            let days = &self.config.weekdays;
            // It opens on its days; it closes the same day, or the next when it wraps midnight.
            let opens = days.contains(&day);
            let closes = if self.config.from < self.config.to {
                opens
            } else {
                days.contains(&((day + 6) % 7))
            };
            let edges = [(self.config.from, opens), (self.config.to, closes)];
            for secs in edges.iter().filter(|(_, on)| *on).map(|(s, _)| *s) {
                let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
                let time = jiff::civil::Time::new(h as i8, m as i8, s as i8, 0).ok()?;
                let Ok(at) = date.to_datetime(time).to_zoned(self.tz.clone()) else {
                    continue;
                };
                let ms = u64::try_from(at.timestamp().as_millisecond()).ok()?;
                if ms > after.0 && best.is_none_or(|b| ms < b.0) {
                    best = Some(Timestamp(ms));
                }
            }
        }
        best
    }
}

/// The silences and windows together.
#[derive(Default)]
pub struct Mutes {
    windows: Vec<Window>,
}

impl Mutes {
    /// The config's windows.
    pub fn new(windows: &[MaintenanceWindow]) -> Mutes {
        Mutes {
            windows: windows.iter().cloned().map(Window::new).collect(),
        }
    }

    /// Whether a silence or a window holds `task`'s notices at `at`.
    pub fn holds(
        &self,
        silences: &[Silence],
        task: &str,
        labels: &BTreeMap<String, String>,
        at: Timestamp,
    ) -> bool {
        silences
            .iter()
            .any(|s| s.active(at) && s.covers(task, labels))
            || self
                .windows
                .iter()
                .any(|w| w.config.covers(task, labels) && w.active(at))
    }

    /// The first instant after `after` at which a silence or window begins or ends.
    pub fn next_boundary(&self, silences: &[Silence], after: Timestamp) -> Option<Timestamp> {
        let from_silences = silences
            .iter()
            .flat_map(|s| [s.starts_at, s.ends_at])
            .filter(|t| *t > after);
        let from_windows = self.windows.iter().filter_map(|w| w.next_boundary(after));
        from_silences.chain(from_windows).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn window(from: u32, to: u32, days: &[u8], tz: &str) -> Window {
        Window::new(MaintenanceWindow {
            name: "w".into(),
            location: hmrt_config::Location::whole_file(std::path::Path::new("t")),
            tasks: Vec::new(),
            labels: BTreeMap::new(),
            weekdays: days.iter().copied().collect::<BTreeSet<u8>>(),
            from,
            to,
            timezone: tz.into(),
        })
    }

    fn at(rfc3339: &str) -> Timestamp {
        let t: jiff::Timestamp = rfc3339.parse().unwrap();
        Timestamp(t.as_millisecond() as u64)
    }

    #[test]
    fn a_window_in_its_time_zone_across_midnight() {
        // Saturdays 23:00 to Sunday 01:00, Berlin time (UTC+1 in December).
        let w = window(23 * 3600, 3600, &[5], "Europe/Berlin");
        assert!(!w.active(at("2026-12-05T21:59:59Z")));
        assert!(w.active(at("2026-12-05T22:00:00Z")), "Sat 23:00 in Berlin");
        assert!(w.active(at("2026-12-05T23:59:00Z")), "Sun 00:59 in Berlin");
        assert!(!w.active(at("2026-12-06T00:00:00Z")), "Sun 01:00 in Berlin");
        assert!(
            !w.active(at("2026-12-06T22:30:00Z")),
            "Sunday night is not Saturday"
        );
        assert_eq!(
            w.next_boundary(at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-05T22:00:00Z"))
        );
        assert_eq!(
            w.next_boundary(at("2026-12-05T22:00:00Z")),
            Some(at("2026-12-06T00:00:00Z"))
        );
    }

    #[test]
    fn silences_cover_by_glob_and_label_within_their_time() {
        let s = Silence {
            id: "1".into(),
            tasks: vec!["db-*".into()],
            labels: BTreeMap::new(),
            starts_at: Timestamp(10),
            ends_at: Timestamp(20),
            comment: String::new(),
            author: "T".into(),
        };
        let mutes = Mutes::default();
        let none = BTreeMap::new();
        assert!(mutes.holds(std::slice::from_ref(&s), "db-main", &none, Timestamp(10)));
        assert!(!mutes.holds(std::slice::from_ref(&s), "db-main", &none, Timestamp(20)));
        assert!(!mutes.holds(std::slice::from_ref(&s), "web", &none, Timestamp(15)));
        assert_eq!(
            mutes.next_boundary(&[s], Timestamp(10)),
            Some(Timestamp(20))
        );
    }
}
