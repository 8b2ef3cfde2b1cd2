//! Builds WebAssembly guest components (`wasm32-wasip2`) from a build script.
//!
//! A build script hands this crate the guest packages it wants; the crate runs one nested
//! `cargo build` for them, in a target directory of its own (so the nested cargo never waits on
//! the lock the outer build holds), checks that every artifact is a component, and prints a
//! `cargo:rerun-if-changed` line for every file the artifacts were built from (read from cargo's
//! `.d` dep-info files), for the WIT directory and for the guests' manifests. A changed guest
//! source therefore always rebuilds the guest, and a stale guest is never embedded.
//!
//! ```no_run
//! // build.rs
//! use hmrt_guest_build::{Builder, Package};
//! use std::path::Path;
//!
//! let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
//! let builder = Builder::from_env().unwrap().watch(root.join("wit"));
//! let guests = Package::find_in(&root.join("checks")).unwrap();
//! for artifact in builder.build_workspace(&root, &guests).unwrap() {
//!     println!("{} -> {}", artifact.package.name, artifact.wasm.display());
//! }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile workspace guests are built with (defined in the workspace's Cargo.toml).
pub const WORKSPACE_PROFILE: &str = "guest";

/// The cargo profile a standalone project is built with: the one a plugin author uses, since a
/// third-party project need not define ours.
pub const PROJECT_PROFILE: &str = "release";

