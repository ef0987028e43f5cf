//! `glint run`: wires the kube-runtime Controllers to the drivers of [`super`], watches
//! the credentials Secrets, holds the leader lease, serves health and metrics, and stops
//! cleanly on SIGTERM (or at once, when the lease is lost).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::{Context, Settings, UserKind};
use crate::crd::{Image, ImageSeries, SharedImage};
use crate::leader::{Election, LeaderError, LeaseConfig};
use crate::metrics::{Health, KubeWrites, Metrics};
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
    /// How long Glance may stall an upload before glint retries it.
    pub upload_stall: Duration,
    pub metrics_addr: SocketAddr,
    /// Where image sources may be fetched from.
    pub source_policy: SourcePolicy,
    /// The leader lease; `None` runs without leader election (one process only).
    pub lease: Option<LeaseConfig>,
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
    #[error(transparent)]
    Leader(#[from] LeaderError),
    #[error("lost the leader lease; stopped all work so that the new leader works alone")]
    LostLeadership,
}

/// Runs until SIGTERM or Ctrl-C, or until the leader lease is lost.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let client = counted_client(&metrics).await?;
    check_crd(&client, config.namespaces.first().map(String::as_str)).await?;
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Metrics {
            addr: config.metrics_addr,
            source,
        })?;
    tokio::spawn(crate::metrics::serve(
        listener,
        metrics.clone(),
        health.clone(),
    ));
    tracing::info!(namespaces = ?config.namespaces, metrics = %config.metrics_addr, "glint controller starting");

    let election = match &config.lease {
        None => None,
        Some(lease) => match lead(Election::join(client.clone(), lease).await?, &health).await? {
            Some(election) => Some(election),
            // SIGTERM while standing by.
            None => return Ok(()),
        },
    };
    health.set_leader(true);
    metrics.leader.set(1);

    let ctx = Arc::new(Context::new(
        client.clone(),
        reporter(),
        Settings {
            default_resync: config.default_resync,
            transfer_parallelism: config.transfer_parallelism,
            upload_stall: config.upload_stall,
            source_policy: Arc::new(config.source_policy.clone()),
        },
        metrics.clone(),
    ));
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let unsynced = Arc::new(Unsynced {
        scopes: std::sync::atomic::AtomicUsize::new(scopes.len()),
        health: health.clone(),
    });
    let controllers: Vec<_> = scopes
        .iter()
        .map(|namespace| build_controller(&client, namespace.as_deref(), &config, unsynced.clone()))
        .collect();
    let stores: Vec<Store<Image>> = controllers.iter().map(Controller::store).collect();
    metrics.set_census(Box::new(move || census(&stores)));
    let images = futures::future::join_all(controllers.into_iter().zip(&scopes).map(
        |(controller, namespace)| {
            run_controller(controller, namespace.clone(), &config, ctx.clone())
        },
    ));
    // ImageSeries and SharedImages are reconciled where their CRDs are installed (the chart
    // installs them; a cluster with only the Image CRD runs as before).
    let series_scopes = installed_scopes::<ImageSeries>(&client, &scopes).await;
    let series = futures::future::join_all(series_scopes.iter().map(|namespace| {
        run_kind_controller(
            &client,
            namespace.as_deref(),
            &config,
            ctx.clone(),
            super::reconcile_series,
            super::error_policy,
        )
    }));
    let shared_scopes = installed_scopes::<SharedImage>(&client, &scopes).await;
    let shared = futures::future::join_all(shared_scopes.iter().map(|namespace| {
        run_kind_controller(
            &client,
            namespace.as_deref(),
            &config,
            ctx.clone(),
            super::reconcile_shared,
            super::error_policy,
        )
    }));
    let running = futures::future::join3(images, series, shared);
    match election {
        None => {
            running.await;
        }
        Some(mut election) => {
            tokio::select! {
                _ = running => election.step_down().await,
                () = election.lost_leadership() => {
                    metrics.leader.set(0);
                    tracing::error!("lost the leader lease: stopping all work now");
                    return Err(RunError::LostLeadership);
                }
            }
        }
    }
    tracing::info!("glint controller stopped");
    Ok(())
}

