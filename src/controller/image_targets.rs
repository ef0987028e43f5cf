//! The Image driver for spec.targets: one pass per target, each exactly a one-cloud Image's
//! (its own cloud handle, and `uid/target` as its identity: the derived id and the ownership
//! mark, so two targets on one Glance never take each other's image), the source downloaded
//! once for all of them (`Desired::share`), and one status that sums them up
//! ([`targets_status`]).
//!
//! A target that leaves spec.targets keeps its status entry, which says where its image is,
//! until that image is deleted (or left, with spec.onDelete: detach). Deleting the object
//! does the same for every target.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::clouds::UserKind;
use super::image_steps::{PassRun, outcome_of, report_failure, run_pass, source_access};
use super::objects::{add_finalizer, has_finalizer, remove_finalizer, write_status};
use super::{Context, IN_USE_RETRY, REFRESH_ANNOTATION, ReconcileError, events, wakeups};
use crate::crd::{
    Image, ImageSpec, ImageStatus, ManagementPolicy, OnDelete, Target, TargetPlace, TransferStatus,
};
use crate::pass::observe::Subject;
use crate::pass::plan::Desired;
use crate::pass::status::{self, Outcome, StatusInput};
use crate::pass::targets_status::{self, TargetReport};
use crate::pass::{self, act};
use crate::reason::Reason;
use crate::transfer::SourceAccess;

/// How the registry and the pass name one target of the object `uid`.
fn identity(uid: &str, target: &str) -> String {
    format!("{uid}/{target}")
}

/// A target's part of the object's status, as a one-cloud Image's status.
fn previous_of(image: &Image, target: &str) -> ImageStatus {
    let status = image.status.as_ref();
    let entry = status.and_then(|status| status.targets.iter().find(|t| t.name == target));
    ImageStatus {
        id: entry.and_then(|entry| entry.id.clone()),
        observed_generation: status.and_then(|status| status.observed_generation),
        conditions: entry
            .map(|entry| entry.conditions.clone())
            .unwrap_or_default(),
        glance: entry.and_then(|entry| entry.glance.clone()),
        transfer: entry.and_then(|entry| entry.transfer.clone()),
        ..ImageStatus::default()
    }
}

/// Reconciles every target of `image`, then writes the one status.
pub(super) async fn apply(
    image: &Image,
    ctx: &Context,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let access = match source_access(image, ctx).await {
        Ok(access) => access,
        Err(err) => return report_failure(image, ctx, err).await,
    };
    let share = image
        .spec
        .source
        .as_ref()
        .map(|source| format!("{uid} {}", source.url));
    let mut reports = Vec::new();
    let mut next = Duration::MAX;
    let mut finalized = has_finalizer(image) || image.spec.policy() != ManagementPolicy::Managed;
    for (target, spec) in image.spec.targets.iter().zip(image.spec.per_destination()) {
        let (report, again) = target_pass(
            image,
            ctx,
            uid,
            target,
            &spec.1,
            &access,
            &share,
            &mut finalized,
        )
        .await?;
        next = next.min(again);
        reports.push(report);
    }
    for gone in removed_targets(image) {
        if let Some(report) = remove_target(image, ctx, uid, &gone).await {
            next = next.min(IN_USE_RETRY);
            reports.push(report);
        } else {
            ctx.clouds.forget_target(uid, &gone.name);
        }
    }
    let status = targets_status::build(
        image.meta().generation,
        image.status.as_ref(),
        &reports,
        image.annotations().get(REFRESH_ANNOTATION).cloned(),
        Time(jiff::Timestamp::now()),
    );
    write_status(image, ctx, &status).await?;
    Ok(Action::requeue(next))
}

