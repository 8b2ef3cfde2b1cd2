//! `hmrt plugins list` and `hmrt plugins inspect`.

use std::path::Path;
use std::process::ExitCode;

use super::{bare_sandbox, load_config};
use crate::registry::Registry;

pub(super) async fn plugins_list(
    config: Option<&Path>,
    dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let dir = match (config, dir) {
        (Some(file), _) => match load_config(file) {
            Ok(config) => Some(config.runtime.plugins_dir),
            Err(code) => return Ok(code),
        },
        (None, dir) => dir.map(Path::to_path_buf),
    };
    let sandbox = bare_sandbox().await?;
    let registry = Registry::load(&sandbox, dir.as_deref()).await;
    for entry in registry.entries() {
        let info = entry.plugin.info();
        println!(
            "{:20} {:6} {:8} {}  [{}]",
            entry.name,
            entry.plugin.kind(),
            info.version,
            info.summary,
            entry.source
        );
    }
    // Not a component: judged by the host from the pings the API receives.
    println!(
        "{:20} {:6} {:8} Healthy while POST /push/{{task}} is called at least once per `period` (in the host).  [built-in]",
        crate::heartbeat::CHECK_NAME,
        "check",
        env!("CARGO_PKG_VERSION"),
    );
    for problem in registry.problems() {
        eprintln!("error: {problem}");
    }
    Ok(if registry.problems().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) async fn plugins_inspect(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = crate::sandbox::read_plugin(file)
        .map_err(|why| anyhow::anyhow!("{}: cannot read: {why}", file.display()))?;
    let sandbox = bare_sandbox().await?;
    let plugin = match sandbox.load(&bytes).await {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let info = plugin.info();
    let capabilities = crate::sandbox::capability_names(info);
    if json {
        let value = serde_json::json!({
            "file": file,
            "kind": plugin.kind(),
            "name": info.name,
            "version": info.version,
            "summary": info.summary,
            "capabilities": capabilities,
            "imports": plugin.imports(),
            "contract": format!("hmrt:plugin@{}", plugin.contract()),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("file:         {}", file.display());
        println!(
            "kind:         {} (hmrt:plugin@{})",
            plugin.kind(),
            plugin.contract()
        );
        println!("name:         {} {}", info.name, info.version);
        println!("summary:      {}", info.summary);
        println!(
            "capabilities: {}",
            if capabilities.is_empty() {
                "none".into()
            } else {
                capabilities.join(", ")
            }
        );
        println!("imports:");
        for import in plugin.imports() {
            println!("  {import}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
