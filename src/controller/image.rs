//! The Image driver: what the controller calls for each Image. It dispatches on the
//! finalizer, runs one [`pass`](crate::pass) (observe -> plan -> act, no Kubernetes inside),
//! then writes what happened: one status patch when the status changed, and Events.
//!
//! Contracts that keep users safe:
//! - A panic in one reconcile becomes that object's `Stalled` condition (`InternalError`)
//!   and a Warning Event; the process and every other object carry on.
//! - The finalizer is added only once the object's credentials have resolved, right before
//!   its first Glance call. An object without it never reached Glance, so Kubernetes
//!   deletes it at once. With it, deletion waits for Glance, or says why it cannot
//!   (`DeletionBlocked`) and how to release the object (fix the Secret, or
//!   `spec.onDelete: detach`).
//! - A reconcile caused by an edit, or by the [`REFRESH_ANNOTATION`], reads the image from
//!   Glance directly; periodic resyncs share one listing per project.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::image_steps::{
    PassRun, outcome_of, report, report_failure, resync_period, run_pass, source_access,
};
use super::objects::{add_finalizer, has_finalizer, remove_finalizer};
use super::{
    Context, IN_USE_RETRY, REFRESH_ANNOTATION, ReconcileError, STARTUP_SPREAD, events, wakeups,
};
use crate::crd::{Image, ManagementPolicy, OnDelete, WhenInUse};
use crate::glance::GlanceApi;
use crate::metrics::results;
use crate::pass::observe::Subject;
use crate::pass::plan::Desired;
use crate::pass::status::{self, Outcome};
use crate::pass::{self, act};
use crate::reason::Reason;

/// Reconciles one Image. Never panics: a panic inside becomes the object's condition.
pub async fn reconcile(image: Arc<Image>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!("reconcile", image = %events::object_name(&image));
    async move {
        let started = std::time::Instant::now();
        // The payload is neither Sync nor needed past its words: keep only those.
        let caught = AssertUnwindSafe(dispatch(&image, &ctx))
            .catch_unwind()
            .await
            .map_err(|panic| panic_message(panic.as_ref()));
        let outcome = match caught {
            Ok(outcome) => outcome,
            Err(message) => {
                let requeue = contain_panic(&image, &ctx, &message).await;
                ctx.metrics.reconciled(results::PANIC, started.elapsed());
                return Ok(requeue);
            }
        };
        let result = match &outcome {
            Ok(_) => {
                ctx.succeeded(&image.uid().unwrap_or_default());
                results::OK
            }
            Err(_) => results::ERROR,
        };
        ctx.metrics.reconciled(result, started.elapsed());
        outcome
    }
    .instrument(span)
    .await
}

async fn dispatch(image: &Image, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = image
        .uid()
        .ok_or(ReconcileError::Incomplete("metadata.uid"))?;
    if let Some(hook) = &ctx.before_pass {
        hook(image);
    }
    if image.meta().deletion_timestamp.is_some() {
        return finalize(image, ctx, &uid).await;
    }
    apply(image, ctx, &uid).await
}

/// What a panic carried, in words: panics raised with a message carry a `&str` or `String`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

async fn contain_panic(image: &Image, ctx: &Context, what: &str) -> Action {
    let message = format!(
        "glint hit an internal error while reconciling this object and stopped working on it: {what}. This is a bug; please report it. Any change to the object retries."
    );
    tracing::error!(%message, "reconcile panicked");
    let outcome = Outcome::Stalled {
        reason: Reason::InternalError,
        message: message.clone(),
    };
    if let Err(err) = report(image, ctx, None, None, outcome).await {
        tracing::warn!(%err, "could not record the internal error in status");
    }
    events::publish_warning(image, ctx, Reason::InternalError, message).await;
    Action::await_change()
}

fn subject_of<'a>(
    image: &'a Image,
    uid: &'a str,
    known_id: Option<&'a str>,
    fresh: bool,
) -> Subject<'a> {
    Subject {
        uid,
        spec: &image.spec,
        known_id,
        fresh,
        seen: None,
    }
}

fn status_id(image: &Image) -> Option<&str> {
    image
        .status
        .as_ref()
        .and_then(|status| status.id.as_deref())
}

