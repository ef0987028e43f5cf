//! Transfer benchmark: the whole path, from an Image applied to Kubernetes to the Image
//! Ready with its Glance image active, against `curl -s URL | curl -T -` into the same
//! Glance. Run with `scripts/bench transfer` (starts the test bed when needed, and an
//! apiserver from KUBEBUILDER_ASSETS unless KUBECONFIG names a cluster);
//! `GLINT_TESTBED_GLANCE=2024.1 scripts/bench transfer` measures against Glance 28.
//!
//! A real `glint run --transfers 4` watches a fresh namespace. The sources are pseudo-random
//! raw files of 16 MiB, 1 GiB and 4 GiB, and the .zst and .gz of a compressible 1 GiB file,
//! served from disk by each of several servers in turn (`support/source_servers.rs`): the
//! benchmark's own (sendfile), Python's `http.server`, nginx, and one that writes 4 KiB at a
//! time. The table has a row per server and case: a speed that holds only for the
//! benchmark's own server is not a result. For each case glint and the baseline alternate
//! (4 runs each: an even count, so that each side goes first in half the pairs).
//!
//! glint's clock starts before the Image is applied through the Kubernetes API (server-side
//! apply, as `kubectl apply --server-side` does, so kubectl's own start-up is not counted) and
//! stops where users look: a watch on the Image sees Ready True for its generation and
//! `status.glance.status` active (`support/ready.rs`, what `kubectl wait` sees). The time
//! Glance answered glint's `PUT /file` (its log, tailed every 20 ms rather than polled: every
//! GET through keystonemiddleware costs Glance CPU the upload needs) splits that into the
//! transfer and "data end -> Ready". Two more paths to the same place: `glint apply -f` (the
//! clock stops when the CLI exits) and an ImageSeries (a new release published in a
//! Debian-like mirror, a check requested; the clock stops when status.current names it).
//! The baseline's clock covers the curl pipeline into a queued image created beforehand.
//! `glint apply -f` runs twice over: `cli` as a returning user with clouds.yaml's
//! `cache: {auth: true}` (a token kept by an earlier run, as the baseline's token is made
//! beforehand), and `cli-cold` asking Keystone for a new token, against a baseline that does
//! the same with curl inside its clock (the token, the image's create, then the pipeline).
//! glint's RSS is read from /proc every 100 ms (and its VmHWM, reset per run).
//!
//! Then, with four 1 GiB transfers running, a tag edit on a fifth, Ready Image is timed from
//! the patch until Glance has the tag.
//!
//! Targets (issues 8 and 29): the whole path >= 0.95x the baseline for raw data (0.90x
//! compressed), data end -> Ready <= 0.5 s (median), 16 MiB apply -> Ready <= 1 s, glint's
//! peak RSS <= 40 MiB and flat across sizes, the tag edit in Glance within 2 s.
//! `--runs N` changes the runs per side; `--quick` uses 256 MiB / 512 MiB files and 1 run;
//! `--case NAME` (repeatable: small, raw, raw-big, zstd, gzip, cli, cli-cold, series, parallel) measures
//! only those parts, `--server NAME` (repeatable: own, python, nginx, small-writes) only from
//! those servers; `--binary PATH` measures another glint build (before/after comparisons).
//! Besides each case's median ratio, the spread of the ratios of its paired runs (run i of
//! glint against run i of the baseline) is printed, so that a change can be told from the
//! machine's own noise.

#[path = "support/bench_main.rs"]
mod bench_main;
#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;
#[path = "support/cpu_share.rs"]
#[allow(dead_code)]
mod cpu_share;
#[path = "support/data.rs"]
mod data;
#[path = "support/glance_log.rs"]
mod glance_log;
#[path = "support/other_paths.rs"]
mod other_paths;
#[path = "support/ready.rs"]
mod ready;
#[path = "support/rss.rs"]
mod rss;
#[path = "support/source_servers.rs"]
// `scratch` and `nginx` with an access log are for the fan-out benchmark.
#[allow(dead_code)]
mod source_servers;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::kubectl::{GlintProcess, Kubectl};
use cpu_share::{CpuShare, CpuSnapshot};
use data::{compressed, data_dir, mixed_file, random_file, size_label};
use glance_log::{Glance, GlanceLog, upload_id};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ready::StatusWatch;
use rss::RssSampler;
use serde_json::{Value, json};
use source_servers::{SERVERS, SourceServer};

/// Every Glance image this benchmark makes carries this tag, for the final sweep.
const TAG: &str = "glint-bench-transfer";
const MIB: u64 = 1 << 20;
const RSS_TARGET_MIB: f64 = 40.0;
/// Peak RSS counts as flat across sizes when the largest file costs at most this much more.
const RSS_FLAT_MIB: f64 = 4.0;
const TAG_TARGET_SECONDS: f64 = 2.0;
/// From Glance's answer to the upload to the object saying so (median of a case's runs).
const END_TO_READY_TARGET_SECONDS: f64 = 0.5;
/// A small image, applied -> Ready.
const SMALL_TARGET_SECONDS: f64 = 1.0;
const SMALL: u64 = 16 * MIB;

