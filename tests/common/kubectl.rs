//! Driving a real cluster the way a user does: `kubectl` against the test apiserver, and
//! `glint run` as a child process.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::harness::free_port;

/// The glint binary under test: the one cargo built, or the container image's own when
/// `GLINT_TEST_IMAGE_ROOTFS` names its unpacked root filesystem (run with the image's own
/// dynamic loader and libraries, so the image's userland is what is tested).
pub fn glint_command() -> Command {
    match std::env::var_os("GLINT_TEST_IMAGE_ROOTFS") {
        None => Command::new(env!("CARGO_BIN_EXE_glint")),
        Some(rootfs) => {
            let rootfs = Path::new(&rootfs);
            let mut command = Command::new(rootfs.join("lib64/ld-linux-x86-64.so.2"));
            command
                .arg("--library-path")
                .arg(format!(
                    "{}:{}",
                    rootfs.join("lib/x86_64-linux-gnu").display(),
                    rootfs.join("usr/lib/x86_64-linux-gnu").display()
                ))
                .arg(rootfs.join("usr/local/bin/glint"));
            command
        }
    }
}

/// A namespace name no other test (or earlier run) uses, within Kubernetes' limits.
pub fn fresh_namespace(prefix: &str) -> String {
    super::unique(prefix)
        .chars()
        .take(50)
        .collect::<String>()
        .to_lowercase()
}

pub struct Kubectl {
    pub kubeconfig: String,
    pub namespace: String,
}

impl Kubectl {
    /// kubectl on `cluster`, in a namespace no other test uses (not created yet).
    pub fn in_fresh_namespace(cluster: &super::cluster::Cluster, prefix: &str) -> Self {
        Self {
            kubeconfig: cluster.kubeconfig.display().to_string(),
            namespace: fresh_namespace(prefix),
        }
    }

    /// Installs the CRD from crds/, waits until it is Established, and creates the namespace.
    pub fn install_crd_and_namespace(&self) {
        self.ok(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds/")]);
        self.wait("crd/images.glint.dev", "condition=Established");
        self.ok(&["create", "namespace", &self.namespace]);
    }

    /// [`Self::install_crd_and_namespace`], then a Secret `cloud` holding `clouds_yaml` as
    /// clouds.yaml, the one the benchmarks' Images name.
    pub fn install_with_cloud_secret(&self, clouds_yaml: &str) {
        self.install_crd_and_namespace();
        let create = [
            "create",
            "secret",
            "generic",
            "cloud",
            "--from-file=clouds.yaml=/dev/stdin",
        ];
        let (created, _, stderr) = self.run(&create, Some(clouds_yaml));
        assert!(created, "kubectl {create:?}: {stderr}");
    }

    /// A Kubernetes client of the same cluster.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client configuration");
        kube::Client::try_from(config).expect("a client")
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut child = Command::new("kubectl")
            .args(["--kubeconfig", &self.kubeconfig, "-n", &self.namespace])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args, None);
        assert!(success, "kubectl {args:?}: {stderr}");
        stdout
    }

    pub fn apply(&self, manifest: &str) {
        let (success, _, stderr) = self.run(&["apply", "-f", "-"], Some(manifest));
        assert!(success, "kubectl apply: {stderr}\n{manifest}");
    }

    pub fn refused(&self, manifest: &str) -> String {
        let (success, _, stderr) = self.run(&["apply", "-f", "-"], Some(manifest));
        assert!(!success, "the apiserver admitted:\n{manifest}");
        stderr
    }

    pub fn image(&self, name: &str) -> Value {
        self.object(&format!("image/{name}"))
    }

    /// Polls `jsonpath={path}` of `kind_and_name` (up to 60 s) until it contains `words`;
    /// returns what it said then.
    pub fn wait_for_words(&self, kind_and_name: &str, path: &str, words: &str) -> String {
        let mut value = String::new();
        for _ in 0..300 {
            let jsonpath = format!("jsonpath={path}");
            value = self.ok(&["get", kind_and_name, "-o", &jsonpath]);
            if value.contains(words) {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{kind_and_name} {path} never said {words:?}: {value}");
    }

    /// Any object, as `kubectl get KIND/NAME -o json` shows it.
    pub fn object(&self, kind_and_name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", kind_and_name, "-o", "json"])).expect("json")
    }

    pub fn status_id(&self, name: &str) -> String {
        self.image(name)["status"]["id"]
            .as_str()
            .expect("status.id")
            .to_string()
    }

    /// `kubectl wait`, up to 180 s in all. kubectl fails at once instead of waiting while
    /// the conditions it reads are still null (a CRD just created: ".status.conditions accessor
    /// error: <nil>"), so that answer is asked again.
    pub fn wait(&self, what: &str, condition: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let args = [
                "wait",
                &format!("--for={condition}"),
                what,
                &format!("--timeout={}s", left.as_secs().max(1)),
            ];
            let (success, _, stderr) = self.run(&args, None);
            if success {
                return;
            }
            assert!(
                stderr.contains("accessor error") && std::time::Instant::now() < deadline,
                "kubectl {args:?}: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The `glint run` process; killed when dropped, so a failing test leaves no controller behind.
pub struct GlintProcess {
    child: Child,
    pub metrics_port: u16,
}

impl Drop for GlintProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl GlintProcess {
    /// `glint run` for `namespace`, logging to `log`, with `extra` flags.
    pub fn start(kubeconfig: &str, namespace: &str, log: &Path, extra: &[&str]) -> Self {
        Self::start_with(glint_command(), kubeconfig, namespace, log, extra)
    }

    /// [`Self::start`] with another glint build (benchmarks compare builds).
    pub fn start_with(
        mut glint: Command,
        kubeconfig: &str,
        namespace: &str,
        log: &Path,
        extra: &[&str],
    ) -> Self {
        let metrics_port = free_port();
        let metrics = format!("127.0.0.1:{metrics_port}");
        let child = glint
            .args([
                "run",
                "--namespace",
                namespace,
                "--metrics-addr",
                &metrics,
                "--resync-period",
                "30s",
                // The bed serves sources on 127.0.0.1; 127.0.0.2 stands for a refused address.
                "--source-allow-loopback",
                "--source-deny-cidrs",
                "127.0.0.2/32",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            // GLINT_TEST_LOG turns a run's log up (debug) when a test or bench is looked into.
            .env(
                "GLINT_LOG",
                std::env::var("GLINT_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log"),
            )
            .spawn()
            .expect("glint run");
        Self {
            child,
            metrics_port,
        }
    }

    pub fn kill(self) {
        drop(self);
    }

    /// SIGTERM, and the exit status once it stopped.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("glint did not stop within 30 s of SIGTERM");
    }

    /// This process's /metrics, as text.
    pub fn scrape(&self) -> Option<String> {
        use std::io::Read;
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        socket
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        socket.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// One value from this process's /metrics, summed over its label sets.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.scrape()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.trim().parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Whether /readyz answers 200.
    pub fn is_ready(&self) -> bool {
        use std::io::Read;
        let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        if socket
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }

    /// The process id, for signals.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
