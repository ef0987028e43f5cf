//! Command-line tools some tests drive, and where to find them.

use std::process::Command;

/// `$VARIABLE` if set, else `name` when it runs from PATH (`name ARG` succeeds). The tests that
/// need a tool are ignored by a plain `cargo test`; one that runs without its tool fails.
fn find(variable: &str, name: &str, probe: &str, what_for: &str) -> String {
    if let Ok(path) = std::env::var(variable) {
        return path;
    }
    let on_path = Command::new(name).arg(probe).output();
    if on_path.is_ok_and(|out| out.status.success()) {
        return name.to_string();
    }
    panic!(
        "{what_for} need {name}: set {variable} or put {name} on PATH (scripts/test provides it)"
    );
}

/// helm: `$GLINT_TEST_HELM` (scripts/test sets it), else the one on PATH.
pub fn helm() -> String {
    find("GLINT_TEST_HELM", "helm", "version", "the chart tests")
}

/// promtool: `$GLINT_TEST_PROMTOOL` (scripts/test sets it), else the one on PATH.
pub fn promtool() -> String {
    find(
        "GLINT_TEST_PROMTOOL",
        "promtool",
        "--version",
        "the alert and dashboard tests",
    )
}

/// gpg: `$GLINT_TEST_GPG`, else the one on PATH (scripts/test installs Debian's gpg).
pub fn gpg() -> String {
    find("GLINT_TEST_GPG", "gpg", "--version", "the signature tests")
}
