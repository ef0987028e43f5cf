//! Soak: the network failing at random on every path for minutes, then healing, and what was
//! lost. Run with `scripts/bench soak` (starts the test bed when needed, and an apiserver from
//! KUBEBUILDER_ASSETS unless KUBECONFIG names a cluster).
//!
//! A release-built `glint run` (`--upload-stall-timeout 10s`, otherwise its defaults) reaches
//! Glance B, Keystone and the sources each through its own fault proxy
//! (tests/common/fault_proxy.rs): every forwarded byte meets the real service, only the faults
//! are made up. The sources are files served by Python's http.server.
//!
//! 1. Images: N Images (default 20) of 64-256 MiB (`spec.source.idleTimeout: 10s`) are applied
//!    with kubectl while, for `--faults-for` seconds (default 180), each request meets a fault
//!    drawn at random: on Glance 5xx, resets, slow and lost answers, uploads cut or stalled
//!    mid-body, a balancer's 502 after the whole body (Glance reached or not), and one Glance
//!    outage; on Keystone 5xx, resets and slow token answers; on the sources 5xx, resets,
//!    downloads cut or stalled mid-body. Then the faults stop.
//! 2. A series: an ImageSeries (keep 2) follows a CirrOS-layout mirror behind a fourth proxy
//!    that publishes a release every 25 s during the faults; Glance is read directly every
//!    300 ms for the images that carry the series' stable name.
//!
//! Figures: faults injected by kind and path; the time from the faults' end until every Image
//! is Ready with its transfer done and the series is current on the last release; transfer
//! attempts per Image; glint's failed transfers by reason (its /metrics); requests per Image
//! that reached the proxies; and, read from Glance without the proxy: images per object beyond
//! one (duplicates), glint's images no object names (leaks), images whose sha512 is not their
//! source's (wrong bytes), and samples where the stable name was on two images or on one
//! without the release's bytes.
//!
//! Options: `--images N`, `--faults-for SECONDS`, `--min-mib`, `--max-mib`, `--seed S`,
//! `--binary PATH` (another glint build). Targets (issue 33): every Image Ready and the series
//! current; 0 duplicates, 0 leaks, 0 wrong bytes, 0 bad stable-name samples.

#[path = "support/bench_main.rs"]
mod bench_main;
#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;
#[path = "support/soak_faults.rs"]
mod soak_faults;
#[path = "support/soak_series.rs"]
mod soak_series;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::kubectl::{GlintProcess, Kubectl};
use futures::TryStreamExt;
use glint::glance::{GlanceApi, GlanceClient, ListQuery};
use serde_json::Value;
use sha2::Digest;

type Result<T> = std::result::Result<T, String>;

const MIB: u64 = 1 << 20;
/// How long the healed system may take before the run is called failed.
const CONVERGE_LIMIT: Duration = Duration::from_secs(900);

struct Options {
    images: usize,
    faults_for: Duration,
    min_mib: u64,
    max_mib: u64,
    seed: u64,
    binary: Option<PathBuf>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        images: 20,
        faults_for: Duration::from_secs(180),
        min_mib: 64,
        max_mib: 256,
        seed: 33,
        binary: None,
    };
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{arg}: {text} is not a number"))
        };
        match arg.as_str() {
            "--images" => options.images = number(value()?)? as usize,
            "--faults-for" => options.faults_for = Duration::from_secs(number(value()?)?),
            "--min-mib" => options.min_mib = number(value()?)?,
            "--max-mib" => options.max_mib = number(value()?)?,
            "--seed" => options.seed = number(value()?)?,
            "--binary" => options.binary = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.min_mib == 0 || options.min_mib > options.max_mib {
        return Err("--min-mib must be at least 1 and at most --max-mib".into());
    }
    Ok(options)
}

/// One source file: its name under the served folder, size and sha512.
struct Source {
    file: String,
    size: u64,
    sha512: String,
}

/// Writes the sources (deterministic bytes, kept between runs) and their sha512s.
fn sources(dir: &Path, options: &Options) -> Result<Vec<Source>> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let span = options.max_mib - options.min_mib;
    (0..options.images)
        .map(|i| {
            let step = if options.images > 1 {
                span * i as u64 / (options.images as u64 - 1)
            } else {
                0
            };
            let size = (options.min_mib + step) * MIB;
            let file = format!("disk-{i:02}-{}m.raw", size / MIB);
            let sha512 = write_source(&dir.join(&file), size, options.seed + i as u64)?;
            Ok(Source { file, size, sha512 })
        })
        .collect()
}