/// One target's pass, as a one-cloud Image's; a failure before the pass (its Secret, its
/// login) is that target's outcome, never the others'.
#[allow(clippy::too_many_arguments)]
async fn target_pass(
    image: &Image,
    ctx: &Context,
    uid: &str,
    target: &Target,
    spec: &ImageSpec,
    access: &SourceAccess,
    share: &Option<String>,
    finalized: &mut bool,
) -> Result<(TargetReport, Duration), ReconcileError> {
    let who = identity(uid, &target.name);
    let previous = previous_of(image, &target.name);
    // Every report's conditions come from its outcome, failures included: an entry never
    // shows the Ready of an earlier pass beside a summary that says otherwise.
    let report = |glance: Option<&crate::glance::GlanceImage>, transfer, outcome: Outcome| {
        target_report(image, target.place(), &previous, glance, transfer, outcome)
    };
    let handle = match ctx
        .clouds
        .resolve_target(&ctx.client, image, UserKind::Image, target.place())
        .await
    {
        Ok(handle) => handle,
        Err(err) => {
            let outcome = super::failure_outcome(&err);
            let again = if err.is_transient() {
                ctx.backoff(&who)
            } else {
                super::MAX_RESYNC
            };
            return Ok((report(None, None, outcome), again));
        }
    };
    // As for one cloud: the finalizer goes on right before the first Glance call.
    if !*finalized {
        add_finalizer(image, ctx).await?;
        *finalized = true;
    }
    let desired = Desired {
        share: share.clone(),
        ..Desired::from_spec(spec, &image.name_any(), &who)
    };
    let place = (who.as_str(), spec, previous.id.as_deref());
    let PassRun {
        result,
        transfer,
        failure_reason,
    } = match run_pass(image, ctx, &handle, place, &desired, access).await {
        Ok(run) => run,
        Err(err) => {
            let again = ctx.backoff(&who);
            return Ok((report(None, None, super::failure_outcome(&err)), again));
        }
    };
    let (outcome, again) = outcome_of(image, ctx, &result);
    let herald = events::Herald::of(image, ctx).about_target(&target.name);
    events::publish_effects(&herald, &result).await;
    let before = previous.transfer.as_ref();
    events::publish_transfer_end(&herald, image, before, transfer.as_ref(), failure_reason).await;
    Ok((report(result.image.as_ref(), transfer, outcome), again))
}

/// A target's report, its status built from `outcome` as a one-cloud Image's is.
fn target_report(
    image: &Image,
    (name, reference, region): TargetPlace<'_>,
    previous: &ImageStatus,
    glance: Option<&crate::glance::GlanceImage>,
    transfer: Option<TransferStatus>,
    outcome: Outcome,
) -> TargetReport {
    let status = status::build(StatusInput {
        generation: image.meta().generation,
        previous: Some(previous),
        id: glance.map(|glance| glance.id.clone()),
        image: glance,
        transfer,
        outcome: outcome.clone(),
        handled_request: None,
        now: Time(jiff::Timestamp::now()),
    });
    TargetReport {
        name: name.to_string(),
        cloud_credentials_ref: reference.clone(),
        region: region.map(str::to_string),
        status,
        outcome,
    }
}

