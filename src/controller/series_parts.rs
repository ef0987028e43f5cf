//! What both ImageSeries drivers (one cloud, and spec.targets) need beside the rotation: the
//! status fields that come from the check of the mirror, the series' metrics, when to come
//! back, and whether the retry annotation asks for a retry.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::series_check::{Checked, until_next_check};
use super::series_rotation::check_is_retried;
use super::{CREATED_REQUEUE, Context, PROGRESS_REQUEUE};
use crate::crd::{ImageSeries, ImageSeriesStatus};
use crate::marks::RETRY_ANNOTATION;
use crate::pass::status::Outcome;

/// The status fields that come from the series and its check, not from a cloud.
pub(super) fn checked_status(
    series: &ImageSeries,
    checked: &Checked,
    previous: &ImageSeriesStatus,
    requested_retry: Option<String>,
) -> ImageSeriesStatus {
    ImageSeriesStatus {
        observed_generation: series.meta().generation,
        releases: checked.releases.clone(),
        last_check: checked.last_check.clone(),
        next_check: checked.next_check.map(Time),
        last_retry: requested_retry.or(previous.last_retry.clone()),
        // A refresh whose check the mirror failed for now is not handled yet: the next pass
        // reads the mirror again, instead of calling the old release current.
        last_handled_reconcile_at: match &checked.problem {
            Some((reason, _)) if check_is_retried(*reason) => {
                previous.last_handled_reconcile_at.clone()
            }
            _ => series.annotations().get(super::REFRESH_ANNOTATION).cloned(),
        },
        ..ImageSeriesStatus::default()
    }
}

/// The series' metrics: how many versions glint holds for it, and when it last checked.
pub(super) fn record(
    series: &ImageSeries,
    ctx: &Context,
    images: usize,
    status: &ImageSeriesStatus,
) {
    ctx.metrics.series.record(
        &series.namespace().unwrap_or_default(),
        &series.name_any(),
        images,
        status
            .last_check
            .as_ref()
            .map(|at| at.0.as_millisecond() as f64 / 1000.0),
    );
}

/// When to come back after a rotation that ended in `outcome`.
pub(super) fn requeue_after(
    outcome: &Outcome,
    checked: &Checked,
    created: bool,
    ctx: &Context,
    who: &str,
    now: jiff::Timestamp,
) -> Duration {
    match (outcome, &checked.problem) {
        (Outcome::Progressing { .. }, Some(_)) => ctx.backoff(who),
        // A create was the whole pass of that version: come back at once for the rest.
        (Outcome::Progressing { .. }, None) if created => CREATED_REQUEUE,
        (Outcome::Progressing { .. }, None) => PROGRESS_REQUEUE,
        _ => until_next_check(checked, ctx, now),
    }
}

/// The retry annotation's value, when it asks for a retry glint has not made yet.
pub(super) fn retry_request(series: &ImageSeries, previous: &ImageSeriesStatus) -> Option<String> {
    let asked = series.annotations().get(RETRY_ANNOTATION)?;
    (previous.last_retry.as_ref() != Some(asked)).then(|| asked.clone())
}
