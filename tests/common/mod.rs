//! Shared pieces of the tests that run against the real test bed (`scripts/testbed up`).
//!
//! Tests that need the bed carry `#[ignore]` (a plain `cargo test` lists them as ignored) and
//! fail, saying how to start it, when run without it: nothing passes by testing nothing.
#![allow(dead_code)]
// Test helpers fail loudly: expect() here is an assertion (Cargo.toml denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod disks;
pub mod fault_bodies;
pub mod fault_proxy;
pub mod gitops;
pub mod gpg;
pub mod harness;
pub mod keystone;
pub mod kube_double;
pub mod kubectl;
pub mod layouts;
pub mod mirror;
pub mod sources;
pub mod tools;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use glint::auth::{Authenticator, TrustedIdentity};
use glint::glance::{ByteStream, GlanceClient};

/// The endpoints and credentials `scripts/testbed up` prints.
#[derive(Debug, Clone)]
pub struct Testbed {
    pub glance_url: String,
    pub webdl_port: u16,
    pub keystone_url: String,
    pub keystone_glance_url: String,
    pub region: String,
    pub admin_user: String,
    pub admin_password: String,
    pub admin_project: String,
    pub demo_user: String,
    pub demo_user_id: String,
    pub demo_password: String,
    pub demo_project: String,
    pub demo_project_id: String,
    pub testbed_dir: String,
    pub venv: String,
    /// Glance C's region: a Glance shaped like production clouds (import plugins that convert
    /// and add properties, property protections), behind the same Keystone.
    pub prod_region: String,
    pub prod_glance_url: String,
    /// The OpenStack release the bed's Glance comes from (`scripts/testbed`'s
    /// GLINT_TESTBED_GLANCE: 2026.2, 2025.1 or 2024.1); "embedded" for `glint cloud`.
    pub release: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The running test bed, or `None` when `GLINT_TEST_GLANCE_URL` is not set.
///
/// With `GLINT_TEST_CLOUD=embedded` the Glance under test is `glint cloud` instead, started in
/// this process: the contract tests (tests/glance_*.rs) then prove the embedded cloud answers
/// as the real Glance does. Only the Glance fields are meaningful in that mode.
pub fn testbed() -> Option<Testbed> {
    if on_embedded_cloud() {
        return Some(embedded_bed());
    }
    let glance_url = var("GLINT_TEST_GLANCE_URL")?;
    let need = |name: &str| {
        var(name).unwrap_or_else(|| panic!("test bed env is incomplete: {name} is not set"))
    };
    Some(Testbed {
        glance_url,
        webdl_port: need("GLINT_TEST_WEBDL_PORT")
            .parse()
            .expect("GLINT_TEST_WEBDL_PORT is a port"),
        keystone_url: need("GLINT_TEST_KEYSTONE_URL"),
        keystone_glance_url: need("GLINT_TEST_KEYSTONE_GLANCE_URL"),
        region: need("GLINT_TEST_OS_REGION"),
        admin_user: need("GLINT_TEST_ADMIN_USER"),
        admin_password: need("GLINT_TEST_ADMIN_PASSWORD"),
        admin_project: need("GLINT_TEST_ADMIN_PROJECT"),
        demo_user: need("GLINT_TEST_DEMO_USER"),
        demo_user_id: need("GLINT_TEST_DEMO_USER_ID"),
        demo_password: need("GLINT_TEST_DEMO_PASSWORD"),
        demo_project: need("GLINT_TEST_DEMO_PROJECT"),
        demo_project_id: need("GLINT_TEST_DEMO_PROJECT_ID"),
        testbed_dir: need("GLINT_TESTBED_DIR"),
        venv: need("GLINT_TEST_VENV"),
        prod_region: need("GLINT_TEST_PROD_REGION"),
        prod_glance_url: need("GLINT_TEST_PROD_GLANCE_URL"),
        release: var("GLINT_TEST_GLANCE_RELEASE").unwrap_or_else(|| "2026.2".to_string()),
    })
}

/// Whether the Glance under test is `glint cloud` (see [`testbed`]).
pub fn on_embedded_cloud() -> bool {
    std::env::var("GLINT_TEST_CLOUD").as_deref() == Ok("embedded")
}

/// One `glint cloud` per test process, on its own runtime so it outlives each test's.
fn embedded_bed() -> Testbed {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let endpoint = ENDPOINT.get_or_init(|| {
        let data_dir =
            std::env::temp_dir().join(format!("glint-test-cloud-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let running = glint::glance_server::start(glint::glance_server::CloudOptions {
                    listen: ([127, 0, 0, 1], 0).into(),
                    data_dir,
                    access: glint::glance_server::Access::Open,
                    policy: glint::transfer::SourcePolicy {
                        allow_loopback: true,
                        ..Default::default()
                    },
                    // The formats scripts/testbed adds to its Glance, so both clouds are
                    // configured alike.
                    formats: glint::glance_server::image::Formats::with_extra(
                        &["glintfmt".to_string()],
                        &["glintbox".to_string()],
                    ),
                })
                .await
                .expect("glint cloud starts");
                sender.send(running.endpoint()).expect("send");
                std::future::pending::<()>().await;
                drop(running);
            });
        });
        receiver.recv().expect("the embedded cloud's endpoint")
    });
    let none = String::new;
    Testbed {
        glance_url: endpoint.clone(),
        webdl_port: harness::free_port(),
        keystone_url: none(),
        // The Glance glint's reconcile reaches (Keystone's on the bed) is the same one here.
        keystone_glance_url: endpoint.clone(),
        region: none(),
        admin_user: none(),
        admin_password: none(),
        admin_project: none(),
        demo_user: none(),
        demo_user_id: none(),
        demo_password: none(),
        demo_project: none(),
        demo_project_id: none(),
        testbed_dir: none(),
        venv: none(),
        prod_region: none(),
        prod_glance_url: none(),
        release: EMBEDDED.to_string(),
    }
}

