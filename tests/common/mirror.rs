//! Folders served over HTTP as distributions' mirrors are: by `python3 -m http.server` (an
//! ordinary web server) or by nginx with its autoindex (as most mirrors run it), each
//! rendering its own index pages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::Digest;

use super::harness::free_port;

/// The web server a mirror runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebServer {
    /// `python3 -m http.server`: its own index pages (`<li><a href=...>`).
    Python,
    /// Debian's nginx with `autoindex on` (scripts/test installs it).
    Nginx,
}

/// Starts nginx in the foreground with `config`, its relative paths under `prefix`: Debian's
/// nginx, which lives in /usr/sbin (often not on a user's PATH), else whatever `nginx` the
/// PATH has (what scripts/test and scripts/bench check for).
pub fn spawn_nginx(config: &Path, prefix: &Path) -> std::io::Result<Child> {
    let debian = Path::new("/usr/sbin/nginx");
    let binary = if debian.exists() {
        debian
    } else {
        Path::new("nginx")
    };
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .arg("-p")
        .arg(prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A folder served over HTTP, as a mirror.
pub struct Mirror {
    dir: PathBuf,
    port: u16,
    server: Child,
    /// nginx's access log (none for Python's http.server).
    access_log: Option<PathBuf>,
}

impl Mirror {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, WebServer::Python)
    }

    pub fn start_with(dir: &Path, web: WebServer) -> Self {
        std::fs::create_dir_all(dir).expect("mirror dir");
        let port = free_port();
        let access_log = (web == WebServer::Nginx).then(|| {
            dir.with_extension(format!("nginx-{port}"))
                .join("access.log")
        });
        let server = match web {
            WebServer::Python => Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m http.server"),
            WebServer::Nginx => {
                let scratch = dir.with_extension(format!("nginx-{port}"));
                std::fs::create_dir_all(&scratch).expect("nginx scratch");
                let config = scratch.join("nginx.conf");
                std::fs::write(
                    &config,
                    format!(
                        "daemon off;\nuser root;\nworker_processes 1;\npid {scratch}/nginx.pid;\n\
                         error_log {scratch}/error.log;\nevents {{ worker_connections 64; }}\n\
                         http {{\n  log_format counted '$request_method $uri $status';\n\
                         access_log {scratch}/access.log counted;\n  client_body_temp_path {scratch}/body;\n\
                         proxy_temp_path {scratch}/proxy;\n  fastcgi_temp_path {scratch}/fastcgi;\n\
                         uwsgi_temp_path {scratch}/uwsgi;\n  scgi_temp_path {scratch}/scgi;\n\
                         default_type application/octet-stream;\n\
                         server {{ listen 127.0.0.1:{port}; root {dir}; autoindex on; }}\n}}\n",
                        scratch = scratch.display(),
                        dir = dir.display(),
                    ),
                )
                .expect("nginx.conf");
                spawn_nginx(&config, &scratch)
                    .expect("nginx (scripts/test installs Debian's nginx)")
            }
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            dir: dir.to_path_buf(),
            port,
            server,
            access_log,
        }
    }

    /// The mirror's URL for a path under its folder (`""` for the top, `a/` for a folder).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Publishes a release file; `honest` false lists a wrong checksum for it.
    pub fn publish(&self, file: &str, data: &[u8], honest: bool) {
        std::fs::write(self.dir.join(file), data).expect("release file");
        let digest: String = if honest {
            sha2::Sha256::digest(data)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect()
        } else {
            "0".repeat(64)
        };
        let sums = self.dir.join("SHA256SUMS");
        let mut text = std::fs::read_to_string(&sums).unwrap_or_default();
        text.push_str(&format!("{digest} *{file}\n"));
        std::fs::write(sums, text).expect("SHA256SUMS");
    }

    /// How many times nginx served `path` (from the mirror's top, `/v1/disk.img`) whole, by
    /// its access log; nginx writes a line once a response is done.
    pub fn downloads(&self, path: &str) -> usize {
        let log = self
            .access_log
            .as_ref()
            .expect("only the nginx mirror counts its downloads");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == format!("GET {path} 200"))
            .count()
    }

    pub fn checksums_url(&self) -> String {
        format!("http://127.0.0.1:{}/SHA256SUMS", self.port)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        super::harness::stop_process(&mut self.server);
    }
}

