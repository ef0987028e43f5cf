//! The ImageSeries reconcile of `glint run`. Like an Image's: the finalizer first, then one
//! pass that never waits on data, then one status patch (only on change) and Events.
//!
//! The pass: the releases (read again from the checksums file when spec.schedule says a check
//! is due, else the ones the last check found, kept in status), what Glance holds, the rotation
//! [`series::plan`](crate::series::plan), one Image pass per kept version (retired ones first,
//! the current one last), and the deletions beyond keep. Transfers run in their own tasks; a
//! version whose data has just arrived is promoted by the next pass, so the stable name moves
//! only to an image that is active and verified.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::clouds::UserKind;
use super::objects::{add_finalizer, has_finalizer, write_status};
use super::series_check::{check, until_next_check};
use super::series_delete::{delete_version, finalize, kept_line};
use super::wakeups::Waiter;
use super::{
    CREATED_REQUEUE, Context, IN_USE_RETRY, PROGRESS_REQUEUE, ReconcileError, events,
    failure_outcome,
};
use crate::crd::{ImageSeries, ImageSeriesStatus, SeriesVersionStatus};
use crate::glance::{GlanceApi, GlanceImage};
use crate::pass;
use crate::pass::act::Effect;
use crate::pass::observe::Subject;
use crate::pass::plan::{Desired, Progress};
use crate::pass::status::{Outcome, kstatus_conditions};
use crate::reason::Reason;
use crate::series::plan::{Held, Removal, Role, VersionPlan};
use crate::series::{self, Release, observe::version_uid};
use crate::transfer::{SourceAccess, TransferState, Transfers};

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
    let handle = match ctx
        .clouds
        .resolve_for(
            &ctx.client,
            &namespace,
            &series.spec.cloud_credentials_ref,
            None,
            Some((uid.clone(), UserKind::Series)),
        )
        .await
    {
        Ok(handle) => handle,
        Err(err) => return stall(&series, &ctx, err).await,
    };
    let api = handle.client.as_ref();
    if series.meta().deletion_timestamp.is_some() {
        return finalize(&series, &ctx, &handle, &key, &uid).await;
    }
    if !has_finalizer(series.as_ref()) {
        add_finalizer(series.as_ref(), &ctx).await?;
    }
    let previous = series.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let checked = check(&series, &ctx, &previous, now).await;
    let releases: Vec<Release> = checked.releases.iter().map(Release::from).collect();
    let observe_error = |err: crate::glance::GlanceError| {
        ReconcileError::Pass(pass::PassError::Observe(err.into()))
    };
    let held = series::observe::held(api, &key, &uid)
        .await
        .map_err(observe_error)?;
    let held_only: Vec<Held> = held.iter().map(|(held, _)| held.clone()).collect();
    let stable = series
        .spec
        .image
        .name
        .clone()
        .unwrap_or_else(|| series.name_any());
    let requested_retry = retry_request(&series, &previous);
    let retry = to_retry(
        &held,
        &releases,
        &handle.transfers,
        requested_retry.is_some(),
        checked.fetched.then_some(&ctx.settings.source_policy),
    )
    .await;
    let plan = series::plan::plan(&series.spec, &stable, &key, &releases, &held_only, &retry);
    let object = series.object_ref(&());
    let mut problems = BTreeMap::new();
    // Each version's image as its pass leaves it (a pass answers with the image after its
    // changes), so status needs no second listing.
    let mut images: BTreeMap<String, GlanceImage> = held
        .iter()
        .map(|(held, image)| (held.version.clone(), image.clone()))
        .collect();

    // A version that goes gives up the stable name before the new current version takes it.
    // A replaced image is deleted now, before its new one is created; a version beyond keep
    // only has to step aside (a rename) and is deleted once status names the new current one:
    // Glance takes about a second to delete a 1 GiB image, which users would otherwise wait
    // for after the new release's data is in.
    // A version found in use earlier (servers, or Glance refusing the delete) is tried again now,
    // before status, so status says how that went.
    let mut name_still_held = false;
    let mut after_status = Vec::new();
    let mut kept = Vec::new();
    for (gone, why) in &plan.delete {
        let image = images.remove(&gone.version);
        handle.transfers.cancel(&gone.id);
        if *why == Removal::Replaced || (gone.in_use.is_some() && !gone.latest) {
            match delete_version(api, &ctx, &series, gone, *why).await {
                Ok(effect) => kept.extend(kept_line(gone, image.as_ref(), &effect)),
                Err(problem) => {
                    name_still_held |= gone.latest;
                    problems.insert(gone.version.clone(), problem);
                }
            }
            continue;
        }
        if gone.latest {
            let aside = series::plan::step_aside(&stable, gone);
            if let Err(err) = api.update_image(&gone.id, &aside).await {
                name_still_held = true;
                problems.insert(
                    gone.version.clone(),
                    format!(
                        "{}: could not rename it to give up the name: {err}",
                        err.reason()
                    ),
                );
                continue;
            }
        }
        after_status.push((gone, *why));
    }
    let mut ordered: Vec<&VersionPlan> = plan.versions.iter().collect();
    ordered.sort_by_key(|version| match version.role {
        Role::Retired => 0,
        Role::Pending => 1,
        Role::Current => 2,
    });
    let mut working = Vec::new();
    let standing = |version: &str| {
        held.iter()
            .find(|(held, _)| {
                held.version == version && !plan.delete.iter().any(|(gone, _)| gone.id == held.id)
            })
            .map(|(held, _)| held.id.clone())
    };
    // Mirrors publish their checksums file before the images it lists: a 404 is retried.
    let access = SourceAccess {
        missing_may_appear: true,
        ..SourceAccess::default()
    };
    let waiter = Waiter::of(series.as_ref());
    let mut created = false;
    for version in ordered {
        if version.role == Role::Current && name_still_held {
            // The old version could not give the stable name up: never two images with it.
            working.push(format!(
                "{}: waits for the stable name, which an older version could not give up yet",
                version.version
            ));
            continue;
        }
        let version_uid = version_uid(&uid, &version.version);
        let name = version.spec.name.clone().unwrap_or_default();
        let desired = Desired::from_spec(&version.spec, &name, &version_uid);
        let known = standing(&version.version);
        // Before the pass: a transfer it starts may end before the pass returns.
        if let Some(id) = &known {
            ctx.wakeups.wait_for(id, waiter.clone());
        }
        let subject = Subject {
            uid: &version_uid,
            spec: &version.spec,
            known_id: known.as_deref(),
            fresh: true,
        };
        // A series' releases are public downloads: no source credentials.
        match pass::sync(api, &handle.transfers, subject, &desired, &access).await {
            Ok(result) => {
                if let Some(image) = &result.image {
                    images.insert(version.version.clone(), image.clone());
                }
                // A version retired or pending whose rename did not happen (Glance refused
                // it, or the pass stopped before it) still carries the stable name.
                name_still_held |= version.role != Role::Current
                    && series::plan::carries_name(result.image.as_ref(), &stable);
                for effect in &result.effects {
                    if let Effect::Created { id } = effect {
                        let note = format!(
                            "release {} found; created Glance image {id} for it",
                            version.version
                        );
                        events::publish_about(
                            &object,
                            &ctx,
                            EventType::Normal,
                            Reason::NewVersion,
                            note,
                        )
                        .await;
                    }
                }
                created |= result.created_and_stopped();
                if let Some(image) = &result.image {
                    match result.progress {
                        Progress::Working { .. } => ctx.wakeups.wait_for(&image.id, waiter.clone()),
                        _ => ctx.wakeups.forget(&image.id),
                    }
                }
                match result.progress {
                    Progress::InSync => {}
                    Progress::Working { message, .. } => {
                        working.push(format!("{}: {message}", version.version))
                    }
                    Progress::Blocked { reason, message } => {
                        problems.insert(
                            version.version.clone(),
                            format!("{reason}: {message}{}", how_to_retry(reason)),
                        );
                    }
                }
            }
            Err(err) => {
                // Renamed or not, glint cannot tell: the stable name waits for the next pass.
                name_still_held |= version.role != Role::Current
                    && series::plan::carries_name(images.get(&version.version), &stable);
                problems.insert(version.version.clone(), format!("{}: {err}", err.reason()));
            }
        }
    }
    if plan.current.is_some() && plan.current != previous.current {
        let note = format!(
            "version {} is now current{}",
            plan.current.as_deref().unwrap_or_default(),
            previous
                .current
                .as_deref()
                .map_or(String::new(), |old| format!(" (was {old})"))
        );
        events::publish_about(&object, &ctx, EventType::Normal, Reason::Promoted, note).await;
        if let Some(old) = &previous.current
            && plan
                .versions
                .iter()
                .any(|v| &v.version == old && v.role == Role::Retired)
        {
            let how = series.spec.retired.unwrap_or_default().as_str();
            let note = format!("version {old} retired ({how}), renamed with its version");
            events::publish_about(&object, &ctx, EventType::Normal, Reason::Retired, note).await;
        }
    }

    let outcome = outcome_of(
        &plan.current,
        &working,
        &problems,
        checked.problem.as_ref(),
        &checked.skipped,
    );
    let status = ImageSeriesStatus {
        observed_generation: series.meta().generation,
        conditions: kstatus_conditions(
            &outcome,
            series.meta().generation,
            &Time(now),
            &previous.conditions,
        ),
        current: plan.current.clone(),
        versions: kept
            .iter()
            .cloned()
            .chain(version_lines(&plan.versions, &images, &problems))
            .collect(),
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
    };
    ctx.metrics.series.record(
        &namespace,
        &series.name_any(),
        images.len(),
        status
            .last_check
            .as_ref()
            .map(|at| at.0.as_millisecond() as f64 / 1000.0),
    );
    write_status(series.as_ref(), &ctx, &status).await?;
    let mut kept_now = Vec::new();
    for (gone, why) in after_status {
        let image = held
            .iter()
            .find(|(held, _)| held.id == gone.id)
            .map(|(_, image)| image);
        match delete_version(api, &ctx, &series, gone, why).await {
            Ok(effect) => kept_now.extend(kept_line(gone, image, &effect)),
            // A failure shows on the next pass, which finds the version still there.
            Err(problem) => {
                tracing::warn!(version = %gone.version, %problem, "could not delete a version beyond keep");
            }
        }
    }
    let any_kept = !kept.is_empty() || !kept_now.is_empty();
    if !kept_now.is_empty() {
        // Rare (the first refusal of a version): a second write, so status names it now.
        let mut versions = kept_now;
        versions.extend(status.versions.iter().cloned());
        let status = ImageSeriesStatus { versions, ..status };
        write_status(series.as_ref(), &ctx, &status).await?;
    }
    let after = match (&outcome, &checked.problem) {
        (Outcome::Progressing { .. }, Some(_)) => ctx.backoff(&uid),
        // A create was the whole pass of that version: come back at once for the rest.
        (Outcome::Progressing { .. }, None) if created => CREATED_REQUEUE,
        (Outcome::Progressing { .. }, None) => PROGRESS_REQUEUE,
        _ => until_next_check(&checked, &ctx, now),
    };
    Ok(Action::requeue(if any_kept {
        after.min(IN_USE_RETRY)
    } else {
        after
    }))
}

