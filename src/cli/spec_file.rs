//! Spec files: a workflow (or any JSON body) written by hand as JSON or TOML.
//!
//! The format is chosen by the extension (`.json`, `.toml`); without one of those (or for `-`,
//! stdin) by the content: JSON first, then TOML. Either way the result is the JSON value the
//! API takes, so the server never sees TOML and the API checks every field as usual. TOML has
//! no null: leave a key out instead.

use std::path::Path;

use anyhow::Context;
use anyhow::bail;
use serde_json::Value;

/// Reads a workflow spec (`{"name"?, "nodes": [...]}`) from `path` (`-`: stdin) as JSON or TOML,
/// as the JSON object the API takes.
pub fn read_workflow_spec(path: &Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let value = parse(path, &text)?;
    if !value.is_object() {
        bail!("{}: a workflow spec is an object with `nodes`", path.display());
    }
    Ok(value)
}

/// `text` as JSON or TOML, by `path`'s extension or else by content.
fn parse(path: &Path, text: &str) -> anyhow::Result<Value> {
    let shown = path.display();
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => serde_json::from_str(text).with_context(|| format!("{shown} is not valid JSON")),
        Some("toml") => toml::from_str(text).with_context(|| format!("{shown} is not valid TOML")),
        _ => match serde_json::from_str(text) {
            Ok(v) => Ok(v),
            Err(json) => toml::from_str(text)
                .map_err(|toml| anyhow::anyhow!("{shown} is neither JSON ({json}) nor TOML ({})", toml.message())),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOML: &str = r#"
name = "nightly"

[[nodes]]
id = "a"
task = { command = ["true"], labels = { zone = "a" } }

[[nodes]]
id = "b"
task = { command = ["sh", "-c", "echo hi"], max_attempts = 3 }
depends = [{ node = "a", on = "success" }]
"#;

    fn expected() -> Value {
        json!({"name": "nightly", "nodes": [
            {"id": "a", "task": {"command": ["true"], "labels": {"zone": "a"}}},
            {"id": "b", "task": {"command": ["sh", "-c", "echo hi"], "max_attempts": 3},
             "depends": [{"node": "a", "on": "success"}]},
        ]})
    }

    #[test]
    fn toml_and_json_read_as_the_same_body() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("wf.toml");
        std::fs::write(&toml_path, TOML).unwrap();
        assert_eq!(read_workflow_spec(&toml_path).unwrap(), expected());
        let json_path = dir.path().join("wf.json");
        std::fs::write(&json_path, expected().to_string()).unwrap();
        assert_eq!(read_workflow_spec(&json_path).unwrap(), expected());
    }

    #[test]
    fn without_a_known_extension_the_content_decides() {
        assert_eq!(parse(Path::new("wf"), TOML).unwrap(), expected());
        assert_eq!(parse(Path::new("wf.spec"), &expected().to_string()).unwrap(), expected());
        let err = parse(Path::new("wf"), "nodes = [").unwrap_err().to_string();
        assert!(err.contains("neither JSON") && err.contains("nor TOML"), "{err}");
    }

    #[test]
    fn the_extension_is_trusted_and_errors_name_the_file() {
        let err = parse(Path::new("wf.json"), TOML).unwrap_err();
        assert!(format!("{err:#}").contains("wf.json is not valid JSON"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.json");
        std::fs::write(&list, "[1, 2]").unwrap();
        let err = read_workflow_spec(&list).unwrap_err().to_string();
        assert!(err.contains("an object with `nodes`"), "{err}");
        let missing = read_workflow_spec(&dir.path().join("missing.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("missing.toml"), "{missing:#}");
    }
}