/// Environment the outer cargo sets for build scripts (or a user sets for the outer build) that
/// would change or break the nested build: flags meant for the host target, a target dir or
/// target that would override ours, and the wrapper `cargo clippy` installs, which would also
/// make the nested build's fingerprints differ between `cargo build` and `cargo clippy`.
const REMOVED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Why a guest build failed.
#[derive(Debug)]
pub enum Error {
    /// An environment variable a build script always has is missing.
    MissingEnv(&'static str),
    /// The `wasm32-wasip2` target's standard library is not installed.
    TargetMissing {
        /// Where rustc looks for the target's libraries.
        libdir: PathBuf,
    },
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A guest's Cargo.toml lacks something this crate needs (such as `[package] name`).
    Manifest {
        /// The Cargo.toml.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A command could not be started.
    Spawn {
        /// The command, as it would be typed.
        command: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The nested `cargo build` failed; its own output (printed above) says why.
    BuildFailed {
        /// The command, as it would be typed.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A build produced a file that is not a WebAssembly component.
    NotAComponent {
        /// The artifact.
        path: PathBuf,
        /// What the file is instead.
        found: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingEnv(var) => {
                write!(
                    f,
                    "environment variable {var} is not set (is this a build script?)"
                )
            }
            Error::TargetMissing { libdir } => write!(
                f,
                "the {TARGET} target is not installed (no {}); run `rustup target add {TARGET}`",
                libdir.display()
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Manifest { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Spawn { command, source } => write!(f, "cannot run `{command}`: {source}"),
            Error::BuildFailed { command, status } => write!(
                f,
                "building the guests failed ({status}); see the compiler output above. \
                 Command: `{command}`"
            ),
            Error::NotAComponent { path, found } => write!(
                f,
                "{} is not a WebAssembly component but {found}; guests must be built for {TARGET}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A guest crate: its package name, its directory and the file its build produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The `[package] name`.
    pub name: String,
    /// The directory holding its Cargo.toml.
    pub dir: PathBuf,
    /// The library's name (`[lib] name`, else the package name with `-` as `_`); the artifact
    /// is `<lib_name>.wasm`.
    pub lib_name: String,
    /// Whether the library builds a `cdylib`, i.e. whether the crate is a guest at all rather
    /// than a helper library used by guests.
    pub cdylib: bool,
}

impl Package {
    /// Reads the package in `dir` from its Cargo.toml.
    pub fn read(dir: &Path) -> Result<Package, Error> {
        let path = dir.join("Cargo.toml");
        let text = read_to_string(&path)?;
        let manifest = parse_manifest(&text).map_err(|reason| Error::Manifest {
            path: path.clone(),
            reason,
        })?;
        Ok(Package {
            lib_name: manifest
                .lib_name
                .unwrap_or_else(|| manifest.name.replace('-', "_")),
            name: manifest.name,
            dir: dir.to_path_buf(),
            cdylib: manifest.cdylib,
        })
    }

    /// Every guest (`cdylib`) package in the subdirectories of `dir`, sorted by directory name.
    /// Subdirectories without a Cargo.toml and helper libraries are left out.
    pub fn find_in(dir: &Path) -> Result<Vec<Package>, Error> {
        let io_err = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut dirs = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.join("Cargo.toml").is_file() {
                dirs.push(path);
            }
        }
        dirs.sort();
        let mut packages = Vec::new();
        for dir in dirs {
            let package = Package::read(&dir)?;
            if package.cdylib {
                packages.push(package);
            }
        }
        Ok(packages)
    }

    /// The directory's last component (`checks/http` -> `http`), which names built-in plugins.
    pub fn dir_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A built guest component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The package it was built from.
    pub package: Package,
    /// The absolute path of the `.wasm` component.
    pub wasm: PathBuf,
}

/// Runs nested guest builds and reports their inputs to cargo.
#[derive(Debug, Clone)]
pub struct Builder {
    cargo: PathBuf,
    rustc: PathBuf,
    target_dir: PathBuf,
}

impl Builder {
    /// A builder configured from a build script's environment: `CARGO` and `RUSTC` as the outer
    /// build uses them, and a target directory `hmrt-guests` in the outer profile directory
    /// (`target/debug/hmrt-guests`), derived from `OUT_DIR`. That directory does not depend on
    /// the package or on whether cargo builds, tests or lints, so every build script and every
    /// outer command shares one guest build.
    pub fn from_env() -> Result<Builder, Error> {
        let out_dir = std::env::var_os("OUT_DIR").ok_or(Error::MissingEnv("OUT_DIR"))?;
        let out_dir = PathBuf::from(out_dir);
        // OUT_DIR is <profile dir>/build/<package>-<hash>/out.
        let profile_dir = out_dir
            .ancestors()
            .nth(3)
            .ok_or(Error::MissingEnv("OUT_DIR"))?;
        let cargo = std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from);
        let rustc = std::env::var_os("RUSTC").map_or_else(|| "rustc".into(), PathBuf::from);
        Ok(Builder {
            cargo,
            rustc,
            target_dir: profile_dir.join("hmrt-guests"),
        })
    }

    /// Uses `dir` as the nested build's target directory.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.target_dir = dir.into();
        self
    }

    /// The nested build's target directory.
    pub fn target_dir_path(&self) -> &Path {
        &self.target_dir
    }

    /// Also reruns the build script when anything under `path` changes: the WIT directory,
    /// whose files a guest may not have read yet, or a directory new guests may appear in.
    /// Prints the `cargo:rerun-if-changed` line at once.
    pub fn watch(self, path: impl AsRef<Path>) -> Builder {
        println!("cargo:rerun-if-changed={}", path.as_ref().display());
        self
    }

    /// Builds `packages`, members of the workspace rooted at `workspace_root`, in one
    /// `cargo build -p … --profile guest` and returns their components in the same order.
    pub fn build_workspace(
        &self,
        workspace_root: &Path,
        packages: &[Package],
    ) -> Result<Vec<Artifact>, Error> {
        if packages.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            "--manifest-path".into(),
            workspace_root.join("Cargo.toml").into_os_string(),
        ];
        for p in packages {
            args.push("-p".into());
            args.push(p.name.clone().into());
        }
        let mut inputs = vec![
            workspace_root.join("Cargo.toml"),
            workspace_root.join("Cargo.lock"),
        ];
        inputs.extend(packages.iter().map(|p| p.dir.join("Cargo.toml")));
        self.build(&args, WORKSPACE_PROFILE, packages, inputs)
    }

    /// Builds the standalone project (its own workspace) in `project_dir` as its author would,
    /// with `--release`, and returns its component.
    pub fn build_project(&self, project_dir: &Path) -> Result<Artifact, Error> {
        let package = Package::read(project_dir)?;
        let args = vec![
            "--manifest-path".into(),
            project_dir.join("Cargo.toml").into_os_string(),
        ];
        let inputs = vec![
            project_dir.join("Cargo.toml"),
            project_dir.join("Cargo.lock"),
        ];
        let mut artifacts = self.build(
            &args,
            PROJECT_PROFILE,
            std::slice::from_ref(&package),
            inputs,
        )?;
        artifacts.pop().ok_or_else(|| Error::Manifest {
            path: project_dir.join("Cargo.toml"),
            reason: "the build produced no artifact".to_owned(),
        })
    }

    fn build(
        &self,
        args: &[std::ffi::OsString],
        profile: &str,
        packages: &[Package],
        inputs: Vec<PathBuf>,
    ) -> Result<Vec<Artifact>, Error> {
        // Report inputs before building, so that a failed build is retried once they change.
        let mut seen = BTreeSet::new();
        for path in &inputs {
            rerun_if_changed(&mut seen, path);
        }
        self.check_target()?;

        let mut cmd = Command::new(&self.cargo);
        cmd.arg("build")
            .args(args)
            .arg("--target")
            .arg(TARGET)
            .arg("--profile")
            .arg(profile)
            .arg("--target-dir")
            .arg(&self.target_dir);
        for var in REMOVED_ENV {
            cmd.env_remove(var);
        }
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            // Features and cfgs of the crate whose build script runs us, not of the guests.
            if var.starts_with("CARGO_FEATURE_") || var.starts_with("CARGO_CFG_") {
                cmd.env_remove(var.as_ref());
            }
        }
        // Our stdout is read by cargo as build-script directives; the nested build's output
        // belongs on stderr, which cargo shows when the build script fails.
        cmd.stdout(Stdio::from(io::stderr()));
        let command = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("running: {command}");
        let status = cmd.status().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        if !status.success() {
            return Err(Error::BuildFailed { command, status });
        }

        let out = self.target_dir.join(TARGET).join(profile);
        let mut artifacts = Vec::new();
        for package in packages {
            let wasm = out.join(format!("{}.wasm", package.lib_name));
            check_component(&wasm)?;
            let dep_info = out.join(format!("{}.d", package.lib_name));
            for file in parse_dep_info(&read_to_string(&dep_info)?) {
                rerun_if_changed(&mut seen, &file);
            }
            let wasm = fs::canonicalize(&wasm).map_err(|source| Error::Io {
                path: wasm.clone(),
                source,
            })?;
            artifacts.push(Artifact {
                package: package.clone(),
                wasm,
            });
        }
        Ok(artifacts)
    }

    /// Fails early, with the command that fixes it, when the target's standard library is
    /// missing; cargo's own message for that case ("can't find crate for `core`") does not say.
    fn check_target(&self) -> Result<(), Error> {
        let output = Command::new(&self.rustc)
            .args(["--print", "target-libdir", "--target", TARGET])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| Error::Spawn {
                command: format!(
                    "{} --print target-libdir --target {TARGET}",
                    self.rustc.display()
                ),
                source,
            })?;
        let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let has_core = fs::read_dir(&libdir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libcore-") && name.ends_with(".rlib")
            })
        });
        if output.status.success() && has_core {
            Ok(())
        } else {
            Err(Error::TargetMissing { libdir })
        }
    }
}

