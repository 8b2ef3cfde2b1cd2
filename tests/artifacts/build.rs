//! Builds the test guests (tests/guests/*, workspace members) and the third-party example
//! (examples/plugins/json-health, a project of its own) and writes `artifacts.rs`: one
//! `pub const NAME: &str = "/abs/path.wasm";` per guest, named after its directory.

use hmrt_guest_build::{Builder, Error, Package};
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
    let builder = Builder::from_env()?
        .watch(root.join("wit"))
        .watch(root.join("tests/guests"));
    let mut consts = Vec::new();
    let guests = Package::find_in(&root.join("tests/guests"))?;
    for artifact in builder.build_workspace(&root, &guests)? {
        consts.push((artifact.package.dir_name(), artifact.wasm));
    }
    let json_health = builder.build_project(&root.join("examples/plugins/json-health"))?;
    consts.push((json_health.package.dir_name(), json_health.wasm));

    let mut code = String::new();
    for (name, wasm) in consts {
        let ident = name.to_uppercase().replace('-', "_");
        let _ = writeln!(code, "/// The `{name}` guest component.");
        let _ = writeln!(code, "pub const {ident}: &str = {:?};", path_str(&wasm));
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or(Error::MissingEnv("OUT_DIR"))?)
        .join("artifacts.rs");
    std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
