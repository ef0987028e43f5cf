//! The ImageSeries driver for spec.targets: one check of the mirror, then each target's
//! rotation exactly as a one-cloud series' ([`super::series_rotation`]): its own cloud
//! handle, `uid/target` as the owner of its versions, spec.image with the target's overrides,
//! and each release downloaded once for every target (`Desired::share`). status.targets has
//! each target's versions and conditions; the object's conditions sum them up.
//!
//! A target that leaves spec.targets keeps its status entry until its versions are deleted;
//! deleting the series deletes every target's versions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::controller::Action;

use super::clouds::{CloudHandle, UserKind};
use super::events::Herald;
use super::objects::{add_finalizer, has_finalizer, write_status};
use super::series_check::check;
use super::series_delete::{delete_all, hold, in_use_message, release};
use super::series_parts::{checked_status, record, requeue_after, retry_request};
use super::series_rotation::{Rotation, Scope, current_id, rotate};
use super::{Context, IN_USE_RETRY, MAX_RESYNC, ReconcileError, failure_outcome};
use crate::crd::{
    ImageSeries, ImageSeriesSpec, ImageSeriesStatus, SeriesTargetStatus, Target, TargetPlace,
};
use crate::pass::status::{Outcome, kstatus_conditions};
use crate::pass::targets_status::{Summary, combined, count_ready};
use crate::reason::Reason;

/// The owner of one target's versions, and its user name in the cloud registry.
fn identity(uid: &str, target: &str) -> String {
    format!("{uid}/{target}")
}

/// A target whose rotation ran, kept for what comes after the status write.
struct Rotated {
    index: usize,
    who: String,
    view: ImageSeriesSpec,
    handle: Arc<CloudHandle>,
    rotation: Rotation,
}

/// One target's status entry and outcome.
struct Entry {
    status: SeriesTargetStatus,
    outcome: Outcome,
}

/// Reconciles every target of `series`, then writes the one status.
pub(super) async fn apply(
    series: &ImageSeries,
    ctx: &Context,
    uid: &str,
    key: &str,
) -> Result<Action, ReconcileError> {
    if series.meta().deletion_timestamp.is_some() {
        return finalize(series, ctx, uid, key).await;
    }
    let previous = series.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    // One check of the mirror for every target: the releases are the same everywhere.
    let checked = check(series, ctx, &previous, now).await;
    let requested_retry = retry_request(series, &previous);
    let generation = series.meta().generation;
    let entry = |place: TargetPlace, before: &SeriesTargetStatus, outcome: Outcome| Entry {
        status: SeriesTargetStatus {
            name: place.0.to_string(),
            cloud_credentials_ref: place.1.clone(),
            region: place.2.map(str::to_string),
            conditions: kstatus_conditions(&outcome, generation, &Time(now), &before.conditions),
            ..before.clone()
        },
        outcome,
    };
    let mut finalized = has_finalizer(series);
    let mut entries = Vec::new();
    let mut rotated = Vec::new();
    let mut next = Duration::MAX;
    for target in &series.spec.targets {
        let place = target.place();
        let who = identity(uid, &target.name);
        let before = previous_entry(&previous, &target.name);
        let handle = match ctx
            .clouds
            .resolve_target(&ctx.client, series, UserKind::Series, place)
            .await
        {
            Ok(handle) => handle,
            Err(err) => {
                next = next.min(if err.is_transient() {
                    ctx.backoff(&who)
                } else {
                    MAX_RESYNC
                });
                entries.push(entry(place, &before, failure_outcome(&err)));
                continue;
            }
        };
        // As for one cloud: the finalizer goes on right before the first Glance call.
        if !finalized {
            add_finalizer(series, ctx).await?;
            finalized = true;
        }
        let view = series.spec.for_target(target);
        let herald = Herald::of(series, ctx).about_target(&target.name);
        let scope = Scope {
            series,
            spec: &view,
            ctx,
            handle: &handle,
            key,
            identity: &who,
            herald: &herald,
            share: Some(uid),
        };
        let retry_asked = requested_retry.is_some();
        match rotate(&scope, &checked, retry_asked, before.current.as_deref()).await {
            Ok(rotation) => {
                let outcome = rotation.outcome(&checked);
                let created = rotation.created;
                let mut done = entry(place, &before, outcome);
                done.status.current = rotation.current.clone();
                done.status.versions = rotation.versions.clone();
                let again = requeue_after(&done.outcome, &checked, created, ctx, &who, now);
                next = next.min(if rotation.any_kept {
                    again.min(IN_USE_RETRY)
                } else {
                    again
                });
                rotated.push(Rotated {
                    index: entries.len(),
                    who,
                    view,
                    handle,
                    rotation,
                });
                entries.push(done);
            }
            Err(err) => {
                next = next.min(ctx.backoff(&who));
                entries.push(entry(place, &before, failure_outcome(&err)));
            }
        }
    }
    for gone in removed_targets(series, &previous) {
        let place = gone.place();
        match remove_target(series, ctx, uid, key, place).await {
            Some(outcome) => {
                next = next.min(IN_USE_RETRY);
                entries.push(entry(place, &gone, outcome));
            }
            None => ctx.clouds.forget_target(uid, &gone.name),
        }
    }
    let images = rotated.iter().map(|done| done.rotation.images).sum();
    let mut status = targets_status(series, &checked, &previous, requested_retry, &entries, now);
    record(series, ctx, images, &status);
    // The targets' Events go beside the status write, as for one cloud.
    let news = async {
        for done in &rotated {
            let name = &entries[done.index].status.name;
            let herald = Herald::of(series, ctx).about_target(name);
            done.rotation.announce(&herald).await;
        }
    };
    let ((), written) = tokio::join!(news, write_status(series, ctx, &status));
    written?;
    let mut kept_now = false;
    for done in &mut rotated {
        let herald = Herald::of(series, ctx).about_target(&entries[done.index].status.name);
        let scope = Scope {
            series,
            spec: &done.view,
            ctx,
            handle: &done.handle,
            key,
            identity: &done.who,
            herald: &herald,
            share: Some(uid),
        };
        if done.rotation.finish(&scope).await {
            kept_now = true;
            next = next.min(IN_USE_RETRY);
            if let Some(line) = status.targets.get_mut(done.index) {
                line.versions = done.rotation.versions.clone();
            }
        }
    }
    if kept_now {
        // Rare (the first refusal of a version): a second write, so status names it now.
        write_status(series, ctx, &status).await?;
    }
    Ok(Action::requeue(if next == Duration::MAX {
        super::resync_after(ctx)
    } else {
        next
    }))
}

