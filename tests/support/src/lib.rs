//! What hmrt's tests share, as a crate (a dev-dependency of `hmrt-supervisor` and `hmrt`)
//! rather than files pulled into each test binary with `#[path]`.
//!
//! - [`supervisord`]: a real supervisord (4.3.0) in a temporary directory, driven and
//!   inspected through `supervisorctl`, and `flaky_service.py` (next to this crate's
//!   `Cargo.toml`), a small HTTP service whose health a test can break and repair.
//! - [`alertmanager`]: a real Alertmanager on loopback, read through its API.
//! - [`chromium`]: headless Chromium rendering a page (its DOM after scripts ran, a screenshot).
//! - [`http`]: a minimal blocking HTTP/1.1 client over `std::net`, for talking to the servers.
//! - [`prometheus`]: a real Prometheus on loopback, and `promtool`.
//! - [`smtp`]: a real SMTP server (aiosmtpd) on loopback, storing what it accepts.
//!
//! It depends on nothing of hmrt's, so it can test hmrt's supervisord client without
//! trusting it.

#![warn(missing_docs)]

pub mod alertmanager;
pub mod chromium;
pub mod dbus;
pub mod docker;
pub mod http;
pub mod mosquitto;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod smtp;
pub mod supervisord;
pub mod systemd_standin;