pub use crate::marks::RETRY_ANNOTATION;

/// The retry annotation's value, when it asks for a retry glint has not made yet.
fn retry_request(series: &ImageSeries, previous: &ImageSeriesStatus) -> Option<String> {
    let asked = series.annotations().get(RETRY_ANNOTATION)?;
    (previous.last_retry.as_ref() != Some(asked)).then(|| asked.clone())
}

/// The failed versions to try again: all of them when the user asked, else those whose file
/// the mirror changed since their image was made (read on a check only: one HEAD each).
async fn to_retry(
    held: &[(Held, GlanceImage)],
    releases: &[Release],
    transfers: &impl Transfers,
    asked: bool,
    checking: Option<&Arc<crate::transfer::SourcePolicy>>,
) -> BTreeSet<String> {
    let mut retry = BTreeSet::new();
    for (version, image) in held {
        let failed = version.quarantined
            || matches!(transfers.state(&version.id), TransferState::Failed { .. });
        if !failed {
            continue;
        }
        if asked {
            retry.insert(version.version.clone());
            continue;
        }
        let listed = releases.iter().find(|r| r.version == version.version);
        let (Some(policy), Some(release)) = (checking, listed) else {
            continue;
        };
        let made = image
            .updated_at
            .as_deref()
            .and_then(|at| at.parse::<jiff::Timestamp>().ok());
        let modified =
            crate::transfer::source_http::last_modified(policy.clone(), &release.source.url)
                .await
                .ok()
                .flatten();
        if let (Some(made), Some(modified)) = (made, modified)
            && modified > made
        {
            retry.insert(version.version.clone());
        }
    }
    retry
}

