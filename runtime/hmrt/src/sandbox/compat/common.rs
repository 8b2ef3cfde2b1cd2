//! The glue every older contract version shares with the current one, generated per version.

/// Converts between two generated enums whose cases have the same names.
macro_rules! same_cases {
    ($from:ty => $to:ty: $($case:ident),+) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                match value {
                    $(<$from>::$case => <$to>::$case,)+
                }
            }
        }
    };
}

/// Generates, in the calling module, the conversions and capability impls that every older
/// version shares: `old` is that version's `types` module, and `$case` lists its capabilities
/// (named as its `need` cases are). The calling module imports the version's `http`, `log`,
/// `supervisor`, `tcp` and `types as old` modules, and the current ones as `cur_*`.
macro_rules! common_glue {
    (capabilities: $($case:ident),+) => {
        same_cases!(old::Status => cur::Status: Healthy, Degraded, Unhealthy, Unknown);
        same_cases!(cur::Status => old::Status: Healthy, Degraded, Unhealthy, Unknown);
        same_cases!(old::Capability => cur::Capability: $($case),+);
        same_cases!(log::Level => cur_log::Level: Trace, Debug, Info, Warn, Error);
        same_cases!(
            cur_supervisor::ProcessState => supervisor::ProcessState:
            Stopped, Starting, Running, Backoff, Stopping, Exited, Fatal, Unknown
        );

        impl From<cur::HostError> for old::HostError {
            fn from(error: cur::HostError) -> Self {
                match error {
                    cur::HostError::Denied(m) => old::HostError::Denied(m),
                    cur::HostError::Invalid(m) => old::HostError::Invalid(m),
                    cur::HostError::Timeout => old::HostError::Timeout,
                    cur::HostError::Failed(m) => old::HostError::Failed(m),
                }
            }
        }

        impl From<old::Need> for cur::Need {
            fn from(need: old::Need) -> Self {
                match need {
                    $(old::Need::$case(s) => cur::Need::$case(s),)+
                }
            }
        }

        impl From<old::PluginInfo> for cur::PluginInfo {
            fn from(info: old::PluginInfo) -> Self {
                cur::PluginInfo {
                    name: info.name,
                    version: info.version,
                    summary: info.summary,
                    capabilities: info.capabilities.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<old::Metric> for cur::Metric {
            fn from(m: old::Metric) -> Self {
                cur::Metric {
                    name: m.name,
                    value: m.value,
                    unit: m.unit,
                }
            }
        }

        impl From<&cur::Task> for old::Task {
            fn from(task: &cur::Task) -> Self {
                old::Task {
                    name: task.name.clone(),
                    program: task.program.clone(),
                    config: task.config.clone(),
                }
            }
        }

        /// A 0.1.0 plugin's needs as the current contract's.
        pub(crate) fn needs(result: Result<Vec<old::Need>, String>) -> Result<Vec<cur::Need>, String> {
            result.map(|needs| needs.into_iter().map(Into::into).collect())
        }

        fn process_status(status: cur_supervisor::ProcessStatus) -> supervisor::ProcessStatus {
            supervisor::ProcessStatus {
                name: status.name,
                state: status.state.into(),
                pid: status.pid,
                description: status.description,
            }
        }

        fn supervised(
            result: Result<cur_supervisor::ProcessStatus, cur::HostError>,
        ) -> Result<supervisor::ProcessStatus, old::HostError> {
            result.map(process_status).map_err(Into::into)
        }

        impl old::Host for HostState {}

        impl http::Host for HostState {
            async fn send(&mut self, req: http::Request) -> Result<http::Response, old::HostError> {
                let req = cur_http::Request {
                    method: req.method,
                    url: req.url,
                    headers: req.headers,
                    body: req.body,
                    timeout_ms: req.timeout_ms,
                };
                let res = cur_http::Host::send(self, req).await?;
                Ok(http::Response {
                    status: res.status,
                    headers: res.headers,
                    body: res.body,
                    truncated: res.truncated,
                    elapsed_us: res.elapsed_us,
                })
            }
        }

        impl supervisor::Host for HostState {
            async fn status(
                &mut self,
                program: String,
            ) -> Result<supervisor::ProcessStatus, old::HostError> {
                supervised(cur_supervisor::Host::status(self, program).await)
            }

            async fn start(
                &mut self,
                program: String,
            ) -> Result<supervisor::ProcessStatus, old::HostError> {
                supervised(cur_supervisor::Host::start(self, program).await)
            }

            async fn stop(&mut self, program: String) -> Result<supervisor::ProcessStatus, old::HostError> {
                supervised(cur_supervisor::Host::stop(self, program).await)
            }

            async fn restart(
                &mut self,
                program: String,
            ) -> Result<supervisor::ProcessStatus, old::HostError> {
                supervised(cur_supervisor::Host::restart(self, program).await)
            }
        }

        impl tcp::Host for HostState {
            async fn connect(
                &mut self,
                host: String,
                port: u16,
                timeout_ms: u32,
            ) -> Result<u64, old::HostError> {
                Ok(cur_tcp::Host::connect(self, host, port, timeout_ms).await?)
            }
        }

        impl log::Host for HostState {
            async fn write(&mut self, level: log::Level, message: String) {
                cur_log::Host::write(self, level.into(), message).await
            }
        }
    };
}
