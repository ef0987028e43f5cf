//! One cloud's rotation of a series: what Glance holds there, the plan
//! ([`series::plan`](crate::series::plan)), one Image pass per kept version (retired ones
//! first, the current one last), and the versions beyond keep let go once status names the
//! new current one. The one-cloud driver ([`super::series`]) runs it once; the targets driver
//! ([`super::series_targets`]) once per target, all over one check of the mirror.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::clouds::CloudHandle;
use super::events::Herald;
use super::series_check::Checked;
use super::series_delete::{delete_version, kept_line};
use super::wakeups::Waiter;
use super::{Context, ReconcileError};
use crate::crd::{ImageSeries, ImageSeriesSpec, SeriesVersionStatus};
use crate::glance::{GlanceApi, GlanceImage};
use crate::pass;
use crate::pass::act::Effect;
use crate::pass::observe::Subject;
use crate::pass::plan::{Desired, Progress};
use crate::pass::status::Outcome;
use crate::reason::Reason;
use crate::series::plan::{Held, Removal, Role, VersionPlan};
use crate::series::{self, Release, observe::version_uid};
use crate::transfer::{SourceAccess, TransferState, Transfers};

use crate::marks::RETRY_ANNOTATION;

/// What one rotation works in and with.
pub(super) struct Scope<'a> {
    pub series: &'a ImageSeries,
    /// The series as this cloud keeps it (a target's overrides applied).
    pub spec: &'a ImageSeriesSpec,
    pub ctx: &'a Context,
    pub handle: &'a CloudHandle,
    /// The series' `namespace/name`, its mark on every version.
    pub key: &'a str,
    /// The uid the versions are owned by: the series' own, or `uid/target` for a target.
    pub identity: &'a str,
    pub herald: &'a Herald<'a>,
    /// With several targets, the key their transfers of one release share one download by.
    pub share: Option<&'a str>,
}

/// How one cloud's rotation left the series.
pub(super) struct Rotation {
    pub current: Option<String>,
    pub versions: Vec<SeriesVersionStatus>,
    working: Vec<String>,
    problems: BTreeMap<String, String>,
    /// A version's image was created and its pass stopped there: come back at once.
    pub created: bool,
    /// Versions glint holds in this cloud.
    pub images: usize,
    /// A version Glance keeps because it is in use: come back for it.
    pub any_kept: bool,
    /// Versions beyond keep, deleted once status names the new current one.
    after_status: Vec<(Held, Removal, Option<GlanceImage>)>,
    /// Normal Events about the rotation (a release found, promoted, retired), sent beside the
    /// status write rather than before it: a new current version waits for one apiserver
    /// round trip, not three.
    news: Vec<(Reason, String)>,
}

impl Rotation {
    /// The rotation's outcome, with the check of the mirror it worked from.
    pub fn outcome(&self, checked: &Checked) -> Outcome {
        outcome_of(
            &self.current,
            &self.working,
            &self.problems,
            checked.problem.as_ref(),
            &checked.skipped,
        )
    }

    /// Sends the rotation's Normal Events.
    pub async fn announce(&self, herald: &Herald<'_>) {
        for (reason, note) in &self.news {
            herald.say(EventType::Normal, *reason, note).await;
        }
    }

    /// After status was written: deletes the versions beyond keep. True when one of them is
    /// kept (in use): its line is now first in `versions`, for a second status write.
    pub async fn finish(&mut self, scope: &Scope<'_>) -> bool {
        let api = scope.handle.client.as_ref();
        let mut kept_now = Vec::new();
        for (gone, why, image) in std::mem::take(&mut self.after_status) {
            match delete_version(api, scope.herald, scope.spec, &gone, why).await {
                Ok(effect) => kept_now.extend(kept_line(&gone, image.as_ref(), &effect)),
                // A failure shows on the next pass, which finds the version still there.
                Err(problem) => {
                    tracing::warn!(version = %gone.version, %problem, "could not delete a version beyond keep");
                }
            }
        }
        if kept_now.is_empty() {
            return false;
        }
        self.any_kept = true;
        kept_now.append(&mut self.versions);
        self.versions = kept_now;
        true
    }
}

