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

/// A folder served over HTTP, as a mirror.
pub struct Mirror {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl Mirror {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, WebServer::Python)
    }

    pub fn start_with(dir: &Path, web: WebServer) -> Self {
        std::fs::create_dir_all(dir).expect("mirror dir");
        let port = free_port();
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
                         http {{\n  access_log off;\n  client_body_temp_path {scratch}/body;\n\
                         proxy_temp_path {scratch}/proxy;\n  fastcgi_temp_path {scratch}/fastcgi;\n\
                         uwsgi_temp_path {scratch}/uwsgi;\n  scgi_temp_path {scratch}/scgi;\n\
                         default_type application/octet-stream;\n\
                         server {{ listen 127.0.0.1:{port}; root {dir}; autoindex on; }}\n}}\n",
                        scratch = scratch.display(),
                        dir = dir.display(),
                    ),
                )
                .expect("nginx.conf");
                let nginx = ["/usr/sbin/nginx", "nginx"]
                    .into_iter()
                    .find(|path| !path.starts_with('/') || Path::new(path).exists())
                    .unwrap_or("nginx");
                Command::new(nginx)
                    .arg("-c")
                    .arg(&config)
                    .arg("-p")
                    .arg(&scratch)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
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

    pub fn checksums_url(&self) -> String {
        format!("http://127.0.0.1:{}/SHA256SUMS", self.port)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A series' images in Glance, hidden ones included, with their versions, oldest first.
pub async fn series_versions(
    glance: &glint::glance::GlanceClient,
    key: &str,
) -> Vec<(String, glint::glance::Image)> {
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
        let images: Vec<glint::glance::Image> = glance
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
