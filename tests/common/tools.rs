//! Command-line tools some tests drive: where to find them, and what happens when they are
//! missing (a recorded skip on a developer's machine, a failure under CI).

use std::process::Command;

/// `$VARIABLE` if set, else `name` when it runs from PATH (`name ARG` succeeds).
fn find(variable: &str, name: &str, probe: &str, what_for: &str) -> Option<String> {
    if let Ok(path) = std::env::var(variable) {
        return Some(path);
    }
    let on_path = Command::new(name).arg(probe).output();
    if on_path.is_ok_and(|out| out.status.success()) {
        return Some(name.to_string());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs {name}: scripts/test provides it as {variable}"
    );
    super::record_skip(&format!(
        "no {name} for {what_for} (set {variable} or put {name} on PATH)"
    ));
    None
}

/// helm: `$GLINT_TEST_HELM` (scripts/test sets it), else the one on PATH.
pub fn helm() -> Option<String> {
    find("GLINT_TEST_HELM", "helm", "version", "the chart tests")
}

/// promtool: `$GLINT_TEST_PROMTOOL` (scripts/test sets it), else the one on PATH.
pub fn promtool() -> Option<String> {
    find(
        "GLINT_TEST_PROMTOOL",
        "promtool",
        "--version",
        "the alert and dashboard tests",
    )
}
