//! The controller's reconcile: finalizer dispatch around one [`pass`], plus everything that
//! touches Kubernetes: reading the credentials Secret, writing status (one server-side-apply
//! patch, only when it changed), Events, requeue and backoff.

pub mod pass;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, Event as Finalizing};
use kube::{Api, Client, Resource, ResourceExt};

use crate::auth::{AuthError, AuthOptions, Authenticator, CloudsFile};
use crate::crd::{Image, OnDelete, TransferPhase, TransferStatus};
use crate::glance::{GlanceClient, ListingCache};
use crate::observe::Subject;
use crate::plan::{Desired, Progress};
use crate::status::{self, Outcome, StatusInput, reasons};
use crate::transfer::{TransferManager, TransferSetupError, Transfers};
use pass::{PassError, PassResult};

/// The finalizer that keeps an Image until its Glance image is dealt with.
pub const FINALIZER: &str = "glint.dev/cleanup";
/// The field manager of glint's status patches.
pub const FIELD_MANAGER: &str = "glint";

/// How often a Ready object is compared with Glance when neither the spec nor the controller
/// flags say otherwise.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// How soon to look again while work is under way (transfers report progress this often).
const PROGRESS_REQUEUE: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Counters for /metrics and for the idle-writes measurement.
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub failures: AtomicU64,
    /// Every write glint sends to Kubernetes: status patches, Events, finalizer changes.
    pub kube_writes: AtomicU64,
}

/// A cloud client and its transfers, shared by every Image that uses the same Secret version
/// and cloud (so they share one token, one listing per resync and one transfer queue).
pub struct CloudHandle {
    pub client: Arc<ListingCache<GlanceClient>>,
    pub transfers: TransferManager<ListingCache<GlanceClient>>,
}

/// How long one listing of a project's images answers lookups: long enough to serve every
/// Image of a resync burst, short enough that drift is seen by the next resync.
const LISTING_TTL: Duration = Duration::from_secs(10);

