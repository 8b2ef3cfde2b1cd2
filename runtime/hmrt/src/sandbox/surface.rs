//! What a component says it imports and exports, read from its bytes before anything is
//! compiled (a Python or JavaScript component takes seconds to compile), and what to tell the
//! author when it asks for something hmrt does not give: which interface, which version, and,
//! where the cause is known, the build flag that removes it.

use super::LoadError;
use super::load::{CONTRACT_VERSION, PACKAGE, PluginKind, SUPPORTED_VERSIONS};
use super::untrusted;

/// The interfaces each supported contract version has.
const INTERFACES: &[(&str, &[&str])] = &[
    (
        "0.3.0",
        &[
            "types",
            "http",
            "exec",
            "supervisor",
            "tcp",
            "smtp",
            "system",
            "process",
            "files",
            "docker",
            "systemd",
            "scratch",
            "log",
        ],
    ),
    (
        "0.2.0",
        &["types", "http", "exec", "supervisor", "tcp", "smtp", "log"],
    ),
    (
        "0.1.0",
        &["types", "http", "exec", "supervisor", "tcp", "log"],
    ),
];

/// The WASI 0.2 packages hmrt links (with an empty context: no files, no sockets, no
/// environment; see `sandbox`).
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// The most top-level imports, and exports, a plugin may have: the contract has 13
/// interfaces and WASI 0.2 about 30, so this only stops a file made to exhaust memory.
const MAX_NAMES: usize = 1024;

/// A component's top-level import and export names.
#[derive(Debug, Default)]
pub(crate) struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Which export names are component instances (what a world's interface is).
    instances: Vec<bool>,
}

/// Reads the names without compiling or validating anything (wasmtime validates when it
/// compiles). Only the outermost component's names count: nested modules and components are
/// what it is built of, not what it asks of the host.
pub(crate) fn read(bytes: &[u8]) -> Result<Surface, LoadError> {
    use wasmparser::Payload;
    let mut surface = Surface::default();
    let mut depth = 0usize;
    let bad = |e: wasmparser::BinaryReaderError| {
        LoadError::Compile(untrusted::line(
            &format!("not a well-formed component: {e}"),
            untrusted::MESSAGE,
        ))
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(bad)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    surface
                        .imports
                        .push(import.map_err(bad)?.name.name.to_string());
                    too_many(surface.imports.len(), "imports")?;
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(bad)?;
                    surface.exports.push(export.name.name.to_string());
                    surface.instances.push(matches!(
                        export.kind,
                        wasmparser::ComponentExternalKind::Instance
                    ));
                    too_many(surface.exports.len(), "exports")?;
                }
            }
            _ => {}
        }
    }
    Ok(surface)
}

fn too_many(count: usize, what: &str) -> Result<(), LoadError> {
    if count > MAX_NAMES {
        return Err(LoadError::Compile(format!(
            "has more than {MAX_NAMES} top-level {what}; a plugin has a few dozen"
        )));
    }
    Ok(())
}

/// Splits `hmrt:plugin/name@version` into (name, version).
pub(crate) fn contract_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

impl Surface {
    /// The world and contract version the exports name.
    pub(crate) fn world(&self) -> Result<(PluginKind, &'static str), LoadError> {
        let mut found = None;
        for (name, instance) in self.exports.iter().zip(&self.instances) {
            let Some((interface, version)) = contract_interface(name) else {
                continue;
            };
            if !instance {
                continue;
            }
            let kind = match interface {
                "check-plugin" => PluginKind::Check,
                "action-plugin" => PluginKind::Action,
                _ => continue,
            };
            let Some(version) = SUPPORTED_VERSIONS.iter().find(|v| **v == version) else {
                return Err(mismatch(interface, version));
            };
            if found.is_some_and(|(k, _)| k != kind) {
                return Err(LoadError::Compile(
                    "exports both the check and the action world; a plugin is one or the other"
                        .into(),
                ));
            }
            found = Some((kind, *version));
        }
        found.ok_or_else(|| LoadError::NotAPlugin {
            exports: if self.exports.is_empty() {
                "nothing".into()
            } else {
                untrusted::line(&self.exports.join(", "), untrusted::MESSAGE)
            },
        })
    }

    /// Every import must be one hmrt provides for a plugin of `contract`: its own version of
    /// the contract, or WASI 0.2. The first that is not is the error, with the fix if known.
    pub(crate) fn check_imports(&self, contract: &str) -> Result<(), LoadError> {
        for name in &self.imports {
            if let Some((interface, version)) = contract_interface(name) {
                if version != contract {
                    return Err(mismatch(interface, version));
                }
                let known = INTERFACES
                    .iter()
                    .find(|(v, _)| *v == contract)
                    .is_some_and(|(_, names)| names.contains(&interface));
                if !known {
                    return Err(unsupported(name));
                }
            } else if !provided_wasi(name) {
                return Err(unsupported(name));
            }
        }
        Ok(())
    }
}

