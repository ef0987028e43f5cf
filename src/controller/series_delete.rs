//! What goes when an ImageSeries rotates or is deleted: a version's image, unless Glance keeps it
//! because it is still in use. Then the version is hidden (and deactivated when
//! spec.image.whenInUse says so), status lists it as `deleting` with reason InUse, and the
//! series comes back for it within [`IN_USE_RETRY`]; a deleted series keeps its finalizer
//! until every version is gone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::clouds::CloudHandle;
use super::events::Herald;
use super::objects::{remove_finalizer, write_status};
use super::wakeups::Waiter;
use super::{Context, IN_USE_RETRY, ReconcileError};
use crate::crd::{ImageSeries, ImageSeriesSpec, ImageSeriesStatus, SeriesVersionStatus};
use crate::glance::{GlanceApi, GlanceImage, GlanceStatus};
use crate::pass;
use crate::pass::act::{self, Effect};
use crate::pass::status::{Outcome, kstatus_conditions};
use crate::reason::Reason;
use crate::series::{
    self,
    plan::{Held, Removal},
};
use crate::transfer::Transfers;

/// The role status gives a version that should be gone but that Glance keeps (in use).
pub(super) const DELETING: &str = "deleting";

/// A status line for a version Glance would not delete because it is in use; `effect` is the
/// [`Effect::KeptInUse`] that says so (anything else gives no line).
pub(super) fn kept_line(
    gone: &Held,
    image: Option<&GlanceImage>,
    effect: &Effect,
) -> Option<SeriesVersionStatus> {
    let Effect::KeptInUse {
        why, deactivated, ..
    } = effect
    else {
        return None;
    };
    let status = match (deactivated, image) {
        (true, _) => Some(GlanceStatus::Deactivated),
        (false, image) => image.map(|image| image.status.clone()),
    };
    Some(SeriesVersionStatus {
        version: gone.version.clone(),
        id: Some(gone.id.clone()),
        status,
        role: DELETING.to_string(),
        created: image.and_then(|image| image.created_at.clone()),
        problem: Some(format!(
            "{}: to be deleted, but still in use ({why}); glint hid it{} and tries again every {} minutes",
            Reason::InUse,
            if *deactivated {
                ", deactivated it,"
            } else {
                ""
            },
            IN_USE_RETRY.as_secs() / 60
        )),
    })
}

/// Deleting: every version goes with the series (unprotected first), then the object. A
/// version Glance keeps because it is in use holds the object (hidden, and deactivated if
/// spec.image.whenInUse says so) until a later try deletes it.
pub(super) async fn finalize(
    series: &ImageSeries,
    ctx: &Context,
    handle: &CloudHandle,
    key: &str,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let kept = delete_all(series, handle, key, uid).await?;
    if !kept.is_empty() {
        return hold(series, ctx, Reason::InUse, &in_use_message(&kept)).await;
    }
    release(series, ctx, uid).await
}

/// Deletes every version `identity` holds in this cloud; the versions Glance keeps because
/// they are in use, in words.
pub(super) async fn delete_all(
    series: &ImageSeries,
    handle: &CloudHandle,
    key: &str,
    identity: &str,
) -> Result<Vec<String>, ReconcileError> {
    let api = handle.client.as_ref();
    let held = series::observe::held(api, key, identity)
        .await
        .map_err(|err| ReconcileError::Pass(pass::PassError::Observe(err.into())))?;
    let when_in_use = series.spec.image.when_in_use.unwrap_or_default();
    let mut kept = Vec::new();
    for (version, _) in held {
        handle.transfers.cancel(&version.id);
        let effect = act::delete(api, &version.id, version.protected, when_in_use)
            .await
            .map_err(|err| ReconcileError::Pass(err.into()))?;
        if let Effect::KeptInUse { why, .. } = effect {
            kept.push(format!(
                "version {} (Glance image {}): {why}",
                version.version, version.id
            ));
        }
    }
    Ok(kept)
}

/// What a deleted series says while versions are still in use.
pub(super) fn in_use_message(kept: &[String]) -> String {
    format!(
        "the series is being deleted, but {} of its versions are still in use: {}. glint hid them and tries to delete them again every {} minutes",
        kept.len(),
        kept.join("; "),
        IN_USE_RETRY.as_secs() / 60
    )
}

/// A deleted series that cannot go yet: status and a Warning say why; glint comes back.
pub(super) async fn hold(
    series: &ImageSeries,
    ctx: &Context,
    reason: Reason,
    message: &str,
) -> Result<Action, ReconcileError> {
    let outcome = Outcome::Progressing {
        reason,
        message: message.to_string(),
    };
    let previous = series.status.clone().unwrap_or_default();
    let status = ImageSeriesStatus {
        conditions: kstatus_conditions(
            &outcome,
            series.meta().generation,
            &Time(jiff::Timestamp::now()),
            &previous.conditions,
        ),
        ..previous
    };
    write_status(series, ctx, &status).await?;
    Herald::of(series, ctx)
        .say(EventType::Warning, reason, message)
        .await;
    Ok(Action::requeue(IN_USE_RETRY))
}

/// Every version is gone: the object may go, and glint forgets it.
pub(super) async fn release(
    series: &ImageSeries,
    ctx: &Context,
    uid: &str,
) -> Result<Action, ReconcileError> {
    remove_finalizer(series, ctx).await?;
    let namespace = series.namespace().unwrap_or_default();
    ctx.clouds.forget(uid);
    ctx.wakeups.forget_waiter(&Waiter::of(series));
    ctx.metrics.series.forget(&namespace, &series.name_any());
    Ok(Action::await_change())
}

/// Deletes a version's image and says so in an Event; the problem in words when it cannot.
/// Glance may keep it because it is in use ([`Effect::KeptInUse`]): a Warning the first time.
pub(super) async fn delete_version(
    api: &impl GlanceApi,
    herald: &Herald<'_>,
    spec: &ImageSeriesSpec,
    gone: &Held,
    why: Removal,
) -> Result<Effect, String> {
    let when_in_use = spec.image.when_in_use.unwrap_or_default();
    let effect = act::delete(api, &gone.id, gone.protected, when_in_use)
        .await
        .map_err(|err| format!("{}: could not delete it: {err}", err.reason()))?;
    let (kind, reason, note) = match (&effect, why) {
        (Effect::KeptInUse { .. }, _) if gone.in_use.is_some() => return Ok(effect),
        (Effect::KeptInUse { .. }, _) => (
            EventType::Warning,
            Reason::InUse,
            format!("version {}: {}", gone.version, effect.note()),
        ),
        (_, Removal::BeyondKeep) => (
            EventType::Normal,
            Reason::Deleted,
            format!(
                "deleted version {} (Glance image {}): beyond the newest {} imported versions",
                gone.version,
                gone.id,
                spec.keep()
            ),
        ),
        (_, Removal::Replaced) => (
            EventType::Normal,
            Reason::Deleted,
            format!(
                "deleted Glance image {} of version {}, which had failed, to try the release again",
                gone.id, gone.version
            ),
        ),
    };
    herald.say(kind, reason, &note).await;
    Ok(effect)
}
