//! `[[alert]]` routes (which tasks, which events, to which receiver, how often) and the
//! `labels` tables of tasks they match on.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use hmrt_domain::TaskName;
use toml::de::DeValue;

use super::read::closest;
use super::{At, Parser, Scope, Table};
use crate::{AlertEvent, AlertRoute, MaintenanceWindow, TaskConfig, TaskMatcher};

const ALERT_KEYS: &[&str] = &[
    "name",
    "tasks",
    "labels",
    "events",
    "receiver",
    "failure_threshold",
    "success_threshold",
    "remind_every",
    "group_wait",
    "send_resolved",
    "give_up_after",
    "escalate_after",
    "escalate_to",
];

const MAINTENANCE_KEYS: &[&str] = &[
    "name", "tasks", "labels", "weekdays", "from", "to", "timezone",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// How long an undeliverable notice is kept trying when the route does not say.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The longest label name or value.
const MAX_LABEL: usize = 128;

impl Parser<'_> {
    /// A task's `labels = { team = "web" }`: names in the task-name alphabet, values non-empty
    /// strings.
    pub(super) fn labels(&mut self, t: &Table<'_>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let Some(table) = self.table(t, "labels") else {
            return labels;
        };
        for (key, value) in table.map.iter() {
            let name = key.get_ref().to_string();
            let key_path = format!("labels.{name}");
            if TaskName::new(&name).is_err() || name.len() > MAX_LABEL {
                let message =
                    "a label name is letters, digits, '-' and '_', starting with a letter";
                self.error(&key.span(), &t.scope, &key_path, message);
                continue;
            }
            match value.get_ref() {
                DeValue::String(s) if !s.is_empty() && s.len() <= MAX_LABEL => {
                    labels.insert(name, s.to_string());
                }
                _ => self.type_error(
                    value,
                    &t.scope,
                    &key_path,
                    "a non-empty string of at most 128 bytes",
                ),
            }
        }
        labels
    }

    /// Every `[[alert]]` table, checked against the tasks (names that match nothing are errors).
    pub(super) fn alerts(&mut self, top: &Table<'_>, tasks: &[TaskConfig]) -> Vec<AlertRoute> {
        let Some(value) = top.get("alert") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = "alert routes are an array of tables: write [[alert]]";
            self.error(&value.span(), &Scope::default(), "alert", message);
            return Vec::new();
        };
        let mut routes: Vec<AlertRoute> = Vec::new();
        let mut names = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(map) = item.get_ref() else {
                self.type_error(item, &Scope::default(), &format!("alert[{i}]"), "a table");
                continue;
            };
            let t = Table {
                map,
                span: item.span(),
                scope: Scope {
                    task: None,
                    prefix: format!("alert[{i}]"),
                },
            };
            if let Some(route) = self.alert(&t, tasks)
                && self.unique(&mut names, &route, &t)
            {
                routes.push(route);
            }
        }
        routes
    }

    fn unique(&mut self, names: &mut HashSet<String>, route: &AlertRoute, t: &Table<'_>) -> bool {
        if names.insert(route.name.clone()) {
            return true;
        }
        let span = t.get("name").map_or(t.span.clone(), |v| v.span());
        let message = format!("another [[alert]] is already named {:?}", route.name);
        self.error(&span, &t.scope, "name", message);
        false
    }

    fn alert(&mut self, t: &Table<'_>, tasks: &[TaskConfig]) -> Option<AlertRoute> {
        self.check_keys(t, ALERT_KEYS, |_| None);
        let name = self.required_string(t, "name").and_then(|name| {
            let checked = name.map(|n| TaskName::new(&n).map(|_| n).map_err(|e| e.to_string()));
            self.ok(checked, &t.scope, "name")
        });
        let matchers = self.matchers(t, tasks);
        let labels = self.labels(t);
        let events = self.events(t);
        let receiver = match t.get("receiver").map(|v| v.get_ref()) {
            Some(DeValue::Table(_)) => self
                .table(t, "receiver")
                .and_then(|r| self.action_table(&r)),
            Some(_) => {
                let want = "a table { action = \"webhook\", config = {...}, grants = {...} }";
                let value = t.get("receiver")?;
                self.type_error(value, &t.scope, "receiver", want);
                None
            }
            None => {
                self.error(&t.span, &t.scope, "receiver", "missing required key");
                None
            }
        };
        let failure_threshold = self.count(t, "failure_threshold", 1, 10_000).map(|n| n.v);
        let success_threshold = self.count(t, "success_threshold", 1, 10_000).map(|n| n.v);
        let remind_every = self.duration(t, "remind_every", true).map(|d| d.v);
        let group_wait = self.duration(t, "group_wait", false).map(|d| d.v);
        let send_resolved = self.boolean(t, "send_resolved").unwrap_or(true);
        let give_up_after = self
            .duration(t, "give_up_after", true)
            .map_or(super::alert::DEFAULT_GIVE_UP_AFTER, |d| d.v);
        let escalate_after = self.duration(t, "escalate_after", true);
        let escalate_to = match t.get("escalate_to").map(|v| v.get_ref()) {
            Some(DeValue::Table(_)) => self
                .table(t, "escalate_to")
                .and_then(|r| self.action_table(&r)),
            Some(_) => {
                let want = "a table { action = \"webhook\", config = {...}, grants = {...} }";
                if let Some(value) = t.get("escalate_to") {
                    self.type_error(value, &t.scope, "escalate_to", want);
                }
                None
            }
            None => None,
        };
        match (&escalate_after, t.get("escalate_to")) {
            (Some(after), None) => {
                self.error(
                    &after.span,
                    &t.scope,
                    "escalate_after",
                    "needs escalate_to: the receiver to escalate to",
                );
            }
            (None, Some(value)) => {
                self.error(
                    &value.span(),
                    &t.scope,
                    "escalate_to",
                    "needs escalate_after: how long an incident lasts before it escalates",
                );
            }
            _ => {}
        }
        let name = name?;
        Some(AlertRoute {
            location: self.loc(&t.span),
            name: name.v,
            tasks: matchers,
            labels,
            events,
            receiver: receiver?,
            failure_threshold,
            success_threshold,
            remind_every,
            group_wait,
            send_resolved,
            give_up_after,
            escalate_after: escalate_after.map(|d| d.v),
            escalate_to,
        })
    }

    /// `tasks = ["web", "db-*"]`: a name must name a task; a glob must match one.
    fn matchers(&mut self, t: &Table<'_>, tasks: &[TaskConfig]) -> Vec<TaskMatcher> {
        let mut matchers = Vec::new();
        for (i, pattern) in self.string_list(t, "tasks") {
            let matcher = TaskMatcher::new(&pattern.v);
            if !tasks.iter().any(|task| matcher.matches(&task.name)) {
                let names = tasks.iter().map(|task| task.name.as_str());
                let message = match (matcher.is_glob(), closest(&pattern.v, names)) {
                    (true, _) => format!("{:?} matches no task", pattern.v),
                    (false, Some(near)) => {
                        format!("no task named {:?}; did you mean {near:?}?", pattern.v)
                    }
                    (false, None) => format!("no task named {:?}", pattern.v),
                };
                self.error(&pattern.span, &t.scope, &format!("tasks[{i}]"), message);
                continue;
            }
            matchers.push(matcher);
        }
        matchers
    }

    /// `events = ["unhealthy", "recovered"]`; unset: unhealthy, recovered and failed.
    fn events(&mut self, t: &Table<'_>) -> BTreeSet<AlertEvent> {
        if t.get("events").is_none() {
            return AlertEvent::DEFAULT.iter().copied().collect();
        }
        let mut events = BTreeSet::new();
        for (i, name) in self.string_list(t, "events") {
            let parsed = At::new(AlertEvent::parse(&name.v), name.span.clone());
            if let Some(event) = self.ok(parsed, &t.scope, &format!("events[{i}]")) {
                events.insert(event.v);
            }
        }
        events
    }

    /// Every `[[maintenance]]` window.
    pub(super) fn maintenance(
        &mut self,
        top: &Table<'_>,
        tasks: &[TaskConfig],
    ) -> Vec<MaintenanceWindow> {
        let Some(value) = top.get("maintenance") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = "maintenance windows are an array of tables: write [[maintenance]]";
            self.error(&value.span(), &Scope::default(), "maintenance", message);
            return Vec::new();
        };
        let mut windows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(map) = item.get_ref() else {
                self.type_error(
                    item,
                    &Scope::default(),
                    &format!("maintenance[{i}]"),
                    "a table",
                );
                continue;
            };
            let t = Table {
                map,
                span: item.span(),
                scope: Scope {
                    task: None,
                    prefix: format!("maintenance[{i}]"),
                },
            };
            windows.extend(self.window(&t, tasks));
        }
        windows
    }

    fn window(&mut self, t: &Table<'_>, tasks: &[TaskConfig]) -> Option<MaintenanceWindow> {
        self.check_keys(t, MAINTENANCE_KEYS, |_| None);
        let name = self.required_string(t, "name");
        let matchers = self.matchers(t, tasks);
        let labels = self.labels(t);
        let mut weekdays: BTreeSet<u8> = (0..7).collect();
        if t.get("weekdays").is_some() {
            weekdays.clear();
            for (i, day) in self.string_list(t, "weekdays") {
                let lower = day.v.to_ascii_lowercase();
                match WEEKDAYS.iter().position(|d| lower.starts_with(d)) {
                    Some(n) if lower.len() == 3 || WEEKDAY_NAMES[n] == lower => {
                        weekdays.insert(n as u8);
                    }
                    _ => self.error(
                        &day.span,
                        &t.scope,
                        &format!("weekdays[{i}]"),
                        format!("{:?} is not a weekday (mon, tue, ... sun)", day.v),
                    ),
                }
            }
        }
        let from = self.time_of_day(t, "from");
        let to = self.time_of_day(t, "to");
        let timezone = match self.string(t, "timezone") {
            None => Some("UTC".to_string()),
            Some(tz) => {
                let checked = tz.map(|name| {
                    jiff::tz::TimeZone::get(&name)
                        .map(|_| name.clone())
                        .map_err(|_| format!("unknown time zone {name:?} (an IANA name such as \"Europe/Berlin\", or \"UTC\")"))
                });
                self.ok(checked, &t.scope, "timezone").map(|tz| tz.v)
            }
        };
        if let (Some(f), Some(tt)) = (&from, &to)
            && f.v == tt.v
        {
            self.error(&tt.span, &t.scope, "to", "must differ from `from`");
            return None;
        }
        Some(MaintenanceWindow {
            location: self.loc(&t.span),
            name: name?.v,
            tasks: matchers,
            labels,
            weekdays,
            from: from?.v,
            to: to?.v,
            timezone: timezone?,
        })
    }

    /// `"02:00"` or `"02:00:30"`: seconds after midnight.
    fn time_of_day(&mut self, t: &Table<'_>, key: &str) -> Option<At<u32>> {
        let text = self.required_string(t, key)?;
        let parsed = text.map(|s| {
            let parts: Vec<&str> = s.split(':').collect();
            let numbers: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
            match numbers.as_deref() {
                Some([h, m]) if *h < 24 && *m < 60 => Ok(h * 3600 + m * 60),
                Some([h, m, sec]) if *h < 24 && *m < 60 && *sec < 60 => Ok(h * 3600 + m * 60 + sec),
                _ => Err(format!(
                    "{s:?} is not a time of day (\"HH:MM\" or \"HH:MM:SS\", 24-hour)"
                )),
            }
        });
        self.ok(parsed, &t.scope, key)
    }
}