/// `scopes` where the CRD of `K` is installed: all of them, or none.
async fn installed_scopes<K>(client: &Client, scopes: &[Option<String>]) -> Vec<Option<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match scopes.first().cloned().flatten() {
        Some(namespace) => Api::namespaced(client.clone(), &namespace),
        None => Api::all(client.clone()),
    };
    if api.list(&ListParams::default().limit(1)).await.is_ok() {
        scopes.to_vec()
    } else {
        tracing::info!(kind = %K::kind(&()), "its CRD is not installed: not reconciling this kind");
        Vec::new()
    }
}

/// The controller of one more kind in one scope: reconciles on spec edits and deletion (not
/// on glint's own status writes), and each reconcile says when to come back.
async fn run_kind_controller<K, R>(
    client: &Client,
    namespace: Option<&str>,
    config: &RunConfig,
    ctx: Arc<Context>,
    reconcile: impl FnMut(Arc<K>, Arc<Context>) -> R,
    error_policy: impl Fn(
        Arc<K>,
        &super::ReconcileError,
        Arc<Context>,
    ) -> kube::runtime::controller::Action,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    R: std::future::Future<Output = Result<Action, super::ReconcileError>> + Send + 'static,
{
    let objects: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let triggers = watcher(objects, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_deletion::<K>, PredicateConfig::default());
    // A transfer into one of its images ends: look at once (ImageSeries' versions).
    let transfer_ends =
        super::wakeups::objects_of::<K>(ctx.wakeups.subscribe(), namespace.map(String::from));
    Controller::for_stream(triggers, reader)
        .with_config(ControllerConfig::default().concurrency(config.concurrency.clamp(1, 4)))
        .reconcile_on(transfer_ends)
        .graceful_shutdown_on(shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
}

fn spec_or_deletion<K: Resource>(object: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object.meta().generation.hash(&mut hasher);
    object.meta().deletion_timestamp.is_some().hash(&mut hasher);
    // The annotations that ask for something now (a refresh, a series' retry) count too.
    for annotation in [super::REFRESH_ANNOTATION, super::RETRY_ANNOTATION] {
        object
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Stands by until this process holds the lease; `None` when told to shut down first.
async fn lead(mut election: Election, health: &Health) -> Result<Option<Election>, RunError> {
    health.set_leader(election.is_leader());
    if !election.is_leader() {
        tracing::info!("standing by until this process holds the leader lease");
    }
    tokio::select! {
        became = election.became_leader() => {
            if !became {
                return Err(RunError::LostLeadership);
            }
        }
        () = shutdown_signal() => {
            election.step_down().await;
            return Ok(None);
        }
    }
    tracing::info!("this process leads: reconciling");
    Ok(Some(election))
}

/// The Kubernetes client, with every write counted for /metrics on its way out.
async fn counted_client(metrics: &Arc<Metrics>) -> Result<Client, RunError> {
    let config = kube::Config::infer()
        .await
        .map_err(|err| RunError::Client(kube::Error::InferConfig(err)))?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(RunError::Client)?;
    Ok(builder
        .with_layer(&KubeWrites::layer(metrics.clone()))
        .build())
}

fn reporter() -> Reporter {
    Reporter {
        controller: "glint".to_string(),
        instance: std::env::var("POD_NAME").ok(),
    }
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

/// The Image controller of one scope. Its cache holds Images without what reconcile never
/// reads (managedFields, the last-applied annotation), and only changes that ask for work
/// trigger a reconcile: a new generation (spec edits), deletion, or a refresh request.
/// glint's own writes (finalizer, status) do not, so a new Image costs one pass.
fn build_controller(
    client: &Client,
    namespace: Option<&str>,
    config: &RunConfig,
    unsynced: Arc<Unsynced>,
) -> Controller<Image> {
    let images: Api<Image> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let triggers = watcher(images, watcher::Config::default())
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect({
            let mut first_listing = true;
            move |event| {
                if first_listing && matches!(event, Ok(watcher::Event::InitDone)) {
                    first_listing = false;
                    unsynced.listed();
                }
            }
        })
        .applied_objects()
        .predicate_filter(asks_for_work, PredicateConfig::default());
    Controller::for_stream(triggers, reader)
        .with_config(ControllerConfig::default().concurrency(config.concurrency))
}

/// Drops what reconcile never reads from the cached copy.
fn slim(image: &mut Image) {
    image.meta_mut().managed_fields = None;
    if let Some(annotations) = image.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What about an Image asks for a reconcile; a change of anything else does not.
fn asks_for_work(image: &Image) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    image.meta().generation.hash(&mut hasher);
    image.meta().deletion_timestamp.is_some().hash(&mut hasher);
    image
        .annotations()
        .get(super::REFRESH_ANNOTATION)
        .hash(&mut hasher);
    Some(hasher.finish())
}

async fn run_controller(
    controller: Controller<Image>,
    namespace: Option<String>,
    config: &RunConfig,
    ctx: Arc<Context>,
) {
    let secrets: Api<PartialObjectMeta<Secret>> = match &namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    };
    // Only the Secrets' names and versions: their data is read when a cloud needs it, so a
    // cluster's Secrets never sit in glint's memory.
    let secret_changes = watcher(secrets, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let by_secret = controller.store();
    tokio::spawn(forget_deleted_images(
        controller.store(),
        namespace.clone(),
        ctx.clone(),
        config.default_resync,
    ));
    let transfer_ends = super::wakeups::objects_of::<Image>(ctx.wakeups.subscribe(), namespace);
    controller
        .watches_stream(secret_changes, move |secret| {
            images_using(&by_secret, &secret)
        })
        .reconcile_on(transfer_ends)
        .graceful_shutdown_on(shutdown_signal())
        .run(super::reconcile, super::error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
}

/// Counts the scopes whose watch has not delivered its first full listing yet; the last one
/// to do so makes the process ready. (Waiting on the stores instead would compete with the
/// controller for their one readiness waker, and never wake.)
struct Unsynced {
    scopes: std::sync::atomic::AtomicUsize,
    health: Arc<Health>,
}

impl Unsynced {
    fn listed(&self) {
        use std::sync::atomic::Ordering;
        let left = self
            .scopes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|before| before - 1);
        if left == Ok(0) {
            self.health.set_synced();
            tracing::info!("watch caches synced");
        }
    }
}

/// Images by their Ready condition's status and reason, for the `glint_images` gauge.
fn census(stores: &[Store<Image>]) -> BTreeMap<(String, String), i64> {
    let mut counts = BTreeMap::new();
    for image in stores.iter().flat_map(Store::state) {
        let ready = image
            .status
            .as_ref()
            .and_then(|status| status.conditions.iter().find(|c| c.type_ == "Ready"));
        let key = match ready {
            Some(condition) => (condition.status.clone(), condition.reason.clone()),
            None => ("Unknown".to_string(), "NoStatus".to_string()),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
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
            .retain_users(namespace.as_deref(), UserKind::Image, |uid| {
                live.contains(uid)
            });
    }
}

/// The Images whose cloud or source credentials live in this Secret: a changed Secret
/// retriggers them at once.
fn images_using(store: &Store<Image>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<Image>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .into_iter()
        .filter(|image| {
            let source_secret = image
                .spec
                .source
                .as_ref()
                .and_then(|source| source.secret_ref.as_ref())
                .map(|reference| reference.name.as_str());
            image.namespace() == namespace
                && (image.spec.cloud_secret_names().any(|secret| secret == name)
                    || source_secret == Some(name.as_str()))
        })
        .map(|image| ObjectRef::from_obj(image.as_ref()))
        .collect()
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends before it kills a pod).
pub async fn shutdown_signal() {
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
    tracing::info!("shutting down: finishing the work in flight");
}