/// What to do when a test that needs the real services runs without them.
pub const NO_TESTBED: &str = "this test needs the real services (Glance, Keystone, PostgreSQL): \
run `scripts/test`, or start them with `scripts/testbed up` and `eval \"$(scripts/testbed env)\"`";

/// `let bed = require_testbed!();` in a test that needs the real services. Such tests carry
/// `#[ignore]`, so a plain `cargo test` reports them as ignored; run on purpose (scripts/test
/// runs `--include-ignored`) without the services, one fails and says how to start them.
#[macro_export]
macro_rules! require_testbed {
    () => {
        common::testbed().unwrap_or_else(|| panic!("{}", common::NO_TESTBED))
    };
}

/// The Glance the contract tests (tests/glance_*.rs) and the reconcile and transfer scenarios
/// speak to: the test bed's when one runs, else `glint cloud` in this process, so that a plain
/// `cargo test` runs them too (as proof that the embedded cloud answers as they expect Glance
/// to, and so that a change to the reconcile can fail a run with nothing installed).
pub fn glance_under_test() -> Testbed {
    testbed().unwrap_or_else(embedded_bed)
}

#[macro_export]
macro_rules! glance_under_test {
    () => {
        common::glance_under_test()
    };
}

/// [`Testbed::release`] of `glint cloud` in this process.
const EMBEDDED: &str = "embedded";

impl Testbed {
    /// Whether this is `glint cloud` in this process (see [`testbed`]): no Keystone, one Glance
    /// for both roles.
    pub fn embedded(&self) -> bool {
        self.release == EMBEDDED
    }

    /// clouds.yaml text whose cloud `bed` is the demo user as glint's reconcile meets it: the
    /// Keystone password on the bed; on the embedded cloud, `auth_type: none` at its endpoint.
    pub fn demo_cloud(&self) -> String {
        if self.embedded() {
            format!(
                "clouds:\n  bed:\n    auth_type: none\n    auth:\n      endpoint: {}\n",
                self.keystone_glance_url
            )
        } else {
            keystone::password_auth(self, &self.demo_password)
        }
    }

    /// [`Self::demo_cloud`] with Glance reached at `glance_url` instead (a fault proxy in
    /// front of it).
    pub fn demo_cloud_via(&self, glance_url: &str) -> String {
        format!(
            "{}    image_endpoint_override: {glance_url}\n",
            self.demo_cloud()
        )
    }

    /// A client acting as an administrator of `project` on the trusted-header Glance.
    pub fn admin_of(&self, project: &str) -> GlanceClient {
        self.client(project, &["admin"])
    }

    /// A client acting as an ordinary member of `project`.
    pub fn member_of(&self, project: &str) -> GlanceClient {
        self.client(project, &["member", "reader"])
    }

    /// An admin of `project` that reaches Glance at `url` (a proxy in front of it).
    pub fn admin_of_via(&self, project: &str, url: &str) -> GlanceClient {
        self.client_at(url, project, &["admin"])
    }

