//! A real Kubernetes apiserver for the end-to-end suite: taken from `KUBECONFIG`, or started
//! from the binaries in `KUBEBUILDER_ASSETS` (etcd + kube-apiserver, the envtest convention)
//! on free loopback ports. Without either, an end-to-end test fails and says how to provide one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub kubeconfig: PathBuf,
    children: Vec<Child>,
    _dir: Option<TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The apiserver first, then its etcd.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const HOW: &str = "set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver (the envtest convention), \
or KUBECONFIG to a cluster the tests may create namespaces in";

/// The apiserver the end-to-end tests run against. They are ignored by a plain `cargo test`;
/// one that runs without an apiserver fails and says how to give it one.
pub fn cluster() -> Cluster {
    try_cluster()
        .unwrap_or_else(|| panic!("the end-to-end tests need a Kubernetes apiserver: {HOW}"))
}

/// The apiserver `KUBEBUILDER_ASSETS` or `KUBECONFIG` names, if either is set (the benches
/// say what is missing themselves).
pub fn try_cluster() -> Option<Cluster> {
    if let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS") {
        return Some(start(Path::new(&assets)));
    }
    let kubeconfig = std::env::var_os("KUBECONFIG")?;
    Some(Cluster {
        kubeconfig: PathBuf::from(kubeconfig),
        children: Vec::new(),
        _dir: None,
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "{program} {args:?} failed"
    );
}

fn start(assets: &Path) -> Cluster {
    let dir = std::env::temp_dir().join(crate::common::unique("glint-e2e-apiserver"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Serving certificate for 127.0.0.1, a client CA, and the service-account key pair.
    run(
        &dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=glint-e2e-ca",
        ],
    );
    run(
        &dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "serving.key",
            "-out",
            "serving.crt",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    );
    run(&dir, "openssl", &["genrsa", "-out", "sa.key", "2048"]);
    run(
        &dir,
        "openssl",
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    );
    let token = crate::common::unique("token");
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{token},admin,admin-uid,system:masters\n"),
    )
    .expect("tokens");

    // A port picked free can be taken by another process before etcd or the apiserver binds
    // it: a server that exits at start is tried again on fresh ports.
    for attempt in 1..=3 {
        match launch(assets, &dir, &token, attempt) {
            Ok(mut cluster) => {
                cluster._dir = Some(TempDir(dir));
                return cluster;
            }
            Err(why) if attempt < 3 => eprintln!("cluster start, attempt {attempt}: {why}"),
            Err(why) => panic!("{why}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Starts etcd and the apiserver on fresh ports and waits until the apiserver is ready;
/// `Err` when either exits first or readiness takes over 60 s.
fn launch(assets: &Path, dir: &Path, token: &str, attempt: u32) -> Result<Cluster, String> {
    let (etcd_client, etcd_peer, api_port) = (free_port(), free_port(), free_port());
    let etcd_log = std::fs::File::create(dir.join("etcd.log")).expect("log");
    let etcd = Command::new(assets.join("etcd"))
        .args([
            format!(
                "--data-dir={}",
                dir.join(format!("etcd-{attempt}")).display()
            ),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
            "--unsafe-no-fsync=true".to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(etcd_log)
        .spawn()
        .expect("start etcd from KUBEBUILDER_ASSETS");
    let api_log = std::fs::File::create(dir.join("apiserver.log")).expect("log");
    let path = |name: &str| dir.join(name).display().to_string();
    let apiserver = Command::new(assets.join("kube-apiserver"))
        .args([
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", path("serving.crt")),
            format!("--tls-private-key-file={}", path("serving.key")),
            format!("--client-ca-file={}", path("ca.crt")),
            format!("--token-auth-file={}", path("tokens.csv")),
            "--authorization-mode=RBAC".to_string(),
            "--service-account-issuer=https://kubernetes.default.svc".to_string(),
            format!("--service-account-key-file={}", path("sa.pub")),
            format!("--service-account-signing-key-file={}", path("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            // Loopback is not a valid endpoint, and no controller-manager creates service accounts.
            "--endpoint-reconciler-type=none".to_string(),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            format!("--cert-dir={}", path("certs")),
        ])
        .stdout(Stdio::null())
        .stderr(api_log)
        .spawn()
        .expect("start kube-apiserver from KUBEBUILDER_ASSETS");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: admin}}\ncurrent-context: e2e\n"
        ),
    )
    .expect("kubeconfig");
    let mut cluster = Cluster {
        kubeconfig,
        children: vec![etcd, apiserver],
        _dir: None,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new("kubectl")
            .args([
                "--kubeconfig",
                cluster.kubeconfig.to_str().unwrap_or_default(),
                "get",
                "--raw",
                "/readyz",
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        if ready {
            return Ok(cluster);
        }
        let exited = cluster
            .children
            .iter_mut()
            .any(|child| matches!(child.try_wait(), Ok(Some(_))));
        if exited || Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("apiserver.log")).unwrap_or_default();
            let etcd_log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
            let tail = |log: &str| log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            return Err(format!(
                "kube-apiserver {}; its log's tail:\n{}\netcd's log's tail:\n{}",
                if exited {
                    "or etcd exited at start"
                } else {
                    "was not ready in 60 s"
                },
                tail(&log),
                tail(&etcd_log)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
