//! Fan-out benchmark (issue 34): one source published into three clouds. Run with
//! `scripts/bench fanout` (starts the test bed when needed).
//!
//! The targets are three separate Glances: the bed's Glance A (trusted headers), Glance B
//! behind Keystone, and `glint cloud` (the embedded cloud) as a process of its own. The
//! source is a pseudo-random file served at a mirror-like rate by two servers in turn: this
//! benchmark's own (paced writes) and nginx (`limit_rate`, its access log counting the bytes
//! it sent). Each case starts its transfers through glint's `TransferManager`s (one per
//! cloud, as the controller holds them) and stops the clock when every one has succeeded,
//! Glance's checksum checked:
//! - `one target`: the source into Glance A alone;
//! - `fan-out`: into all three, the transfers sharing one download (`transfer::shared`);
//! - `separate`: into all three, each downloading for itself (three separate Images today);
//! - through the product: `glint apply -f` of one Image with spec.targets, one target (Glance
//!   B) against two (Glance B and `glint cloud`; Glance A's trusted headers are not a
//!   clouds.yaml's), timed from start to exit, with the command's own peak RSS.
//!
//! Then the fault run (once, from the first server): the same fan-out, with Glance B's uwsgi
//! processes stopped (SIGSTOP) once 128 MiB (a quarter of a smaller image) reached it, for
//! `--pause-secs` (default 30), then continued (SIGCONT). The transfers are started again
//! after a failure as the reconcile does once their backoff passed; the per-target timeline is
//! printed, and each cloud is then listed: one image each (no duplicate), every one with the
//! same sha512, none left after the deletes (no leak).
//!
//! Targets: the fan-out reads the source once, takes <= 1.15x the one target's wall time, and
//! this process's peak RSS stays <= 48 MiB. `--size-mib N` (default 1024), `--rate-mbps R`
//! (default 40), `--runs N` (default 1), `--server own|nginx` (repeatable), `--pause-secs S`
//! (0 skips the fault run), `--fault-only`.

#[path = "support/bench_main.rs"]
mod bench_main;
#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;
#[path = "support/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "support/fanout_cli.rs"]
mod fanout_cli;
#[path = "support/fanout_fault.rs"]
mod fanout_fault;
#[path = "support/limited_sources.rs"]
mod limited_sources;
#[path = "support/source_servers.rs"]
#[allow(dead_code)]
mod source_servers;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout_cli::CliCloud;
use fanout_fault::fault_run;
use glint::auth::{AuthOptions, Authenticator, CloudsFile, TrustedIdentity};
use glint::crd::{ImageSource, TransferPhase};
use glint::glance::{ContainerFormat, DiskFormat, GlanceApi, GlanceClient, GlanceStatus, NewImage};
use glint::transfer::convert::ScratchSpace;
use glint::transfer::{SharedDownloads, SourcePolicy, TransferManager, TransferRequest, Transfers};
use limited_sources::Source;
use source_servers::SourceServer;

type Result<T> = std::result::Result<T, String>;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

const MIB: u64 = 1 << 20;
const PROJECT: &str = "0000000000000000000000000000fa40";
const RSS_TARGET_MIB: f64 = 48.0;
const WALL_TARGET: f64 = 1.15;

struct Options {
    size: u64,
    rate: u64,
    runs: usize,
    servers: Vec<String>,
    pause: Duration,
    fault_only: bool,
}

fn options() -> Result<Options> {
    let mut options = Options {
        size: 1024 * MIB,
        rate: 40_000_000,
        runs: 1,
        servers: Vec::new(),
        pause: Duration::from_secs(30),
        fault_only: false,
    };
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--size-mib" => options.size = number(value()?)? * MIB,
            "--rate-mbps" => options.rate = number(value()?)? * 1_000_000,
            "--runs" => options.runs = number(value()?)?.max(1) as usize,
            "--server" => options.servers.push(value()?),
            "--pause-secs" => options.pause = Duration::from_secs(number(value()?)?),
            "--fault-only" => options.fault_only = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.servers.is_empty() {
        options.servers = vec!["own".to_string(), "nginx".to_string()];
    }
    Ok(options)
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run `scripts/bench fanout`"))
}