/// A series' images in Glance, hidden ones included, with their versions, oldest first.
pub async fn series_versions(
    glance: &glint::glance::GlanceClient,
    key: &str,
) -> Vec<(String, glint::glance::GlanceImage)> {
    use futures::TryStreamExt;
    use glint::glance::{GlanceApi, ListQuery};
    let mut found = Vec::new();
    for hidden in ["false", "true"] {
        let query = ListQuery {
            properties: [
                ("glint.dev/series".to_string(), key.to_string()),
                ("os_hidden".to_string(), hidden.to_string()),
            ]
            .into(),
            ..ListQuery::default()
        };
        let images: Vec<glint::glance::GlanceImage> = glance
            .list_images(&query)
            .try_collect()
            .await
            .expect("list");
        for image in images {
            let version = image.properties["glint.dev/version"].clone();
            found.push((version, image));
        }
    }
    found.sort_by(|a, b| glint::series::version::compare(&a.0, &b.0));
    found
}

/// Where `glint apply` / `glint plan` of a [`SeriesCli`] run.
enum Cloud {
    /// The test bed's Keystone-backed Glance, as the demo user.
    Bed,
    /// No cloud configured: glint's embedded cloud, in the run's folder.
    Embedded,
}

/// Runs the real glint binary on series manifests written to a folder of the run's own.
pub struct SeriesCli {
    pub dir: PathBuf,
    cloud: Cloud,
}

impl SeriesCli {
    pub fn with_bed(bed: &super::Testbed) -> Self {
        let cli = Self::in_new_folder(Cloud::Bed);
        std::fs::write(cli.dir.join("clouds.yaml"), bed.demo_cloud()).expect("clouds.yaml");
        cli
    }

    /// On the embedded cloud, as the README's first command runs: no test bed needed.
    pub fn embedded() -> Self {
        Self::in_new_folder(Cloud::Embedded)
    }

    fn in_new_folder(cloud: Cloud) -> Self {
        let dir = std::env::temp_dir().join(super::unique("glint-series"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { dir, cloud }
    }

    /// `glint SUBCOMMAND ARGS...` against this run's cloud.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = super::kubectl::glint_command();
        match self.cloud {
            Cloud::Bed => {
                command
                    .args(args)
                    .env("OS_CLIENT_CONFIG_FILE", self.dir.join("clouds.yaml"))
                    .env("OS_CLOUD", "bed");
            }
            Cloud::Embedded => {
                let (subcommand, rest) = args.split_first().expect("a subcommand");
                command
                    .arg(subcommand)
                    .arg("--data-dir")
                    .arg(self.dir.join("cloud"))
                    .args(rest)
                    .env_remove("OS_CLOUD")
                    .env_remove("OS_CLIENT_CONFIG_FILE")
                    .env("HOME", &self.dir);
            }
        }
        command
    }

    /// Runs glint; returns (exit code, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let output = self.command(args).output().expect("run glint");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    }

    /// Writes an ImageSeries manifest named `name` whose spec continues with `body`; returns
    /// its path.
    pub fn manifest(&self, name: &str, body: &str) -> String {
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n{body}"
            ),
        )
        .expect("manifest");
        path.display().to_string()
    }
}

impl Drop for SeriesCli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A series' versions in Glance as one timeline line: version, id, name, status, and which is
/// current (shown with --nocapture; the issues' closing notes quote them).
pub fn timeline(found: &[(String, glint::glance::GlanceImage)]) -> String {
    found
        .iter()
        .map(|(version, image)| {
            let current = if image.properties.contains_key("glint.dev/latest") {
                " CURRENT"
            } else {
                ""
            };
            format!(
                "{version} {} {:?} {}{current}",
                image.id.get(..8).unwrap_or(&image.id),
                image.name.as_deref().unwrap_or(""),
                image.status
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
