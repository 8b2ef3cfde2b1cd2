//! `log`: a guest's log lines, tagged with its task, capped in number and length.

use crate::sandbox::HostState;
use crate::sandbox::bindings::log::{Host, Level};

impl Host for HostState {
    async fn write(&mut self, level: Level, message: String) {
        let call = &mut self.call;
        call.log_lines = call.log_lines.saturating_add(1);
        let limits = call.backends.limits;
        if call.log_lines > limits.log_lines_per_call {
            if call.log_lines == limits.log_lines_per_call + 1 {
                tracing::warn!(task = %call.task, "plugin log lines past {} in one call are dropped", limits.log_lines_per_call);
            }
            return;
        }
        let message = crate::sandbox::untrusted::line(&message, limits.log_line_bytes);
        let task = &call.task;
        match level {
            Level::Trace => tracing::trace!(task = %task, plugin_log = true, "{message}"),
            Level::Debug => tracing::debug!(task = %task, plugin_log = true, "{message}"),
            Level::Info => tracing::info!(task = %task, plugin_log = true, "{message}"),
            Level::Warn => tracing::warn!(task = %task, plugin_log = true, "{message}"),
            Level::Error => tracing::error!(task = %task, plugin_log = true, "{message}"),
        }
    }
}
