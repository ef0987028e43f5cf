//! Upload benchmark: glint's Glance client against `curl -T`, alternating on the same Glance.
//!
//! Run with `scripts/bench upload` (starts the test bed when needed). Prints MB/s of every run,
//! the medians, their ratio and this process's peak RSS, which is the client's: the data is
//! streamed from a file, so the figure shows whether anything buffers the image.
//!
//! Targets (issue 2): glint/curl >= 0.97, peak RSS <= 40 MiB.
//! `GLINT_BENCH_BYTES` (default 1 GiB) and `GLINT_BENCH_RUNS` (default 3) change the size.

#[path = "support/bench_main.rs"]
mod bench_main;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use glint::auth::{Authenticator, TrustedIdentity};
use glint::glance::{ContainerFormat, DiskFormat, GlanceApi, GlanceClient, GlanceStatus, NewImage};
use glint::image_command::file_stream;

const BENCH_PROJECT: &str = "0000000000000000000000000000beef";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Incompressible data, written once and reused across runs.
fn data_file(size: u64) -> std::io::Result<PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("glint-bench-{size}.raw"));
    if path.metadata().is_ok_and(|meta| meta.len() == size) {
        return Ok(path);
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < size {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let take = (size - written).min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(path)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn fresh_image(api: &GlanceClient) -> Result<String, String> {
    let image = api
        .create_image(&NewImage {
            name: Some("glint-bench".to_string()),
            disk_format: Some(DiskFormat::Raw),
            container_format: Some(ContainerFormat::Bare),
            ..NewImage::default()
        })
        .await
        .map_err(|err| err.to_string())?;
    Ok(image.id)
}

async fn upload_with_glint(api: &GlanceClient, id: &str, file: &Path) -> Result<(), String> {
    let (data, size) = file_stream(file).await.map_err(|err| err.to_string())?;
    api.upload(id, data, Some(size))
        .await
        .map_err(|err| err.to_string())
}

fn upload_with_curl(glance: &str, id: &str, file: &Path) -> Result<(), String> {
    let output = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-X", "PUT", "-T"])
        .arg(file)
        // curl would otherwise send `Expect: 100-continue`, which uwsgi never answers.
        .args([
            "-H",
            "Expect:",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .args(["-H", "X-Identity-Status: Confirmed", "-H", "X-Roles: admin"])
        .args(["-H", &format!("X-Project-Id: {BENCH_PROJECT}")])
        .arg(format!("{glance}/v2/images/{id}/file"))
        .output()
        .map_err(|err| format!("cannot run curl: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

async fn run() -> Result<bool, String> {
    let glance = std::env::var("GLINT_TEST_GLANCE_URL")
        .map_err(|_| "GLINT_TEST_GLANCE_URL is not set: run `scripts/bench upload`, which starts the test bed".to_string())?;
    let size = env_number("GLINT_BENCH_BYTES", 1 << 30);
    let runs = env_number("GLINT_BENCH_RUNS", 3).max(1);
    let file = data_file(size).map_err(|err| format!("cannot write the data file: {err}"))?;
    let identity = TrustedIdentity {
        project_id: BENCH_PROJECT.to_string(),
        user_id: "bench".to_string(),
        roles: vec!["admin".to_string()],
    };
    let api = GlanceClient::new(
        Authenticator::trusted_headers(&glance, &identity).map_err(|e| e.to_string())?,
    );
    let megabytes = size as f64 / 1e6;
    println!(
        "upload benchmark: {megabytes:.0} MB file, {runs} runs per client, alternating, against {glance}"
    );

    let (mut glint_rates, mut curl_rates) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Alternate who goes first so that neither always meets a warmer cache.
        let order: [bool; 2] = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for use_glint in order {
            let id = fresh_image(&api).await?;
            let started = Instant::now();
            if use_glint {
                upload_with_glint(&api, &id, &file).await?;
            } else {
                upload_with_curl(&glance, &id, &file)?;
            }
            let seconds = started.elapsed().as_secs_f64();
            let image = api.get_image(&id).await.map_err(|err| err.to_string())?;
            if image.status != GlanceStatus::Active || image.size != Some(size) {
                return Err(format!(
                    "upload did not land: {} {:?}",
                    image.status, image.size
                ));
            }
            api.delete(&id).await.map_err(|err| err.to_string())?;
            let rate = megabytes / seconds;
            let who = if use_glint { "glint" } else { "curl " };
            println!("  run {} {who}: {rate:7.1} MB/s ({seconds:.2} s)", run + 1);
            if use_glint {
                glint_rates.push(rate)
            } else {
                curl_rates.push(rate)
            }
        }
    }
    let glint = median(&mut glint_rates);
    let curl = median(&mut curl_rates);
    let ratio = glint / curl;
    let rss = peak_rss_mib().unwrap_or(f64::NAN);
    println!("median glint: {glint:.1} MB/s");
    println!("median curl:  {curl:.1} MB/s");
    println!("ratio glint/curl: {ratio:.3} (target >= 0.97)");
    println!("client peak RSS: {rss:.1} MiB (target <= 40)");
    Ok(ratio >= 0.97 && rss <= 40.0)
}

fn main() -> ExitCode {
    bench_main::finish(run())
}
