//! Host-side bindings for the plugin contract in `wit/`, one module per world, plus those of
//! each older contract version hmrt still runs ([`v0_1`], [`v0_2`]).
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
            "hmrt:plugin/smtp": super::check::hmrt::plugin::smtp,
            "hmrt:plugin/system": super::check::hmrt::plugin::system,
            "hmrt:plugin/process": super::check::hmrt::plugin::process,
            "hmrt:plugin/files": super::check::hmrt::plugin::files,
            "hmrt:plugin/docker": super::check::hmrt::plugin::docker,
            "hmrt:plugin/systemd": super::check::hmrt::plugin::systemd,
            "hmrt:plugin/scratch": super::check::hmrt::plugin::scratch,
            "hmrt:plugin/log": super::check::hmrt::plugin::log,
        },
    });
}

/// The contract as hmrt 0.2 spoke it (`wit/0.2.0/`, frozen), served like [`v0_1`].
pub mod v0_2 {
    /// The `check` world of 0.2.0.
    pub mod check {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "check",
            imports: { default: async },
            exports: { default: async },
        });
    }

    /// The `action` world of 0.2.0.
    pub mod action {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "action",
            imports: { default: async },
            exports: { default: async },
            with: {
                "hmrt:plugin/types": super::check::hmrt::plugin::types,
                "hmrt:plugin/http": super::check::hmrt::plugin::http,
                "hmrt:plugin/exec": super::check::hmrt::plugin::exec,
                "hmrt:plugin/supervisor": super::check::hmrt::plugin::supervisor,
                "hmrt:plugin/tcp": super::check::hmrt::plugin::tcp,
                "hmrt:plugin/smtp": super::check::hmrt::plugin::smtp,
                "hmrt:plugin/log": super::check::hmrt::plugin::log,
            },
        });
    }

    pub use check::hmrt::plugin::{exec, http, log, smtp, supervisor, tcp, types};
}

/// The contract as hmrt 0.1 spoke it (`wit/0.1.0/`, frozen). Its capability interfaces are
/// served by adapting each call to the current one (`compat/`), so a capability keeps one
/// implementation.
pub mod v0_1 {
    /// The `check` world of 0.1.0.
    pub mod check {
        wasmtime::component::bindgen!({
            path: "../../wit/0.1.0",
            world: "check",
            imports: { default: async },
            exports: { default: async },
        });
    }

    /// The `action` world of 0.1.0.
    pub mod action {
        wasmtime::component::bindgen!({
            path: "../../wit/0.1.0",
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
}

pub use check::hmrt::plugin::{
    docker, exec, files, http, log, process, scratch, smtp, supervisor, system, systemd, tcp, types,
};
