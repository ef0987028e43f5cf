//! Glance B (behind Keystone, the one glint's clouds.yaml reaches) and its request log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use super::{Result, TAG, common, err};

pub struct Glance {
    http: reqwest::Client,
    pub url: String,
    pub token: String,
    bed: common::Testbed,
}

impl Glance {
    pub async fn new(bed: &common::Testbed) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: bed.keystone_glance_url.clone(),
            token: common::keystone::demo_token(bed).await,
            bed: bed.clone(),
        }
    }

    /// Tokens live an hour; a full run takes longer than that on a slow machine.
    pub async fn refresh_token(&mut self) {
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

    pub async fn image(&self, id: &str) -> Result<Option<Value>> {
        self.call(reqwest::Method::GET, &format!("/v2/images/{id}"), None)
            .await
    }

    pub async fn create(&self, name: &str) -> Result<String> {
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

    pub async fn delete(&self, id: &str) -> Result<()> {
        self.call(reqwest::Method::DELETE, &format!("/v2/images/{id}"), None)
            .await
            .map(drop)
    }

    /// The ids of the project's images named `name`.
    pub async fn ids_named(&self, name: &str) -> Result<Vec<String>> {
        self.ids_where(&format!("name={name}")).await
    }

    /// Every image this benchmark left in Glance (the project's, with [`TAG`]).
    pub async fn leftovers(&self) -> Result<Vec<String>> {
        self.ids_where(&format!("tag={TAG}")).await
    }

    /// The ids of the images a list `filter` finds (one page of up to 200).
    async fn ids_where(&self, filter: &str) -> Result<Vec<String>> {
        let path = format!("/v2/images?{filter}&limit=200");
        let page = self.call(reqwest::Method::GET, &path, None).await?;
        Ok(ids(&page.unwrap_or_default()))
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|image| image["id"].as_str().map(str::to_string))
        .collect()
}

/// One finished request in Glance's uwsgi log, and when this process saw it.
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// How long Glance took over the request, by its own clock (from the request's start to
    /// the response's end).
    pub seconds: f64,
    pub seen: Instant,
}

/// Glance's uwsgi log, read from where it ended when the tail started. uwsgi writes a
/// request's line when the response has gone out: for `PUT /file`, once the image is active.
pub struct GlanceLog {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Finished `PUT /v2/images/{id}/file` requests not yet looked at, whoever polled.
    uploads: Vec<LoggedRequest>,
}

impl GlanceLog {
    pub fn tail(path: &Path) -> Result<Self> {
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

    pub fn poll(&mut self) -> Vec<LoggedRequest> {
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
                        seconds: request.seconds,
                        seen,
                    });
                }
                requests.push(request);
            }
        }
        requests
    }

    /// Glance's own duration of the finished upload into image `id`, waiting up to 5 s for
    /// its line (uwsgi writes it once the answer is out, about when the client has it).
    pub fn upload_seconds(&mut self, id: &str) -> Option<f64> {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            self.poll();
            if let Some(at) = self
                .uploads
                .iter()
                .position(|request| upload_id(&request.path) == Some(id))
            {
                return Some(self.uploads.remove(at).seconds);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The uploads seen so far and not yet taken.
    pub fn take_uploads(&mut self) -> Vec<LoggedRequest> {
        self.poll();
        std::mem::take(&mut self.uploads)
    }
}

/// The image id of a `/v2/images/{id}/file` path.
pub fn upload_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v2/images/")?.strip_suffix("/file")
}

/// `[pid: ..] 127.0.0.1 () {..} [Sun Nov 22 21:09:01 2026] GET /v2/images => generated 86
/// bytes in 133 msecs (HTTP/1.1 200) ...`
fn parse_log_line(line: &str, seen: Instant) -> Option<LoggedRequest> {
    let (head, tail) = line.split_once(" => generated ")?;
    let msecs: u64 = tail
        .split_once(" bytes in ")?
        .1
        .split_once(" msecs")?
        .0
        .trim()
        .parse()
        .ok()?;
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
        seconds: msecs as f64 / 1000.0,
        seen,
    })
}
