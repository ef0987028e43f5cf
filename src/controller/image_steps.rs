//! The steps of an Image's reconcile that a one-cloud Image and each of an Image's targets
//! share: the pass itself with what surrounds it, whether to read Glance afresh, what a
//! transfer may need from Secrets, how a pass ends in words and requeue, and the status write
//! after a failure.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use secrecy::SecretString;

use super::objects::write_status;
use super::{
    CREATED_REQUEUE, Context, MAX_RESYNC, MIN_RESYNC, PROGRESS_REQUEUE, REFRESH_ANNOTATION,
    ReconcileError, events, failure_outcome, wakeups,
};
use crate::crd::{Image, ImageSpec, TransferStatus, parse_duration};
use crate::pass::observe::Subject;
use crate::pass::plan::{Desired, Progress};
use crate::pass::status::{self, Outcome, StatusInput};
use crate::pass::{self, PassResult, act};
use crate::reason::Reason;
use crate::transfer::{SourceAccess, TransferState, Transfers};

/// Whether this reconcile must read Glance directly: the spec changed since status was
/// written, or a refresh was requested with [`REFRESH_ANNOTATION`].
pub(super) fn wants_fresh_read(image: &Image) -> bool {
    let status = image.status.as_ref();
    let edited = image.meta().generation != status.and_then(|s| s.observed_generation);
    let requested = image.annotations().get(REFRESH_ANNOTATION)
        != status.and_then(|s| s.last_handled_reconcile_at.as_ref());
    edited || requested
}

/// While the object's work goes on, the end of a transfer into its image wakes it; after
/// that, nothing does.
fn keep_waiting(
    ctx: &Context,
    waiter: wakeups::Waiter,
    known_id: Option<&str>,
    result: &PassResult,
) {
    let current = result.image.as_ref().map(|glance| glance.id.as_str());
    if let Some(id) = known_id.filter(|known| Some(*known) != current) {
        ctx.wakeups.forget(id);
    }
    if let Some(id) = current {
        match result.progress {
            Progress::Working { .. } => ctx.wakeups.wait_for(id, waiter),
            Progress::InSync | Progress::Blocked { .. } => ctx.wakeups.forget(id),
        }
    }
}

/// One pass, and what its end says about the transfer.
pub(super) struct PassRun {
    pub result: PassResult,
    pub transfer: Option<TransferStatus>,
    /// Why the transfer's last attempt failed, when it did.
    pub failure_reason: Option<Reason>,
}

/// One pass of `spec` against `handle` as `who` (an Image's uid, or `uid/target`): the id
/// status or this process knows, the wakeup registered before the pass (a transfer it starts
/// may end before the pass returns), created ids remembered, the transfer read after it, and
/// the wakeups kept or dropped for what the pass left running.
pub(super) async fn run_pass(
    image: &Image,
    ctx: &Context,
    handle: &super::CloudHandle,
    (who, spec, status_id): (&str, &ImageSpec, Option<&str>),
    desired: &Desired,
    access: &SourceAccess,
) -> Result<PassRun, ReconcileError> {
    let remembered = ctx.created_id(who, status_id);
    let known_id = remembered.as_deref().or(status_id);
    let subject = Subject {
        uid: who,
        spec,
        known_id,
        fresh: wants_fresh_read(image),
        seen: None,
    };
    let waiter = wakeups::Waiter::of(image);
    if let Some(id) = known_id {
        ctx.wakeups.wait_for(id, waiter.clone());
    }
    let api = handle.client.as_ref();
    let result = pass::sync(api, &handle.transfers, subject, desired, access).await?;
    for effect in &result.effects {
        if let act::Effect::Created { id } | act::Effect::Adopted { id } = effect {
            ctx.remember_created(who, id);
        }
    }
    let (transfer, failure_reason) = match result.image.as_ref() {
        Some(glance) => {
            let reason = match handle.transfers.state(&glance.id) {
                TransferState::Failed { reason, .. } => Some(reason),
                _ => None,
            };
            (handle.transfers.progress(&glance.id), reason)
        }
        None => (None, None),
    };
    keep_waiting(ctx, waiter, known_id, &result);
    Ok(PassRun {
        result,
        transfer,
        failure_reason,
    })
}

