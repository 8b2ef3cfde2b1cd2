//! Configs that must be refused, one directory each under `tests/cases/`: `tasks.toml` must give
//! exactly the errors in `error.txt`. See `tests/cases/README.md` for the format, and run with
//! `HMRT_BLESS=1` to write each `error.txt` from what the loader reports.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use hmrt_config::Config;

/// A directory holding one executable, `probe`: the whole `PATH` the loader sees, so an exec
/// grant of `probe` resolves and any other bare name does not, wherever the tests run.
fn path_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "#!/bin/sh\nexit 0\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// The loader's errors for the case in `dir`, as `error.txt` holds them: one per line, the
/// case's directory cut from every path (so `tasks.toml:LINE:COLUMN`) and the `PATH` directory
/// written `$PATH_DIR`, then a final newline.
fn errors_of(dir: &Path, path_env: &Path) -> Result<String, String> {
    let file = dir.join("tasks.toml");
    if !file.is_file() {
        return Err("no tasks.toml".to_string());
    }
    match Config::load(&file, Some(path_env.as_os_str())) {
        Ok(_) => Err("the config was accepted".to_string()),
        Err(errors) => {
            let shown = errors
                .to_string()
                .replace(&format!("{}/", dir.display()), "")
                .replace(&path_env.display().to_string(), "$PATH_DIR");
            Ok(format!("{shown}\n"))
        }
    }
}

fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn error_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let bless = std::env::var_os("HMRT_BLESS").is_some_and(|v| v == OsStr::new("1"));
    let path_env = path_dir();
    let cases = case_dirs(&root);
    assert!(!cases.is_empty(), "no cases in {}", root.display());
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy();
        let got = match errors_of(dir, path_env.path()) {
            Ok(got) => got,
            Err(why) => {
                failures.push(format!("{name}: {why}"));
                continue;
            }
        };
        let expected_file = dir.join("error.txt");
        let expected = std::fs::read_to_string(&expected_file).ok();
        if expected.as_deref() == Some(got.as_str()) {
            continue;
        }
        if bless {
            std::fs::write(&expected_file, &got).unwrap();
            eprintln!("blessed {name}");
            continue;
        }
        failures.push(match expected {
            Some(expected) => format!("{name}:\n--- expected\n{expected}--- got\n{got}"),
            None => format!("{name}: no error.txt; it would be:\n{got}"),
        });
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (HMRT_BLESS=1 rewrites error.txt from what the loader reports):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
