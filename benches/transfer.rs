//! Transfer benchmark: the whole controller path, from an Image applied to Kubernetes to the
//! Glance image active, against `curl -s URL | curl -T -` into the same Glance. Run with
//! `scripts/bench transfer` (starts the test bed when needed, and an apiserver from
//! KUBEBUILDER_ASSETS unless KUBECONFIG names a cluster).
//!
//! A real `glint run --transfers 4` watches a fresh namespace. The sources are pseudo-random
//! raw files of 1 GiB and 4 GiB, and the .zst and .gz of a compressible 1 GiB file, served from
//! disk by each of several servers in turn (`support/source_servers.rs`): the benchmark's own
//! (sendfile), Python's `http.server`, nginx, and one that writes 4 KiB at a time. The table has
//! a row per server and case: a speed that holds only for the benchmark's own server is not a
//! result. For each case glint and the baseline alternate (4 runs each: an
//! even count, so that each side goes first in half the pairs; the first pair of a case is
//! the slowest, for both sides).
//! glint's clock starts before the Image is applied through the Kubernetes API (server-side
//! apply, as `kubectl apply --server-side` does, so kubectl's own start-up is not counted) and
//! stops when Glance answers glint's `PUT /file`: the Glance log is tailed for it (every 20 ms)
//! rather than polled, since every GET through keystonemiddleware costs Glance CPU that the
//! upload needs. The baseline's clock covers the curl pipeline into a queued image created
//! beforehand. glint's RSS is read from /proc every 100 ms (and its VmHWM, reset per run).
//!
//! Then, with four 1 GiB transfers running, a tag edit on a fifth, Ready Image is timed from
//! the patch until Glance has the tag.
//!
//! Targets (issue 8): raw >= 0.95x the baseline, compressed >= 0.90x, glint's peak RSS
//! <= 40 MiB and flat across sizes, the tag edit in Glance within 2 s.
//! `--runs N` changes the runs per side; `--quick` uses 256 MiB / 512 MiB files and 1 run;
//! `--case NAME` (repeatable: raw, raw-big, zstd, gzip, parallel) measures only those parts,
//! `--server NAME` (repeatable: own, python, nginx, small-writes) only from those servers.
//! Besides each case's median ratio, the spread of the ratios of its paired runs (run i of
//! glint against run i of the baseline) is printed, so that a change can be told from the
//! machine's own noise.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;
#[path = "support/cpu_share.rs"]
#[allow(dead_code)]
mod cpu_share;
#[path = "support/source_servers.rs"]
mod source_servers;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::kubectl::{GlintProcess, Kubectl};
use cpu_share::{CpuShare, CpuSnapshot};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use source_servers::{SERVERS, SourceServer};

/// Every Glance image this benchmark makes carries this tag, for the final sweep.
const TAG: &str = "glint-bench-transfer";
const MIB: u64 = 1 << 20;
const RSS_TARGET_MIB: f64 = 40.0;
/// Peak RSS counts as flat across sizes when the largest file costs at most this much more.
const RSS_FLAT_MIB: f64 = 4.0;
const TAG_TARGET_SECONDS: f64 = 2.0;

type Result<T> = std::result::Result<T, String>;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The parts `--case` can pick.
const CASES: [&str; 5] = ["raw", "raw-big", "zstd", "gzip", "parallel"];

struct Options {
    runs: usize,
    quick: bool,
    /// The parts to measure; empty means all.
    cases: Vec<String>,
    /// The source servers to measure each part against; empty means all.
    servers: Vec<String>,
    /// Keep glint's log (it is kept anyway when the benchmark fails).
    keep_log: bool,
}

fn options() -> Result<Options> {
    let (mut runs, mut quick, mut keep_log) = (None, false, false);
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
                        "unknown argument {other}: use --quick, --runs N, --case NAME, --server NAME, --keep-log"
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
    })
}

impl Options {
    fn measures(&self, case: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|chosen| chosen == case)
    }
}

// ---------------------------------------------------------------------------------------------
// Data: generated once into a cache folder, deterministic, reused by later runs.