    /// One call as `project` with `roles` on the trusted-header Glance, for what glint's client
    /// never sends (other media types, other owners): (status, JSON body or Null).
    pub async fn raw_call(
        &self,
        project: &str,
        roles: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, serde_json::Value)>,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.glance_url))
            .header("x-identity-status", "Confirmed")
            .header("x-project-id", project)
            .header("x-user-id", format!("user-of-{project}"))
            .header("x-roles", roles);
        if let Some((content_type, body)) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    fn client(&self, project: &str, roles: &[&str]) -> GlanceClient {
        self.client_at(&self.glance_url, project, roles)
    }

    fn client_at(&self, url: &str, project: &str, roles: &[&str]) -> GlanceClient {
        let identity = TrustedIdentity {
            project_id: project.to_string(),
            user_id: format!("user-of-{project}"),
            roles: roles.iter().map(|role| role.to_string()).collect(),
        };
        GlanceClient::new(Authenticator::trusted_headers(url, &identity).expect("client"))
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A project id of Keystone's shape (32 hex digits) that no other test uses.
pub fn unique_project() -> String {
    let name = unique("p");
    let mut hash: u128 = 0xcbf29ce484222325;
    for byte in name.bytes() {
        hash ^= byte as u128;
        hash = hash.wrapping_mul(0x1000000000000000000013b);
    }
    format!("{hash:032x}")
}

/// Deterministic pseudo-random bytes (xorshift): incompressible like real data, reproducible.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// In-memory data as an upload stream, in chunks like a file read.
pub fn stream_of(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(64 * 1024)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Polls until the image reaches `wanted`, or fails with the status it is stuck in and the
/// image's task messages (where Glance explains failed imports).
pub async fn wait_for_status(
    api: &GlanceClient,
    id: &str,
    wanted: glint::glance::GlanceStatus,
) -> glint::glance::GlanceImage {
    use glint::glance::GlanceApi;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let image = api.get_image(id).await.expect("get image while waiting");
        if image.status == wanted {
            return image;
        }
        if std::time::Instant::now() > deadline {
            let tasks = api.image_tasks(id).await.unwrap_or_default();
            panic!(
                "image {id} stayed {} instead of {wanted}; tasks: {:?}",
                image.status,
                tasks
                    .iter()
                    .map(|t| (&t.status, &t.message))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A fresh UUID (v4 layout) for images created with a chosen id.
pub fn unique_uuid() -> String {
    let hex = unique_project();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Serves `body` at `/image.raw` (404 elsewhere) on 127.0.0.1:`port` until dropped: the file
/// Glance's web-download fetches.
pub struct FileServer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_file(port: u16, body: Vec<u8>) -> FileServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the web-download port");
    let body = std::sync::Arc::new(body);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let found = head.starts_with("GET /image.raw ");
                let (status, payload): (&str, &[u8]) = if found {
                    ("200 OK", &body)
                } else {
                    ("404 Not Found", b"no such file")
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = socket.write_all(header.as_bytes()).await;
                let _ = socket.write_all(payload).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    FileServer { task }
}

/// Answers every request with a redirect to `location` (which may point back at itself),
/// on a free port of 127.0.0.1; returns the port.
pub async fn serve_redirect(
    location: impl Fn(u16) -> String + Send + Sync + 'static,
) -> (u16, FileServer) {
    serve_with(move |port, _path| {
        let header = format!(
            "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            location(port)
        );
        (header.into_bytes(), Vec::new(), std::time::Duration::ZERO)
    })
    .await
}

/// Serves `body` for any path, `chunk` bytes every `pause`: a source slow enough that a
/// transfer is still running when a test acts.
pub async fn serve_slowly(body: Vec<u8>, pause: std::time::Duration) -> (u16, FileServer) {
    let body = std::sync::Arc::new(body);
    serve_with(move |_port, _path| {
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        );
        (header.into_bytes(), body.to_vec(), pause)
    })
    .await
}

/// A tiny HTTP/1.1 server on a free port of 127.0.0.1: `answer(port, path)` gives the head,
/// the body, and the pause between 64 KiB chunks of the body.
async fn serve_with(
    answer: impl Fn(u16, &str) -> (Vec<u8>, Vec<u8>, std::time::Duration) + Send + Sync + 'static,
) -> (u16, FileServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("address").port();
    let answer = std::sync::Arc::new(answer);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (header, body, pause) = answer(port, &path);
                if socket.write_all(&header).await.is_err() {
                    return;
                }
                for chunk in body.chunks(64 * 1024) {
                    if socket.write_all(chunk).await.is_err() {
                        return;
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, FileServer { task })
}
