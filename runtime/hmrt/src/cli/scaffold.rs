//! `hmrt plugins new`: a plugin project in Rust, Python or JavaScript that builds with one
//! command. The templates are files in `runtime/hmrt/templates/<lang>/`, compiled into the
//! binary, with `{{placeholders}}`; the contract (`wit/plugin.wit`) is this hmrt's own, so a
//! new plugin always speaks the newest version it runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use crate::sandbox::{CONTRACT_VERSION, PluginKind};

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust, with the `hmrt-plugin` crate (cargo and the wasm32-wasip2 target).
    Rust,
    /// Python, with componentize-py (python3 with venv and pip).
    Python,
    /// JavaScript, with jco's QuickJS backend (node and npm).
    Js,
}

/// One file of a template: where it goes, its text, and for which kind (`None`: both).
struct File {
    to: &'static str,
    text: &'static str,
    kind: Option<PluginKind>,
    executable: bool,
}

const fn file(to: &'static str, text: &'static str) -> File {
    File {
        to,
        text,
        kind: None,
        executable: false,
    }
}

const fn only(kind: PluginKind, to: &'static str, text: &'static str) -> File {
    File {
        to,
        text,
        kind: Some(kind),
        executable: false,
    }
}

const fn script(to: &'static str, text: &'static str) -> File {
    File {
        to,
        text,
        kind: None,
        executable: true,
    }
}

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path))
    };
}

const RUST: &[File] = &[
    file("Cargo.toml", template!("rust/Cargo.toml")),
    script("build.sh", template!("rust/build.sh")),
    file("README.md", template!("rust/README.md")),
    file(".gitignore", template!("rust/.gitignore")),
    only(
        PluginKind::Check,
        "src/lib.rs",
        template!("rust/check/lib.rs"),
    ),
    only(
        PluginKind::Action,
        "src/lib.rs",
        template!("rust/action/lib.rs"),
    ),
];

const PYTHON: &[File] = &[
    script("build.sh", template!("python/build.sh")),
    file("requirements.txt", template!("python/requirements.txt")),
    file("hmrt_plugin.py", template!("python/hmrt_plugin.py")),
    file("README.md", template!("python/README.md")),
    file(".gitignore", template!("python/.gitignore")),
    only(
        PluginKind::Check,
        "app.py",
        template!("python/check/app.py"),
    ),
    only(
        PluginKind::Check,
        "test_app.py",
        template!("python/check/test_app.py"),
    ),
    only(
        PluginKind::Action,
        "app.py",
        template!("python/action/app.py"),
    ),
    only(
        PluginKind::Action,
        "test_app.py",
        template!("python/action/test_app.py"),
    ),
];

const JS: &[File] = &[
    script("build.sh", template!("js/build.sh")),
    file("package.json", template!("js/package.json")),
    file("hmrt-plugin.js", template!("js/hmrt-plugin.js")),
    file("hmrt-mock.js", template!("js/hmrt-mock.js")),
    file("README.md", template!("js/README.md")),
    file(".gitignore", template!("js/.gitignore")),
    only(PluginKind::Check, "app.js", template!("js/check/app.js")),
    only(
        PluginKind::Check,
        "app.test.js",
        template!("js/check/app.test.js"),
    ),
    only(PluginKind::Action, "app.js", template!("js/action/app.js")),
    only(
        PluginKind::Action,
        "app.test.js",
        template!("js/action/app.test.js"),
    ),
];

/// The versions hmrt's own guests are built and tested with: a new Rust project starts from
/// them (cargo drops what it does not use), so it builds with what is known to work.
const RUST_LOCK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"));

/// This hmrt's contract, which every new project builds against.
const WIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/plugin.wit"));

/// Where the `hmrt-plugin` crate of this hmrt's source tree is, if this binary was built from
/// one that is still there.
fn rust_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/support");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().unwrap_or(sdk))
}

/// The kind of plugin `hmrt plugins new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A health check (`check` world).
    Check,
    /// A corrective action or notifier (`action` world).
    Action,
}

impl From<Kind> for PluginKind {
    fn from(kind: Kind) -> PluginKind {
        match kind {
            Kind::Check => PluginKind::Check,
            Kind::Action => PluginKind::Action,
        }
    }
}

