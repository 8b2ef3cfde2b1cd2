//! Builds the built-in plugins (every guest crate under checks/ and actions/) and writes
//! `$OUT_DIR/builtins.rs`, which embeds them:
//!
//! ```text
//! pub static BUILTIN_CHECKS: &[(&str, &[u8])] = &[("http", include_bytes!("/abs/http.wasm")), ...];
//! pub static BUILTIN_ACTIONS: &[(&str, &[u8])] = &[("supervisor-restart", include_bytes!(...))];
//! ```
//!
//! A plugin's name is its crate's directory name, the name tasks.toml uses. Helper libraries
//! in those directories (crates that are not `cdylib`s, such as checks/support) are skipped.

use hmrt_guest_build::{Artifact, Builder, Error, Package};
use std::fmt::Write as _;

fn main() {
    hmrt_guest_build::main(run);
}

fn run() -> Result<(), Error> {
    let root = hmrt_guest_build::workspace_root()?;
    let (checks_dir, actions_dir) = (root.join("checks"), root.join("actions"));
    let builder = Builder::from_env()?
        .watch(root.join("wit"))
        .watch(&checks_dir)
        .watch(&actions_dir);

    let checks = Package::find_in(&checks_dir)?;
    let actions = Package::find_in(&actions_dir)?;
    let all: Vec<Package> = checks.iter().chain(&actions).cloned().collect();
    // One nested build for all of them: one cargo start-up, one dependency graph.
    let mut built = builder.build_workspace(&root, &all)?;
    let built_actions = built.split_off(checks.len());

    let mut code = String::new();
    table(&mut code, "BUILTIN_CHECKS", &built);
    table(&mut code, "BUILTIN_ACTIONS", &built_actions);
    hmrt_guest_build::write_out("builtins.rs", &code)
}

fn table(code: &mut String, name: &str, artifacts: &[Artifact]) {
    let _ = write!(code, "pub static {name}: &[(&str, &[u8])] = &[");
    for (i, a) in artifacts.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let path = a.wasm.to_string_lossy();
        let _ = write!(
            code,
            "{sep}({:?}, include_bytes!({path:?}))",
            a.package.dir_name()
        );
    }
    let _ = writeln!(code, "];");
}