type Result<T> = std::result::Result<T, String>;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The parts `--case` can pick.
const CASES: [&str; 9] = [
    "small", "raw", "raw-big", "zstd", "gzip", "cli", "cli-cold", "series", "parallel",
];

struct Options {
    runs: usize,
    quick: bool,
    /// The parts to measure; empty means all.
    cases: Vec<String>,
    /// The source servers to measure each part against; empty means all.
    servers: Vec<String>,
    /// Keep glint's log (it is kept anyway when the benchmark fails).
    keep_log: bool,
    /// The glint build to measure.
    binary: PathBuf,
}

fn options() -> Result<Options> {
    let (mut runs, mut quick, mut keep_log) = (None, false, false);
    let mut binary = PathBuf::from(env!("CARGO_BIN_EXE_glint"));
    let (mut cases, mut servers) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--keep-log" => keep_log = true,
            "--runs" => {
                runs = Some(
                    args.next()
                        .and_then(|value| value.parse::<usize>().ok())
                        .ok_or("--runs needs a number")?,
                )
            }
            "--binary" => binary = PathBuf::from(args.next().ok_or("--binary needs a path")?),
            "--case" => {
                let case = args.next().unwrap_or_default();
                if !CASES.contains(&case.as_str()) {
                    return Err(format!("--case needs one of {}", CASES.join(", ")));
                }
                cases.push(case);
            }
            "--server" => {
                let server = args.next().unwrap_or_default();
                if !SERVERS.contains(&server.as_str()) {
                    return Err(format!("--server needs one of {}", SERVERS.join(", ")));
                }
                servers.push(server);
            }
            // cargo bench passes --bench to harness-less benchmarks.
            "--bench" => {}
            other => match other.strip_prefix("--runs=") {
                Some(value) => runs = Some(value.parse().map_err(|_| "--runs needs a number")?),
                None => {
                    return Err(format!(
                        "unknown argument {other}: use --quick, --runs N, --case NAME, --server NAME, --binary PATH, --keep-log"
                    ));
                }
            },
        }
    }
    Ok(Options {
        runs: runs.unwrap_or(if quick { 1 } else { 4 }).max(1),
        quick,
        cases,
        servers,
        keep_log,
        binary,
    })
}

impl Options {
    fn measures(&self, case: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|chosen| chosen == case)
    }
}

// ---------------------------------------------------------------------------------------------
// The bench itself.

struct Bench {
    kubectl: Kubectl,
    images: Api<DynamicObject>,
    glance: Glance,
    log: GlanceLog,
    glint: GlintProcess,
    rss: RssSampler,
    /// The source server of the part being measured.
    server: SourceServer,
    data: PathBuf,
    glint_log: PathBuf,
    prefix: String,
    /// When each Image was first seen Ready with its image active.
    ready: StatusWatch,
    /// The ImageSeries case's mirror and object, once that case has started.
    series: Option<other_paths::SeriesPath>,
    namespace: String,
    /// The glint build measured (a copy).
    binary: PathBuf,
    bed: common::Testbed,
    /// The peak RSS of the last `glint apply` run, in MiB.
    cli_peak_mib: f64,
}

/// Which of glint's drivers takes the data in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// An Image reconciled by `glint run`.
    Controller,
    /// `glint apply -f` with the same Image manifest; `keep_token`: clouds.yaml says
    /// `cache: {auth: true}` and an earlier run kept a token (a returning user), else each run
    /// asks Keystone for a new one.
    Cli { keep_token: bool },
    /// A new release of an ImageSeries reconciled by `glint run`.
    Series,
}

/// One case of the table: what is transferred, and the ratio it must reach.
struct CaseSpec<'a> {
    /// The `--case` name.
    key: &'static str,
    label: String,
    file: &'a Path,
    /// The tool the baseline unpacks with, for a compressed source.
    unpack: Option<&'static str>,
    /// Bytes into Glance.
    size: u64,
    target: f64,
    /// The longest the whole path may take, for a case judged by time rather than ratio.
    seconds_target: Option<f64>,
    driver: Driver,
}

/// One row of the table.
struct CaseResult {
    /// The `--case` name.
    key: &'static str,
    server: &'static str,
    name: String,
    target: f64,
    seconds_target: Option<f64>,
    /// MB/s over the whole path, apply -> Ready (or the CLI's exit).
    glint: Vec<f64>,
    /// Seconds of the whole path.
    glint_seconds: Vec<f64>,
    /// MB/s from apply to Glance's answer to the upload.
    transfer: Vec<f64>,
    /// Seconds from Glance's answer to the upload to Ready (or the CLI's exit).
    end_to_ready: Vec<f64>,
    baseline: Vec<f64>,
    /// Seconds of glint's and the baseline's `PUT` by Glance's clock, and of what came before
    /// it (apply or start -> the `PUT`'s first byte, as near as the log tells).
    glint_put: Vec<f64>,
    glint_before_put: Vec<f64>,
    baseline_put: Vec<f64>,
    baseline_before_put: Vec<f64>,
    rss_mib: f64,
}