/// One cloud's rotation, as far as status: the versions it deletes after status are left in
/// the [`Rotation`] for [`Rotation::finish`].
pub(super) async fn rotate(
    scope: &Scope<'_>,
    checked: &Checked,
    retry_asked: bool,
    previous_current: Option<&str>,
) -> Result<Rotation, ReconcileError> {
    let Scope {
        series,
        spec,
        ctx,
        handle,
        key,
        identity,
        herald,
        share,
    } = *scope;
    let api = handle.client.as_ref();
    let releases: Vec<Release> = checked.releases.iter().map(Release::from).collect();
    let observe_error = |err: crate::glance::GlanceError| {
        ReconcileError::Pass(pass::PassError::Observe(err.into()))
    };
    let held = series::observe::held(api, key, identity)
        .await
        .map_err(observe_error)?;
    let held_only: Vec<Held> = held.iter().map(|(held, _)| held.clone()).collect();
    let stable = spec.image.name.clone().unwrap_or_else(|| series.name_any());
    let retry = to_retry(
        &held,
        &releases,
        &handle.transfers,
        retry_asked,
        checked.fetched.then_some(&ctx.settings.source_policy),
    )
    .await;
    let plan = series::plan::plan(spec, &stable, key, &releases, &held_only, &retry);
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
            match delete_version(api, herald, spec, gone, *why).await {
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
        after_status.push((gone.clone(), *why, image));
    }
    let mut ordered: Vec<&VersionPlan> = plan.versions.iter().collect();
    ordered.sort_by_key(|version| version.role.pass_order());
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
    let waiter = Waiter::of(series);
    let mut created = false;
    let mut news = Vec::new();
    for version in ordered {
        if version.role == Role::Current && name_still_held {
            // The old version could not give the stable name up: never two images with it.
            working.push(format!(
                "{}: waits for the stable name, which an older version could not give up yet",
                version.version
            ));
            continue;
        }
        let version_uid = version_uid(identity, &version.version);
        let name = version.spec.name.clone().unwrap_or_default();
        let desired = Desired {
            share: share
                .zip(version.spec.source.as_ref())
                .map(|(share, source)| format!("{share} {} {}", version.version, source.url)),
            ..Desired::from_spec(&version.spec, &name, &version_uid)
        };
        let known = standing(&version.version);
        // Before the pass: a transfer it starts may end before the pass returns.
        if let Some(id) = &known {
            ctx.wakeups.wait_for(id, waiter.clone());
        }
        // Listed by this pass a moment ago: a second read would only delay the rename that
        // makes a new release current once its data is in.
        let listed = images
            .get(&version.version)
            .filter(|image| known.as_deref() == Some(image.id.as_str()))
            .cloned();
        let subject = Subject {
            uid: &version_uid,
            spec: &version.spec,
            known_id: known.as_deref(),
            fresh: true,
            seen: listed.as_ref(),
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
                        news.push((Reason::NewVersion, note));
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
    if plan.current.is_some() && plan.current.as_deref() != previous_current {
        let note = format!(
            "version {} is now current{}",
            plan.current.as_deref().unwrap_or_default(),
            previous_current.map_or(String::new(), |old| format!(" (was {old})"))
        );
        news.push((Reason::Promoted, note));
        if let Some(old) = previous_current
            && plan
                .versions
                .iter()
                .any(|v| v.version == old && v.role == Role::Retired)
        {
            let how = spec.retired.unwrap_or_default().as_str();
            let note = format!("version {old} retired ({how}), renamed with its version");
            news.push((Reason::Retired, note));
        }
    }
    let any_kept = !kept.is_empty();
    Ok(Rotation {
        current: plan.current.clone(),
        versions: kept
            .into_iter()
            .chain(version_lines(&plan.versions, &images, &problems))
            .collect(),
        working,
        problems,
        created,
        images: images.len(),
        any_kept,
        after_status,
        news,
    })
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
pub(super) fn check_is_retried(reason: Reason) -> bool {
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

/// The Glance image id of the current version, from a rotation's status lines.
pub(super) fn current_id(
    current: Option<&str>,
    versions: &[SeriesVersionStatus],
) -> Option<String> {
    let current = current?;
    versions
        .iter()
        .find(|line| line.version == current && line.role == Role::Current.word())
        .and_then(|line| line.id.clone())
}