/// One cloud: its client, and the transfers glint runs into it.
struct Cloud {
    name: &'static str,
    api: Arc<GlanceClient>,
}

impl Cloud {
    fn transfers(&self, shared: &Arc<SharedDownloads>) -> Result<TransferManager<GlanceClient>> {
        let policy = SourcePolicy {
            allow_loopback: true,
            ..SourcePolicy::default()
        };
        Ok(
            TransferManager::new(self.api.clone(), 2, Arc::new(policy), Default::default())
                .map_err(|e| e.to_string())?
                .sharing(shared.clone()),
        )
    }
}

fn glance_a() -> Result<Cloud> {
    let identity = TrustedIdentity {
        project_id: PROJECT.to_string(),
        user_id: "bench".to_string(),
        roles: vec!["admin".to_string()],
    };
    let auth = Authenticator::trusted_headers(&env("GLINT_TEST_GLANCE_URL")?, &identity)
        .map_err(|e| e.to_string())?;
    Ok(Cloud {
        name: "Glance A",
        api: Arc::new(GlanceClient::new(auth)),
    })
}

/// Glance B's entry in a clouds.yaml: cloud `b`, the bed's demo user behind Keystone.
fn glance_b_entry() -> Result<String> {
    Ok(format!(
        "  b:\n    auth_type: password\n    region_name: {region}\n    auth:\n      \
         auth_url: {url}\n      username: {user}\n      password: {password}\n      \
         project_name: {project}\n      user_domain_name: Default\n      \
         project_domain_name: Default\n",
        region = env("GLINT_TEST_OS_REGION")?,
        url = env("GLINT_TEST_KEYSTONE_URL")?,
        user = env("GLINT_TEST_DEMO_USER")?,
        password = env("GLINT_TEST_DEMO_PASSWORD")?,
        project = env("GLINT_TEST_DEMO_PROJECT")?,
    ))
}

fn glance_b(upload_stall: Option<Duration>) -> Result<Cloud> {
    let yaml = format!("clouds:\n{}", glance_b_entry()?);
    let file = CloudsFile::from_bytes(yaml.as_bytes()).map_err(|e| e.to_string())?;
    let config = file.cloud("b").map_err(|e| e.to_string())?;
    let auth =
        Authenticator::from_cloud(config, AuthOptions::default()).map_err(|e| e.to_string())?;
    let client = GlanceClient::new(auth);
    let client = match upload_stall {
        Some(limit) => client.with_upload_stall(limit),
        None => client,
    };
    Ok(Cloud {
        name: "Glance B (Keystone)",
        api: Arc::new(client),
    })
}

