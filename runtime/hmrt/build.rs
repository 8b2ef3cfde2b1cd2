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
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or(Error::MissingEnv("CARGO_MANIFEST_DIR"))?;
    let root = Path::new(&manifest_dir).join("../..");
    let root = std::fs::canonicalize(&root).map_err(|source| Error::Io { path: root, source })?;
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
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or(Error::MissingEnv("OUT_DIR"))?)
        .join("builtins.rs");
    std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })
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