/// Status entries of targets spec.targets no longer names: each still has its image.
fn removed_targets(image: &Image) -> Vec<crate::crd::TargetStatus> {
    let named = |name: &str| image.spec.targets.iter().any(|target| target.name == name);
    image
        .status
        .as_ref()
        .map(|status| {
            status
                .targets
                .iter()
                .filter(|entry| !named(&entry.name))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes (or, with onDelete: detach, leaves) the image of a target that left the list.
/// `None` once it is gone from Glance's side; else the report that keeps its entry.
async fn remove_target(
    image: &Image,
    ctx: &Context,
    uid: &str,
    gone: &crate::crd::TargetStatus,
) -> Option<TargetReport> {
    let previous = previous_of(image, &gone.name);
    let keep = |outcome: Outcome| {
        Some(target_report(
            image,
            gone.place(),
            &previous,
            None,
            None,
            outcome,
        ))
    };
    if image.spec.on_delete() == OnDelete::Detach {
        return None;
    }
    let who = identity(uid, &gone.name);
    let handle = match ctx
        .clouds
        .resolve_target(&ctx.client, image, UserKind::Image, gone.place())
        .await
    {
        Ok(handle) => handle,
        // A target that never reached its cloud (its Secret never there, say) has no image
        // glint knows of, and nothing to look for it with.
        Err(_) if gone.id.is_none() && ctx.created_id(&who, None).is_none() => return None,
        Err(err) => {
            return keep(Outcome::Progressing {
                reason: Reason::DeletionBlocked,
                message: format!(
                    "cannot delete its image yet: {err}. Fix that, or set spec.onDelete: detach to leave the image in Glance"
                ),
            });
        }
    };
    // An image whose create status never recorded (the object deleted in between) is found
    // by the id derived from the identity, or by its ownership mark.
    let remembered = ctx.created_id(&who, gone.id.as_deref());
    let first = crate::pass::observe::derived_id(&who, 0);
    let known_id = gone
        .id
        .as_deref()
        .or(remembered.as_deref())
        .unwrap_or(&first);
    let spec = ImageSpec {
        cloud_credentials_ref: Some(gone.cloud_credentials_ref.clone()),
        targets: Vec::new(),
        ..image.spec.clone()
    };
    let subject = Subject {
        uid: &who,
        spec: &spec,
        known_id: Some(known_id),
        fresh: true,
        seen: None,
    };
    match pass::remove(handle.client.as_ref(), &handle.transfers, subject, false).await {
        Ok(effects) => {
            let herald = events::Herald::of(image, ctx).about_target(&gone.name);
            events::publish_all(&herald, &effects).await;
            match effects.iter().find_map(|effect| match effect {
                act::Effect::KeptInUse { id, why, .. } => Some((id.clone(), why.clone())),
                _ => None,
            }) {
                Some((id, why)) => keep(Outcome::Progressing {
                    reason: Reason::InUse,
                    message: format!(
                        "Glance image {id} is still in use ({why}), so glint did not delete it: it hid it and tries again every {} minutes",
                        IN_USE_RETRY.as_secs() / 60
                    ),
                }),
                None => None,
            }
        }
        Err(err) => keep(Outcome::Progressing {
            reason: Reason::DeletionBlocked,
            message: format!(
                "cannot delete its image yet: {err}. Fix that, or set spec.onDelete: detach to leave the image in Glance"
            ),
        }),
    }
}

/// Deleting the object: every target's image (those in spec and those still in status),
/// then the finalizer goes.
pub(super) async fn finalize(
    image: &Image,
    ctx: &Context,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let managed = image.spec.policy() == ManagementPolicy::Managed;
    let mut waiting = Vec::new();
    if managed && image.spec.on_delete() == OnDelete::Delete {
        let mut entries = image
            .status
            .as_ref()
            .map(|status| status.targets.clone())
            .unwrap_or_default();
        // A target in spec whose entry status never got (its image made, the write not).
        for target in &image.spec.targets {
            if !entries.iter().any(|entry| entry.name == target.name) {
                entries.push(crate::crd::TargetStatus {
                    name: target.name.clone(),
                    cloud_credentials_ref: target.cloud_credentials_ref.clone(),
                    region: target.region.clone(),
                    ..crate::crd::TargetStatus::default()
                });
            }
        }
        for entry in &entries {
            if let Some(report) = remove_target(image, ctx, uid, entry).await {
                waiting.push(report);
            }
        }
    }
    if waiting.is_empty() {
        remove_finalizer(image, ctx).await?;
        ctx.clouds.forget(uid);
        ctx.forget_object(uid);
        ctx.wakeups.forget_waiter(&wakeups::Waiter::of(image));
        return Ok(Action::await_change());
    }
    let status = targets_status::build(
        image.meta().generation,
        image.status.as_ref(),
        &waiting,
        None,
        Time(jiff::Timestamp::now()),
    );
    write_status(image, ctx, &status).await?;
    Ok(Action::requeue(IN_USE_RETRY))
}