/// The object's status: the check's fields, each target's entry, the current version when
/// every target has the same one, the id map, and the conditions summing the targets up.
fn targets_status(
    series: &ImageSeries,
    checked: &super::series_check::Checked,
    previous: &ImageSeriesStatus,
    requested_retry: Option<String>,
    entries: &[Entry],
    now: jiff::Timestamp,
) -> ImageSeriesStatus {
    let image_ids: BTreeMap<String, String> = entries
        .iter()
        .filter_map(|entry| {
            let id = current_id(entry.status.current.as_deref(), &entry.status.versions)?;
            Some((entry.status.name.clone(), id))
        })
        .collect();
    let summaries: Vec<Summary> = entries
        .iter()
        .map(|entry| Summary {
            name: &entry.status.name,
            outcome: &entry.outcome,
            image_id: image_ids.get(&entry.status.name).map(String::as_str),
        })
        .collect();
    let outcome = combined(&summaries);
    let targets_ready = Some(count_ready(&summaries));
    drop(summaries);
    let named: Vec<&SeriesTargetStatus> = entries
        .iter()
        .map(|entry| &entry.status)
        .filter(|status| series.spec.targets.iter().any(|t| t.name == status.name))
        .collect();
    ImageSeriesStatus {
        conditions: kstatus_conditions(
            &outcome,
            series.meta().generation,
            &Time(now),
            &previous.conditions,
        ),
        current: common_current(&named),
        targets: entries.iter().map(|entry| entry.status.clone()).collect(),
        image_ids,
        targets_ready,
        ..checked_status(series, checked, previous, requested_retry)
    }
}

/// The version current in every target; none while they differ (a release that reached
/// some clouds and not yet others).
fn common_current(targets: &[&SeriesTargetStatus]) -> Option<String> {
    let first = targets.first()?.current.clone()?;
    targets
        .iter()
        .all(|target| target.current.as_deref() == Some(first.as_str()))
        .then_some(first)
}

/// A target's entry as the last status had it (empty for a new target).
fn previous_entry(previous: &ImageSeriesStatus, target: &str) -> SeriesTargetStatus {
    previous
        .targets
        .iter()
        .find(|entry| entry.name == target)
        .cloned()
        .unwrap_or_default()
}

