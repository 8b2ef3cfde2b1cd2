//! Every string a guest hands back is untrusted where it is shown or stored: in hmrt's log, in
//! `hmrt check`/`history`/`plugins` on a terminal, in state, events, metrics and the API. It is
//! made one escaped line and capped here, where it leaves the sandbox, so nothing past the
//! sandbox has to remember to.

use super::CheckResult;
use super::bindings::types::{Capability, Metric, Need, PluginInfo};

/// A plugin's name.
pub(crate) const NAME: usize = 64;
/// A plugin's version.
pub(crate) const VERSION: usize = 64;
/// A plugin's one-sentence summary.
pub(crate) const SUMMARY: usize = 512;
/// A check's or an action's message, and `validate()`'s complaint.
pub(crate) const MESSAGE: usize = 4 * 1024;
/// A metric's name.
pub(crate) const METRIC_NAME: usize = 64;
/// A metric's unit.
pub(crate) const METRIC_UNIT: usize = 32;
/// Metrics kept from one check result.
pub(crate) const METRICS: usize = 64;
/// What a call asked for that was denied (a URL, a program and its arguments, an address).
pub(crate) const ASKED: usize = 256;
/// One need from `validate()` (a URL, a program, an address).
pub(crate) const NEED: usize = 512;
/// Needs kept from one `validate()`.
pub(crate) const NEEDS: usize = 64;
/// What the guest wrote to stderr, as one line in a reason.
pub(crate) const STDERR: usize = 1024;

/// `text` as one escaped line of at most `max` bytes: the one rule for guest strings.
pub(crate) fn line(text: &str, max: usize) -> String {
    crate::text::one_line(text, max)
}

/// A plugin's description, each string made one capped line; capabilities deduplicated.
pub(crate) fn info(info: PluginInfo) -> PluginInfo {
    let mut capabilities: Vec<Capability> = Vec::new();
    for capability in info.capabilities {
        if !capabilities.contains(&capability) {
            capabilities.push(capability);
        }
    }
    PluginInfo {
        name: line(&info.name, NAME),
        version: line(&info.version, VERSION),
        summary: line(&info.summary, SUMMARY),
        capabilities,
    }
}

/// A check's result, its message and metric names made capped lines, at most [`METRICS`] kept.
pub(crate) fn check_result(mut result: CheckResult) -> CheckResult {
    result.message = line(&result.message, MESSAGE);
    result.metrics.truncate(METRICS);
    result.metrics = result
        .metrics
        .into_iter()
        .map(|m| Metric {
            name: line(&m.name, METRIC_NAME),
            value: m.value,
            unit: line(&m.unit, METRIC_UNIT),
        })
        .collect();
    result
}

/// What `validate()` answered: at most [`NEEDS`] needs, each a capped line.
pub(crate) fn validated(answer: Result<Vec<Need>, String>) -> Result<Vec<Need>, String> {
    let mut needs = answer.map_err(|e| line(&e, MESSAGE))?;
    needs.truncate(NEEDS);
    Ok(needs
        .into_iter()
        .map(|need| match need {
            Need::Http(s) => Need::Http(line(&s, NEED)),
            Need::Exec(s) => Need::Exec(line(&s, NEED)),
            Need::Supervisor(s) => Need::Supervisor(line(&s, NEED)),
            Need::Tcp(s) => Need::Tcp(line(&s, NEED)),
            Need::Smtp(s) => Need::Smtp(line(&s, NEED)),
            Need::System(s) => Need::System(line(&s, NEED)),
            Need::Process(s) => Need::Process(line(&s, NEED)),
            Need::Files(s) => Need::Files(line(&s, NEED)),
            Need::Docker(s) => Need::Docker(line(&s, NEED)),
            Need::Systemd(s) => Need::Systemd(line(&s, NEED)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::bindings::types::Status;

    #[test]
    fn guest_strings_leave_as_one_capped_line() {
        let info = info(PluginInfo {
            name: "x\nINFO forged".into(),
            version: "1".repeat(1000),
            summary: "\x1b[2Jcleared".into(),
            capabilities: vec![Capability::Http; 1000],
        });
        assert_eq!(info.name, "x\\nINFO forged");
        assert!(info.version.len() <= VERSION + 3);
        assert_eq!(info.summary, "\\u{1b}[2Jcleared");
        assert_eq!(info.capabilities, vec![Capability::Http]);
        let result = check_result(CheckResult {
            status: Status::Healthy,
            message: "ok\r\nfake line".into(),
            metrics: vec![
                Metric {
                    name: "a\nb".into(),
                    value: 1.0,
                    unit: "\u{202e}sm".into(),
                };
                500
            ],
        });
        assert_eq!(result.message, "ok\\r\\nfake line");
        assert_eq!(result.metrics.len(), METRICS);
        assert_eq!(result.metrics[0].name, "a\\nb");
        assert_eq!(result.metrics[0].unit, "\\u{202e}sm");
        let needs = validated(Ok(vec![Need::Http("h\n".into()); 1000])).unwrap();
        assert_eq!(needs.len(), NEEDS);
        assert_eq!(
            validated(Err("bad\nline".into())).unwrap_err(),
            "bad\\nline"
        );
    }
}