/// `wasi:<package>/<interface>@0.2.x` of a package hmrt links.
fn provided_wasi(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let Some((package, version)) = rest
        .split_once('/')
        .and_then(|(package, interface)| Some((package, interface.split_once('@')?.1)))
    else {
        return false;
    };
    WASI_PACKAGES.contains(&package) && version.starts_with("0.2.")
}

fn mismatch(interface: &str, found: &str) -> LoadError {
    LoadError::VersionMismatch {
        interface: untrusted::line(interface, untrusted::MESSAGE),
        found: untrusted::line(found, untrusted::MESSAGE),
    }
}

/// An import hmrt does not provide, and what to do about it.
pub(crate) fn unsupported(name: &str) -> LoadError {
    LoadError::UnsupportedImport {
        import: untrusted::line(name, untrusted::MESSAGE),
        hint: hint(name),
    }
}

/// The fix for a compile error whose usual cause is known, or nothing.
pub(crate) fn compile_hint(error: &str) -> &'static str {
    if error.contains("requires the component model async feature") {
        // jco's QuickJS backend emits the async ABI unless told not to.
        "; hmrt runs synchronous components: a JavaScript plugin built by jco's QuickJS backend needs `--backend-qjs-disable-async` (the scaffold's build.sh passes it)"
    } else {
        ""
    }
}

