//! An ImageSeries' check of its mirror: when one is due, reading the releases it publishes;
//! otherwise the releases status holds.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::Context;
use crate::crd::{ImageSeries, ImageSeriesStatus, SeriesRelease};
use crate::reason::Reason;
use crate::series;

/// The releases this pass works with, and how the check (if one was due) went.
#[derive(Default)]
pub(super) struct Checked {
    pub(super) releases: Vec<SeriesRelease>,
    pub(super) last_check: Option<Time>,
    /// When the next check is due (none for listed releases, which only an edit changes).
    pub(super) next_check: Option<jiff::Timestamp>,
    pub(super) problem: Option<(Reason, String)>,
    /// What the check stepped over on the mirror (folders not complete yet), for status.
    pub(super) skipped: Vec<String>,
    /// Whether this pass read the mirror (a check was due and answered).
    pub(super) fetched: bool,
}

/// Reads the releases again when a check is due (a listed series always is: it costs nothing),
/// else keeps the ones status holds. A failed check keeps them too.
pub(super) async fn check(
    series: &ImageSeries,
    ctx: &Context,
    previous: &ImageSeriesStatus,
    now: jiff::Timestamp,
) -> Checked {
    let refresh = series.annotations().get(super::REFRESH_ANNOTATION);
    let edited = series.meta().generation != previous.observed_generation
        || refresh != previous.last_handled_reconcile_at.as_ref();
    let Some(source) = &series.spec.checksums else {
        // Listed releases are read from the spec: a "check" is an edit.
        let last_check = match &previous.last_check {
            Some(at) if !edited => Some(at.clone()),
            _ => Some(Time(now)),
        };
        return Checked {
            releases: series.spec.versions.clone(),
            last_check,
            next_check: None,
            problem: None,
            ..Checked::default()
        };
    };
    let next = match previous
        .last_check
        .as_ref()
        .map(|at| series::next_check(&series.spec, at.0))
    {
        None => None,
        Some(Ok(next)) => next,
        Some(Err(err)) => {
            return Checked {
                releases: previous.releases.clone(),
                last_check: previous.last_check.clone(),
                next_check: None,
                problem: Some((Reason::InvalidSchedule, err.to_string())),
                ..Checked::default()
            };
        }
    };
    let due = previous.last_check.is_none() || next.is_some_and(|next| now >= next);
    if !(due || edited) {
        return Checked {
            releases: previous.releases.clone(),
            last_check: previous.last_check.clone(),
            next_check: next,
            problem: None,
            ..Checked::default()
        };
    }
    let next_after = |at: jiff::Timestamp| series::next_check(&series.spec, at).ok().flatten();
    let keys = match &source.signature {
        None => None,
        Some(signature) => {
            let namespace = series.namespace().unwrap_or_default();
            match super::trusted_keys::load(&ctx.client, &namespace, &signature.keys).await {
                Ok(keys) => Some(keys),
                Err(problem) => {
                    return Checked {
                        releases: previous.releases.clone(),
                        last_check: previous.last_check.clone(),
                        next_check: next_after(now),
                        problem: Some(problem),
                        ..Checked::default()
                    };
                }
            }
        }
    };
    let fetched = series::discover::published(
        source,
        ctx.settings.source_policy.clone(),
        series.spec.keep(),
        keys.as_ref(),
    )
    .await
    .map_err(|err| (err.reason(), err.to_string()));
    match fetched {
        Ok(found) => Checked {
            releases: found.releases.iter().map(SeriesRelease::from).collect(),
            last_check: Some(Time(now)),
            next_check: next_after(now),
            problem: None,
            skipped: found.skipped,
            fetched: true,
        },
        Err(problem) => Checked {
            releases: previous.releases.clone(),
            last_check: previous.last_check.clone(),
            next_check: next_after(now),
            problem: Some(problem),
            ..Checked::default()
        },
    }
}

/// How long until the next check (listed releases: the resync period, in case Glance drifts).
pub(super) fn until_next_check(checked: &Checked, ctx: &Context, now: jiff::Timestamp) -> Duration {
    checked
        .next_check
        .and_then(|next| Duration::try_from(next.duration_since(now)).ok())
        .unwrap_or_else(|| super::resync_after(ctx))
        .clamp(
            Duration::from_secs(1),
            super::resync_after(ctx).max(Duration::from_secs(1)),
        )
}