/// Everything reconcile needs, shared by all workers.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub default_resync: Duration,
    pub transfer_parallelism: usize,
    pub metrics: Arc<Metrics>,
    clouds: Mutex<HashMap<String, Arc<CloudHandle>>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        default_resync: Duration,
        transfer_parallelism: usize,
    ) -> Self {
        Self {
            client,
            recorder,
            default_resync,
            transfer_parallelism,
            metrics: Arc::default(),
            clouds: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// The next backoff for this object, growing with each consecutive failure.
    pub fn backoff(&self, uid: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(uid.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        Duration::from_secs(1u64 << (*count).min(9)).min(MAX_BACKOFF)
    }

    fn succeeded(&self, uid: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(uid);
    }
}

/// Why a reconcile failed. Each knows whether retrying can help and its condition reason.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Secret {namespace}/{name} (spec.cloudCredentialsRef.secretName) does not exist")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key clouds.yaml")]
    SecretWithoutClouds { namespace: String, name: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    TransferSetup(#[from] TransferSetupError),
    #[error("the object has no {0}")]
    Incomplete(&'static str),
}

impl ReconcileError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::SecretNotFound { .. }
            | Self::SecretWithoutClouds { .. }
            | Self::Incomplete(_) => false,
            Self::Auth(err) => err.is_transient(),
            Self::Pass(err) => err.is_transient(),
            Self::Kube(_) => true,
            Self::TransferSetup(_) => false,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::SecretWithoutClouds { .. } => "InvalidSecret",
            Self::Auth(err) => err.reason(),
            Self::Pass(err) => err.reason(),
            Self::Kube(_) => "KubernetesUnavailable",
            Self::Incomplete(_) => "InvalidObject",
            Self::TransferSetup(_) => "TransferSetupFailed",
        }
    }
}

/// The error kube's finalizer helper wraps ours in.
pub type FinalizerError = finalizer::Error<ReconcileError>;

/// Reconciles one Image: adds the finalizer, then syncs or cleans up.
pub async fn reconcile(image: Arc<Image>, ctx: Arc<Context>) -> Result<Requeue, FinalizerError> {
    ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
    let namespace = image.namespace().unwrap_or_default();
    let api: Api<Image> = Api::namespaced(ctx.client.clone(), &namespace);
    if image.meta().deletion_timestamp.is_none()
        && !image.finalizers().iter().any(|f| f == FINALIZER)
    {
        ctx.metrics.kube_writes.fetch_add(1, Ordering::Relaxed);
    }
    let outcome = finalizer::finalizer(&api, FINALIZER, image.clone(), |event| async {
        match event {
            Finalizing::Apply(image) => apply(&image, &ctx).await,
            Finalizing::Cleanup(image) => cleanup(&image, &ctx).await,
        }
    })
    .await;
    if outcome.is_ok() {
        ctx.succeeded(&image.uid().unwrap_or_default());
    } else {
        ctx.metrics.failures.fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

/// The object as observation sees it.
fn subject_of<'a>(image: &'a Image, uid: &'a str) -> Subject<'a> {
    Subject {
        uid,
        spec: &image.spec,
        known_id: image
            .status
            .as_ref()
            .and_then(|status| status.id.as_deref()),
    }
}

/// Requeue policy after an error: growing backoff per object, capped.
pub fn error_policy(image: Arc<Image>, error: &FinalizerError, ctx: Arc<Context>) -> Requeue {
    let delay = ctx.backoff(&image.uid().unwrap_or_default());
    tracing::warn!(image = %image.name_any(), %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Requeue::requeue(delay)
}

async fn apply(image: &Image, ctx: &Context) -> Result<Requeue, ReconcileError> {
    let uid = image
        .uid()
        .ok_or(ReconcileError::Incomplete("metadata.uid"))?;
    let desired = Desired::from_spec(&image.spec, &image.name_any(), &uid);
    let subject = subject_of(image, &uid);
    let result = match cloud(image, ctx).await {
        Ok(handle) => pass::sync(handle.client.as_ref(), &handle.transfers, subject, &desired)
            .await
            .map(|result| (result, handle))
            .map_err(ReconcileError::from),
        Err(err) => Err(err),
    };
    match result {
        Ok((result, handle)) => {
            publish_effects(image, ctx, &result).await;
            let transfer = result
                .image
                .as_ref()
                .and_then(|img| handle.transfers.progress(&img.id));
            publish_transfer_end(image, ctx, transfer.as_ref()).await;
            let (outcome, requeue) = outcome_of(image, ctx, &result);
            write_status(image, ctx, result.image.as_ref(), transfer, outcome).await?;
            Ok(requeue)
        }
        Err(err) => {
            let outcome = if err.is_transient() {
                Outcome::Progressing {
                    reason: err.reason(),
                    message: format!("{err}; retrying"),
                }
            } else {
                Outcome::Stalled {
                    reason: err.reason(),
                    message: err.to_string(),
                }
            };
            write_status(image, ctx, None, None, outcome).await?;
            publish(
                image,
                ctx,
                EventType::Warning,
                err.reason(),
                err.to_string(),
            )
            .await;
            if err.is_transient() {
                Err(err)
            } else {
                // Nothing changes until the spec or the Secret does; both are watched.
                Ok(Requeue::await_change())
            }
        }
    }
}

fn outcome_of(image: &Image, ctx: &Context, result: &PassResult) -> (Outcome, Requeue) {
    match &result.progress {
        Progress::InSync => {
            let reason = if result.imported {
                reasons::OBSERVED
            } else {
                reasons::SYNCED
            };
            let message = match &result.image {
                Some(glance) => format!(
                    "Glance image {} is {} and matches the spec",
                    glance.id, glance.status
                ),
                None => "the image matches the spec".to_string(),
            };
            (
                Outcome::Ready { reason, message },
                Requeue::requeue(resync_period(image, ctx)),
            )
        }
        Progress::Working { reason, message } => (
            Outcome::Progressing {
                reason,
                message: message.clone(),
            },
            // A create was the whole pass: come back at once for the rest.
            Requeue::requeue(if result.effects.iter().any(|e| e.reason() == "Created") {
                Duration::from_millis(200)
            } else {
                PROGRESS_REQUEUE
            }),
        ),
        Progress::Blocked { reason, message } => (
            Outcome::Stalled {
                reason,
                message: message.clone(),
            },
            Requeue::await_change(),
        ),
    }
}

fn resync_period(image: &Image, ctx: &Context) -> Duration {
    image
        .spec
        .resync_period
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(ctx.default_resync)
}

/// `90s`, `10m`, `1h30m`, `500ms`: the Kubernetes duration subset glint accepts.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() || ch == '.' {
            number.push(ch);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit = match (ch, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('s', _) => 1.0,
            ('m', _) => 60.0,
            ('h', _) => 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(value * unit);
    }
    (number.is_empty() && !total.is_zero()).then_some(total)
}

async fn cleanup(image: &Image, ctx: &Context) -> Result<Requeue, ReconcileError> {
    let detach = image.spec.on_delete() == OnDelete::Detach;
    let uid = image
        .uid()
        .ok_or(ReconcileError::Incomplete("metadata.uid"))?;
    let subject = subject_of(image, &uid);
    let handle = cloud(image, ctx).await?;
    let effects = pass::remove(handle.client.as_ref(), subject, detach).await?;
    publish_all(image, ctx, &effects).await;
    // The finalizer helper removes the finalizer next: one more write.
    ctx.metrics.kube_writes.fetch_add(1, Ordering::Relaxed);
    Ok(Requeue::await_change())
}

/// The cloud client for the object's Secret, cached by Secret version and cloud name.
async fn cloud(image: &Image, ctx: &Context) -> Result<Arc<CloudHandle>, ReconcileError> {
    let namespace = image.namespace().unwrap_or_default();
    let reference = &image.spec.cloud_credentials_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&reference.secret_name)
        .await?
        .ok_or_else(|| ReconcileError::SecretNotFound {
            namespace: namespace.clone(),
            name: reference.secret_name.clone(),
        })?;
    let key = format!(
        "{namespace}/{}@{}#{}",
        reference.secret_name,
        secret.resource_version().unwrap_or_default(),
        reference.cloud_name
    );
    if let Some(handle) = ctx
        .clouds
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(handle.clone());
    }
    let data = secret.data.unwrap_or_default();
    let clouds_yaml =
        data.get("clouds.yaml")
            .ok_or_else(|| ReconcileError::SecretWithoutClouds {
                namespace: namespace.clone(),
                name: reference.secret_name.clone(),
            })?;
    let file = CloudsFile::from_bytes(&clouds_yaml.0)?;
    let config = file.cloud(&reference.cloud_name)?;
    let options = AuthOptions {
        ca_bundle: data.get("cacert").map(|bytes| bytes.0.clone()),
        ..AuthOptions::default()
    };
    let glance = GlanceClient::new(Authenticator::from_cloud(config, options)?);
    let project = glance.authenticator().project_id().await?;
    let client = Arc::new(ListingCache::new(glance, project, LISTING_TTL));
    let handle = Arc::new(CloudHandle {
        transfers: TransferManager::new(client.clone(), ctx.transfer_parallelism)?,
        client,
    });
    ctx.clouds
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, handle.clone());
    Ok(handle)
}