fn write_source(path: &Path, size: u64, seed: u64) -> Result<String> {
    let sums = path.with_extension("sha512");
    if path.metadata().is_ok_and(|meta| meta.len() == size)
        && let Ok(sum) = std::fs::read_to_string(&sums)
    {
        return Ok(sum.trim().to_string());
    }
    let mut state = seed | 1;
    let mut hasher = sha2::Sha512::new();
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| e.to_string())?);
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        hasher.update(&block);
        out.write_all(&block).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    let sum = hex(&hasher.finalize());
    std::fs::write(&sums, &sum).map_err(|e| e.to_string())?;
    Ok(sum)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn image_name(i: usize) -> String {
    format!("soak-{i:02}")
}

fn image_manifest(i: usize, source: &Source, proxy: &FaultProxy) -> String {
    format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {}}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  diskFormat: raw\n  source: {{url: '{}/{}', idleTimeout: 10s}}\n---\n",
        image_name(i),
        proxy.url(),
        source.file
    )
}

fn start_glint(
    options: &Options,
    cluster: &common::cluster::Cluster,
    k: &Kubectl,
    log: &Path,
) -> GlintProcess {
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let flags = ["--upload-stall-timeout", "10s"];
    match &options.binary {
        Some(binary) => {
            GlintProcess::start_with(Command::new(binary), &kubeconfig, &k.namespace, log, &flags)
        }
        None => GlintProcess::start(&kubeconfig, &k.namespace, log, &flags),
    }
}

/// What users do while the network fails: every 6 s a tag edit, every 9 s an Image deleted
/// and, once it is gone, created again (a new object: a new upload).
#[derive(Default)]
struct Churn {
    round: usize,
    last_edit: Option<Instant>,
    last_delete: Option<Instant>,
    /// Deleted, to be created again once gone.
    gone: Vec<usize>,
    pub edits: usize,
    pub recreated: usize,
}

impl Churn {
    fn tick(&mut self, k: &Kubectl, sources: &[Source], proxy: &FaultProxy) {
        let due = |last: Option<Instant>, every: u64| {
            last.is_none_or(|at| at.elapsed() >= Duration::from_secs(every))
        };
        if due(self.last_edit, 6) {
            self.last_edit = Some(Instant::now());
            self.round += 1;
            let name = image_name((self.round * 3) % sources.len());
            let patch = format!("{{\"spec\":{{\"tags\":[\"round-{}\"]}}}}", self.round);
            if k.run(
                &["patch", "image", &name, "--type", "merge", "-p", &patch],
                None,
            )
            .0
            {
                self.edits += 1;
            }
        }
        if due(self.last_delete, 9) {
            self.last_delete = Some(Instant::now());
            let i = (self.round * 7) % sources.len();
            if !self.gone.contains(&i)
                && k.run(&["delete", "image", &image_name(i), "--wait=false"], None)
                    .0
            {
                self.gone.push(i);
            }
        }
        self.create_again(k, sources, proxy);
    }

    fn create_again(&mut self, k: &Kubectl, sources: &[Source], proxy: &FaultProxy) {
        let mut still = Vec::new();
        for i in std::mem::take(&mut self.gone) {
            let (exists, _, _) = k.run(&["get", "image", &image_name(i)], None);
            if exists {
                still.push(i);
            } else {
                k.apply(&image_manifest(i, &sources[i], proxy));
                self.recreated += 1;
            }
        }
        self.gone = still;
    }