/// `glint cloud` in a process of its own, and its endpoint; the server stops it and deletes
/// its data when dropped.
fn embedded_cloud() -> Result<(Cloud, SourceServer, String)> {
    let port = source_servers::free_port()?;
    let dir = std::env::temp_dir().join(format!("glint-bench-fanout-cloud-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_glint"));
    let child = Command::new(&binary)
        .arg("--data-dir")
        .arg(&dir)
        .args(["cloud", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let running = source_servers::process("glint cloud", port, child, dir)?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let api = glint::apply::target::embedded_client(&endpoint).map_err(|e| e.to_string())?;
    Ok((
        Cloud {
            name: "glint cloud",
            api: Arc::new(api),
        },
        running,
        endpoint,
    ))
}

/// A queued raw image called `name` in `cloud`, for a transfer to fill.
async fn queued_image(cloud: &Cloud, name: &str) -> Result<String> {
    let image = cloud
        .api
        .create_image(&NewImage {
            name: Some(name.to_string()),
            disk_format: Some(DiskFormat::from("raw")),
            container_format: Some(ContainerFormat::from("bare")),
            ..NewImage::default()
        })
        .await
        .map_err(|e| format!("{}: create: {e}", cloud.name))?;
    Ok(image.id)
}

/// This process's peak RSS since the last reset, MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Measured {
    seconds: f64,
    source_bytes: u64,
    downloads: u64,
    peak_mib: f64,
}

/// Publishes `url` into `clouds`, sharing one download when `share`, and checks every image.
async fn publish(
    clouds: &[&Cloud],
    source: &Source,
    url: &str,
    size: u64,
    sha512: &mut Option<String>,
    share: bool,
) -> Result<Measured> {
    let scratch = ScratchSpace::default();
    let shared = Arc::new(SharedDownloads::new(
        &scratch,
        glint::transfer::shared::LINGER,
    ));
    let mut running = Vec::new();
    for cloud in clouds {
        let id = queued_image(cloud, "glint-bench-fanout").await?;
        running.push((cloud, cloud.transfers(&shared)?, id));
    }
    let source_json = serde_json::json!({ "url": url });
    let source_spec: ImageSource =
        serde_json::from_value(source_json).map_err(|e| e.to_string())?;
    let request = TransferRequest {
        share: share.then(|| format!("bench-{url}")),
        ..TransferRequest::new(source_spec)
    };
    let sent_before = source.bytes_sent();
    reset_peak_rss();
    let started = Instant::now();
    for (_, transfers, id) in &running {
        transfers.start(id, &request);
    }
    let mut seconds = 0.0;
    let deadline = started + Duration::from_secs(3600);
    'wait: loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut all = true;
        for (cloud, transfers, id) in &running {
            match transfers.progress(id) {
                Some(status) if status.phase == TransferPhase::Succeeded => {}
                Some(status) if status.phase == TransferPhase::Failed => {
                    return Err(format!("{}: {:?}", cloud.name, status.last_error));
                }
                _ => all = false,
            }
        }
        if all {
            seconds = started.elapsed().as_secs_f64();
            break 'wait;
        }
        if Instant::now() > deadline {
            break 'wait;
        }
    }
    let peak_mib = peak_rss_mib();
    if seconds == 0.0 {
        return Err("the transfers did not finish within an hour".to_string());
    }
    // nginx writes its log line once the answer is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let source_bytes = source.bytes_sent().saturating_sub(sent_before);
    for (cloud, _, id) in &running {
        let image = cloud.api.get_image(id).await.map_err(|e| e.to_string())?;
        if image.status != GlanceStatus::Active || image.size != Some(size) {
            return Err(format!("{}: {} {:?}", cloud.name, image.status, image.size));
        }
        let hash = image.os_hash_value.clone().unwrap_or_default();
        match sha512 {
            Some(known) if *known != hash => {
                return Err(format!(
                    "{}: the image's sha512 differs from the others'",
                    cloud.name
                ));
            }
            _ => *sha512 = Some(hash),
        }
        cloud.api.delete(id).await.map_err(|e| e.to_string())?;
    }
    Ok(Measured {
        seconds,
        source_bytes,
        downloads: shared.downloads_started(),
        peak_mib,
    })
}