/// What a user can do about a version that failed its checks, for status.versions.
fn how_to_retry(reason: Reason) -> String {
    match reason {
        Reason::Quarantined | Reason::HashMismatch | Reason::CorruptArchive => format!(
            "; glint tries it again when the mirror lists other bytes for it, or when you set the annotation {RETRY_ANNOTATION} to a new value"
        ),
        _ => String::new(),
    }
}

/// Whether a failed check of the mirror is tried again by the next pass: the mirror did not
/// answer (or is mid-sync: it publishes the signature a little after the file it signs).
fn check_is_retried(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::ChecksumsUnavailable | Reason::SignatureMissing
    )
}

fn outcome_of(
    current: &Option<String>,
    working: &[String],
    problems: &BTreeMap<String, String>,
    check_problem: Option<&(Reason, String)>,
    skipped: &[String],
) -> Outcome {
    if let Some((reason, message)) = check_problem {
        let keeping = current
            .as_deref()
            .map_or("no version is current yet".to_string(), |v| {
                format!("version {v} stays current")
            });
        let message = format!("the releases could not be read: {message}; {keeping}");
        return if check_is_retried(*reason) {
            Outcome::Progressing {
                reason: *reason,
                message: format!("{message}; retrying"),
            }
        } else {
            Outcome::Stalled {
                reason: *reason,
                message,
            }
        };
    }
    if !working.is_empty() {
        return Outcome::Progressing {
            reason: Reason::Rotating,
            message: working.join("; "),
        };
    }
    let failed: Vec<String> = problems
        .iter()
        .map(|(version, problem)| format!("{version}: {problem}"))
        .collect();
    match current {
        // A release the series wants that failed is not "current": the series does not
        // follow the mirror until it is fixed, and says so.
        Some(version) if !failed.is_empty() => Outcome::Stalled {
            reason: Reason::ReleaseFailed,
            message: format!(
                "version {version} stays current, but releases the series wants failed: {}",
                failed.join("; ")
            ),
        },
        Some(version) => Outcome::Ready {
            reason: Reason::Current,
            message: if skipped.is_empty() {
                format!("version {version} is current")
            } else {
                format!(
                    "version {version} is current; not complete on the mirror yet, so read again at the next check: {}",
                    skipped.join("; ")
                )
            },
        },
        None => Outcome::Stalled {
            reason: Reason::NoUsableRelease,
            message: format!(
                "no kept release has a usable image: {}",
                if failed.is_empty() {
                    "there are no releases".to_string()
                } else {
                    failed.join("; ")
                }
            ),
        },
    }
}

fn version_lines(
    versions: &[VersionPlan],
    images: &BTreeMap<String, GlanceImage>,
    problems: &BTreeMap<String, String>,
) -> Vec<SeriesVersionStatus> {
    versions
        .iter()
        .map(|version| {
            let image = images.get(&version.version);
            SeriesVersionStatus {
                version: version.version.clone(),
                id: image.map(|image| image.id.clone()),
                status: image.map(|image| image.status.clone()),
                role: version.role.word().to_string(),
                created: image.and_then(|image| image.created_at.clone()),
                problem: problems.get(&version.version).cloned(),
            }
        })
        .collect()
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
