//! A folder served over HTTP by `python3 -m http.server` (an ordinary web server), laid out as
//! a distribution's mirror: release files beside a SHA256SUMS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::Digest;

use super::harness::free_port;

/// A folder served over HTTP by `python3 -m http.server`, as a mirror.
pub struct Mirror {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl Mirror {
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mirror dir");
        let port = free_port();
        let server = Command::new("python3")
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
            .expect("python3 -m http.server");
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