/// Whether the object's own status says it matched its current spec when last looked at.
fn in_sync_as_recorded(image: &Image) -> bool {
    let Some(status) = image.status.as_ref() else {
        return false;
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == status::READY && c.status == "True");
    ready
        && status.observed_generation == image.meta().generation
        && image.annotations().get(REFRESH_ANNOTATION) == status.last_handled_reconcile_at.as_ref()
}

async fn apply(image: &Image, ctx: &Context, uid: &str) -> Result<Action, ReconcileError> {
    // After a start, every object arrives at once. Those whose status says they were in sync
    // wait their turn, spread over a short window, so that new and edited objects are
    // reconciled first instead of queueing behind thousands of routine checks.
    if ctx.first_sight(uid) && in_sync_as_recorded(image) {
        let window = STARTUP_SPREAD.min(resync_period(image, ctx));
        return Ok(Action::requeue(window.mul_f64(ctx.spread(uid))));
    }
    if !image.spec.targets.is_empty() {
        return super::image_targets::apply(image, ctx, uid).await;
    }
    let handle = match ctx.clouds.resolve(&ctx.client, image).await {
        Ok(handle) => handle,
        Err(err) => return report_failure(image, ctx, err).await,
    };
    // Only now, with credentials that work, can a create be sent: from here on deletion
    // must wait for Glance. Observed (unmanaged) images are never deleted and need none.
    if image.spec.policy() == ManagementPolicy::Managed && !has_finalizer(image) {
        add_finalizer(image, ctx).await?;
    }
    let desired = Desired::from_spec(&image.spec, &image.name_any(), uid);
    let access = match source_access(image, ctx).await {
        Ok(access) => access,
        Err(err) => return report_failure(image, ctx, err).await,
    };
    let run = run_pass(
        image,
        ctx,
        &handle,
        (uid, &image.spec, status_id(image)),
        &desired,
        &access,
    )
    .await;
    let PassRun {
        result,
        transfer,
        failure_reason,
    } = match run {
        Ok(run) => run,
        Err(err) => return report_failure(image, ctx, err).await,
    };
    let (outcome, requeue) = outcome_of(image, ctx, &result);
    // Events and the status write are independent requests: sent together, a new Image's
    // pass waits for one apiserver round trip after its create instead of two.
    let events = async {
        let herald = events::Herald::of(image, ctx);
        events::publish_effects(&herald, &result).await;
        let before = image.status.as_ref().and_then(|s| s.transfer.as_ref());
        events::publish_transfer_end(&herald, image, before, transfer.as_ref(), failure_reason)
            .await;
    };
    let ((), written) = tokio::join!(
        events,
        report(image, ctx, result.image.as_ref(), transfer.clone(), outcome)
    );
    written?;
    Ok(Action::requeue(requeue))
}

/// Deleting: remove the Glance image unless the spec says to leave it, then let the object
/// go. When that cannot be done, say why and how to release the object.
async fn finalize(image: &Image, ctx: &Context, uid: &str) -> Result<Action, ReconcileError> {
    if !has_finalizer(image) {
        ctx.clouds.forget(uid);
        ctx.forget_object(uid);
        ctx.wakeups.forget_waiter(&wakeups::Waiter::of(image));
        return Ok(Action::await_change());
    }
    if !image.spec.targets.is_empty() {
        return super::image_targets::finalize(image, ctx, uid).await;
    }
    let managed = image.spec.policy() == ManagementPolicy::Managed;
    if !managed || image.spec.on_delete() == OnDelete::Detach {
        if managed && let Some(id) = image.status.as_ref().and_then(|s| s.id.as_deref()) {
            let note = format!("left Glance image {id} in place (spec.onDelete: detach)");
            events::publish(
                image,
                ctx,
                kube::runtime::events::EventType::Normal,
                Reason::Detached,
                note,
            )
            .await;
        }
        return release(image, ctx, uid).await;
    }
    let handle = match ctx.clouds.resolve(&ctx.client, image).await {
        Ok(handle) => handle,
        Err(err) if err.is_transient() => return report_failure(image, ctx, err).await,
        Err(err) => return block_deletion(image, ctx, &err).await,
    };
    match pass::remove(
        handle.client.as_ref(),
        &handle.transfers,
        subject_of(image, uid, status_id(image), true),
        false,
    )
    .await
    {
        Ok(effects) => {
            events::publish_all(&events::Herald::of(image, ctx), &effects).await;
            match effects.iter().find_map(kept_in_use) {
                Some((id, why)) => {
                    wait_while_in_use(image, ctx, handle.client.as_ref(), id, why).await
                }
                None => release(image, ctx, uid).await,
            }
        }
        Err(err) if err.is_transient() => report_failure(image, ctx, err.into()).await,
        Err(err) => block_deletion(image, ctx, &err.into()).await,
    }
}