fn rerun_if_changed(seen: &mut BTreeSet<PathBuf>, path: &Path) {
    if seen.insert(path.to_path_buf()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a build script's body; on error prints it and exits non-zero, which fails the build
/// with that message.
pub fn main(run: impl FnOnce() -> Result<(), Error>) {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The workspace root, for a build script of a package two levels below it (`runtime/hmrt`,
/// `tests/artifacts`).
pub fn workspace_root() -> Result<PathBuf, Error> {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or(Error::MissingEnv("CARGO_MANIFEST_DIR"))?;
    let root = Path::new(&manifest_dir).join("../..");
    std::fs::canonicalize(&root).map_err(|source| Error::Io { path: root, source })
}

/// Writes generated Rust `code` to `$OUT_DIR/file`.
pub fn write_out(file: &str, code: &str) -> Result<(), Error> {
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").ok_or(Error::MissingEnv("OUT_DIR"))?).join(file);
    std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })
}

/// Checks that the file at `path` is a WebAssembly component, not a core module or anything
/// else.
pub fn check_component(path: &Path) -> Result<(), Error> {
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    component_header(&bytes).map_err(|found| Error::NotAComponent {
        path: path.to_path_buf(),
        found,
    })
}

/// Checks the 8-byte header of a component: the wasm magic, then version 0x0d and layer 1.
/// On a mismatch, says what the bytes are instead.
pub fn component_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "a core WebAssembly module (built for wasm32-wasip1 or wasm32-unknown-unknown?)"
                .to_owned(),
        ),
        Some([0, b'a', b's', b'm', v @ ..]) => Err(format!("WebAssembly with header {v:02x?}")),
        _ => Err("not WebAssembly at all".to_owned()),
    }
}

