//! How GitOps tools judge glint's objects, computed the way they compute it: Argo CD by running
//! the shipped Lua health script (deploy/argocd/health.lua) in Debian's Lua 5.1, the version
//! Argo CD's interpreter implements; Flux by kstatus' generic rules, which it applies to custom
//! resources (sigs.k8s.io/cli-utils pkg/kstatus/status: deletion, then observedGeneration,
//! then Reconciling and Stalled; anything else is Current).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

pub const HEALTH_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/health.lua");

/// Argo CD's verdict: its health status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub message: String,
}

/// Runs the health script on `object` as Argo CD does: `obj` is the object as a Lua table,
/// and the script's returned table is the verdict.
pub fn argocd_health(object: &Value) -> Health {
    let program = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(object),
        lua_string(HEALTH_SCRIPT),
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 (Debian's lua5.1 package; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("feed lua");
    let output = child.wait_with_output().expect("lua5.1 ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the health script failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, message) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    Health {
        status: status.to_string(),
        message: message.to_string(),
    }
}

/// The object as a Lua table constructor: JSON arrays become 1-based sequences and null
/// becomes nil, as Argo CD's conversion does.
pub fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("[{}] = {}", lua_string(key), lua_literal(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// A Lua string literal: every byte outside printable ASCII, and the quote and backslash, as
/// three-digit decimal escape (so a digit after it is not read as part of it), which Lua 5.1
/// reads back byte for byte.
fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\{byte:03}"));
        }
    }
    out.push('"');
    out
}

/// kstatus' verdict for a custom resource with no type-specific rules.
pub fn kstatus(object: &Value) -> &'static str {
    if object["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return "Terminating";
    }
    if let (Some(generation), Some(observed)) = (
        object["metadata"]["generation"].as_i64(),
        object["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return "InProgress";
    }
    for condition in object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match (condition["type"].as_str(), condition["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return "InProgress",
            (Some("Stalled"), Some("True")) => return "Failed",
            _ => {}
        }
    }
    "Current"
}

/// What Argo CD and Flux (kstatus) make of `object`, which must be `health` and `kstatus`.
pub fn assert_gitops_view(what: &str, object: &Value, health: &str, kstatus_status: &str) {
    let verdict = argocd_health(object);
    assert_eq!(
        verdict.status, health,
        "Argo CD's health of {what}: {verdict:?}\n{object:#}"
    );
    assert!(
        !verdict.message.is_empty(),
        "Argo CD shows no message for {what}"
    );
    assert_eq!(
        kstatus(object),
        kstatus_status,
        "kstatus of {what}\n{object:#}"
    );
}