fn data_dir() -> PathBuf {
    std::env::temp_dir().join("glint-bench-transfer")
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Writes `size` bytes from `fill` (called per 1 MiB block) to `path`, through a temporary
/// file so that an interrupted run never leaves a short file behind.
fn write_file(path: &Path, size: u64, mut fill: impl FnMut(&mut [u8])) -> Result<()> {
    if path.metadata().is_ok_and(|meta| meta.len() == size) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::with_capacity(
        4 * MIB as usize,
        std::fs::File::create(&tmp).map_err(err)?,
    );
    let mut block = vec![0u8; MIB as usize];
    let mut written = 0;
    while written < size {
        fill(&mut block);
        let take = (size - written).min(MIB) as usize;
        out.write_all(&block[..take]).map_err(err)?;
        written += take as u64;
    }
    out.flush().map_err(err)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Incompressible data, like an encrypted or already compressed disk.
fn random_file(dir: &Path, size: u64) -> Result<PathBuf> {
    let path = dir.join(format!("random-{}m.raw", size / MIB));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    write_file(&path, size, |block| {
        for word in block.chunks_exact_mut(8) {
            word.copy_from_slice(&xorshift(&mut state).to_le_bytes());
        }
    })?;
    Ok(path)
}

/// A disk-like mix that compresses about 3 to 4 times: per 64 KiB, 30 % zeros, 20 % random
/// bytes and 50 % text from a small vocabulary.
fn mixed_file(dir: &Path, size: u64) -> Result<PathBuf> {
    let path = dir.join(format!("mixed-{}m.raw", size / MIB));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let words: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let len = 2 + (xorshift(&mut state) % 9) as usize;
            (0..len)
                .map(|_| b'a' + (xorshift(&mut state) % 26) as u8)
                .collect()
        })
        .collect();
    write_file(&path, size, |block| {
        for part in block.chunks_mut(64 * 1024) {
            match xorshift(&mut state) % 10 {
                0..=2 => part.fill(0),
                3..=4 => {
                    for byte in part.iter_mut() {
                        *byte = xorshift(&mut state) as u8;
                    }
                }
                _ => {
                    let mut at = 0;
                    while at < part.len() {
                        let roll = xorshift(&mut state);
                        let word = &words[(roll % 64) as usize];
                        for &byte in word
                            .iter()
                            .chain(if roll & 0x700 == 0 { b"\n" } else { b" " })
                        {
                            if at < part.len() {
                                part[at] = byte;
                                at += 1;
                            }
                        }
                    }
                }
            }
        }
    })?;
    Ok(path)
}