/// The files listed in a cargo/rustc `.d` dep-info file (the prerequisites of every rule, with
/// `\ ` unescaped to a space), deduplicated, in order.
pub fn parse_dep_info(text: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        // A rule is `target: dep dep`; the target's own path may contain `: ` only escaped.
        let Some(pos) = line.find(": ") else { continue };
        let mut current = String::new();
        let mut chars = line[pos + 2..].chars().peekable();
        let mut push = |current: &mut String| {
            if !current.is_empty() && seen.insert(current.clone()) {
                files.push(PathBuf::from(std::mem::take(current)));
            }
            current.clear();
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                c if c.is_whitespace() => push(&mut current),
                c => current.push(c),
            }
        }
        push(&mut current);
    }
    files
}

/// What this crate needs from a Cargo.toml.
#[derive(Debug, PartialEq, Eq)]
struct Manifest {
    name: String,
    lib_name: Option<String>,
    cdylib: bool,
}

/// Reads `[package] name`, `[lib] name` and whether `[lib] crate-type` lists `cdylib`, from the
/// plain `key = "value"` lines cargo manifests are written in. Deliberately not a TOML parser:
/// build scripts get no dependencies, and guests' manifests are ours or follow the template.
fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let mut section = String::new();
    let mut name = None;
    let mut lib_name = None;
    let mut cdylib = false;
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']', ' ']).to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let string = || value.trim_matches('"').to_owned();
        match (section.as_str(), key) {
            ("package", "name") => name = Some(string()),
            ("lib", "name") => lib_name = Some(string()),
            ("lib", "crate-type") => cdylib = value.contains("\"cdylib\""),
            _ => {}
        }
    }
    let name = name.ok_or("no `name` in `[package]`")?;
    Ok(Manifest {
        name,
        lib_name,
        cdylib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_header_tells_components_from_modules() {
        assert_eq!(component_header(b"\0asm\x0d\0\x01\0rest"), Ok(()));
        let module = component_header(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(module.contains("core WebAssembly module"), "{module}");
        assert!(component_header(b"\0asm\x0e\0\x01\0").is_err());
        assert!(
            component_header(b"\x7fELF\x02\x01\x01\0")
                .unwrap_err()
                .contains("not WebAssembly")
        );
        assert!(component_header(b"\0asm").is_err());
    }

    #[test]
    fn dep_info_lists_every_prerequisite_once() {
        let text = "/t/guest/a.wasm: /src/a/lib.rs /src/with\\ space/x.rs /wit/plugin.wit\n\
                    \n\
                    /src/a/lib.rs:\n\
                    /t/guest/a.d: /src/a/lib.rs   /src/b.rs\n";
        assert_eq!(
            parse_dep_info(text),
            [
                "/src/a/lib.rs",
                "/src/with space/x.rs",
                "/wit/plugin.wit",
                "/src/b.rs"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_dep_info("").is_empty());
    }

    #[test]
    fn manifest_fields() {
        let guest = "[package]\nname = \"hmrt-check-http\" # the http check\nversion = \"0.1.0\"\n\
                     [lib]\ncrate-type = [\"cdylib\"]\n[dependencies]\nname = \"not-this\"\n";
        assert_eq!(
            parse_manifest(guest),
            Ok(Manifest {
                name: "hmrt-check-http".into(),
                lib_name: None,
                cdylib: true
            })
        );
        let helper = "[package]\nname = \"support\"\n[lib]\nname = \"sup\"\n";
        assert_eq!(
            parse_manifest(helper),
            Ok(Manifest {
                name: "support".into(),
                lib_name: Some("sup".into()),
                cdylib: false
            })
        );
        assert!(parse_manifest("[lib]\nname = \"x\"\n").is_err());
    }

    #[test]
    fn find_in_skips_helpers_and_reads_lib_names() {
        let root =
            std::env::temp_dir().join(format!("hmrt-guest-build-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (dir, manifest) in [
            (
                "b-guest",
                "[package]\nname = \"b\"\n[lib]\ncrate-type = [\"cdylib\"]\n",
            ),
            (
                "a-guest",
                "[package]\nname = \"a-x\"\n[lib]\ncrate-type = [\"cdylib\"]\n",
            ),
            ("support", "[package]\nname = \"support\"\n"),
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
            fs::write(root.join(dir).join("Cargo.toml"), manifest).unwrap();
        }
        fs::create_dir_all(root.join("not-a-crate")).unwrap();
        let found = Package::find_in(&root).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| (p.name.as_str(), p.lib_name.as_str(), p.dir_name()))
            .collect();
        assert_eq!(
            names,
            [
                ("a-x", "a_x", "a-guest".to_owned()),
                ("b", "b", "b-guest".to_owned())
            ]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