/// One run of glint on one case.
struct Measured {
    /// Apply -> Ready (or the CLI's exit).
    whole: f64,
    /// Apply -> Glance's answer to the upload.
    data_in: f64,
    /// The upload's `PUT` by Glance's clock (its log), so that a run splits into before the
    /// upload, the upload, and after it.
    put: f64,
    cpu: CpuShare,
}

/// One finished upload of glint's, as Glance's log shows it.
#[derive(Clone)]
struct Uploaded {
    /// When this process saw the log line (about when glint had the answer).
    seen: Instant,
    /// The `PUT`'s duration by Glance's clock.
    put: f64,
    /// The image the data went into.
    id: String,
}

/// The lowest and highest ratio of glint's run i to the baseline's run i.
fn paired_ratio_range(glint: &[f64], baseline: &[f64]) -> (f64, f64) {
    glint
        .iter()
        .zip(baseline)
        .map(|(glint, baseline)| glint / baseline)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), ratio| {
            (low.min(ratio), high.max(ratio))
        })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl Bench {
    fn image_manifest(&self, name: &str, tags: &[&str], url: Option<&str>) -> Value {
        let mut spec = json!({
            "cloudCredentialsRef": {"secretName": "cloud", "cloudName": "bed"},
            "diskFormat": "raw",
            "tags": tags,
        });
        if let Some(url) = url {
            spec["source"] = json!({"url": url, "decompress": "auto"});
        }
        json!({
            "apiVersion": "glint.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": name},
            "spec": spec,
        })
    }

    async fn apply(&self, manifest: &Value) -> Result<()> {
        let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
        self.images
            .patch(
                name,
                &PatchParams::apply("glint-bench"),
                &Patch::Apply(manifest),
            )
            .await
            .map(drop)
            .map_err(|e| format!("apply Image {name}: {e}"))
    }

    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let (ok, stdout, stderr) = self.kubectl.run(args, None);
        if ok {
            Ok(stdout)
        } else {
            Err(format!("kubectl {args:?}: {stderr}"))
        }
    }

    /// A failed transfer or a Stalled Image ends the benchmark: its figures would be wrong.
    async fn check_not_failed(&self, name: &str) -> Result<()> {
        let Ok(image) = self.images.get(name).await else {
            return Ok(());
        };
        let status = &image.data["status"];
        if let Some(error) = status["transfer"]["lastError"].as_str() {
            return Err(format!("glint's transfer of {name} failed: {error}"));
        }
        let stalled = status["conditions"].as_array().and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == "Stalled" && c["status"] == "True")
        });
        if let Some(condition) = stalled {
            return Err(format!(
                "Image {name} is Stalled: {}",
                condition["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// Waits until Glance has answered glint's `PUT /file` for each of `names` with the image
    /// active; returns when each was seen, by name.
    async fn wait_uploaded(
        &mut self,
        names: &[String],
        size: u64,
        timeout: Duration,
    ) -> Result<HashMap<String, Uploaded>> {
        let wanted: HashSet<String> = names.iter().cloned().collect();
        let key = |image: &Value| {
            let name = image["name"].as_str().unwrap_or_default();
            wanted.contains(name).then(|| name.to_string())
        };
        self.wait_uploads(names.len(), size, timeout, key, names)
            .await
    }

    /// Waits until Glance has answered glint's upload of one image `matches` picks.
    async fn wait_upload_where(
        &mut self,
        size: u64,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Uploaded> {
        let key = |image: &Value| matches(image).then(String::new);
        let done = self.wait_uploads(1, size, timeout, key, &[]).await?;
        done.into_values()
            .next()
            .ok_or_else(|| "no upload".to_string())
    }

    /// Waits for `count` finished uploads of images that `key` names (the others are some
    /// other test's), each leaving its image active with `size` bytes; checks the Images
    /// named `watched` for a failure meanwhile.
    async fn wait_uploads(
        &mut self,
        count: usize,
        size: u64,
        timeout: Duration,
        key: impl Fn(&Value) -> Option<String>,
        watched: &[String],
    ) -> Result<HashMap<String, Uploaded>> {
        let deadline = Instant::now() + timeout;
        let mut done = HashMap::new();
        let mut foreign = HashSet::new();
        let mut last_check = Instant::now();
        while done.len() < count {
            for request in self.log.take_uploads() {
                let Some(id) = upload_id(&request.path) else {
                    continue;
                };
                if foreign.contains(id) {
                    continue;
                }
                let image = self.glance.image(id).await?.unwrap_or_default();
                let Some(key) = key(&image) else {
                    foreign.insert(id.to_string());
                    continue;
                };
                let name = image["name"].as_str().unwrap_or_default();
                if !(200..300).contains(&request.status) {
                    return Err(format!(
                        "Glance answered {} to glint's upload of {name}",
                        request.status
                    ));
                }
                if image["status"] != "active" || image["size"].as_u64() != Some(size) {
                    return Err(format!(
                        "{name} is {} with size {} after glint's upload (expected active, {size})",
                        image["status"], image["size"]
                    ));
                }
                done.insert(
                    key,
                    Uploaded {
                        seen: request.seen,
                        put: request.seconds,
                        id: id.to_string(),
                    },
                );
            }
            if last_check.elapsed() > Duration::from_secs(5) {
                last_check = Instant::now();
                if !self.glint.is_running() {
                    return Err(format!(
                        "glint exited; its log: {}",
                        self.glint_log.display()
                    ));
                }
                for name in watched.iter().filter(|name| !done.contains_key(*name)) {
                    self.check_not_failed(name).await?;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no upload finished within {} s ({} of {count}); glint's log: {}",
                    timeout.as_secs(),
                    done.len(),
                    self.glint_log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(done)
    }

    /// Deletes Images through glint (which deletes their Glance images) and waits until gone.
    fn delete_images(&self, names: &[String]) -> Result<()> {
        let mut args = vec!["delete", "images", "--wait=true", "--timeout=300s"];
        args.extend(names.iter().map(String::as_str));
        self.kubectl(&args).map(drop)
    }

    /// One Image through `glint run`: apply -> Ready, and when Glance had the data.
    async fn glint_run(&mut self, name: &str, url: &str, size: u64) -> Result<Measured> {
        let manifest = self.image_manifest(name, &[TAG], Some(url));
        // The same name was measured from the previous source server.
        self.ready.forget(name);
        self.rss.reset();
        let cpu_before = CpuSnapshot::take(Some(self.rss.pid));
        let started = Instant::now();
        self.apply(&manifest).await?;
        let names = [name.to_string()];
        let done = self
            .wait_uploaded(&names, size, upload_timeout(size))
            .await?;
        let ready = self.ready.wait(name, Duration::from_secs(60)).await?;
        let cpu = CpuSnapshot::take(Some(self.rss.pid)).since(&cpu_before);
        self.delete_images(&names)?;
        Ok(Measured {
            whole: (ready - started).as_secs_f64(),
            data_in: (done[name].seen - started).as_secs_f64(),
            put: done[name].put,
            cpu,
        })
    }

    /// Seconds of `curl -s URL | [unpack |] curl -T -` into a queued image.
    /// `curl | curl -T -` into a queued image. `from_scratch`: the clock also covers what
    /// glint's first run does before the data, done with curl (a token from Keystone, then the
    /// image created); else the token and the image are made beforehand.
    async fn baseline_run(
        &mut self,
        name: &str,
        url: &str,
        unpack: Option<&str>,
        size: u64,
        from_scratch: bool,
    ) -> Result<(f64, Option<f64>, CpuShare)> {
        let unpack = unpack
            .map(|tool| format!("{tool} -dc | "))
            .unwrap_or_default();
        let upload = format!(
            "curl -sS -f \"$SOURCE\" | {unpack}curl -sS -f -o /dev/null -X PUT -T - \
             -H 'Expect:' -H 'Content-Type: application/octet-stream' -H \"X-Auth-Token: $TOKEN\" \"$GLANCE/v2/images/$ID/file\""
        );
        let mut command = Command::new("bash");
        let script = if from_scratch {
            let create = serde_json::json!({"name": name, "disk_format": "raw",
                "container_format": "bare", "tags": [TAG]});
            command
                .env("LOGIN", self.demo_login())
                .env("CREATE", create.to_string());
            format!(
                "set -o pipefail; \
                 TOKEN=$(curl -sS -f -D - -o /dev/null -H 'Content-Type: application/json' -d \"$LOGIN\" \"$KEYSTONE/auth/tokens\" \
                   | tr -d '\\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'); \
                 ID=$(curl -sS -f -H \"X-Auth-Token: $TOKEN\" -H 'Content-Type: application/json' -d \"$CREATE\" \"$GLANCE/v2/images\" \
                   | grep -o '\"id\": *\"[^\"]*\"' | head -n 1 | cut -d '\"' -f 4); \
                 echo \"$ID\"; {upload}"
            )
        } else {
            let id = self.glance.create(name).await?;
            command.env("TOKEN", &self.glance.token).env("ID", &id);
            format!("set -o pipefail; echo \"$ID\"; {upload}")
        };
        let cpu_before = CpuSnapshot::take(None);
        let started = Instant::now();
        let output = command
            .args(["-c", &script])
            .env("SOURCE", url)
            .env("GLANCE", &self.glance.url)
            .env("KEYSTONE", &self.bed.keystone_url)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the baseline: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = CpuSnapshot::take(None).since(&cpu_before);
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if id.is_empty() {
            return Err(format!(
                "baseline {script} made no image: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let put = self.log.upload_seconds(&id);
        let image = self.glance.image(&id).await?.unwrap_or_default();
        self.glance.delete(&id).await?;
        if !output.status.success() {
            return Err(format!(
                "baseline {script} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        if image["status"] != "active" || image["size"].as_u64() != Some(size) {
            return Err(format!(
                "the baseline's image is {} with size {} (expected active, {size})",
                image["status"], image["size"]
            ));
        }
        Ok((seconds, put, cpu))
    }

    async fn case(&mut self, spec: &CaseSpec<'_>, runs: usize) -> Result<CaseResult> {
        let CaseSpec {
            key,
            ref label,
            file,
            unpack,
            size,
            target,
            seconds_target,
            driver,
        } = *spec;
        self.glance.refresh_token().await;
        let url = self.server.url(file);
        let source_len = file.metadata().map_err(err)?.len();
        println!("{label}: {size} bytes into Glance, {source_len} bytes from {url}");
        let megabytes = size as f64 / 1e6;
        let mut result = CaseResult {
            key,
            server: self.server.name,
            name: label.to_string(),
            target,
            seconds_target,
            glint: Vec::new(),
            glint_seconds: Vec::new(),
            transfer: Vec::new(),
            end_to_ready: Vec::new(),
            baseline: Vec::new(),
            glint_put: Vec::new(),
            glint_before_put: Vec::new(),
            baseline_put: Vec::new(),
            baseline_before_put: Vec::new(),
            rss_mib: 0.0,
        };
        let slug: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        warm_page_cache(file);
        for run in 0..runs {
            // Alternate who goes first, so that neither always meets warmer caches.
            let order = if run % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for use_glint in order {
                settle_writeback();
                // The server in the name: `glint apply -f` derives its image's id from the
                // name, and Glance never frees the id of a deleted image, so a name used
                // again with the next server would make glint walk past the ids of the
                // earlier servers' deleted images (one refused create and one read each),
                // a cost curl's baseline never pays.
                let name = format!(
                    "{}-{}-{slug}-{}-{}",
                    self.prefix,
                    self.server.name,
                    run + 1,
                    if use_glint { "glint" } else { "curl" }
                );
                if use_glint {
                    let measured = match driver {
                        Driver::Controller => self.glint_run(&name, &url, size).await?,
                        Driver::Cli { keep_token } => {
                            self.cli_run(&name, &url, size, keep_token).await?
                        }
                        Driver::Series => self.series_run(size).await?,
                    };
                    let rss = match driver {
                        // The CLI's own peak, read by the run.
                        Driver::Cli { .. } => self.cli_peak_mib(),
                        _ => self.rss.peak_mib(),
                    };
                    let Measured {
                        whole,
                        data_in,
                        put,
                        cpu,
                    } = measured;
                    result.glint_put.push(put);
                    result.glint_before_put.push(data_in - put);
                    result.rss_mib = result.rss_mib.max(rss);
                    result.glint.push(megabytes / whole);
                    result.glint_seconds.push(whole);
                    result.transfer.push(megabytes / data_in);
                    result.end_to_ready.push(whole - data_in);
                    println!(
                        "  run {} glint:    {:7.1} MB/s ({whole:6.2} s to {}; PUT {put:6.2} s by Glance's clock, data in at {data_in:6.2} s, +{:.2} s)  peak RSS {rss:5.1} MiB  {}",
                        run + 1,
                        megabytes / whole,
                        if matches!(driver, Driver::Cli { .. }) {
                            "exit"
                        } else {
                            "Ready"
                        },
                        whole - data_in,
                        cores(&cpu)
                    );
                } else {
                    let from_scratch = driver == Driver::Cli { keep_token: false };
                    let (seconds, put, cpu) = self
                        .baseline_run(&name, &url, unpack, size, from_scratch)
                        .await?;
                    result.baseline.push(megabytes / seconds);
                    if let Some(put) = put {
                        result.baseline_put.push(put);
                        result.baseline_before_put.push(seconds - put);
                    }
                    println!(
                        "  run {} baseline: {:7.1} MB/s ({seconds:6.2} s; PUT {} by Glance's clock)  {}",
                        run + 1,
                        megabytes / seconds,
                        put.map_or_else(
                            || "not in the log".to_string(),
                            |put| format!("{put:6.2} s")
                        ),
                        cores(&cpu)
                    );
                }
            }
        }
        Ok(result)
    }

    /// Four transfers at once, and a tag edit on a fifth, Ready Image meanwhile.
    async fn tag_edit_during_transfers(
        &mut self,
        ready: &str,
        file: &Path,
        size: u64,
    ) -> Result<TagResult> {
        self.glance.refresh_token().await;
        let id = self.kubectl(&["get", "image", ready, "-o", "jsonpath={.status.id}"])?;
        // Open (and keep warm) this client's connection to Glance before the uploads take
        // Glance's threads: a new connection would queue behind them.
        self.glance.image(&id).await?;
        let url = self.server.url(file);
        let names: Vec<String> = (1..=4)
            .map(|i| format!("{}-parallel-{i}", self.prefix))
            .collect();
        self.rss.reset();
        let started = Instant::now();
        for name in &names {
            self.apply(&self.image_manifest(name, &[TAG], Some(&url)))
                .await?;
        }
        // Four at once is the aim; when glint gets there slowly (each create waits for
        // Glance), the edit goes out after 20 s with as many as run then, and says so.
        loop {
            let active = self.glint.metric("glint_transfers_active").unwrap_or(0.0);
            if active >= 4.0 || (active >= 1.0 && started.elapsed() > Duration::from_secs(20)) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "only {active} transfers were running 60 s after applying 4 Images"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Into the steady state of the uploads.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let running_at_edit = self.glint.metric("glint_transfers_active").unwrap_or(0.0) as u32;
        let _ = self.log.poll();
        let edited = format!("edited-{}", std::process::id());
        let patched = Instant::now();
        self.images
            .patch(
                ready,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"tags": [TAG, edited]}})),
            )
            .await
            .map_err(|e| format!("patch Image {ready}: {e}"))?;
        let image_path = format!("/v2/images/{id}");
        let mut last_get = Instant::now();
        let reached = loop {
            // A PATCH of the image (or a tag PUT) in Glance's log, confirmed by a GET; and a
            // GET every 3 s besides, in case the log says nothing. Not more: with four uploads
            // running, each GET takes Glance 0.3 to 0.8 s, and it would compete with glint's.
            let logged = self.log.poll().into_iter().find(|request| {
                request.path.starts_with(&image_path)
                    && matches!(request.method.as_str(), "PATCH" | "PUT")
                    && (200..300).contains(&request.status)
            });
            if logged.is_some() || last_get.elapsed() > Duration::from_secs(3) {
                last_get = Instant::now();
                let image = self.glance.image(&id).await?.unwrap_or_default();
                let tagged = image["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|tag| tag == edited.as_str()));
                if tagged {
                    break logged.map_or_else(Instant::now, |request| request.seen);
                }
            }
            if patched.elapsed() > Duration::from_secs(60) {
                return Err("the tag edit did not reach Glance within 60 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let tag_seconds = (reached - patched).as_secs_f64();
        let still_running = self.glint.metric("glint_transfers_active").unwrap_or(0.0) as u32;
        let done = self
            .wait_uploaded(&names, size, upload_timeout(4 * size))
            .await?;
        let last = done
            .values()
            .map(|upload| upload.seen)
            .max()
            .unwrap_or(started);
        let parallel_seconds = (last - started).as_secs_f64();
        let rss_mib = self.rss.peak_mib();
        self.delete_images(&names)?;
        Ok(TagResult {
            tag_seconds,
            running_at_edit,
            still_running,
            parallel_seconds,
            parallel_rate: 4.0 * size as f64 / 1e6 / parallel_seconds,
            rss_mib,
        })
    }
}

struct TagResult {
    tag_seconds: f64,
    running_at_edit: u32,
    still_running: u32,
    parallel_seconds: f64,
    parallel_rate: f64,
    rss_mib: f64,
}

/// Cores in use during one run: glint, Glance, the rest (curl, zstd or gzip, the kernel's
/// threads), and all together.
fn cores(cpu: &CpuShare) -> String {
    let wall = cpu.wall.max(1e-9);
    format!(
        "cores: glint {:.2}, Glance {:.2}, other {:.2}, all {:.2}",
        cpu.of("glint") / wall,
        cpu.of("Glance") / wall,
        cpu.of("other") / wall,
        cpu.total() / wall
    )
}

/// Reads the source file once, so that the first run of a case does not read it from disk
/// while the others find it in memory: the kernel's proactive reclaim drops a file that sat
/// idle, and the first run of each case is glint's.
fn warm_page_cache(file: &Path) {
    if let Ok(mut source) = std::fs::File::open(file) {
        let _ = std::io::copy(&mut source, &mut std::io::sink());
    }
}

/// Waits until the kernel has written every dirty page to disk. The source files (over 6 GiB,
/// written at start) and each run's stored image are otherwise flushed during the next run,
/// taking disk and CPU from whichever side runs then: the first glint run used to meet all
/// of the source files' writeback.
fn settle_writeback() {
    let _ = Command::new("sync").status();
}

/// Generous: a stalled upload fails the run instead of hanging it.
fn upload_timeout(size: u64) -> Duration {
    Duration::from_secs(120 + size / 10_000_000)
}

async fn run() -> Result<bool> {
    let options = options()?;
    let bed = common::testbed().ok_or("the test bed is not running: use scripts/bench transfer")?;
    let (big, small, mixed) = if options.quick {
        (512 * MIB, 256 * MIB, 256 * MIB)
    } else {
        (4096 * MIB, 1024 * MIB, 1024 * MIB)
    };

    let dir = data_dir();
    std::fs::create_dir_all(&dir).map_err(err)?;
    println!("preparing data in {} (kept for later runs)", dir.display());
    let random_tiny = random_file(&dir, SMALL)?;
    let random_small = random_file(&dir, small)?;
    let random_big = random_file(&dir, big)?;
    let mixed_raw = mixed_file(&dir, mixed)?;
    let zst = compressed(&mixed_raw, "zstd", "zst")?;
    let gz = compressed(&mixed_raw, "gzip", "gz")?;

    let cluster = common::cluster::try_cluster()
        .ok_or("no apiserver: set KUBEBUILDER_ASSETS or KUBECONFIG (scripts/bench does)")?;
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let namespace: String = common::unique("bench-transfer").chars().take(40).collect();
    let namespace = namespace.trim_end_matches('-').to_string();
    let kubectl = Kubectl {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
    };
    kubectl.install_with_cloud_secret(&common::keystone::password_auth(&bed, &bed.demo_password));
    let client = kubectl.client().await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("glint.dev", "v1alpha1", "Image"));
    // glint reconciles ImageSeries only when their CRD is there when it starts.
    kubectl.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/imageseries.glint.dev",
    ]);
    // The binary may be rebuilt under this run (a shared target folder): run a copy.
    let binary = std::env::temp_dir().join(format!("{namespace}-glint"));
    std::fs::copy(&options.binary, &binary)
        .map_err(|e| format!("cannot copy {}: {e}", options.binary.display()))?;
    let glint_log = std::env::temp_dir().join(format!("{namespace}-glint.log"));
    let glint = GlintProcess::start_with(
        Command::new(&binary),
        &kubeconfig,
        &namespace,
        &glint_log,
        &["--transfers", "4"],
    );
    let rss = RssSampler::start(glint.id());
    let glance_log = Path::new(&bed.testbed_dir).join("glance-b/uwsgi.log");
    let images = Api::namespaced_with(client, &namespace, &resource);
    let mut bench = Bench {
        kubectl,
        ready: StatusWatch::start(images.clone(), ready::image_ready),
        images,
        series: None,
        namespace: namespace.clone(),
        binary: binary.clone(),
        bed: bed.clone(),
        cli_peak_mib: 0.0,
        glance: Glance::new(&bed).await,
        log: GlanceLog::tail(&glance_log)?,
        glint,
        rss,
        server: SourceServer::start(SERVERS[0], &dir)?,
        data: dir.clone(),
        glint_log: glint_log.clone(),
        prefix: format!("bench-{}", std::process::id()),
    };

    let outcome = measure(
        &mut bench,
        &options,
        &random_tiny,
        &random_small,
        &random_big,
        &zst,
        &gz,
        small,
        big,
        mixed,
    )
    .await;

    // Clean up while glint still runs: it deletes the Glance images of its Images (without it
    // the finalizers would hold the deletes; the sweep below removes the Glance images then).
    if bench.glint.is_running() {
        let _ = bench.kubectl(&[
            "delete",
            "images,imageseries",
            "--all",
            "--wait=true",
            "--timeout=300s",
        ]);
        let _ = bench.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
    drop(bench.glint);
    for id in bench.glance.leftovers().await.unwrap_or_default() {
        let _ = bench.glance.delete(&id).await;
    }
    if outcome.is_ok() && !options.keep_log {
        let _ = std::fs::remove_file(&glint_log);
    } else {
        eprintln!("glint's log: {}", glint_log.display());
    }
    let _ = std::fs::remove_file(&binary);
    drop(cluster);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &mut Bench,
    options: &Options,
    random_tiny: &Path,
    random_small: &Path,
    random_big: &Path,
    zst: &Path,
    gz: &Path,
    small: u64,
    big: u64,
    mixed: u64,
) -> Result<bool> {
    // The fifth Image of the tag test; also warms glint up (Keystone token, Glance client).
    let ready = format!("{}-ready", bench.prefix);
    bench
        .apply(&bench.image_manifest(&ready, &[TAG], None))
        .await?;
    bench.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("image/{ready}"),
        "--timeout=180s",
    ])?;

    // Settle, then glint's memory at rest, for scale.
    tokio::time::sleep(Duration::from_secs(2)).await;
    bench.rss.reset();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_rest = bench.rss.peak_mib();
    println!(
        "transfer benchmark: Image applied -> Ready with its Glance image active, through `glint run --transfers 4`,\n\
         against `curl -s URL | [zstd|gzip -dc |] curl -T -`; {} run(s) each, alternating, into {}\n\
         glint's RSS at rest: {at_rest:.1} MiB",
        options.runs, bench.glance.url
    );
    let raw = |key, label: &str, file, size, driver| CaseSpec {
        key,
        label: format!("{label} {}", size_label(size)),
        file,
        unpack: None,
        size,
        target: 0.95,
        seconds_target: None,
        driver,
    };
    let cases = [
        CaseSpec {
            target: 0.0,
            seconds_target: Some(SMALL_TARGET_SECONDS),
            ..raw("small", "raw", random_tiny, SMALL, Driver::Controller)
        },
        raw("raw", "raw", random_small, small, Driver::Controller),
        raw("raw-big", "raw", random_big, big, Driver::Controller),
        CaseSpec {
            unpack: Some("zstd"),
            target: 0.90,
            ..raw("zstd", "zstd", zst, mixed, Driver::Controller)
        },
        CaseSpec {
            unpack: Some("gzip"),
            target: 0.90,
            ..raw("gzip", "gzip", gz, mixed, Driver::Controller)
        },
        raw(
            "cli",
            "glint apply (token kept), raw",
            random_small,
            small,
            Driver::Cli { keep_token: true },
        ),
        raw(
            "cli-cold",
            "glint apply (new token), raw",
            random_small,
            small,
            Driver::Cli { keep_token: false },
        ),
        raw("series", "series, raw", random_small, small, Driver::Series),
    ];
    let servers: Vec<&str> = SERVERS
        .iter()
        .copied()
        .filter(|name| options.servers.is_empty() || options.servers.iter().any(|s| s == name))
        .collect();
    let mut results = Vec::new();
    for server in &servers {
        bench.server = SourceServer::start(server, &bench.data)?;
        println!("source server: {server}");
        for spec in cases.iter().filter(|spec| options.measures(spec.key)) {
            results.push(bench.case(spec, options.runs).await?);
        }
        bench.end_series();
    }
    // The parallel part and the tag edit are about glint, not the source: the first server.
    bench.server = SourceServer::start(servers[0], &bench.data)?;
    // --quick: the larger file, so that the four transfers last long enough to edit during.
    let (parallel_file, parallel_size) = if options.quick {
        (random_big, big)
    } else {
        (random_small, small)
    };
    let tag = if options.measures("parallel") {
        println!(
            "4 x {} raw at once, and a tag edit on a Ready Image meanwhile",
            size_label(parallel_size)
        );
        Some(
            bench
                .tag_edit_during_transfers(&ready, parallel_file, parallel_size)
                .await?,
        )
    } else {
        None
    };

    println!();
    println!(
        "{:<13} {:<24} {:>12} {:>13} {:>9} {:>7} {:>13} {:>9} {:>10} {:>10}",
        "server",
        "case",
        "glint MB/s",
        "data-in MB/s",
        "baseline",
        "ratio",
        "paired runs",
        "end->Rdy",
        "target",
        "peak RSS"
    );
    let mut met = true;
    for case in &results {
        let (glint, baseline) = (median(&case.glint), median(&case.baseline));
        let ratio = glint / baseline;
        let (lowest, highest) = paired_ratio_range(&case.glint, &case.baseline);
        let end_to_ready = median(&case.end_to_ready);
        let (target, whole_ok) = match case.seconds_target {
            Some(limit) => (
                format!("<={limit:.1} s"),
                median(&case.glint_seconds) <= limit,
            ),
            None => (format!(">={:.2}", case.target), ratio >= case.target),
        };
        let ok = whole_ok
            && end_to_ready <= END_TO_READY_TARGET_SECONDS
            && case.rss_mib <= RSS_TARGET_MIB;
        met &= ok;
        println!(
            "{:<13} {:<24} {glint:>12.1} {:>13.1} {baseline:>9.1} {ratio:>7.3} {:>13} {:>8.2}s {target:>10} {:>6.1} MiB{}",
            case.server,
            case.name,
            median(&case.transfer),
            format!("{lowest:.3}-{highest:.3}"),
            end_to_ready,
            case.rss_mib,
            if ok { "" } else { "  MISSED" }
        );
        println!(
            "{:<13} {:<24} by Glance's clock (medians): PUT glint {:.2} s, baseline {:.2} s (ratio {:.3}); before the PUT glint {:.2} s, baseline {:.2} s",
            "",
            "",
            median(&case.glint_put),
            median(&case.baseline_put),
            median(&case.baseline_put) / median(&case.glint_put),
            median(&case.glint_before_put),
            median(&case.baseline_before_put),
        );
        if case.seconds_target.is_some() {
            println!(
                "{:<13} {:<24} apply -> Ready: median {:.2} s (runs: {})",
                "",
                "",
                median(&case.glint_seconds),
                case.glint_seconds
                    .iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!(
        "(MB/s of the image as stored, 1 MB = 10^6 bytes, medians of the runs above. glint: apply ->\n\
         Ready (the CLI: start -> exit; a series: check requested -> the release current); data-in:\n\
         apply -> Glance's answer to the upload; end->Rdy: that answer -> Ready, target <= {END_TO_READY_TARGET_SECONDS} s;\n\
         paired runs: the lowest and highest ratio of glint's run i to the baseline's run i)"
    );
    for server in &servers {
        let of_server = |key: &str| {
            results
                .iter()
                .find(|case| case.key == key && case.server == *server)
        };
        let (Some(small_case), Some(big_case)) = (of_server("raw"), of_server("raw-big")) else {
            continue;
        };
        let (rss_small, rss_big) = (small_case.rss_mib, big_case.rss_mib);
        let flat = rss_big - rss_small <= RSS_FLAT_MIB;
        met &= flat;
        println!(
            "RSS across sizes from {server}: {rss_small:.1} MiB ({}) -> {rss_big:.1} MiB ({}): {} (target <= {RSS_TARGET_MIB} MiB, flat within {RSS_FLAT_MIB} MiB)",
            small_case.name,
            big_case.name,
            if flat { "flat" } else { "GROWS" }
        );
    }
    if let Some(tag) = tag {
        let tag_ok = tag.tag_seconds <= TAG_TARGET_SECONDS && tag.still_running >= 1;
        met &= tag_ok;
        println!(
            "tag edit reached Glance in {:.2} s (target <= {TAG_TARGET_SECONDS} s) with transfers running: {} when sent, {} when it landed{}",
            tag.tag_seconds,
            tag.running_at_edit,
            tag.still_running,
            if tag_ok { "" } else { "  MISSED" }
        );
        println!(
            "4 x {} at once: {:.2} s from apply to the last active, {:.1} MB/s together, glint peak RSS {:.1} MiB",
            size_label(parallel_size),
            tag.parallel_seconds,
            tag.parallel_rate,
            tag.rss_mib
        );
    }
    Ok(met)
}

fn main() -> ExitCode {
    bench_main::finish(run())
}
