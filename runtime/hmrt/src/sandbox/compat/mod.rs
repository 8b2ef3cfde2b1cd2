//! Host glue for plugins built against older contract versions (`wit/0.1.0/`, `wit/0.2.0/`):
//! each capability call is converted to the current contract's types and served by the one
//! current implementation, and each export is converted back, so an older plugin gets exactly
//! the checks and limits a new one gets.
//!
//! Every version only added to the one before (capabilities, needs, `exec`'s standard input),
//! so every older value has a current equivalent; the current values an older plugin can
//! receive (a host error, a process state) have the same cases. What the versions share is
//! generated per version by [`common_glue!`](common); what differs is written out per version.

#[macro_use]
mod common;
pub(crate) mod v0_1;
pub(crate) mod v0_2;