async fn run() -> Result<bool> {
    let options = options()?;
    let dir = data::data_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = data::random_file(&dir, options.size)?;
    let a = glance_a()?;
    let b = glance_b(None)?;
    // The fault run's B gives a silent upload up after 10 s (the controller's default is 2m).
    let b_paused = glance_b(Some(Duration::from_secs(10)))?;
    let (embedded, _running, endpoint) = embedded_cloud()?;
    let clouds_yaml = dir.join("fanout-clouds.yaml");
    let yaml = fanout_cli::clouds_yaml(&glance_b_entry()?, &endpoint);
    std::fs::write(&clouds_yaml, yaml).map_err(|e| e.to_string())?;
    let all = [&a, &b, &embedded];
    println!(
        "fan-out benchmark: {} to {} at {:.0} MB/s per connection, {} run(s) per case",
        data::size_label(options.size),
        all.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
        options.rate as f64 / 1e6,
        options.runs
    );
    let mut met = true;
    let mut sha512 = None;
    let mut rows = Vec::new();
    let measured = if options.fault_only {
        &[][..]
    } else {
        &options.servers[..]
    };
    for server in measured {
        let source = Source::start(server, &dir, options.rate)?;
        let url = source.url(&file);
        for run in 0..options.runs {
            let one = publish(&[&a], &source, &url, options.size, &mut sha512, false).await?;
            let fanout = publish(&all, &source, &url, options.size, &mut sha512, true).await?;
            let separate = publish(&all, &source, &url, options.size, &mut sha512, false).await?;
            let ratio = fanout.seconds / one.seconds;
            let once = fanout.source_bytes == options.size && fanout.downloads == 1;
            met &= ratio <= WALL_TARGET && once && fanout.peak_mib <= RSS_TARGET_MIB;
            for (case, measured) in [
                ("one target", &one),
                ("fan-out, 3 targets", &fanout),
                ("separate, 3 targets", &separate),
            ] {
                rows.push(format!(
                    "| {} | {} | {case} | {:.1} | {:.2}x | {:.2} GiB ({} download(s)) | {:.1} |",
                    source.name(),
                    run + 1,
                    measured.seconds,
                    measured.seconds / one.seconds,
                    measured.source_bytes as f64 / (1u64 << 30) as f64,
                    if case.starts_with("fan-out") {
                        measured.downloads
                    } else {
                        measured.source_bytes.div_ceil(options.size.max(1))
                    },
                    measured.peak_mib,
                ));
            }
            // The same through the product: `glint apply -f` of one Image with targets.
            let b_cli = CliCloud {
                name: "b",
                api: b.api.as_ref(),
            };
            let embedded_cli = CliCloud {
                name: "embedded",
                api: embedded.api.as_ref(),
            };
            let on = (&source, url.as_str(), options.size);
            let cli_one = fanout_cli::apply(&dir, &clouds_yaml, &[b_cli], on, run).await?;
            let b_cli = CliCloud {
                name: "b",
                api: b.api.as_ref(),
            };
            let both = [b_cli, embedded_cli];
            let cli_fanout = fanout_cli::apply(&dir, &clouds_yaml, &both, on, run).await?;
            let cli_ratio = cli_fanout.seconds / cli_one.seconds;
            met &= cli_ratio <= WALL_TARGET
                && cli_fanout.source_bytes == options.size
                && cli_fanout.peak_mib <= RSS_TARGET_MIB;
            for (case, measured) in [
                ("glint apply -f, one target (B)", &cli_one),
                ("glint apply -f, 2 targets (B, glint cloud)", &cli_fanout),
            ] {
                rows.push(format!(
                    "| {} | {} | {case} | {:.1} | {:.2}x | {:.2} GiB | {:.1} |",
                    source.name(),
                    run + 1,
                    measured.seconds,
                    measured.seconds / cli_one.seconds,
                    measured.source_bytes as f64 / (1u64 << 30) as f64,
                    measured.peak_mib,
                ));
            }
            println!(
                "  {} run {}: glint apply -f, one target {:.1} s, two targets {:.1} s ({cli_ratio:.3}x), read {} bytes; peak RSS {:.1} MiB",
                source.name(),
                run + 1,
                cli_one.seconds,
                cli_fanout.seconds,
                cli_fanout.source_bytes,
                cli_fanout.peak_mib,
            );
            println!(
                "  {} run {}: one {:.1} s, fan-out {:.1} s ({ratio:.3}x, target <= {WALL_TARGET}), separate {:.1} s; fan-out read {} bytes (target {}); peak RSS {:.1} MiB (target <= {RSS_TARGET_MIB})",
                source.name(),
                run + 1,
                one.seconds,
                fanout.seconds,
                separate.seconds,
                fanout.source_bytes,
                options.size,
                fanout.peak_mib,
            );
        }
    }
    println!();
    println!("| source | run | case | wall s | vs one target | source bytes read | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    if options.pause > Duration::ZERO {
        let source = Source::start(&options.servers[0], &dir, options.rate)?;
        let url = source.url(&file);
        met &= fault_run(
            [&a, &b_paused, &embedded],
            &source,
            &url,
            options.size,
            options.pause,
        )
        .await?;
    }
    Ok(met)
}

fn main() -> ExitCode {
    // The allocator as glint's main tunes it (two arenas, large buffers returned when freed):
    // the RSS measured is then the RSS glint would have.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: before the runtime starts any thread, so no allocation races the change.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    bench_main::finish(run())
}
