//! The unit's restart counter over time, kept in the task's `scratch` store between runs, so
//! that "more than N restarts within a window" can be judged by a check that lives for one
//! call.
//!
//! Only the points where `NRestarts` changed are kept (plus the last one before the window,
//! which says what the counter was when the window opened), so the history stays small
//! however often the check runs.

use std::time::Duration;

/// The scratch key.
pub const KEY: &str = "n_restarts";
/// Points kept at most (a unit restarting every second for a long window would otherwise
/// grow the store without bound); past it the oldest go, which can only undercount.
const MAX_POINTS: usize = 512;

/// `(unix time in ms, NRestarts)` at each change, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    points: Vec<(u64, u32)>,
}

impl History {
    /// The history stored as `bytes`; an unreadable one (another version, a damaged store)
    /// starts afresh rather than failing the check.
    pub fn decode(bytes: Option<&[u8]>) -> History {
        let points = bytes
            .and_then(|b| serde_json::from_slice::<Vec<(u64, u32)>>(b).ok())
            .unwrap_or_default();
        History { points }
    }

    /// What is stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.points).unwrap_or_default()
    }

    /// Records `n` seen at `now_ms` and returns how many restarts happened within `window`
    /// before it. A counter that went down (systemd reset it: a manual restart, `reset-failed`)
    /// or a clock that went back starts the history afresh.
    pub fn observe(&mut self, now_ms: u64, n: u32, window: Duration) -> u32 {
        let reset = self
            .points
            .last()
            .is_some_and(|&(at, last)| last > n || at > now_ms);
        if reset {
            self.points.clear();
        }
        if self.points.last().is_none_or(|&(_, last)| last != n) {
            self.points.push((now_ms, n));
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let opened = now_ms.saturating_sub(window_ms);
        // The newest point at or before the window's opening is the counter's value then;
        // everything older says nothing more.
        let before = self.points.iter().rposition(|&(at, _)| at <= opened);
        if let Some(index) = before {
            self.points.drain(..index);
        }
        if self.points.len() > MAX_POINTS {
            let excess = self.points.len() - MAX_POINTS;
            self.points.drain(..excess);
        }
        let baseline = self.points.first().map_or(n, |&(_, first)| first);
        n.saturating_sub(baseline)
    }

    /// The number of points kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn the_first_sight_counts_nothing() {
        let mut h = History::default();
        assert_eq!(h.observe(0, 50, TEN_MIN), 0);
    }

    #[test]
    fn restarts_within_the_window_count_and_older_ones_drop_out() {
        let mut h = History::default();
        assert_eq!(h.observe(0, 0, TEN_MIN), 0);
        assert_eq!(h.observe(MIN, 2, TEN_MIN), 2);
        assert_eq!(h.observe(2 * MIN, 4, TEN_MIN), 4);
        assert_eq!(h.observe(3 * MIN, 4, TEN_MIN), 4);
        // At 11 min the window opens at 1 min, when the counter was already 2.
        assert_eq!(h.observe(11 * MIN, 4, TEN_MIN), 2);
        // At 12 min and later it opens after the last change: nothing in it.
        assert_eq!(h.observe(12 * MIN, 4, TEN_MIN), 0);
        assert_eq!(h.observe(30 * MIN, 4, TEN_MIN), 0);
        assert_eq!(h.observe(31 * MIN, 5, TEN_MIN), 1);
    }

    #[test]
    fn only_changes_are_kept() {
        let mut h = History::default();
        for i in 0..1000 {
            h.observe(i * 1000, 3, TEN_MIN);
        }
        assert_eq!(h.len(), 1);
        for i in 0..2000u32 {
            h.observe(u64::from(i) * 10, i, Duration::from_secs(3600));
        }
        assert!(h.len() <= MAX_POINTS, "{}", h.len());
    }

    #[test]
    fn a_reset_counter_or_a_clock_gone_back_starts_afresh() {
        let mut h = History::default();
        h.observe(0, 0, TEN_MIN);
        assert_eq!(h.observe(MIN, 5, TEN_MIN), 5);
        assert_eq!(h.observe(2 * MIN, 0, TEN_MIN), 0);
        assert_eq!(h.observe(3 * MIN, 1, TEN_MIN), 1);
        assert_eq!(h.observe(MIN, 2, TEN_MIN), 0);
    }

    #[test]
    fn it_survives_the_store() {
        let mut h = History::default();
        h.observe(0, 0, TEN_MIN);
        h.observe(MIN, 2, TEN_MIN);
        let mut again = History::decode(Some(&h.encode()));
        assert_eq!(again, h);
        assert_eq!(again.observe(2 * MIN, 3, TEN_MIN), 3);
        assert_eq!(History::decode(Some(b"not json")), History::default());
        assert_eq!(History::decode(None), History::default());
    }
}