/// What a transfer may need beyond the spec, read only while data may still have to flow (no
/// image yet, or one still queued): the source's credentials from spec.source.secretRef, and
/// the OpenPGP keys spec.source.hashFrom.signature trusts.
pub(super) async fn source_access(
    image: &Image,
    ctx: &Context,
) -> Result<SourceAccess, ReconcileError> {
    let Some(source) = image.spec.source.as_ref() else {
        return Ok(SourceAccess::default());
    };
    let has_data = image
        .status
        .as_ref()
        .and_then(|status| status.glance.as_ref()?.status.as_ref())
        .is_some_and(|status| {
            matches!(
                status,
                crate::glance::GlanceStatus::Active | crate::glance::GlanceStatus::Deactivated
            )
        });
    if has_data {
        return Ok(SourceAccess::default());
    }
    let namespace = image.namespace().unwrap_or_default();
    let mut access = match &source.secret_ref {
        Some(reference) => secret_access(ctx, &namespace, &reference.name).await?,
        None => SourceAccess::default(),
    };
    if let Some(signature) = source.hash_signature() {
        let keys = super::trusted_keys::load(&ctx.client, &namespace, &signature.keys)
            .await
            .map_err(|(reason, message)| ReconcileError::TrustedKeys { reason, message })?;
        access.trusted_keys = Some(std::sync::Arc::new(keys));
    }
    Ok(access)
}

/// The credentials in the source's Secret `name`.
async fn secret_access(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<SourceAccess, ReconcileError> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.client.clone(), namespace);
    let secret =
        secrets
            .get_opt(name)
            .await?
            .ok_or_else(|| ReconcileError::SourceSecretNotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_string())
    };
    let access = SourceAccess {
        authorization: text("authorization").map(SecretString::from),
        basic: text("username").zip(text("password").map(SecretString::from)),
        ca_bundle: data.get("ca.crt").map(|bytes| bytes.0.clone()),
        ..SourceAccess::default()
    };
    if access == SourceAccess::default() {
        return Err(ReconcileError::SourceSecretInvalid {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    Ok(access)
}

/// Status and an Event for a failed reconcile; transient errors go back to the controller
/// for a retry with backoff, the others wait for a change.
pub(super) async fn report_failure(
    image: &Image,
    ctx: &Context,
    err: ReconcileError,
) -> Result<Action, ReconcileError> {
    report(image, ctx, None, None, failure_outcome(&err)).await?;
    events::publish_warning(image, ctx, err.reason(), err.to_string()).await;
    if err.is_transient() {
        Err(err)
    } else {
        // Nothing changes until the spec or the Secret does; both are watched.
        Ok(Action::await_change())
    }
}

pub(super) fn outcome_of(image: &Image, ctx: &Context, result: &PassResult) -> (Outcome, Duration) {
    match &result.progress {
        Progress::InSync => {
            let reason = if result.imported {
                Reason::Observed
            } else {
                Reason::Synced
            };
            let message = match &result.image {
                Some(glance) => format!(
                    "Glance image {} is {} and matches the spec{}",
                    glance.id,
                    glance.status,
                    stored_format_note(image, glance)
                ),
                None => "the image matches the spec".to_string(),
            };
            (
                Outcome::Ready { reason, message },
                resync_period(image, ctx),
            )
        }
        Progress::Working { reason, message } => (
            Outcome::Progressing {
                reason: *reason,
                message: message.clone(),
            },
            // A create was the whole pass: come back at once for the rest.
            if result.created_and_stopped() {
                CREATED_REQUEUE
            } else {
                PROGRESS_REQUEUE
            },
        ),
        Progress::Blocked { reason, message } => (
            Outcome::Stalled {
                reason: *reason,
                message: message.clone(),
            },
            // Edits and Secret changes retrigger at once; the resync notices changes made in
            // Glance (an image back in a known status).
            resync_period(image, ctx),
        ),
    }
}

/// Glance stores some images in another format than the spec declares (its import converted
/// them): Ready says so, since that is what servers boot.
fn stored_format_note(image: &Image, glance: &crate::glance::GlanceImage) -> String {
    let declared = image.spec.disk_format.map(crate::glance::DiskFormat::from);
    let converter = match crate::transfer::Conversion::of(&image.spec) {
        Some(conversion) if conversion.by == crate::crd::ConversionBy::Glint => "glint",
        _ => "Glance",
    };
    match (&declared, &glance.disk_format) {
        (Some(declared), Some(stored)) if declared != stored => {
            format!(" (stored as {stored}: {converter} converted the {declared} data)")
        }
        _ => String::new(),
    }
}

pub(super) fn resync_period(image: &Image, ctx: &Context) -> Duration {
    image
        .spec
        .resync_period
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(ctx.settings.default_resync)
        .clamp(MIN_RESYNC, MAX_RESYNC)
}

/// Builds the Image's status from what the pass saw and writes it when it changed.
pub(super) async fn report(
    image: &Image,
    ctx: &Context,
    glance: Option<&crate::glance::GlanceImage>,
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
        handled_request: image.annotations().get(REFRESH_ANNOTATION).cloned(),
        now: Time(jiff::Timestamp::now()),
    });
    write_status(image, ctx, &new).await
}