/// What `hmrt plugins new` is asked for.
#[derive(Debug, clap::Args)]
pub struct Request {
    /// The plugin's name (lowercase letters, digits and '-'): its file stem in plugins/.
    name: String,
    /// Its language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// A check or an action.
    #[arg(long, value_enum, default_value = "check")]
    kind: Kind,
    /// Where to write it (default: ./NAME); must not exist, or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `hmrt-plugin` crate (Rust only; default: hmrt's source tree this binary was built
    /// from).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

pub(super) fn new(request: Request) -> anyhow::Result<ExitCode> {
    let kind = PluginKind::from(request.kind);
    let fail = |message: String| {
        eprintln!("hmrt plugins new: {message}");
        Ok(ExitCode::from(2))
    };
    let name = &request.name;
    if !valid_name(name) {
        return fail(format!(
            "{name:?} is not a usable plugin name: lowercase letters, digits and '-', starting with a letter, and not a built-in's name (it becomes the file stem tasks name)"
        ));
    }
    let dir = request.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut entries| entries.next().is_some())
    {
        return fail(format!(
            "{} already exists and is not empty; nothing was written",
            dir.display()
        ));
    }
    let sdk = match (request.lang, request.sdk.clone().or_else(rust_sdk)) {
        (Lang::Rust, None) => {
            return fail(
                "the Rust SDK (the hmrt-plugin crate, checks/support in hmrt's source tree) is not on this machine: pass --sdk PATH/TO/hmrt/checks/support".into(),
            );
        }
        (Lang::Rust, Some(sdk)) => match sdk.join("Cargo.toml").canonicalize() {
            // Absolute, as Cargo reads a path dependency relative to the new project.
            Ok(manifest) => manifest.parent().map(Path::to_path_buf).unwrap_or(sdk),
            Err(e) => {
                return fail(format!(
                    "--sdk {}: no hmrt-plugin crate there ({e})",
                    sdk.display()
                ));
            }
        },
        (_, sdk) => sdk.unwrap_or_default(),
    };
    let sdk = sdk.display().to_string();
    let files = match request.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    if files.is_empty() {
        return fail(format!(
            "no {} template in this build",
            lang_name(request.lang)
        ));
    }
    let vars = Vars::new(name, kind, &sdk);
    let wanted = files.iter().filter(|f| f.kind.is_none_or(|k| k == kind));
    for f in wanted {
        write(&dir.join(f.to), &vars.fill(f.text), f.executable)?;
    }
    write(&dir.join("wit/plugin.wit"), WIT, false)?;
    if request.lang == Lang::Rust {
        write(&dir.join("Cargo.lock"), RUST_LOCK, false)?;
    }
    write(&dir.join("task.toml"), &vars.fill(sample_task(kind)), false)?;
    println!(
        "wrote {} ({} {}, hmrt:plugin@{CONTRACT_VERSION})",
        dir.display(),
        lang_name(request.lang),
        kind
    );
    println!("next:");
    println!("  cd {} && ./build.sh && ./build.sh test", dir.display());
    println!(
        "  hmrt try {name}.wasm --config '{}' --grant {}",
        vars.try_config, vars.try_grant
    );
    println!("  cp {name}.wasm <your plugins_dir>/ and add task.toml's task to your tasks.toml");
    Ok(ExitCode::SUCCESS)
}

/// The sample task for a plugin of `kind`, the same for every language.
fn sample_task(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Check => {
            r#"# A task that uses {{name}}: add it to your tasks.toml, with {{name}}.wasm in plugins_dir.
[[task]]
name = "web"
check = "{{name}}"
interval = "10s"
config = { url = "http://127.0.0.1:8080/health", expect_status = 200 }
grants = { http = ["http://127.0.0.1:8080"] }
"#
        }
        PluginKind::Action => {
            r#"# A task whose failures run {{name}}: add it to your tasks.toml, with {{name}}.wasm in
# plugins_dir.
[[task]]
name = "web"
check = "http"
interval = "10s"
config = { url = "http://127.0.0.1:8080/health" }
grants = { http = ["http://127.0.0.1:8080"] }
on_failure = { action = "{{name}}", config = { url = "http://127.0.0.1:9000/notify" }, grants = { http = ["http://127.0.0.1:9000"] } }
"#
        }
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    }
}

/// A plugin name: it is a file stem, a Rust crate, a Python module and an npm package name.
fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && crate::registry::usable_name(name)
        // A file by a built-in's name is refused by the registry: it could never be used.
        && !crate::registry::is_builtin(name)
}

/// The placeholders' values.
struct Vars {
    pairs: Vec<(&'static str, String)>,
    try_config: String,
    try_grant: String,
}

impl Vars {
    fn new(name: &str, kind: PluginKind, sdk: &str) -> Vars {
        let (try_config, try_grant) = match kind {
            PluginKind::Check => (
                r#"{"url": "http://127.0.0.1:8080/health"}"#,
                "http=http://127.0.0.1:8080",
            ),
            PluginKind::Action => (
                r#"{"url": "http://127.0.0.1:9000/notify"}"#,
                "http=http://127.0.0.1:9000",
            ),
        };
        Vars {
            pairs: vec![
                ("{{name}}", name.to_string()),
                ("{{name_snake}}", name.replace('-', "_")),
                ("{{kind}}", kind.to_string()),
                // A TOML string, quoted and escaped as TOML needs.
                (
                    "{{sdk_path}}",
                    toml::Value::String(sdk.to_string()).to_string(),
                ),
                ("{{contract}}", CONTRACT_VERSION.to_string()),
                ("{{try_config}}", try_config.to_string()),
                ("{{try_grant}}", try_grant.to_string()),
            ],
            try_config: try_config.to_string(),
            try_grant: try_grant.to_string(),
        }
    }

    fn fill(&self, text: &str) -> String {
        self.pairs
            .iter()
            .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
    }
}

fn write(path: &Path, text: &str, executable: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_file_stems_crates_modules_and_packages() {
        for good in ["disk-free", "a", "api2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Disk",
            "2fa",
            "a_b",
            "a-",
            "a/b",
            "../x",
            "a.b",
            "http",
            "heartbeat",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_in_every_template_is_filled() {
        let vars = Vars::new("disk-free", PluginKind::Check, "/sdk");
        for f in RUST.iter().chain(PYTHON).chain(JS) {
            let text = vars.fill(f.text);
            assert!(!text.contains("{{"), "{} keeps a placeholder", f.to);
        }
        for kind in [PluginKind::Check, PluginKind::Action] {
            let text = vars.fill(sample_task(kind));
            assert!(!text.contains("{{"), "{text}");
            toml::from_str::<toml::Table>(&text).expect("the sample task is TOML");
        }
    }
}
