//! The ImageSeries reconcile of `glint run`. Like an Image's: the finalizer first, then one
//! pass that never waits on data, then one status patch (only on change) and Events.
//!
//! The pass: the releases (read again from the checksums file when spec.schedule says a check
//! is due, else the ones the last check found, kept in status), then the rotation in the
//! series' cloud ([`super::series_rotation`]), or in each of its spec.targets
//! ([`super::series_targets`]). Transfers run in their own tasks; a version whose data has
//! just arrived is promoted by the next pass, so the stable name moves only to an image that
//! is active and verified.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::clouds::UserKind;
use super::events::Herald;
use super::objects::{add_finalizer, has_finalizer, write_status};
use super::series_check::check;
use super::series_delete::finalize;
use super::series_parts::{checked_status, record, requeue_after, retry_request};
use super::series_rotation::{Scope, rotate};
use super::{Context, IN_USE_RETRY, ReconcileError, failure_outcome};
use crate::crd::{ImageSeries, ImageSeriesStatus};
use crate::pass::status::kstatus_conditions;

pub use crate::marks::RETRY_ANNOTATION;

/// Reconciles one ImageSeries.
pub async fn reconcile_series(
    series: Arc<ImageSeries>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let uid = series
        .uid()
        .ok_or(ReconcileError::Incomplete("metadata.uid"))?;
    let namespace = series.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", series.name_any());
    if series.meta().deletion_timestamp.is_some() && !has_finalizer(series.as_ref()) {
        return Ok(Action::await_change());
    }
    let Some(reference) = &series.spec.cloud_credentials_ref else {
        return super::series_targets::apply(&series, &ctx, &uid, &key).await;
    };
    let handle = match ctx
        .clouds
        .resolve_for(
            &ctx.client,
            &namespace,
            reference,
            None,
            Some((uid.clone(), UserKind::Series)),
        )
        .await
    {
        Ok(handle) => handle,
        Err(err) => return stall(&series, &ctx, err).await,
    };
    if series.meta().deletion_timestamp.is_some() {
        return finalize(&series, &ctx, &handle, &key, &uid).await;
    }
    if !has_finalizer(series.as_ref()) {
        add_finalizer(series.as_ref(), &ctx).await?;
    }
    let previous = series.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let checked = check(&series, &ctx, &previous, now).await;
    let requested_retry = retry_request(&series, &previous);
    let herald = Herald::of(series.as_ref(), &ctx);
    let scope = Scope {
        series: &series,
        spec: &series.spec,
        ctx: &ctx,
        handle: &handle,
        key: &key,
        identity: &uid,
        herald: &herald,
        share: None,
    };
    let mut rotation = rotate(
        &scope,
        &checked,
        requested_retry.is_some(),
        previous.current.as_deref(),
    )
    .await?;
    let outcome = rotation.outcome(&checked);
    let status = ImageSeriesStatus {
        conditions: kstatus_conditions(
            &outcome,
            series.meta().generation,
            &Time(now),
            &previous.conditions,
        ),
        current: rotation.current.clone(),
        versions: rotation.versions.clone(),
        ..checked_status(&series, &checked, &previous, requested_retry)
    };
    record(&series, &ctx, rotation.images, &status);
    // Events and the status write are independent requests: sent together, the new current
    // version is in status one apiserver round trip sooner.
    let ((), written) = tokio::join!(
        rotation.announce(&herald),
        write_status(series.as_ref(), &ctx, &status)
    );
    written?;
    if rotation.finish(&scope).await {
        // Rare (the first refusal of a version): a second write, so status names it now.
        let status = ImageSeriesStatus {
            versions: rotation.versions.clone(),
            ..status
        };
        write_status(series.as_ref(), &ctx, &status).await?;
    }
    let after = requeue_after(&outcome, &checked, rotation.created, &ctx, &uid, now);
    Ok(Action::requeue(if rotation.any_kept {
        after.min(IN_USE_RETRY)
    } else {
        after
    }))
}

/// Status for a reconcile that could not reach the cloud: Stalled or retrying, as for an Image.
async fn stall(
    series: &ImageSeries,
    ctx: &Context,
    err: ReconcileError,
) -> Result<Action, ReconcileError> {
    let previous = series.status.clone().unwrap_or_default();
    let outcome = failure_outcome(&err);
    let status = ImageSeriesStatus {
        observed_generation: series.meta().generation,
        conditions: kstatus_conditions(
            &outcome,
            series.meta().generation,
            &Time(jiff::Timestamp::now()),
            &previous.conditions,
        ),
        ..previous.clone()
    };
    write_status(series, ctx, &status).await?;
    if err.is_transient() {
        Err(err)
    } else {
        Ok(Action::await_change())
    }
}