/// `raw` compressed with the `zstd` or `gzip` command (default levels), cached beside it.
fn compressed(raw: &Path, tool: &str, extension: &str) -> Result<PathBuf> {
    let path = PathBuf::from(format!("{}.{extension}", raw.display()));
    if path.exists() {
        return Ok(path);
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let args: &[&str] = match tool {
        "zstd" => &["-q", "-c", "-T0"],
        _ => &["-n", "-c"],
    };
    let status = Command::new(tool)
        .args(args)
        .arg(raw)
        .stdout(std::fs::File::create(&tmp).map_err(err)?)
        .status()
        .map_err(|e| format!("cannot run {tool} (scripts/bench installs it): {e}"))?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{tool} failed: {status}"));
    }
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

// ---------------------------------------------------------------------------------------------
// glint's memory: VmRSS every 100 ms, and VmHWM (reset through clear_refs at each run).

struct RssSampler {
    pid: u32,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    hwm_reset: bool,
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, stopped) = (peak_kib.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            pid,
            peak_kib,
            stop,
            hwm_reset: false,
        }
    }

    /// Starts a new measurement.
    fn reset(&mut self) {
        self.peak_kib.store(0, Ordering::Relaxed);
        // "5" resets the peak RSS the kernel keeps (VmHWM) to the current RSS.
        self.hwm_reset = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok();
    }

    /// The peak since the last reset, in MiB.
    fn peak_mib(&self) -> f64 {
        let sampled = self.peak_kib.load(Ordering::Relaxed);
        let hwm = if self.hwm_reset {
            proc_status_kib(self.pid, "VmHWM:").unwrap_or(0)
        } else {
            0
        };
        sampled.max(hwm) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Glance B (behind Keystone, the one glint's clouds.yaml reaches) and its request log.

struct Glance {
    http: reqwest::Client,
    url: String,
    token: String,
    bed: common::Testbed,
}

impl Glance {
    async fn new(bed: &common::Testbed) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: bed.keystone_glance_url.clone(),
            token: common::keystone::demo_token(bed).await,
            bed: bed.clone(),
        }
    }

    /// Tokens live an hour; a full run takes longer than that on a slow machine.
    async fn refresh_token(&mut self) {
        self.token = common::keystone::demo_token(&self.bed).await;
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("X-Auth-Token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(err)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().await.map_err(err)?;
        if !status.is_success() {
            return Err(format!("Glance {method} {path}: {status}: {text}"));
        }
        Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn image(&self, id: &str) -> Result<Option<Value>> {
        self.call(reqwest::Method::GET, &format!("/v2/images/{id}"), None)
            .await
    }

    async fn create(&self, name: &str) -> Result<String> {
        let body =
            json!({"name": name, "disk_format": "raw", "container_format": "bare", "tags": [TAG]});
        let image = self
            .call(reqwest::Method::POST, "/v2/images", Some(body))
            .await?
            .ok_or("Glance answered 404 to an image create")?;
        image["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no id in {image}"))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.call(reqwest::Method::DELETE, &format!("/v2/images/{id}"), None)
            .await
            .map(drop)
    }

    /// Every image this benchmark left in Glance (the project's, with [`TAG`]).
    async fn leftovers(&self) -> Result<Vec<String>> {
        let page = self
            .call(
                reqwest::Method::GET,
                &format!("/v2/images?tag={TAG}&limit=200"),
                None,
            )
            .await?
            .unwrap_or_default();
        Ok(page["images"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|image| image["id"].as_str().map(str::to_string))
            .collect())
    }
}

/// One finished request in Glance's uwsgi log, and when this process saw it.
struct LoggedRequest {
    method: String,
    path: String,
    status: u16,
    seen: Instant,
}

/// Glance's uwsgi log, read from where it ended when the tail started. uwsgi writes a
/// request's line when the response has gone out: for `PUT /file`, once the image is active.
struct GlanceLog {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Finished `PUT /v2/images/{id}/file` requests not yet looked at, whoever polled.
    uploads: Vec<LoggedRequest>,
}

impl GlanceLog {
    fn tail(path: &Path) -> Result<Self> {
        let offset = std::fs::metadata(path)
            .map_err(|e| format!("cannot read Glance's log {}: {e}", path.display()))?
            .len();
        Ok(Self {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
            uploads: Vec::new(),
        })
    }

    fn poll(&mut self) -> Vec<LoggedRequest> {
        use std::io::Seek;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        if len < self.offset {
            // Rotated or truncated: start again from the top.
            self.offset = 0;
            self.partial.clear();
        }
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        let read = file.read_to_end(&mut fresh).unwrap_or(0);
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh[..read]);
        let seen = Instant::now();
        let mut requests = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Some(request) = parse_log_line(&String::from_utf8_lossy(&line), seen) {
                if request.method == "PUT" && upload_id(&request.path).is_some() {
                    self.uploads.push(LoggedRequest {
                        method: request.method.clone(),
                        path: request.path.clone(),
                        status: request.status,
                        seen,
                    });
                }
                requests.push(request);
            }
        }
        requests
    }

    /// The uploads seen so far and not yet taken.
    fn take_uploads(&mut self) -> Vec<LoggedRequest> {
        self.poll();
        std::mem::take(&mut self.uploads)
    }
}

/// The image id of a `/v2/images/{id}/file` path.
fn upload_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v2/images/")?.strip_suffix("/file")
}

/// `[pid: ..] 127.0.0.1 () {..} [Sun Nov 22 21:09:01 2026] GET /v2/images => generated 86
/// bytes in 133 msecs (HTTP/1.1 200) ...`
fn parse_log_line(line: &str, seen: Instant) -> Option<LoggedRequest> {
    let (head, tail) = line.split_once(" => generated ")?;
    let (method, path) = head.rsplit_once("] ")?.1.split_once(' ')?;
    let status = tail
        .split_once("(HTTP/")?
        .1
        .split_whitespace()
        .nth(1)?
        .trim_end_matches(')')
        .parse()
        .ok()?;
    Some(LoggedRequest {
        method: method.to_string(),
        path: path.to_string(),
        status,
        seen,
    })
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
}

