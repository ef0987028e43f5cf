//! [`GlanceClient`]: the reqwest implementation of [`GlanceApi`].

use std::time::Instant;

use futures::TryStreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use url::Url;

use super::error::clean_message;
use super::patch::{PATCH_MEDIA_TYPE, patch_body};
use super::{
    ByteStream, Download, GlanceApi, GlanceError, GlanceImage, ImportInfo, ImportMethod, ListQuery,
    Member, MemberStatus, NewImage, Page, PatchOp, StoreInfo, Task,
};
use crate::auth::Authenticator;
use crate::http::{describe_http_error, is_broken_connection};

type Result<T> = std::result::Result<T, GlanceError>;

/// A Glance v2 client for one cloud and project. Cheap to clone; clones share credentials,
/// and [`GlanceClient::replace_authenticator`] swaps them for every clone at once.
#[derive(Clone, Debug)]
pub struct GlanceClient {
    current: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Session>>>,
    /// How long Glance may stall an upload before glint gives the attempt up ([`super::stall`]).
    upload_stall: std::time::Duration,
}

/// Credentials and the API root discovered with them: replaced together, because new
/// credentials can point at another endpoint.
#[derive(Debug)]
struct Session {
    auth: Authenticator,
    root: OnceCell<ApiRoot>,
    /// Nova refused these credentials every project's servers (403): ask for their own
    /// project's at once, rather than be refused before every delete.
    own_servers_only: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct ApiRoot {
    /// `.../v2/`, with the trailing slash so relative joins stay under it.
    v2: Url,
    /// The highest v2.x version the endpoint announced, e.g. `2.17`.
    version: Option<String>,
}

/// What a request sends as its body.
#[path = "discovery.rs"]
mod discovery;
#[path = "servers.rs"]
mod servers;

use discovery::discover;

enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    Patch(serde_json::Value),
    /// Streams cannot be replayed, so a 401 on them is not retried with a new token.
    Stream(ByteStream, Option<u64>),
}

impl GlanceClient {
    pub fn new(auth: Authenticator) -> Self {
        Self {
            current: std::sync::Arc::new(std::sync::RwLock::new(Session::new(auth))),
            upload_stall: super::DEFAULT_UPLOAD_STALL,
        }
    }

    /// Gives an upload up when Glance leaves its data untaken, or its answer unsent after the
    /// last byte, for `limit` (default [`super::DEFAULT_UPLOAD_STALL`]).
    pub fn with_upload_stall(mut self, limit: std::time::Duration) -> Self {
        self.upload_stall = limit;
        self
    }

    /// The authenticator in use, e.g. to learn the project id.
    pub fn authenticator(&self) -> Authenticator {
        self.session().auth.clone()
    }

    /// Uses `auth` from the next request on, in this client and all its clones (a rotated
    /// Secret): requests and transfers already under way finish with the credentials they had.
    pub fn replace_authenticator(&self, auth: Authenticator) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Session::new(auth);
    }

    fn session(&self) -> std::sync::Arc<Session> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The v2 API version the endpoint announced (e.g. `2.17`), discovering it if needed.
    pub async fn api_version(&self) -> Result<Option<String>> {
        Ok(self.api_root().await?.version)
    }

    async fn api_root(&self) -> Result<ApiRoot> {
        let session = self.session();
        session
            .root
            .get_or_try_init(|| discover(&session.auth))
            .await
            .cloned()
    }
}