/// Status entries of targets spec.targets no longer names: each may still hold versions.
fn removed_targets(series: &ImageSeries, previous: &ImageSeriesStatus) -> Vec<SeriesTargetStatus> {
    let named = |name: &str| series.spec.targets.iter().any(|target| target.name == name);
    previous
        .targets
        .iter()
        .filter(|entry| !named(&entry.name))
        .cloned()
        .collect()
}

/// Deletes the versions of a target that left the list. `None` once none is left; else the
/// outcome that keeps its entry (a version in use, or a cloud glint cannot reach).
async fn remove_target(
    series: &ImageSeries,
    ctx: &Context,
    uid: &str,
    key: &str,
    place: TargetPlace<'_>,
) -> Option<Outcome> {
    match delete_target(series, ctx, uid, key, place).await {
        Ok(kept) if kept.is_empty() => None,
        Ok(kept) => Some(Outcome::Progressing {
            reason: Reason::InUse,
            message: format!(
                "left spec.targets, but {} of its versions are still in use: {}; glint hid them and tries again every {} minutes",
                kept.len(),
                kept.join("; "),
                IN_USE_RETRY.as_secs() / 60
            ),
        }),
        Err(err) => Some(Outcome::Progressing {
            reason: Reason::DeletionBlocked,
            message: format!("left spec.targets, but glint cannot delete its versions yet: {err}"),
        }),
    }
}

/// Deletes every version a target holds; the ones Glance keeps because they are in use.
async fn delete_target(
    series: &ImageSeries,
    ctx: &Context,
    uid: &str,
    key: &str,
    place: TargetPlace<'_>,
) -> Result<Vec<String>, ReconcileError> {
    let handle = ctx
        .clouds
        .resolve_target(&ctx.client, series, UserKind::Series, place)
        .await?;
    delete_all(series, &handle, key, &identity(uid, place.0)).await
}

/// Deleting the series: every target's versions (those in spec and those still in status),
/// then the finalizer goes.
async fn finalize(
    series: &ImageSeries,
    ctx: &Context,
    uid: &str,
    key: &str,
) -> Result<Action, ReconcileError> {
    let previous = series.status.clone().unwrap_or_default();
    let mut places: Vec<TargetPlace> = series.spec.targets.iter().map(Target::place).collect();
    for entry in &previous.targets {
        if !places.iter().any(|place| place.0 == entry.name) {
            places.push(entry.place());
        }
    }
    let mut kept = Vec::new();
    let mut blocked = Vec::new();
    for place in places {
        match delete_target(series, ctx, uid, key, place).await {
            Ok(lines) => kept.extend(
                lines
                    .into_iter()
                    .map(|line| format!("target {}: {line}", place.0)),
            ),
            Err(err) => blocked.push(format!("target {}: {err}", place.0)),
        }
    }
    if !blocked.is_empty() {
        let message = format!(
            "the series is being deleted, but glint cannot delete every target's versions yet: {}",
            blocked.join("; ")
        );
        return hold(series, ctx, Reason::DeletionBlocked, &message).await;
    }
    if !kept.is_empty() {
        return hold(series, ctx, Reason::InUse, &in_use_message(&kept)).await;
    }
    release(series, ctx, uid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, current: Option<&str>) -> SeriesTargetStatus {
        SeriesTargetStatus {
            name: name.to_string(),
            current: current.map(str::to_string),
            ..SeriesTargetStatus::default()
        }
    }

    #[test]
    fn the_series_names_a_current_version_only_when_every_target_has_it() {
        let cases: &[(&[Option<&str>], Option<&str>)] = &[
            (&[Some("2"), Some("2")], Some("2")),
            (&[Some("2"), Some("1")], None),
            (&[Some("2"), None], None),
            (&[None, None], None),
            (&[Some("1")], Some("1")),
            (&[], None),
        ];
        for (currents, expected) in cases {
            let targets: Vec<SeriesTargetStatus> = currents
                .iter()
                .enumerate()
                .map(|(n, current)| target(&format!("t{n}"), *current))
                .collect();
            let refs: Vec<&SeriesTargetStatus> = targets.iter().collect();
            assert_eq!(common_current(&refs).as_deref(), *expected, "{currents:?}");
        }
    }
}
