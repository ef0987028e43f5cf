//! The controller: `glint run`, the Kubernetes side of glint. It watches the three kinds,
//! drives each object through [`crate::pass`] and writes what happened back to Kubernetes
//! (status, Events, the finalizer). Nothing below it knows Kubernetes.
//!
//! - [`run`]: the wiring: kube-runtime Controllers, the credentials Secrets' watch, the leader
//!   lease, health and metrics, a clean stop on SIGTERM.
//! - One driver per kind: [`image`] (one pass per reconcile), [`series`] (one rotation step
//!   per reconcile, each version through the same pass; `series_check` decides when the
//!   releases are looked at again) and [`shared_image`] (the consumer project's member status).
//! - What the drivers share: `context` (settings, backoff, the cloud handles), `clouds` (one
//!   handle per Secret + cloud), `error`, `events`, `objects` (status and finalizer writes),
//!   `wakeups` (a transfer's end wakes the object that waits on it), and the requeue policy
//!   below.

mod clouds;
mod context;
mod error;
mod events;
pub mod image;
mod image_steps;
mod image_targets;
mod objects;
pub mod run;
pub mod series;
mod series_check;
mod series_delete;
mod series_parts;
mod series_rotation;
mod series_targets;
pub mod shared_image;
mod trusted_keys;
pub mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::pass::status::Outcome;

pub use clouds::{CloudHandle, CloudKey, CloudRegistry, UserKind};
pub use context::{Context, MAX_BACKOFF, PassHook, Settings, backoff_delay};
pub use error::ReconcileError;
pub use image::reconcile;
pub use run::{RunConfig, RunError, run, shutdown_signal};
pub use series::{RETRY_ANNOTATION, reconcile_series};
pub use shared_image::reconcile_shared;

pub use crate::marks::{FINALIZER, REFRESH_ANNOTATION};
/// The field manager of glint's status patches.
pub const FIELD_MANAGER: &str = "glint";

/// How often a Ready object is compared with Glance when neither the spec nor the controller
/// flags say otherwise.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// The shortest resync period glint accepts (the CRD refuses shorter ones too).
pub const MIN_RESYNC: Duration = Duration::from_secs(10);
/// The longest resync period glint accepts: 7 days.
pub const MAX_RESYNC: Duration = Duration::from_secs(7 * 24 * 3600);
/// After a start, objects already in sync are first checked within this window; shorter than
/// the listing cache's lifetime, so one listing serves the whole spread.
pub const STARTUP_SPREAD: Duration = Duration::from_secs(20);
/// How soon to look again while work is under way (transfers report progress this often).
pub(crate) const PROGRESS_REQUEUE: Duration = Duration::from_secs(5);
/// How soon to come back after a pass that created an image and stopped there: at once, since
/// what follows goes next (a 200 ms pause here was a fifth of a 16 MiB image's apply -> Ready).
pub(crate) const CREATED_REQUEUE: Duration = Duration::ZERO;
/// How soon to try again to delete an image that was still in use (servers booted from it, or
/// Glance refusing the delete):
/// uses end on a human scale (a server deleted, a volume flattened), and each try costs
/// Glance a delete and a patch, so minutes, not the error backoff's seconds.
pub(crate) const IN_USE_RETRY: Duration = Duration::from_secs(300);

/// Requeue policy after an error: growing backoff per object, with jitter, capped.
/// The same for every kind glint reconciles (Image, ImageSeries, SharedImage).
pub fn error_policy<K: Resource>(
    object: Arc<K>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.backoff(&object.uid().unwrap_or_default());
    let name = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    tracing::warn!(object = %name, %error, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

/// How a failed reconcile shows: retrying when trying again can help, else Stalled until a
/// change.
pub(crate) fn failure_outcome(err: &ReconcileError) -> Outcome {
    if err.is_transient() {
        Outcome::Progressing {
            reason: err.reason(),
            message: format!("{err}; retrying"),
        }
    } else {
        Outcome::Stalled {
            reason: err.reason(),
            message: err.to_string(),
        }
    }
}

/// How long a kind without a resync period of its own waits between looks.
pub(crate) fn resync_after(ctx: &Context) -> Duration {
    ctx.settings.default_resync.clamp(MIN_RESYNC, MAX_RESYNC)
}
