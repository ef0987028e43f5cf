//! glint over HTTPS as clouds serve it: nginx terminating TLS with a certificate from the
//! cloud's own CA, in front of `glint cloud` (the image API) and a folder (an image's source).
//! The CA is trusted the two ways users trust one: clouds.yaml's `cacert`, or the system's
//! store (`SSL_CERT_FILE`, which the system store reader honours, as OpenSSL does); and not at
//! all, which must fail and say why.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A CA, a certificate for 127.0.0.1 it signed, and nginx serving `https://127.0.0.1:PORT`:
/// `/v2...` and `/` proxied to `glint cloud`, `/files/` from a folder.
struct TlsFront {
    dir: PathBuf,
    port: u16,
    nginx: Child,
    cloud: Child,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TlsFront {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(common::unique("glint-tls"));
        std::fs::create_dir_all(dir.join("files")).expect("folder");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=glint test cloud CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.pem",
            ],
        );

        let cloud_port = common::harness::free_port();
        let cloud = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(["cloud", "--listen", &format!("127.0.0.1:{cloud_port}")])
            .arg("--data-dir")
            .arg(dir.join("cloud"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("glint cloud");
        let port = common::harness::free_port();
        let config = format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             default_type application/octet-stream;\n\
             server {{\n    listen 127.0.0.1:{port} ssl;\n\
             ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
             client_max_body_size 0;\n    proxy_request_buffering off;\n\
             location /files/ {{ root {d}; }}\n\
             location / {{ proxy_pass http://127.0.0.1:{cloud_port}; }}\n  }}\n}}\n",
            d = dir.display(),
        );
        std::fs::write(dir.join("nginx.conf"), config).expect("nginx.conf");
        let nginx = common::mirror::spawn_nginx(&dir.join("nginx.conf"), &dir)
            .expect("nginx (scripts/test installs Debian's nginx)");
        for check in [cloud_port, port] {
            let started = std::time::Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", check)).is_err() {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "port {check} did not open; see {}",
                    dir.join("error.log").display()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Self {
            dir,
            port,
            nginx,
            cloud,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A clouds.yaml for the cloud behind nginx, with `cacert` when `with_cacert`.
    fn clouds_yaml(&self, with_cacert: bool) -> PathBuf {
        let cacert = if with_cacert {
            format!("    cacert: {}\n", self.dir.join("ca.pem").display())
        } else {
            String::new()
        };
        let path = self.dir.join(format!("clouds-{with_cacert}.yaml"));
        std::fs::write(
            &path,
            format!(
                "clouds:\n  tls:\n    auth_type: none\n    image_endpoint_override: {}\n{cacert}",
                self.url()
            ),
        )
        .expect("clouds.yaml");
        path
    }

    /// Runs glint with this clouds.yaml; `system_ca` puts the CA in the system's store.
    fn glint(&self, clouds: &Path, system_ca: bool, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_glint"));
        command
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", clouds)
            .env("OS_CLOUD", "tls")
            .current_dir(&self.dir);
        if system_ca {
            command.env("SSL_CERT_FILE", self.dir.join("ca.pem"));
        } else {
            // The machine's own store, which does not know the test CA.
            command
                .env_remove("SSL_CERT_FILE")
                .env_remove("SSL_CERT_DIR");
        }
        let output = command.output().expect("run glint");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        common::harness::stop_process(&mut self.nginx);
        common::harness::stop_process(&mut self.cloud);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs nginx and openssl: scripts/test installs them (see tests/README.md)"]
fn a_cloud_behind_https_is_reached_with_its_ca_from_clouds_yaml_or_the_system_store_and_refused_without()
 {
    let front = TlsFront::start();
    let with_cacert = front.clouds_yaml(true);
    let without = front.clouds_yaml(false);

    let (ok, _, err) = front.glint(&with_cacert, false, &["image", "list"]);
    assert!(ok, "cacert in clouds.yaml: {err}");
    let (ok, _, err) = front.glint(&without, true, &["image", "list"]);
    assert!(ok, "the CA in the system's store: {err}");

    let (ok, _, err) = front.glint(&without, false, &["image", "list"]);
    assert!(!ok, "a certificate nobody vouched for must not be accepted");
    assert!(
        err.contains("TLS certificate is not trusted (UnknownIssuer)") && err.contains("cacert"),
        "the error says what is wrong and what to do: {err}"
    );
}

#[test]
#[ignore = "needs nginx and openssl: scripts/test installs them (see tests/README.md)"]
fn an_image_source_behind_https_is_trusted_through_the_system_store() {
    use sha2::Digest;
    let front = TlsFront::start();
    let data = common::pseudo_random_bytes(300_000, 5);
    std::fs::write(front.dir.join("files/disk.raw"), &data).expect("source file");
    let digest: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let manifest = front.dir.join("image.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: over-tls}}\nspec:\n  \
             cloudCredentialsRef: {{secretName: openstack, cloudName: tls}}\n  diskFormat: raw\n  \
             source:\n    url: {}/files/disk.raw\n    hash: {{algorithm: sha256, value: {digest}}}\n",
            front.url()
        ),
    )
    .expect("manifest");
    let manifest = manifest.to_str().expect("utf-8");
    // The cloud is trusted through cacert; the source only through the system's store.
    let clouds = front.clouds_yaml(true);

    // Final at once ("will not retry"), not retried for --retry-for's ten minutes: waiting
    // does not make a certificate trusted.
    let (ok, out, err) = front.glint(&clouds, false, &["apply", "-f", manifest]);
    assert!(!ok, "the source's certificate is not trusted: {out}");
    assert!(
        err.contains("CertificateUntrusted")
            && err.contains("files/disk.raw")
            && err.contains("(will not retry)"),
        "{err}"
    );

    let (ok, out, err) = front.glint(&clouds, true, &["apply", "-f", manifest]);
    assert!(ok, "{out}{err}");
    let row = out
        .lines()
        .find(|line| line.starts_with("default/over-tls "))
        .unwrap_or_else(|| panic!("no row for the image: {out}"));
    assert!(row.contains(" active "), "{row}");
    assert!(row.contains(&format!(" {} ", data.len())), "{row}");
}
