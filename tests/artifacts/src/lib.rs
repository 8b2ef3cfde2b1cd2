//! Absolute paths of the guest components hmrt's tests load, built by this crate's build
//! script from `tests/guests/*` and the third-party examples `examples/plugins/json-health` and
//! `examples/plugins/ntfy-notify`.
//!
//! - `HOSTILE`: a check whose `config.mode` makes it misbehave (`spin`, `alloc`, `panic`,
//!   `stdout-flood`, ...) or call one capability (`http`, `exec`, `restart`, `tcp`, `log`).
//! - `V0_1`, `V0_2`: tcp checks built against the frozen contracts 0.1.0 and 0.2.0.
//! - `OLD_WIT`: a healthy check built against `hmrt:plugin@0.0.1`; the host must refuse it.
//! - `JSON_HEALTH`: the third-party example check, built as its author would.
//! - `NTFY_NOTIFY`: the third-party example receiver (an action that posts `[[alert]]` notices
//!   to an ntfy server), built the same way.
//!
//! A component of the wrong world needs no guest of its own: tests load the built-in
//! `supervisor-restart` action where a check is expected.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