async fn write_status(
    image: &Image,
    ctx: &Context,
    glance: Option<&crate::glance::Image>,
    transfer: Option<TransferStatus>,
    outcome: Outcome,
) -> Result<(), ReconcileError> {
    let new = status::build(StatusInput {
        generation: image.meta().generation,
        previous: image.status.as_ref(),
        id: glance.map(|img| img.id.clone()),
        image: glance,
        transfer,
        outcome,
        now: Time(jiff::Timestamp::now()),
    });
    if !status::needs_write(image.status.as_ref(), &new) {
        return Ok(());
    }
    let api: Api<Image> =
        Api::namespaced(ctx.client.clone(), &image.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": "glint.dev/v1alpha1",
        "kind": "Image",
        "status": new,
    });
    ctx.metrics.kube_writes.fetch_add(1, Ordering::Relaxed);
    api.patch_status(
        &image.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn publish_effects(image: &Image, ctx: &Context, result: &PassResult) {
    if let Some(old) = &result.vanished
        && result
            .effects
            .iter()
            .any(|effect| effect.reason() == "Created")
    {
        let note = format!("Glance image {old} was deleted outside glint; created it again");
        publish(image, ctx, EventType::Warning, "Recreated", note).await;
    }
    publish_all(image, ctx, &result.effects).await;
}

async fn publish_all(image: &Image, ctx: &Context, effects: &[crate::act::Effect]) {
    for effect in effects {
        publish(
            image,
            ctx,
            EventType::Normal,
            effect.reason(),
            effect.note(),
        )
        .await;
    }
}

/// `Uploaded` once, when status is about to record a finished transfer for the first time.
async fn publish_transfer_end(image: &Image, ctx: &Context, transfer: Option<&TransferStatus>) {
    let Some(transfer) = transfer else { return };
    let before = image
        .status
        .as_ref()
        .and_then(|status| status.transfer.as_ref())
        .map(|t| t.phase);
    if transfer.phase == TransferPhase::Succeeded && before != Some(TransferPhase::Succeeded) {
        let url = image
            .spec
            .source
            .as_ref()
            .map_or("the source", |source| source.url.as_str());
        let note = format!(
            "copied {} bytes from {url} into Glance",
            transfer.bytes_done
        );
        publish(image, ctx, EventType::Normal, "Uploaded", note).await;
    }
}

async fn publish(image: &Image, ctx: &Context, kind: EventType, reason: &str, note: String) {
    let event = Event {
        type_: kind,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    ctx.metrics.kube_writes.fetch_add(1, Ordering::Relaxed);
    if let Err(err) = ctx.recorder.publish(&event, &image.object_ref(&())).await {
        // An Event is a courtesy; failing to record one must not fail the reconcile.
        tracing::warn!(image = %image.name_any(), %err, "could not record an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_kubernetes_notation_are_understood() {
        let table = [
            ("90s", Some(90_000)),
            ("10m", Some(600_000)),
            ("1h30m", Some(5_400_000)),
            ("500ms", Some(500)),
            ("1.5h", Some(5_400_000)),
            ("", None),
            ("10", None),
            ("5d", None),
            ("0s", None),
        ];
        for (text, millis) in table {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis() as u64),
                millis,
                "{text:?}"
            );
        }
    }
}
