//! Idle cost: how many Kubernetes writes (and Glance reads) glint makes while 50 Ready Images
//! have nothing to do. Run with `scripts/bench idle-writes` (needs the test bed and
//! KUBEBUILDER_ASSETS or KUBECONFIG, like the e2e suite).
//!
//! glint runs with a 60 s resync, so in the 5 idle minutes every Image is compared with Glance
//! about five times: the figure shows that comparing costs no write. Target: 0 writes.
//! `GLINT_BENCH_IMAGES` (default 50) and `GLINT_BENCH_IDLE_SECONDS` (default 300) change it.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// The controller under measurement; stopped however the benchmark ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(
    kubeconfig: &str,
    namespace: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig, "-n", namespace])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(text.as_bytes())
            .map_err(|err| err.to_string())?;
    }
    let out = child.wait_with_output().map_err(|err| err.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn metric(addr: &str, name: &str) -> Result<u64, String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).map_err(|err| err.to_string())?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|err| err.to_string())?;
    let mut text = String::new();
    socket
        .read_to_string(&mut text)
        .map_err(|err| err.to_string())?;
    // The sum over every label set (writes are counted by verb and resource), leaving out
    // the leader Lease's renewals: they are the price of high availability, not of Images.
    let values: Vec<u64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && !line.contains("resource=\"leases\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.trim().parse().ok())
        .collect();
    let family = name.strip_suffix("_total").unwrap_or(name);
    if values.is_empty() && !text.contains(&format!("# TYPE {family} ")) {
        return Err(format!("{name} not in /metrics"));
    }
    Ok(values.iter().sum())
}

/// (single-image GETs, listings) in the Glance log since `offset`.
fn glance_reads(log: &std::path::Path, offset: u64) -> (usize, usize) {
    let text = std::fs::read(log).unwrap_or_default();
    let since =
        String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()).into_owned();
    let gets = since
        .lines()
        .filter(|l| l.contains("GET /v2/images/") && !l.contains("/members"))
        .count();
    let lists = since
        .lines()
        .filter(|l| l.contains("GET /v2/images?"))
        .count();
    (gets, lists)
}

fn versions(kubeconfig: &str, namespace: &str) -> Result<String, String> {
    kubectl(
        kubeconfig,
        namespace,
        &[
            "get",
            "images",
            "-o",
            "jsonpath={range .items[*]}{.metadata.resourceVersion} {end}",
        ],
        None,
    )
}

fn run() -> Result<bool, String> {
    let bed =
        common::testbed().ok_or("the test bed is not running: use scripts/bench idle-writes")?;
    let cluster = common::cluster::try_cluster()
        .ok_or("no apiserver: set KUBEBUILDER_ASSETS or KUBECONFIG")?;
    let count: usize = std::env::var("GLINT_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let idle: u64 = std::env::var("GLINT_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let namespace = common::unique("idle").chars().take(40).collect::<String>();
    let k = |args: &[&str], stdin: Option<&str>| kubectl(&kubeconfig, &namespace, args, stdin);

    k(
        &["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds/")],
        None,
    )?;
    k(
        &[
            "wait",
            "--for=condition=Established",
            "crd/images.glint.dev",
            "--timeout=60s",
        ],
        None,
    )?;
    k(&["create", "namespace", &namespace], None)?;
    let clouds = common::keystone::password_auth(&bed, &bed.demo_password);
    let secret_file = std::env::temp_dir().join(format!("{namespace}-clouds.yaml"));
    std::fs::write(&secret_file, clouds).map_err(|e| e.to_string())?;
    k(
        &[
            "create",
            "secret",
            "generic",
            "cloud",
            &format!("--from-file=clouds.yaml={}", secret_file.display()),
        ],
        None,
    )?;
    let _ = std::fs::remove_file(&secret_file);

    let metrics = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port()
    );
    let _glint = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_glint"))
            .args([
                "run",
                "--namespace",
                &namespace,
                "--metrics-addr",
                &metrics,
                "--resync-period",
                "60s",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("GLINT_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let manifests: String = (0..count)
        .map(|i| format!("apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: idle-{i}}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  diskFormat: raw\n  tags: [idle-bench]\n---\n"))
        .collect();
    k(&["apply", "-f", "-"], Some(&manifests))?;
    k(
        &[
            "wait",
            "--for=condition=Ready",
            "images",
            "--all",
            "--timeout=300s",
        ],
        None,
    )?;
    // Let the last status writes and Events of the creates land before counting.
    std::thread::sleep(Duration::from_secs(5));

    let glance_log = std::path::Path::new(&bed.testbed_dir).join("glance-b/uwsgi.log");
    let log_offset = std::fs::metadata(&glance_log).map(|m| m.len()).unwrap_or(0);
    let writes_before = metric(&metrics, "glint_kubernetes_writes_total")?;
    let reconciles_before = metric(&metrics, "glint_reconciles_total")?;
    let versions_before = versions(&kubeconfig, &namespace)?;
    println!("idle-writes benchmark: {count} Ready Images, {idle} s idle, resync every 60 s");
    std::thread::sleep(Duration::from_secs(idle));
    let writes = metric(&metrics, "glint_kubernetes_writes_total")? - writes_before;
    let reconciles = metric(&metrics, "glint_reconciles_total")? - reconciles_before;
    let changed = versions_before
        .split_whitespace()
        .zip(versions(&kubeconfig, &namespace)?.split_whitespace())
        .filter(|(before, after)| before != after)
        .count();
    let (gets, lists) = glance_reads(&glance_log, log_offset);
    drop(_glint);

    println!(
        "reconciles while idle: {reconciles} ({:.1} per Image)",
        reconciles as f64 / count as f64
    );
    println!(
        "Kubernetes writes while idle: {writes} (glint's counter, Lease renewals left out; target 0)"
    );
    println!("Images whose resourceVersion changed: {changed} of {count}");
    println!(
        "Glance reads while idle: {lists} listings, {gets} single-image GETs ({:.2} GETs per reconcile)",
        gets as f64 / reconciles.max(1) as f64
    );
    let ids = kubectl(
        &kubeconfig,
        &namespace,
        &[
            "get",
            "images",
            "-o",
            "jsonpath={range .items[*]}{.status.id} {end}",
        ],
        None,
    )?;
    // Leave Glance as it was: the controller is stopped, so delete the images directly.
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        use glint::glance::GlanceApi;
        let file = glint::auth::CloudsFile::from_bytes(
            common::keystone::password_auth(&bed, &bed.demo_password).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let api = glint::glance::GlanceClient::new(
            glint::auth::Authenticator::from_cloud(
                file.cloud("bed").map_err(|e| e.to_string())?,
                Default::default(),
            )
            .map_err(|e| e.to_string())?,
        );
        for id in ids.split_whitespace() {
            let _ = api.delete_if_exists(id).await;
        }
        Ok::<(), String>(())
    })?;
    Ok(writes == 0 && changed == 0 && reconciles >= count as u64)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => {
            println!("target met: no writes while idle");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("target MISSED");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("benchmark failed: {err}");
            ExitCode::FAILURE
        }
    }
}