/// The fix for an import hmrt does not provide, where its usual cause is known.
fn hint(name: &str) -> String {
    let provided = format!(
        "a plugin may import {PACKAGE}@{CONTRACT_VERSION}'s capability interfaces and WASI 0.2's cli, clocks, filesystem, io, random and sockets (which hmrt links empty)"
    );
    if name.starts_with("wasi:http/") {
        return format!(
            "; a JavaScript plugin built with jco/componentize-js's defaults imports it: build with `--disable http --disable fetch-event` (the scaffold's build.sh does); HTTP goes through {PACKAGE}/http, which checks the task's grants"
        );
    }
    if let Some(rest) = name.strip_prefix("wasi:")
        && rest
            .split_once('@')
            .is_some_and(|(_, v)| !v.starts_with("0.2."))
    {
        return format!(
            "; this hmrt links WASI 0.2 only: build for wasm32-wasip2 (WASI 0.2); {provided}"
        );
    }
    if let Some((interface, version)) = contract_interface(name) {
        return format!(
            "; {PACKAGE}@{version} has no interface `{}`: {provided}",
            untrusted::line(interface, untrusted::MESSAGE)
        );
    }
    format!("; {provided}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component that imports `imports` and exports `export` (an imported instance passed
    /// on: the names are all that is read before compiling).
    fn component(imports: &[&str], export: &str) -> Vec<u8> {
        // The types interface in the export's own version, so only what a test adds differs.
        let version = export.rsplit_once('@').map_or("0.3.0", |(_, v)| v);
        let mut text =
            format!("(component\n(import \"hmrt:plugin/types@{version}\" (instance $t))\n");
        for import in imports {
            text.push_str(&format!("(import \"{import}\" (instance))\n"));
        }
        text.push_str(&format!("(export \"{export}\" (instance $t)))"));
        wat::parse_str(&text).expect("the test's component is valid text")
    }

    fn load(imports: &[&str], export: &str) -> Result<(), String> {
        let surface = read(&component(imports, export)).map_err(|e| e.to_string())?;
        let (_, contract) = surface.world().map_err(|e| e.to_string())?;
        surface.check_imports(contract).map_err(|e| e.to_string())
    }

    const CHECK: &str = "hmrt:plugin/check-plugin@0.3.0";

    #[test]
    fn a_plugin_of_the_contract_and_wasi_0_2_is_accepted() {
        let wasi = [
            "wasi:cli/environment@0.2.3",
            "wasi:io/streams@0.2.0",
            "wasi:random/random@0.2.6",
            "hmrt:plugin/http@0.3.0",
            "hmrt:plugin/scratch@0.3.0",
        ];
        assert_eq!(load(&wasi, CHECK), Ok(()));
        let surface = read(&component(&wasi, CHECK)).unwrap();
        assert_eq!(surface.imports.len(), 6, "{:?}", surface.imports);
        assert_eq!(surface.world().unwrap(), (PluginKind::Check, "0.3.0"));
    }

    #[test]
    fn wasi_http_names_the_interface_and_the_jco_flags_that_drop_it() {
        let e = load(&["wasi:http/outgoing-handler@0.2.3"], CHECK).unwrap_err();
        assert!(
            e.starts_with("imports wasi:http/outgoing-handler@0.2.3, which hmrt does not provide"),
            "{e}"
        );
        assert!(e.contains("--disable http --disable fetch-event"), "{e}");
        assert!(e.contains("hmrt:plugin/http"), "{e}");
    }

    #[test]
    fn wasi_0_3_says_to_build_for_wasi_0_2() {
        let e = load(&["wasi:cli/environment@0.3.0"], CHECK).unwrap_err();
        assert!(e.contains("wasi:cli/environment@0.3.0"), "{e}");
        assert!(
            e.contains("links WASI 0.2 only: build for wasm32-wasip2"),
            "{e}"
        );
    }

    #[test]
    fn an_interface_the_contract_lacks_is_named_with_its_version() {
        let e = load(&["hmrt:plugin/kv@0.3.0"], CHECK).unwrap_err();
        assert!(e.contains("imports hmrt:plugin/kv@0.3.0"), "{e}");
        assert!(e.contains("hmrt:plugin@0.3.0 has no interface `kv`"), "{e}");
        // An interface 0.3.0 added is not in 0.2.0.
        let e = load(
            &["hmrt:plugin/scratch@0.2.0"],
            "hmrt:plugin/check-plugin@0.2.0",
        )
        .unwrap_err();
        assert!(
            e.contains("hmrt:plugin@0.2.0 has no interface `scratch`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_package_lists_what_a_plugin_may_import() {
        let e = load(&["fermyon:spin/key-value@2.0.0"], CHECK).unwrap_err();
        assert!(e.contains("imports fermyon:spin/key-value@2.0.0"), "{e}");
        assert!(e.contains("WASI 0.2's cli, clocks"), "{e}");
    }

    #[test]
    fn a_newer_contract_names_both_versions_and_says_upgrade_or_rebuild() {
        let e = load(&[], "hmrt:plugin/check-plugin@0.9.0").unwrap_err();
        assert!(
            e.contains("was built against hmrt:plugin@0.9.0 (check-plugin)"),
            "{e}"
        );
        assert!(e.contains("hmrt:plugin@0.3.0 or @0.2.0 or @0.1.0"), "{e}");
        assert!(e.contains("newer than this hmrt; upgrade hmrt"), "{e}");
    }

    #[test]
    fn an_older_unsupported_contract_says_what_to_rebuild_with() {
        let e = load(&[], "hmrt:plugin/check-plugin@0.0.1").unwrap_err();
        assert!(e.contains("hmrt:plugin@0.0.1"), "{e}");
        assert!(e.contains("rebuild it against hmrt:plugin@0.3.0"), "{e}");
    }

    #[test]
    fn imports_of_another_version_than_the_export_are_a_mismatch() {
        let e = load(&["hmrt:plugin/http@0.2.0"], CHECK).unwrap_err();
        assert!(e.contains("hmrt:plugin@0.2.0 (http)"), "{e}");
    }

    #[test]
    fn no_world_export_says_what_it_does_export() {
        let e = load(&[], "my:thing/run@1.0.0").unwrap_err();
        assert!(e.contains("(it exports: my:thing/run@1.0.0)"), "{e}");
        assert!(e.contains("`hmrt plugins new`"), "{e}");
    }

    #[test]
    fn a_file_of_endless_imports_is_refused_at_the_cap() {
        let many: Vec<String> = (0..=MAX_NAMES).map(|i| format!("x:y/z{i}@1.0.0")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = read(&component(&many, CHECK)).unwrap_err().to_string();
        assert!(e.contains("more than 1024 top-level imports"), "{e}");
    }

    #[test]
    fn both_worlds_at_once_are_refused() {
        let text = "(component (import \"hmrt:plugin/types@0.3.0\" (instance $t)) (export \"hmrt:plugin/check-plugin@0.3.0\" (instance $t)) (export \"hmrt:plugin/action-plugin@0.3.0\" (instance $t)))";
        let surface = read(&wat::parse_str(text).unwrap()).unwrap();
        let e = surface.world().unwrap_err().to_string();
        assert!(e.contains("both the check and the action world"), "{e}");
    }

    #[test]
    fn bytes_that_are_no_component_are_an_error_not_a_panic() {
        let mut bytes = component(&[], CHECK);
        bytes.truncate(bytes.len() - 3);
        assert!(read(&bytes).is_err());
        assert!(read(b"\0asm\x0d\0\x01\0\xff\xff").is_err());
    }
}