/// One row of the table.
struct CaseResult {
    /// The `--case` name.
    key: &'static str,
    server: &'static str,
    name: String,
    target: f64,
    glint: Vec<f64>,
    baseline: Vec<f64>,
    rss_mib: f64,
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
    ) -> Result<HashMap<String, Instant>> {
        let deadline = Instant::now() + timeout;
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut done = HashMap::new();
        let mut foreign = HashSet::new();
        let mut last_check = Instant::now();
        while done.len() < names.len() {
            for request in self.log.take_uploads() {
                let Some(id) = upload_id(&request.path) else {
                    continue;
                };
                if foreign.contains(id) {
                    continue;
                }
                let image = self.glance.image(id).await?.unwrap_or_default();
                let name = image["name"].as_str().unwrap_or_default().to_string();
                if !wanted.contains(name.as_str()) {
                    foreign.insert(id.to_string());
                    continue;
                }
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
                done.insert(name, request.seen);
            }
            if last_check.elapsed() > Duration::from_secs(5) {
                last_check = Instant::now();
                if !self.glint.is_running() {
                    return Err(format!(
                        "glint exited; its log: {}",
                        self.glint_log.display()
                    ));
                }
                for name in names.iter().filter(|name| !done.contains_key(*name)) {
                    self.check_not_failed(name).await?;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no upload finished within {} s ({} of {}); glint's log: {}",
                    timeout.as_secs(),
                    done.len(),
                    names.len(),
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

    /// Seconds from apply to active for one Image with glint, and the CPU used meanwhile.
    async fn glint_run(&mut self, name: &str, url: &str, size: u64) -> Result<(f64, CpuShare)> {
        let manifest = self.image_manifest(name, &[TAG], Some(url));
        self.rss.reset();
        let cpu_before = CpuSnapshot::take(Some(self.rss.pid));
        let started = Instant::now();
        self.apply(&manifest).await?;
        let names = [name.to_string()];
        let done = self
            .wait_uploaded(&names, size, upload_timeout(size))
            .await?;
        let cpu = CpuSnapshot::take(Some(self.rss.pid)).since(&cpu_before);
        let seconds = (done[name] - started).as_secs_f64();
        self.delete_images(&names)?;
        Ok((seconds, cpu))
    }

    /// Seconds of `curl -s URL | [unpack |] curl -T -` into a queued image.
    async fn baseline_run(
        &mut self,
        name: &str,
        url: &str,
        unpack: Option<&str>,
        size: u64,
    ) -> Result<(f64, CpuShare)> {
        let id = self.glance.create(name).await?;
        let unpack = unpack
            .map(|tool| format!("{tool} -dc | "))
            .unwrap_or_default();
        let script = format!(
            "set -o pipefail; curl -sS -f \"$SOURCE\" | {unpack}curl -sS -f -o /dev/null -X PUT -T - \
             -H 'Expect:' -H 'Content-Type: application/octet-stream' -H \"X-Auth-Token: $TOKEN\" \"$TARGET\""
        );
        let cpu_before = CpuSnapshot::take(None);
        let started = Instant::now();
        let output = Command::new("bash")
            .args(["-c", &script])
            .env("SOURCE", url)
            .env("TOKEN", &self.glance.token)
            .env("TARGET", format!("{}/v2/images/{id}/file", self.glance.url))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the baseline: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = CpuSnapshot::take(None).since(&cpu_before);
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
        Ok((seconds, cpu))
    }

    async fn case(&mut self, spec: &CaseSpec<'_>, runs: usize) -> Result<CaseResult> {
        let CaseSpec {
            key,
            ref label,
            file,
            unpack,
            size,
            target,
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
            glint: Vec::new(),
            baseline: Vec::new(),
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
                let name = format!(
                    "{}-{slug}-{}-{}",
                    self.prefix,
                    run + 1,
                    if use_glint { "glint" } else { "curl" }
                );
                if use_glint {
                    let (seconds, cpu) = self.glint_run(&name, &url, size).await?;
                    let rss = self.rss.peak_mib();
                    result.rss_mib = result.rss_mib.max(rss);
                    result.glint.push(megabytes / seconds);
                    println!(
                        "  run {} glint:    {:7.1} MB/s ({seconds:6.2} s)  peak RSS {rss:5.1} MiB  {}",
                        run + 1,
                        megabytes / seconds,
                        cores(&cpu)
                    );
                } else {
                    let (seconds, cpu) = self.baseline_run(&name, &url, unpack, size).await?;
                    result.baseline.push(megabytes / seconds);
                    println!(
                        "  run {} baseline: {:7.1} MB/s ({seconds:6.2} s)                    {}",
                        run + 1,
                        megabytes / seconds,
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
        let last = done.values().max().copied().unwrap_or(started);
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
    let random_small = random_file(&dir, small)?;
    let random_big = random_file(&dir, big)?;
    let mixed_raw = mixed_file(&dir, mixed)?;
    let zst = compressed(&mixed_raw, "zstd", "zst")?;
    let gz = compressed(&mixed_raw, "gzip", "gz")?;

    let cluster = common::cluster::cluster()
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
    let glint_log = std::env::temp_dir().join(format!("{namespace}-glint.log"));
    let glint = GlintProcess::start(&kubeconfig, &namespace, &glint_log, &["--transfers", "4"]);
    let rss = RssSampler::start(glint.id());
    let glance_log = Path::new(&bed.testbed_dir).join("glance-b/uwsgi.log");
    let mut bench = Bench {
        kubectl,
        images: Api::namespaced_with(client, &namespace, &resource),
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
        let _ = bench.kubectl(&["delete", "images", "--all", "--wait=true", "--timeout=300s"]);
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
    drop(cluster);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &mut Bench,
    options: &Options,
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
        "transfer benchmark: Image applied -> Glance image active, through `glint run --transfers 4`,\n\
         against `curl -s URL | [zstd|gzip -dc |] curl -T -`; {} run(s) each, alternating, into {}\n\
         glint's RSS at rest: {at_rest:.1} MiB",
        options.runs, bench.glance.url
    );
    let cases = [
        CaseSpec {
            key: "raw",
            label: format!("raw {}", size_label(small)),
            file: random_small,
            unpack: None,
            size: small,
            target: 0.95,
        },
        CaseSpec {
            key: "raw-big",
            label: format!("raw {}", size_label(big)),
            file: random_big,
            unpack: None,
            size: big,
            target: 0.95,
        },
        CaseSpec {
            key: "zstd",
            label: format!("zstd {}", size_label(mixed)),
            file: zst,
            unpack: Some("zstd"),
            size: mixed,
            target: 0.90,
        },
        CaseSpec {
            key: "gzip",
            label: format!("gzip {}", size_label(mixed)),
            file: gz,
            unpack: Some("gzip"),
            size: mixed,
            target: 0.90,
        },
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
        "{:<13} {:<14} {:>11} {:>14} {:>7} {:>15} {:>7} {:>15}",
        "server",
        "case",
        "glint MB/s",
        "baseline MB/s",
        "ratio",
        "paired runs",
        "target",
        "glint peak RSS"
    );
    let mut met = true;
    for case in &results {
        let (glint, baseline) = (median(&case.glint), median(&case.baseline));
        let ratio = glint / baseline;
        let (lowest, highest) = paired_ratio_range(&case.glint, &case.baseline);
        let ok = ratio >= case.target && case.rss_mib <= RSS_TARGET_MIB;
        met &= ok;
        println!(
            "{:<13} {:<14} {glint:>11.1} {baseline:>14.1} {ratio:>7.3} {:>15} {:>7} {:>11.1} MiB{}",
            case.server,
            case.name,
            format!("{lowest:.3}-{highest:.3}"),
            format!(">={:.2}", case.target),
            case.rss_mib,
            if ok { "" } else { "  MISSED" }
        );
    }
    println!(
        "(MB/s of the image as stored, 1 MB = 10^6 bytes; medians of the runs above; paired runs:\n\
         the lowest and highest ratio of glint's run i to the baseline's run i)"
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(run());
    println!("(benchmark took {:.0} s)", started.elapsed().as_secs_f64());
    match outcome {
        Ok(true) => {
            println!("targets met");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("targets MISSED");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}
