//! Builds the test guests (tests/guests/*, workspace members) and the third-party example
//! (examples/plugins/json-health, a project of its own) and writes `artifacts.rs`: one
//! `pub const NAME: &str = "/abs/path.wasm";` per guest, named after its directory.

use hmrt_guest_build::{Builder, Error, Package};
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    hmrt_guest_build::main(run);
}

fn run() -> Result<(), Error> {
    let root = hmrt_guest_build::workspace_root()?;
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
    hmrt_guest_build::write_out("artifacts.rs", &code)
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
