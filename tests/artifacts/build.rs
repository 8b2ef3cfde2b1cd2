//! Builds the test guests (tests/guests/*, workspace members) and the third-party examples
//! (examples/plugins/json-health and examples/plugins/ntfy-notify, each a project of its own)
//! and writes `artifacts.rs`: one `pub const NAME: &str = "/abs/path.wasm";` per guest, named
//! after its directory.

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
    // The third-party examples, each a project of its own, built as their authors would.
    for example in ["json-health", "ntfy-notify"] {
        let project = builder.build_project(&root.join("examples/plugins").join(example))?;
        consts.push((project.package.dir_name(), project.wasm));
    }

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