fn kept_in_use(effect: &act::Effect) -> Option<(&str, &str)> {
    match effect {
        act::Effect::KeptInUse { id, why, .. } => Some((id, why)),
        _ => None,
    }
}

/// The image is still in use: the object stays (its finalizer holds it) and says so, and glint
/// tries the delete again later. Status shows the image as Glance now has it (hidden, and
/// deactivated if spec.whenInUse asked).
async fn wait_while_in_use(
    image: &Image,
    ctx: &Context,
    api: &impl GlanceApi,
    id: &str,
    why: &str,
) -> Result<Action, ReconcileError> {
    let now_in_glance = api.get_image(id).await.ok();
    let message = format!(
        "Glance image {id} is still in use ({why}), so glint did not delete it: it hid it{} and tries again every {} minutes. Set spec.onDelete: detach to let this object go and leave the image in Glance",
        if image.spec.when_in_use() == WhenInUse::Deactivate {
            ", deactivated it,"
        } else {
            ""
        },
        IN_USE_RETRY.as_secs() / 60
    );
    let outcome = Outcome::Progressing {
        reason: Reason::InUse,
        message,
    };
    report(image, ctx, now_in_glance.as_ref(), None, outcome).await?;
    Ok(Action::requeue(IN_USE_RETRY))
}

async fn block_deletion(
    image: &Image,
    ctx: &Context,
    err: &ReconcileError,
) -> Result<Action, ReconcileError> {
    let which = match image.status.as_ref().and_then(|s| s.id.as_deref()) {
        Some(id) => format!("Glance image {id}"),
        None => "the Glance image this object may have created".to_string(),
    };
    let message = format!(
        "cannot delete {which}: {err} ({}). Fix that, or set spec.onDelete: detach to leave the image in Glance and let this object go",
        err.reason()
    );
    let outcome = Outcome::Stalled {
        reason: Reason::DeletionBlocked,
        message: message.clone(),
    };
    report(image, ctx, None, None, outcome).await?;
    events::publish_warning(image, ctx, Reason::DeletionBlocked, message).await;
    Ok(Action::await_change())
}

/// Removes glint's finalizer: Kubernetes then deletes the object.
async fn release(image: &Image, ctx: &Context, uid: &str) -> Result<Action, ReconcileError> {
    remove_finalizer(image, ctx).await?;
    ctx.clouds.forget(uid);
    ctx.forget_object(uid);
    ctx.wakeups.forget_waiter(&wakeups::Waiter::of(image));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::parse_duration;

    #[test]
    fn durations_in_kubernetes_notation_are_understood() {
        let table = [
            ("90s", Some(90_000)),
            ("10m", Some(600_000)),
            ("1h30m", Some(5_400_000)),
            ("500ms", Some(500)),
            ("1.5h", Some(5_400_000)),
            ("168h", Some(604_800_000)),
            ("", None),
            ("10", None),
            ("5d", None),
            ("0s", None),
            ("-5m", None),
            ("1 hour", None),
        ];
        for (text, millis) in table {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis() as u64),
                millis,
                "{text:?}"
            );
        }
    }

    #[test]
    fn absurd_durations_are_refused_without_panicking() {
        for text in [
            "100000000000000000000s",
            "99999999999999999999h",
            "18446744073709551616ms",
            "9223372036854775807h",
            "1e309s",
        ] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }

    #[test]
    fn a_panic_message_is_recovered_from_its_payload() {
        let text: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("overflow at 3"));
        let other: Box<dyn std::any::Any + Send> = Box::new(42_u8);
        assert_eq!(panic_message(text.as_ref()), "index out of bounds");
        assert_eq!(panic_message(owned.as_ref()), "overflow at 3");
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
