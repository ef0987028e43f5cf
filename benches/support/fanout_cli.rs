//! The fan-out benchmark through the product: `glint apply -f` (this build's binary) of one
//! Image with spec.targets, each target a cloud in a clouds.yaml of the bench's own: Glance B
//! behind Keystone and `glint cloud`. (Glance A believes trusted headers, which no clouds.yaml
//! can say.) The clock runs from the command's start to its exit, as a user's does; the
//! command's peak RSS is its VmHWM, read until it exits.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glint::glance::{GlanceApi, GlanceClient, GlanceStatus};

use super::Result;
use super::limited_sources::Source;

/// One cloud of the bench's clouds.yaml: its name there, and a client to check it with.
pub struct CliCloud<'a> {
    pub name: &'static str,
    pub api: &'a GlanceClient,
}

/// What one `glint apply -f` took.
pub struct CliRun {
    pub seconds: f64,
    pub source_bytes: u64,
    pub peak_mib: f64,
}

/// The clouds.yaml the command reads: Glance B as the bench's Keystone user, and the
/// embedded cloud at `embedded`.
pub fn clouds_yaml(b: &str, embedded: &str) -> String {
    format!("clouds:\n{b}  embedded:\n    auth_type: none\n    auth:\n      endpoint: {embedded}\n")
}

/// Applies an Image of `url` with one target per cloud in `targets`, checks each target's
/// image (active, `size` bytes, one sha512 for all) and deletes it.
pub async fn apply(
    dir: &Path,
    clouds: &Path,
    targets: &[CliCloud<'_>],
    (source, url, size): (&Source, &str, u64),
    run: usize,
) -> Result<CliRun> {
    let name = format!("bench-fanout-cli-{}-{run}", targets.len());
    let listed: String = targets
        .iter()
        .map(|t| {
            format!(
                "  - {{name: {0}, cloudCredentialsRef: {{secretName: unused, cloudName: {0}}}}}\n",
                t.name
            )
        })
        .collect();
    let manifest = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  diskFormat: raw\n  source: {{url: '{url}'}}\n  targets:\n{listed}"
        ),
    )
    .map_err(|e| e.to_string())?;
    let sent_before = source.bytes_sent();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glint"))
        .args(["apply", "-f"])
        .arg(&manifest)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env_remove("OS_CLOUD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("glint apply: {e}"))?;
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0.0_f64;
    let exit = loop {
        // VmHWM only grows: its last reading before the exit is the command's peak.
        if let Some(kib) = std::fs::read_to_string(&status)
            .ok()
            .and_then(|text| vm_hwm_kib(&text))
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(exit) = child.try_wait().map_err(|e| e.to_string())? {
            break exit;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&output.stdout);
    if !exit.success() {
        return Err(format!(
            "glint apply failed: {out}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // nginx writes its log line once the answer is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let source_bytes = source.bytes_sent().saturating_sub(sent_before);
    let mut sha512 = None;
    for target in targets {
        let row = format!("default/{name}@{} ", target.name);
        let id = out
            .lines()
            .find(|line| line.starts_with(&row))
            .and_then(|line| line.split_whitespace().nth(1))
            .ok_or_else(|| format!("no row for {}: {out}", target.name))?;
        let image = target.api.get_image(id).await.map_err(|e| e.to_string())?;
        if image.status != GlanceStatus::Active || image.size != Some(size) {
            return Err(format!(
                "{}: {} {:?}",
                target.name, image.status, image.size
            ));
        }
        let hash = image.os_hash_value.clone().unwrap_or_default();
        if sha512.get_or_insert_with(|| hash.clone()) != &hash {
            return Err(format!("{}: another sha512 than the others'", target.name));
        }
        target.api.delete(id).await.map_err(|e| e.to_string())?;
    }
    Ok(CliRun {
        seconds,
        source_bytes,
        peak_mib: peak_kib / 1024.0,
    })
}

fn vm_hwm_kib(status: &str) -> Option<f64> {
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
}
