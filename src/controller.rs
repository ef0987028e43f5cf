//! `glint run`: wires the kube-runtime Controller to [`reconcile`](crate::reconcile), watches
//! the credentials Secrets, turns finished transfers into reconciles, serves health and
//! metrics, and stops cleanly on SIGTERM.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::crd::Image;
use crate::metrics::serve_health;
use crate::reconcile::{self, Context, Settings};
use crate::transfer::SourcePolicy;

/// Settings of `glint run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Images reconciled at once (per namespace watched).
    pub concurrency: u16,
    pub default_resync: Duration,
    /// Transfers running at once per cloud.
    pub transfer_parallelism: usize,
    pub metrics_addr: SocketAddr,
    /// Where image sources may be fetched from.
    pub source_policy: SourcePolicy,
}

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach Kubernetes: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "the Image CRD (images.glint.dev) is not installed: run `glint crd | kubectl apply -f -` or `kubectl apply -f crds/`"
    )]
    CrdMissing,
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    check_crd(&client, config.namespaces.first().map(String::as_str)).await?;
    let reporter = Reporter {
        controller: "glint".to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
        Settings {
            default_resync: config.default_resync,
            // Running transfers requeue their Image every few seconds, so the end of one is
            // seen without a trigger of its own.
            transfer_parallelism: config.transfer_parallelism,
            source_policy: Arc::new(config.source_policy.clone()),
        },
    ));
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Metrics {
            addr: config.metrics_addr,
            source,
        })?;
    tokio::spawn(serve_health(listener, ctx.metrics.clone()));
    tracing::info!(namespaces = ?config.namespaces, metrics = %config.metrics_addr, "glint controller starting");

    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = scopes
        .iter()
        .map(|namespace| controller_for(&client, namespace.as_deref(), &config, ctx.clone()));
    futures::future::join_all(controllers).await;
    tracing::info!("glint controller stopped");
    Ok(())
}

async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), RunError> {
    let images: Api<Image> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    match images.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdMissing),
        Err(err) => Err(RunError::Client(err)),
    }
}

async fn controller_for(
    client: &Client,
    namespace: Option<&str>,
    config: &RunConfig,
    ctx: Arc<Context>,
) {
    let (images, secrets): (Api<Image>, Api<Secret>) = match namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let controller = Controller::new(images, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(config.concurrency));
    let by_secret = controller.store();
    tokio::spawn(forget_deleted_images(
        controller.store(),
        namespace.map(str::to_owned),
        ctx.clone(),
        config.default_resync,
    ));
    controller
        .watches(secrets, watcher::Config::default(), move |secret| {
            images_using(&by_secret, &secret)
        })
        .graceful_shutdown_on(shutdown_signal())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
}

/// Images deleted while no reconcile saw them (they had no finalizer) still count as users
/// of their cloud handle; this sweep lets those handles go.
async fn forget_deleted_images(
    store: Store<Image>,
    namespace: Option<String>,
    ctx: Arc<Context>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    // The first tick fires at once, before the store has synced: skip it.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let live: HashSet<String> = store
            .state()
            .iter()
            .filter_map(|image| image.uid())
            .collect();
        ctx.clouds
            .retain_users(namespace.as_deref(), |uid| live.contains(uid));
    }
}

/// The Images whose credentials live in this Secret: a changed Secret retriggers them at once.
fn images_using(store: &Store<Image>, secret: &Secret) -> Vec<ObjectRef<Image>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|image| {
            image.namespace() == namespace && image.spec.cloud_credentials_ref.secret_name == name
        })
        .map(|image| ObjectRef::from_obj(image.as_ref()))
        .collect()
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing reconciles in flight");
}