    /// Waits until every deleted Image is gone, and creates it again.
    fn finish(&mut self, k: &Kubectl, sources: &[Source], proxy: &FaultProxy) {
        let started = Instant::now();
        while !self.gone.is_empty() && started.elapsed() < CONVERGE_LIMIT {
            self.create_again(k, sources, proxy);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The Images as kubectl lists them.
fn images(k: &Kubectl) -> Vec<Value> {
    let (ok, out, _) = k.run(&["get", "images", "-o", "json"], None);
    if !ok {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Ready True and the transfer recorded as succeeded: what a user waits for.
fn done(image: &Value) -> bool {
    let ready = image["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready
        && image["status"]["transfer"]["phase"] == "Succeeded"
        && image["status"]["observedGeneration"] == image["metadata"]["generation"]
}

/// The clouds.yaml that sends glint to Keystone and Glance through their proxies.
fn clouds_yaml(bed: &common::Testbed, keystone: &FaultProxy, glance: &FaultProxy) -> String {
    format!(
        "{}    image_endpoint_override: {}\n",
        bed.demo_cloud()
            .replace(&bed.keystone_url, &format!("{}/v3", keystone.url())),
        glance.url()
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// What Glance itself holds, read without the proxy: (duplicates, leaks, wrong bytes) with a
/// line per finding.
async fn audit(
    glance: &GlanceClient,
    objects: &[Value],
    expected: &HashMap<String, &Source>,
) -> Result<(usize, usize, usize, Vec<String>)> {
    let all: Vec<glint::glance::GlanceImage> = glance
        .list_images(&ListQuery::default())
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut by_uid: BTreeMap<String, Vec<&glint::glance::GlanceImage>> = BTreeMap::new();
    for image in &all {
        // The series' versions are checked by its own watch.
        if image.properties.contains_key("glint.dev/series") {
            continue;
        }
        if let Some(uid) = image.properties.get("glint.dev/uid") {
            by_uid.entry(uid.clone()).or_default().push(image);
        }
    }
    let (mut duplicates, mut wrong, mut lines) = (0, 0, Vec::new());
    let mut known = std::collections::HashSet::new();
    for object in objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        known.insert(uid.to_string());
        let mine = by_uid.get(uid).cloned().unwrap_or_default();
        if mine.len() > 1 {
            duplicates += mine.len() - 1;
            lines.push(format!("{name}: {} images", mine.len()));
        }
        let Some(source) = expected.get(name) else {
            continue;
        };
        for image in mine {
            let right = image.os_hash_value.as_deref() == Some(source.sha512.as_str())
                && image.size == Some(source.size);
            if !right {
                wrong += 1;
                lines.push(format!(
                    "{name}: image {} is {} with size {:?}, not its source's bytes",
                    image.id, image.status, image.size
                ));
            }
        }
    }
    let leaks = by_uid
        .iter()
        .filter(|(uid, _)| !known.contains(*uid))
        .filter(|(_, images)| {
            images
                .iter()
                .any(|i| i.name.as_deref().is_some_and(|n| n.starts_with("soak-")))
        })
        .count();
    if leaks > 0 {
        lines.push(format!("{leaks} objects' images left behind"));
    }
    Ok((duplicates, leaks, wrong, lines))
}

/// The Images' part, while the series runs beside it. Returns whether its targets were met.
async fn run() -> Result<bool> {
    let options = options()?;
    let bed = common::testbed().ok_or(common::NO_TESTBED)?;
    let cluster = common::cluster::try_cluster()
        .ok_or("the soak needs an apiserver: set KUBEBUILDER_ASSETS or KUBECONFIG")?;
    let data = std::env::temp_dir().join("glint-bench-soak");
    println!(
        "# soak: {} Images of {}-{} MiB, faults for {} s (seed {}), Glance {}",
        options.images,
        options.min_mib,
        options.max_mib,
        options.faults_for.as_secs(),
        options.seed,
        bed.release
    );
    let sources = sources(&data.join("sources"), &options)?;
    let served = common::mirror::Mirror::start(&data.join("sources"));
    let series_dir = data.join(format!("series-{}", std::process::id()));
    let mirror = common::mirror::Mirror::start(&series_dir);

    let glance_proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let keystone_proxy = FaultProxy::start(&bed.keystone_url.replace("/v3", "")).await;
    let source_proxy = FaultProxy::start(&served.url("")).await;
    let mirror_proxy = FaultProxy::start(&mirror.url("")).await;
    let proxies = soak_faults::Proxies {
        glance: &glance_proxy,
        keystone: &keystone_proxy,
        source: &source_proxy,
        mirror: &mirror_proxy,
    };
    let k = Kubectl::in_fresh_namespace(&cluster, "soak");
    k.install_with_cloud_secret(&clouds_yaml(&bed, &keystone_proxy, &glance_proxy));
    let log = std::env::temp_dir().join(format!("glint-soak-{}.log", std::process::id()));
    let mut glint = start_glint(&options, &cluster, &k, &log);
    let direct = common::harness::client_for(&bed.demo_cloud());

    soak_faults::arm(&proxies, options.seed);
    let started = Instant::now();
    let mut manifest = String::new();
    let mut expected = HashMap::new();
    for (i, source) in sources.iter().enumerate() {
        manifest.push_str(&image_manifest(i, source, &source_proxy));
        expected.insert(image_name(i), source);
    }
    k.apply(&manifest);
    let mut series = soak_series::SeriesRun::start(
        &k,
        &mirror,
        &mirror_proxy,
        direct.clone(),
        options.seed,
        options.faults_for,
    )
    .await?;

    // The faults' window: Images are edited, deleted and created again, the series publishes
    // releases, Glance restarts once and so does glint.
    let mut outage_done = false;
    let mut restarted = false;
    let mut churn = Churn::default();
    while started.elapsed() < options.faults_for {
        if !outage_done && started.elapsed() > options.faults_for / 3 {
            glance_proxy.outage(Duration::from_secs(10));
            outage_done = true;
        }
        if !restarted && started.elapsed() > options.faults_for * 2 / 3 {
            glint.terminate();
            glint = start_glint(&options, &cluster, &k, &log);
            restarted = true;
        }
        churn.tick(&k, &sources, &source_proxy);
        series.tick(&k).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    churn.finish(&k, &sources, &source_proxy);
    let ready_in_faults = images(&k).iter().filter(|i| done(i)).count();
    soak_faults::disarm(&proxies);
    let healed = Instant::now();
    println!(
        "faults stopped after {:.0} s; {ready_in_faults}/{} Images were done by then",
        started.elapsed().as_secs_f64(),
        options.images
    );

    let mut converged = None;
    let mut last = Vec::new();
    while healed.elapsed() < CONVERGE_LIMIT {
        series.tick(&k).await?;
        last = images(&k);
        let images_done = last.len() == options.images && last.iter().all(done);
        if images_done && series.current_is_last(&k) {
            converged = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let converged_text = match converged {
        Some(time) => format!("{:.1} s", time.as_secs_f64()),
        None => format!("not within {} s", CONVERGE_LIMIT.as_secs()),
    };

    // Figures.
    let mut attempts: Vec<f64> = last
        .iter()
        .map(|i| i["status"]["transfer"]["attempts"].as_f64().unwrap_or(0.0))
        .collect();
    let max_attempts = attempts.iter().copied().fold(0.0, f64::max);
    let median_attempts = median(&mut attempts);
    let (duplicates, leaks, wrong, findings) = audit(&direct, &last, &expected).await?;
    println!("\n## faults injected (kind, method, path kind: count)");
    for (path, proxy) in proxies.named() {
        for ((kind, method, route), count) in proxy.injected_by() {
            println!("| {path} | {kind} | {method} {route} | {count} |");
        }
    }
    println!("\n## requests that reached each proxy, per Image");
    for (path, proxy) in proxies.named() {
        let seen: u64 = proxy.injected_by().iter().map(|(_, n)| n).sum::<u64>();
        println!(
            "{path}: {} faults; {}",
            seen,
            proxy.summary().chars().take(400).collect::<String>()
        );
    }
    let failures = failed_by_reason(&glint);
    println!("\n## result");
    println!(
        "| objects | {} Images + 1 ImageSeries; during the faults {} tag edits, {} Images deleted and created again, glint restarted once, Glance down 10 s once |",
        options.images, churn.edits, churn.recreated
    );
    println!("| time to converge after the faults stopped | {converged_text} |");
    println!(
        "| transfer attempts per Image | median {median_attempts:.0}, max {max_attempts:.0} |"
    );
    println!("| glint's failed transfers by reason | {failures} |");
    println!("| duplicates / leaks / wrong bytes | {duplicates} / {leaks} / {wrong} |");
    let series_bad = series.report();
    for line in &findings {
        println!("finding: {line}");
    }

    // Clean up while glint still runs: it deletes its images, through proxies now healed;
    // whatever is left in Glance afterwards leaked.
    let _ = k.run(
        &[
            "delete",
            "images,imageseries",
            "--all",
            "--wait=true",
            "--timeout=300s",
        ],
        None,
    );
    let left = left_in_glance(&direct).await?;
    println!("| images left in Glance after the objects were deleted | {left} |");
    glint.terminate();
    let mut file = String::new();
    if std::fs::File::open(&log)
        .and_then(|mut f| f.read_to_string(&mut file))
        .is_ok()
        && file.contains(&bed.demo_password)
    {
        println!("the password appears in glint's log: {}", log.display());
        return Ok(false);
    }
    let _ = std::fs::remove_dir_all(&series_dir);
    Ok(converged.is_some()
        && duplicates == 0
        && leaks == 0
        && left == 0
        && wrong == 0
        && series_bad == 0)
}

/// The soak's images (named soak-...) still in Glance, hidden ones included.
async fn left_in_glance(glance: &GlanceClient) -> Result<usize> {
    let mut left = 0;
    for hidden in ["false", "true"] {
        let query = ListQuery {
            properties: [("os_hidden".to_string(), hidden.to_string())].into(),
            ..ListQuery::default()
        };
        let all: Vec<glint::glance::GlanceImage> = glance
            .list_images(&query)
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        left += all
            .iter()
            .filter(|i| i.name.as_deref().is_some_and(|n| n.starts_with("soak-")))
            .count();
    }
    Ok(left)
}

/// `glint_transfers_total{result="failed"}` by reason, from glint's /metrics.
fn failed_by_reason(glint: &GlintProcess) -> String {
    let text = glint.scrape().unwrap_or_default();
    let mut found: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("glint_transfers_total{result=\"failed\""))
        .filter_map(|line| {
            let reason = line.split("reason=\"").nth(1)?.split('"').next()?;
            let count = line.rsplit(' ').next()?;
            Some(format!("{reason} {count}"))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    }
}

fn main() -> ExitCode {
    bench_main::finish(run())
}
