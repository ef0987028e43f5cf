//! `glint cloud`: an image service that speaks the Glance v2 API, embedded in glint, so that
//! plan and apply (and `glint image`, and the openstack CLI) work with nothing installed.
//!
//! It owns a data folder: image records and import tasks in [`store`] (redb), image data in
//! files. [`routes`] maps requests to Glance's behaviour (the rules live with the record in
//! [`image`]: create, JSON patch, status changes), [`listing`] does filters, sorting and paging,
//! [`data`] moves bytes, [`compute`] serves Nova's old image proxy, [`metadefs`] the metadata
//! definitions catalogue, and [`schemas`] the JSON schemas. Errors are [`CloudError`]s,
//! answered in Glance's error shape, and every answer carries `x-openstack-request-id`.
//!
//! Auth is `none` on loopback by default; `--token` makes every call but the version document
//! need that token in `X-Auth-Token`; `--keystone` identifies every caller by its Keystone
//! token ([`keystone`]), so projects and roles count as they do in Glance. web-download fetches through the same
//! [`SourcePolicy`](crate::transfer::SourcePolicy) as glint's own transfers.

mod access;
mod answer;
mod caller;
mod compute;
mod data;
mod error;
pub mod image;
mod keystone;
mod listing;
mod metadefs;
pub mod routes;
mod schemas;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use error::CloudError;
use store::Store;

use crate::transfer::SourcePolicy;

/// The one store, as `/v2/info/stores` and import failures name it.
pub const STORE_ID: &str = "fs";

/// The project that owns images created without an `X-Project-Id` header.
pub const LOCAL_PROJECT: &str = "local";

/// How to run the embedded cloud.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Who may call, and as whom.
    pub access: Access,
    /// What web-download may fetch.
    pub policy: SourcePolicy,
    /// Disk and container formats accepted.
    pub formats: image::Formats,
}

/// Who may call the cloud, and as whom.
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// Anyone, as the administrator (or as the project its trusted identity headers name).
    #[default]
    Open,
    /// Callers that send this token in `X-Auth-Token` (every call but the version document).
    Token(String),
    /// Callers whose `X-Auth-Token` the Keystone at this URL accepts, as its project and roles.
    Keystone(String),
}

/// How requests are let in, ready to serve.
enum Gate {
    Open,
    Token(String),
    Keystone(keystone::KeystoneTokens),
}

/// State shared by every request.
pub struct Cloud {
    store: Store,
    owner: String,
    gate: Gate,
    address: SocketAddr,
    policy: Arc<SourcePolicy>,
    formats: image::Formats,
}

impl Cloud {
    fn now(&self) -> String {
        glance_now()
    }
}

/// The time now in Glance's format: UTC, whole seconds.
fn glance_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A running cloud; it stops when this is dropped.
pub struct RunningCloud {
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl RunningCloud {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL clients use as the image endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for RunningCloud {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Opens the data folder, binds the address and serves in a background task.
pub async fn start(options: CloudOptions) -> Result<RunningCloud, CloudError> {
    let listener = TcpListener::bind(options.listen).await.map_err(|err| {
        CloudError::storage(format!("cannot listen on {}: {err}", options.listen))
    })?;
    let address = listener.local_addr().map_err(CloudError::storage)?;
    let gate = match options.access {
        Access::Open => Gate::Open,
        Access::Token(token) => Gate::Token(token),
        Access::Keystone(auth_url) => Gate::Keystone(keystone::KeystoneTokens::new(&auth_url)?),
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&options.data_dir))
        .await
        .map_err(CloudError::storage)??;
    let now = glance_now();
    store.update_metadefs(|metadefs| {
        metadefs.with_known_resource_types(&now);
        Ok(())
    })?;
    let cloud = Arc::new(Cloud {
        store,
        owner: LOCAL_PROJECT.to_string(),
        gate,
        address,
        policy: Arc::new(options.policy),
        formats: options.formats,
    });
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "the embedded cloud cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let cloud = cloud.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| routes::handle(cloud.clone(), request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(RunningCloud { address, server })
}
