//! The fan-out benchmark's fault run: Glance B's uwsgi processes stopped (SIGSTOP) mid-upload
//! and continued later, with the per-target timeline and the duplicates, leaks and wrong bytes
//! counted in every cloud afterwards.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glint::crd::{ImageSource, TransferPhase};
use glint::glance::{GlanceApi, GlanceStatus};
use glint::transfer::convert::ScratchSpace;
use glint::transfer::{SharedDownloads, TransferRequest, Transfers};

use super::limited_sources::Source;
use super::{Cloud, MIB, Result, env, queued_image};

/// Glance B's uwsgi processes: its master (the bed's pid file) and its workers.
fn glance_b_pids() -> Result<Vec<String>> {
    let dir = env("GLINT_TESTBED_DIR")?;
    let master = std::fs::read_to_string(format!("{dir}/glance-b/uwsgi.pid"))
        .map_err(|e| format!("Glance B's pid file: {e}"))?;
    let master = master.trim().to_string();
    let children = Command::new("pgrep")
        .args(["-P", &master])
        .output()
        .map_err(|e| format!("pgrep: {e}"))?;
    let mut pids = vec![master];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_string),
    );
    Ok(pids)
}

fn signal(pids: &[String], signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids)
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or(format!("kill -{signal} failed"))
}

/// The fan-out with Glance B stopped mid-upload (see the file's doc): the per-target timeline,
/// then duplicates, leaks and wrong bytes counted in every cloud.
pub async fn fault_run(
    clouds: [&Cloud; 3],
    source: &Source,
    url: &str,
    size: u64,
    pause: Duration,
) -> Result<bool> {
    let shared = Arc::new(SharedDownloads::new(
        &ScratchSpace::default(),
        glint::transfer::shared::LINGER,
    ));
    let name = format!("glint-bench-fanout-fault-{}", std::process::id());
    let mut running = Vec::new();
    for cloud in clouds {
        let id = queued_image(cloud, &name).await?;
        running.push((cloud, cloud.transfers(&shared)?, id));
    }
    let source_spec: ImageSource =
        serde_json::from_value(serde_json::json!({ "url": url })).map_err(|e| e.to_string())?;
    let request = TransferRequest {
        share: Some(format!("bench-fault-{url}")),
        ..TransferRequest::new(source_spec)
    };
    let sent_before = source.bytes_sent();
    let pids = glance_b_pids()?;
    // Mid-upload, however large the image.
    let stop_after = (128 * MIB).min(size / 4);
    let started = Instant::now();
    let at = || started.elapsed().as_secs_f64();
    let mut timeline: Vec<(f64, String)> = Vec::new();
    let mut seen: Vec<Option<(TransferPhase, u32)>> = vec![None; running.len()];
    let (mut stopped_at, mut continued) = (None::<Instant>, false);
    for (_, transfers, id) in &running {
        transfers.start(id, &request);
    }
    timeline.push((0.0, "transfers started into all three clouds".to_string()));
    let deadline = started + Duration::from_secs(1800);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut all = true;
        for (index, (cloud, transfers, id)) in running.iter().enumerate() {
            let Some(status) = transfers.progress(id) else {
                all = false;
                continue;
            };
            let now = Some((status.phase, status.attempts));
            if seen[index] != now {
                seen[index] = now;
                let what = match status.phase {
                    TransferPhase::Failed => format!(
                        "attempt {} failed: {}",
                        status.attempts,
                        status.last_error.clone().unwrap_or_default()
                    ),
                    phase => format!("attempt {} {phase:?}", status.attempts),
                };
                timeline.push((at(), format!("{}: {what}", cloud.name)));
            }
            match status.phase {
                TransferPhase::Succeeded => {}
                TransferPhase::Failed => {
                    // What the reconcile does at its next pass; refused until the backoff passed.
                    transfers.start(id, &request);
                    all = false;
                }
                _ => all = false,
            }
            if cloud.name.starts_with("Glance B")
                && stopped_at.is_none()
                && status.bytes_done >= stop_after
            {
                signal(&pids, "STOP")?;
                stopped_at = Some(Instant::now());
                timeline.push((
                    at(),
                    format!("Glance B stopped (SIGSTOP, {} processes)", pids.len()),
                ));
            }
        }
        if let Some(stopped) = stopped_at
            && !continued
            && stopped.elapsed() >= pause
        {
            signal(&pids, "CONT")?;
            continued = true;
            timeline.push((at(), "Glance B continued (SIGCONT)".to_string()));
        }
        if all && continued {
            timeline.push((at(), "every target done".to_string()));
            break;
        }
        if Instant::now() > deadline {
            if !continued {
                let _ = signal(&pids, "CONT");
            }
            return Err("the fault run did not finish within 30 minutes".to_string());
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let source_bytes = source.bytes_sent().saturating_sub(sent_before);
    println!();
    println!(
        "fault run: Glance B stopped for {} s once {} MiB had reached it",
        pause.as_secs(),
        stop_after / MIB
    );
    println!("| t (s) | event |");
    println!("|---|---|");
    for (time, event) in &timeline {
        println!("| {time:.1} | {event} |");
    }
    let query = glint::glance::ListQuery {
        name: Some(glint::glance::NameFilter::Exactly(name.clone())),
        ..Default::default()
    };
    let (mut duplicates, mut wrong, mut left) = (0, 0, 0);
    let mut hashes = Vec::new();
    for (cloud, _, id) in &running {
        let found: Vec<_> = futures::TryStreamExt::try_collect(cloud.api.list_images(&query))
            .await
            .map_err(|e| format!("{}: list: {e}", cloud.name))?;
        duplicates += found.len().saturating_sub(1);
        let image = cloud.api.get_image(id).await.map_err(|e| e.to_string())?;
        if image.status != GlanceStatus::Active || image.size != Some(size) {
            wrong += 1;
        }
        hashes.push(image.os_hash_value.unwrap_or_default());
        for image in &found {
            cloud
                .api
                .delete(&image.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        let after: Vec<_> = futures::TryStreamExt::try_collect(cloud.api.list_images(&query))
            .await
            .map_err(|e| format!("{}: list: {e}", cloud.name))?;
        left += after.len();
    }
    if hashes
        .iter()
        .any(|hash| hash != &hashes[0] || hash.is_empty())
    {
        wrong += 1;
    }
    println!(
        "source bytes read: {source_bytes} ({} download(s) started); duplicates {duplicates}, wrong bytes {wrong}, left after delete {left}",
        shared.downloads_started()
    );
    Ok(duplicates == 0 && wrong == 0 && left == 0 && source_bytes == size)
}
