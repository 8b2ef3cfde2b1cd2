//! Host-side bindings for the plugin contract in `wit/`, one module per world.
//!
//! Both worlds import the same capability interfaces; the `action` bindings reuse the
//! `check` bindings' interface modules so each capability has one Rust type and one `Host` impl.

/// Bindings for the `check` world (and the shared capability interfaces).
pub mod check {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "check",
        imports: { default: async },
        exports: { default: async },
    });
}

/// Bindings for the `action` world.
pub mod action {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "action",
        imports: { default: async },
        exports: { default: async },
        with: {
            "hmrt:plugin/types": super::check::hmrt::plugin::types,
            "hmrt:plugin/http": super::check::hmrt::plugin::http,
            "hmrt:plugin/exec": super::check::hmrt::plugin::exec,
            "hmrt:plugin/supervisor": super::check::hmrt::plugin::supervisor,
            "hmrt:plugin/tcp": super::check::hmrt::plugin::tcp,
            "hmrt:plugin/log": super::check::hmrt::plugin::log,
        },
    });
}

pub use check::hmrt::plugin::{exec, http, log, supervisor, tcp, types};