impl Session {
    fn new(auth: Authenticator) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            auth,
            root: OnceCell::new(),
            own_servers_only: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl GlanceClient {
    /// `segments` below the v2 root, each percent-encoded (tags and names may hold `/`).
    async fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.api_root().await?.v2;
        let endpoint = url.to_string();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| GlanceError::Discovery {
                    endpoint,
                    detail: "the endpoint URL cannot have a path".to_string(),
                })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Body<'_>,
    ) -> Result<Response> {
        let (fixed_body, mut stream_body) = match body {
            Body::Stream(data, size) => (Body::None, Some((data, size))),
            other => (other, None),
        };
        let replayable = stream_body.is_none();
        let mut retried = false;
        let mut resent = false;
        let session = self.session();
        let auth = &session.auth;
        loop {
            let credential = auth.credential().await?;
            // An upload may take hours: it never holds the others back.
            let first_use = if replayable {
                auth.first_use(&credential).await
            } else {
                None
            };
            // Uploads go through a client without reqwest's read timeout (see `stall`).
            let http = if replayable {
                auth.http()
            } else {
                auth.streaming_http()
            };
            let mut watch = None;
            let mut request: RequestBuilder = http
                .request(method.clone(), url.clone())
                .header("accept", "application/json");
            for (name, value) in credential.headers() {
                request = request.header(name, value);
            }
            request = match (&fixed_body, stream_body.take()) {
                (Body::Json(json), _) => request.json(json),
                (Body::Patch(json), _) => request
                    .header("content-type", PATCH_MEDIA_TYPE)
                    .body(json.to_string()),
                (_, Some((data, size))) => {
                    let request = request.header("content-type", "application/octet-stream");
                    let (request, data) = match size {
                        Some(size) => (request.header("content-length", size), data),
                        None => (request, super::frames::in_frames(data)),
                    };
                    let (data, watching) = super::stall::watched(data);
                    watch = Some(watching);
                    request.body(reqwest::Body::wrap_stream(data))
                }
                _ => request,
            };
            let started = Instant::now();
            let sent = match &watch {
                None => request.send().await,
                Some(watch) => tokio::select! {
                    sent = request.send() => sent,
                    detail = watch.stalled(self.upload_stall) => {
                        crate::metrics::glance_metrics().observe(operation, None, started.elapsed());
                        return Err(GlanceError::Transport { operation, detail });
                    }
                },
            };
            let response = match sent {
                Ok(response) => response,
                Err(err)
                    if replayable
                        && !resent
                        && is_idempotent(&method)
                        && is_broken_connection(&err) =>
                {
                    tracing::debug!(operation, error = %describe_http_error(err), "connection broke before an answer; sending once more");
                    resent = true;
                    continue;
                }
                Err(err) => {
                    crate::metrics::glance_metrics().observe(operation, None, started.elapsed());
                    return Err(transport(operation, err));
                }
            };
            let status = response.status();
            crate::metrics::glance_metrics().observe(
                operation,
                Some(status.as_u16()),
                started.elapsed(),
            );
            tracing::debug!(
                operation,
                %method,
                path = url.path(),
                status = status.as_u16(),
                request_id = request_id(&response).as_deref().unwrap_or("-"),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "glance call"
            );
            if status != StatusCode::UNAUTHORIZED {
                auth.answered(&credential);
            }
            drop(first_use);
            if status == StatusCode::UNAUTHORIZED && auth.can_reissue() {
                auth.reject(&credential).await;
                if replayable && !retried {
                    retried = true;
                    continue;
                }
            }
            if status.is_success() {
                return Ok(response);
            }
            if watch.is_some() {
                // The streaming client has no read timeout: Glance's words about a refused
                // upload are waited for no longer than a stall.
                let status = status.as_u16();
                let error = tokio::time::timeout(self.upload_stall, api_error(operation, response));
                return Err(error.await.unwrap_or_else(|_| GlanceError::Api {
                    operation,
                    status,
                    message: "(Glance sent no message)".to_string(),
                    request_id: None,
                }));
            }
            return Err(api_error(operation, response).await);
        }
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Body<'_>,
    ) -> Result<T> {
        let response = self.send(operation, method, url, body).await?;
        let id = request_id(&response);
        let bytes = response
            .bytes()
            .await
            .map_err(|err| transport(operation, err))?;
        serde_json::from_slice(&bytes).map_err(|err| GlanceError::Decode {
            operation,
            detail: err.to_string(),
            request_id: id,
        })
    }

    async fn send_empty(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Body<'_>,
    ) -> Result<()> {
        self.send(operation, method, url, body).await.map(drop)
    }
}

fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Methods whose repetition cannot change the outcome. POST (create, import, actions) and
/// PATCH (a `remove` fails the second time) are not repeated blindly.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    )
}

fn transport(operation: &'static str, err: reqwest::Error) -> GlanceError {
    if let Some(detail) = crate::http::untrusted_certificate(&err) {
        return GlanceError::Untrusted { operation, detail };
    }
    GlanceError::Transport {
        operation,
        detail: describe_http_error(err),
    }
}

async fn api_error(operation: &'static str, response: Response) -> GlanceError {
    let status = response.status().as_u16();
    let request_id = request_id(&response);
    let body = response.text().await.unwrap_or_default();
    GlanceError::Api {
        operation,
        status,
        message: clean_message(&body),
        request_id,
    }
}

/// The `marker` query parameter of Glance's `next` link.
fn marker_of(next: &str) -> Option<String> {
    let url = Url::parse("http://next.invalid").ok()?.join(next).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == "marker")
        .map(|(_, value)| value.into_owned())
}

impl GlanceApi for GlanceClient {
    async fn servers_booted_from(&self, id: &str) -> Result<Option<super::ServersUsing>> {
        self.servers_booted_from_image(id).await
    }

    async fn list_page(&self, query: &ListQuery, marker: Option<&str>) -> Result<Page> {
        #[derive(Deserialize)]
        struct ListBody {
            images: Vec<GlanceImage>,
            #[serde(default)]
            next: Option<String>,
        }
        let mut url = self.url(&["images"]).await?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query.to_pairs() {
                pairs.append_pair(&key, &value);
            }
            if let Some(marker) = marker {
                pairs.append_pair("marker", marker);
            }
        }
        let body: ListBody = self
            .send_json("list images", Method::GET, url, Body::None)
            .await?;
        Ok(Page {
            images: body.images,
            next_marker: body.next.as_deref().and_then(marker_of),
        })
    }

    async fn get_image(&self, id: &str) -> Result<GlanceImage> {
        let url = self.url(&["images", id]).await?;
        self.send_json("get image", Method::GET, url, Body::None)
            .await
    }

    async fn create_image(&self, image: &NewImage) -> Result<GlanceImage> {
        let url = self.url(&["images"]).await?;
        let body = serde_json::to_value(image).map_err(|err| GlanceError::Decode {
            operation: "create image",
            detail: err.to_string(),
            request_id: None,
        })?;
        self.send_json("create image", Method::POST, url, Body::Json(&body))
            .await
    }

    async fn update_image(&self, id: &str, ops: &[PatchOp]) -> Result<GlanceImage> {
        let url = self.url(&["images", id]).await?;
        self.send_json(
            "update image",
            Method::PATCH,
            url,
            Body::Patch(patch_body(ops)),
        )
        .await
    }

    async fn upload(&self, id: &str, data: ByteStream, size: Option<u64>) -> Result<()> {
        let url = self.url(&["images", id, "file"]).await?;
        self.send_empty(
            "upload image data",
            Method::PUT,
            url,
            Body::Stream(data, size),
        )
        .await
    }

    async fn download(&self, id: &str) -> Result<Download> {
        let url = self.url(&["images", id, "file"]).await?;
        let response = self
            .send("download image data", Method::GET, url, Body::None)
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let size = header("content-length").and_then(|len| len.parse().ok());
        let checksum = header("content-md5");
        let data = response.bytes_stream().map_err(std::io::Error::other);
        Ok(Download {
            size,
            checksum,
            data: Box::pin(data),
        })
    }

    async fn stage(&self, id: &str, data: ByteStream, size: Option<u64>) -> Result<()> {
        let url = self.url(&["images", id, "stage"]).await?;
        self.send_empty(
            "stage image data",
            Method::PUT,
            url,
            Body::Stream(data, size),
        )
        .await
    }

    async fn import(&self, id: &str, method: &ImportMethod) -> Result<()> {
        let url = self.url(&["images", id, "import"]).await?;
        let body = method.body();
        self.send_empty("import image", Method::POST, url, Body::Json(&body))
            .await
    }

    async fn import_info(&self) -> Result<ImportInfo> {
        #[derive(Deserialize)]
        struct InfoBody {
            #[serde(rename = "import-methods")]
            import_methods: Methods,
        }
        #[derive(Deserialize)]
        struct Methods {
            value: Vec<String>,
        }
        let url = self.url(&["info", "import"]).await?;
        let body: InfoBody = self
            .send_json("get import info", Method::GET, url, Body::None)
            .await?;
        Ok(ImportInfo {
            methods: body.import_methods.value,
        })
    }

    async fn stores_info(&self) -> Result<Vec<StoreInfo>> {
        #[derive(Deserialize)]
        struct StoresBody {
            stores: Vec<StoreInfo>,
        }
        let url = self.url(&["info", "stores"]).await?;
        let body: StoresBody = self
            .send_json("get stores info", Method::GET, url, Body::None)
            .await?;
        Ok(body.stores)
    }

    async fn image_tasks(&self, id: &str) -> Result<Vec<Task>> {
        #[derive(Deserialize)]
        struct TasksBody {
            tasks: Vec<Task>,
        }
        let url = self.url(&["images", id, "tasks"]).await?;
        let body: TasksBody = self
            .send_json("list image tasks", Method::GET, url, Body::None)
            .await?;
        Ok(body.tasks)
    }

    async fn deactivate(&self, id: &str) -> Result<()> {
        let url = self.url(&["images", id, "actions", "deactivate"]).await?;
        self.send_empty("deactivate image", Method::POST, url, Body::None)
            .await
    }

    async fn reactivate(&self, id: &str) -> Result<()> {
        let url = self.url(&["images", id, "actions", "reactivate"]).await?;
        self.send_empty("reactivate image", Method::POST, url, Body::None)
            .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let url = self.url(&["images", id]).await?;
        self.send_empty("delete image", Method::DELETE, url, Body::None)
            .await
    }

    async fn add_tag(&self, id: &str, tag: &str) -> Result<()> {
        let url = self.url(&["images", id, "tags", tag]).await?;
        self.send_empty("add tag", Method::PUT, url, Body::None)
            .await
    }

    async fn remove_tag(&self, id: &str, tag: &str) -> Result<()> {
        let url = self.url(&["images", id, "tags", tag]).await?;
        self.send_empty("remove tag", Method::DELETE, url, Body::None)
            .await
    }

    async fn add_member(&self, id: &str, project: &str) -> Result<Member> {
        let url = self.url(&["images", id, "members"]).await?;
        let body = serde_json::json!({ "member": project });
        self.send_json("add member", Method::POST, url, Body::Json(&body))
            .await
    }

    async fn list_members(&self, id: &str) -> Result<Vec<Member>> {
        #[derive(Deserialize)]
        struct MembersBody {
            members: Vec<Member>,
        }
        let url = self.url(&["images", id, "members"]).await?;
        let body: MembersBody = self
            .send_json("list members", Method::GET, url, Body::None)
            .await?;
        Ok(body.members)
    }

    async fn get_member(&self, id: &str, project: &str) -> Result<Member> {
        let url = self.url(&["images", id, "members", project]).await?;
        self.send_json("get member", Method::GET, url, Body::None)
            .await
    }

    async fn set_member_status(
        &self,
        id: &str,
        project: &str,
        status: MemberStatus,
    ) -> Result<Member> {
        let url = self.url(&["images", id, "members", project]).await?;
        let body = serde_json::json!({ "status": status });
        self.send_json("set member status", Method::PUT, url, Body::Json(&body))
            .await
    }

    async fn remove_member(&self, id: &str, project: &str) -> Result<()> {
        let url = self.url(&["images", id, "members", project]).await?;
        self.send_empty("remove member", Method::DELETE, url, Body::None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_yields_its_marker() {
        assert_eq!(
            marker_of("/v2/images?limit=2&marker=abc-1").as_deref(),
            Some("abc-1")
        );
        assert_eq!(marker_of("/v2/images?limit=2"), None);
    }
}
