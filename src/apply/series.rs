//! `glint plan -f` / `glint apply -f` for ImageSeries: one check of the releases per run, then
//! the rotation [`crate::series::plan`] describes, every version through the
//! same pass an Image takes.
//!
//! Apply runs in two rounds. First every kept release without an active image is created and
//! uploaded under its versioned name, hidden, so that nothing a user sees changes while data
//! flows (a corrupt release ends quarantined and never becomes current). Then Glance is read
//! again, the rotation planned on what it now holds, versions beyond keep deleted, and each
//! remaining version brought to its role: retired ones first, the current one last, so that
//! the stable name is never on two images. A failed release whose listed bytes changed is
//! deleted before round one and imported afresh. A run killed anywhere is finished by the
//! next.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::destinations::{Destinations, place_of};
use super::manifests::SeriesDocument;
use super::{ApplyError, CliTransfers, RunTransfers, identity, settle};
use crate::crd::WhenInUse;
use crate::glance::{GlanceApi, GlanceClient, GlanceImage};
use crate::pass::PassError;
use crate::pass::act::{self, Effect};
use crate::pass::observe::ObserveError;
use crate::pass::plan::Desired;
use crate::reason::Reason;
use crate::series::plan::{Held, Removal, Role, SeriesPlan, VersionPlan};
use crate::series::{self, Release};
use crate::transfer::{QUARANTINE_PROPERTY, SourcePolicy};

/// One version after apply, for the table.
pub struct VersionLine {
    pub version: String,
    pub role: &'static str,
    pub image: Option<GlanceImage>,
    /// Why this version is not where it should be (its upload failed, say).
    pub problem: Option<String>,
}

/// What apply did for one series.
pub struct SeriesApplied {
    pub document: SeriesDocument,
    pub outcome: Result<SeriesResult, ApplyError>,
}

pub struct SeriesResult {
    pub current: Option<String>,
    pub versions: Vec<VersionLine>,
    pub deleted: Vec<String>,
    /// Versions beyond keep that Glance would not delete because they are in use, with
    /// Glance's words: hidden now, and tried again by the next apply.
    pub kept: Vec<(String, String)>,
}

fn stable_name(document: &SeriesDocument) -> String {
    document
        .series
        .spec
        .image
        .name
        .clone()
        .unwrap_or_else(|| document.name())
}

/// The releases: listed, or read from the checksums file now.
pub async fn releases(
    document: &SeriesDocument,
    policy: &Arc<SourcePolicy>,
) -> Result<Vec<Release>, ApplyError> {
    let spec = &document.series.spec;
    let Some(source) = &spec.checksums else {
        return Ok(series::listed(spec));
    };
    let keys = match &source.signature {
        None => None,
        Some(signature) => Some(
            cli_trusted_keys(
                &document.namespace,
                document.trusted_keys.as_deref(),
                &signature.keys,
                ("spec.checksums.signature.keys", "ImageSeries"),
            )
            .map_err(|(reason, message)| ApplyError::Blocked { reason, message })?,
        ),
    };
    series::discover::published(source, policy.clone(), spec.keep(), keys.as_ref())
        .await
        .map(|published| published.releases)
        .map_err(|err| ApplyError::Blocked {
            reason: err.reason(),
            message: err.to_string(),
        })
}

/// The keys an object trusts, from the ConfigMap or Secret document among the manifests
/// that holds them (`text`); `named` is the field that names them and the object's kind.
pub(super) fn cli_trusted_keys(
    namespace: &str,
    text: Option<&str>,
    reference: &crate::crd::TrustedKeysRef,
    (field, kind_of_object): (&str, &str),
) -> Result<crate::checksums::signature::TrustedKeys, (crate::reason::Reason, String)> {
    let (kind, name) = match (&reference.config_map_name, &reference.secret_name) {
        (Some(name), _) => ("ConfigMap", name.as_str()),
        (None, Some(name)) => ("Secret", name.as_str()),
        (None, None) => ("ConfigMap", ""),
    };
    let text = text.ok_or_else(|| {
        (
            crate::reason::Reason::TrustedKeysNotFound,
            format!(
                "{field} names {kind} {namespace}/{name} entry {}, which is not among the manifests (or has no such entry): glint apply reads no cluster, so give the {kind} document, with that entry, beside the {kind_of_object}",
                reference.key()
            ),
        )
    })?;
    crate::checksums::signature::TrustedKeys::parse(text)
        .map_err(|err| (err.reason(), format!("{kind} {namespace}/{name}: {err}")))
}

/// The versions of this series Glance holds, each with its image.
async fn held(
    api: &GlanceClient,
    document: &SeriesDocument,
) -> Result<Vec<(Held, GlanceImage)>, ApplyError> {
    series::observe::held(api, &document.key(), &document.owner())
        .await
        .map_err(|err| ApplyError::Observe(ObserveError::Glance(err)))
}

fn rotation(
    document: &SeriesDocument,
    releases: &[Release],
    held: &[(Held, GlanceImage)],
) -> SeriesPlan {
    let held: Vec<Held> = held.iter().map(|(held, _)| held.clone()).collect();
    series::plan::plan(
        &document.series.spec,
        &stable_name(document),
        &document.key(),
        releases,
        &held,
        &BTreeSet::new(),
    )
}

/// Applies every series, one after the other; a series' targets at once, each in its own
/// cloud, from one check of the releases and one download of each release.
pub async fn apply_all(
    destinations: &Destinations,
    transfers: &RunTransfers,
    policy: &Arc<SourcePolicy>,
    documents: Vec<SeriesDocument>,
) -> Vec<SeriesApplied> {
    let mut applied = Vec::with_capacity(documents.len());
    let targets_of = |document: &SeriesDocument| document.target.is_some().then(|| document.key());
    for series in super::by_object(documents, targets_of) {
        let checked = match series.first() {
            Some(first) => releases(first, policy).await,
            None => continue,
        };
        let found = match checked {
            Ok(found) => found,
            // Every target of the series says why (no transfer would start anyway).
            Err(err) => {
                let (reason, message) = match &err {
                    ApplyError::Blocked { reason, message } => (*reason, message.clone()),
                    other => (Reason::ChecksumsUnavailable, other.to_string()),
                };
                let mut first = Some(err);
                for document in series {
                    let err = first.take().unwrap_or_else(|| ApplyError::Blocked {
                        reason,
                        message: message.clone(),
                    });
                    applied.push(SeriesApplied {
                        document,
                        outcome: Err(err),
                    });
                }
                continue;
            }
        };
        let runs = series.iter().map(|document| {
            let place = place_of(document.target.as_ref());
            let (api, transfers) = (destinations.api_at(&place), transfers.at(&place));
            let found = &found;
            async move {
                match (api, transfers) {
                    (Some(api), Some(transfers)) => {
                        apply_one(api, transfers, found, document).await
                    }
                    _ => Err(ApplyError::Transfers(format!(
                        "no cloud to apply series {} to",
                        document.label()
                    ))),
                }
            }
        });
        let outcomes = futures::future::join_all(runs).await;
        applied.extend(
            series
                .into_iter()
                .zip(outcomes)
                .map(|(document, outcome)| SeriesApplied { document, outcome }),
        );
    }
    applied
}

async fn apply_one(
    api: &GlanceClient,
    transfers: &CliTransfers,
    releases: &[Release],
    document: &SeriesDocument,
) -> Result<SeriesResult, ApplyError> {
    let releases = releases.to_vec();
    let mut before = held(api, document).await?;
    // Failed images of releases to try again (the mirror lists other bytes now) go first, so
    // round one imports them afresh.
    let replaced: Vec<Held> = rotation(document, &releases, &before)
        .delete
        .into_iter()
        .filter(|(_, why)| *why == Removal::Replaced)
        .map(|(gone, _)| gone)
        .collect();
    // A failed or unfinished image was never booted from: in use, it could not be.
    for gone in &replaced {
        act::delete(api, &gone.id, gone.protected, WhenInUse::Keep)
            .await
            .map_err(|err| ApplyError::Pass(PassError::Act(err)))?;
    }
    if !replaced.is_empty() {
        before = held(api, document).await?;
    }
    // Round one: data for every wanted release that has no active image yet.
    let mut problems = BTreeMap::new();
    for version in rotation(document, &releases, &before).versions {
        let active = before
            .iter()
            .any(|(held, _)| held.version == version.version && held.usable);
        if !active
            && version.role == Role::Pending
            && let Err(err) = bring(api, transfers, document, &version).await
        {
            problems.insert(version.version.clone(), err.to_string());
        }
    }
    // Round two: roles, on what Glance holds now. Versions that go are deleted first, so
    // the stable name is given up before the new current version takes it.
    let now = held(api, document).await?;
    let plan = rotation(document, &releases, &now);
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    let when_in_use = document.series.spec.image.when_in_use.unwrap_or_default();
    for (gone, _) in &plan.delete {
        // Named aside first: if Glance keeps it (in use), the name is free all the same.
        if gone.latest {
            let aside = series::plan::step_aside(&stable_name(document), gone);
            api.update_image(&gone.id, &aside).await.map_err(|err| {
                ApplyError::Pass(PassError::Act(act::ActError::glance_call(
                    "rename", &gone.id, err,
                )))
            })?;
        }
        match act::delete(api, &gone.id, gone.protected, when_in_use)
            .await
            .map_err(|err| ApplyError::Pass(PassError::Act(err)))?
        {
            Effect::KeptInUse { why, .. } => kept.push((gone.version.clone(), why)),
            _ => deleted.push(gone.version.clone()),
        }
    }
    let mut ordered: Vec<&VersionPlan> = plan.versions.iter().collect();
    ordered.sort_by_key(|version| version.role.pass_order());
    let mut lines = Vec::new();
    let stable = stable_name(document);
    let mut name_still_held = false;
    for version in ordered {
        let outcome = if problems.contains_key(&version.version) {
            Ok(None)
        } else if version.role == Role::Current && name_still_held {
            // Never two images with the stable name: the next apply finishes the rotation.
            Err(format!(
                "not made current yet: an older version still carries the name {stable} (its rename failed); run apply again"
            ))
        } else {
            bring(api, transfers, document, version)
                .await
                .map(Some)
                .map_err(|err| err.to_string())
        };
        let (image, problem) = match outcome {
            Ok(image) => (image, problems.remove(&version.version)),
            Err(err) => (None, Some(err)),
        };
        let image = image.or_else(|| {
            now.iter()
                .find(|(held, _)| held.version == version.version)
                .map(|(_, image)| image.clone())
        });
        name_still_held |=
            version.role != Role::Current && series::plan::carries_name(image.as_ref(), &stable);
        lines.push(VersionLine {
            version: version.version.clone(),
            role: version.role.word(),
            image,
            problem,
        });
    }
    lines.sort_by(|a, b| series::version::compare(&a.version, &b.version));
    Ok(SeriesResult {
        current: plan.current,
        versions: lines,
        deleted,
        kept,
    })
}

/// Runs one version's Image pass until its image matches its role or cannot go on.
async fn bring(
    api: &GlanceClient,
    transfers: &CliTransfers,
    document: &SeriesDocument,
    version: &VersionPlan,
) -> Result<GlanceImage, ApplyError> {
    let uid = series::observe::version_uid(&document.owner(), &version.version);
    let name = version.spec.name.clone().unwrap_or_default();
    let share = document.target.as_ref().and(version.spec.source.as_ref());
    let desired = Desired {
        share: share.map(|source| {
            format!(
                "{} {} {}",
                identity(&document.key()),
                version.version,
                source.url
            )
        }),
        ..Desired::from_spec(&version.spec, &name, &uid)
    };
    let access = crate::transfer::SourceAccess::default();
    let settled = settle(
        api,
        transfers,
        &uid,
        &version.spec,
        &desired,
        &access,
        &mut |_| {},
    )
    .await?;
    settled.image.ok_or_else(|| ApplyError::Blocked {
        reason: Reason::InternalError,
        message: format!(
            "the pass reported version {} in sync without an image",
            version.version
        ),
    })
}

/// Prints the series' versions after apply; returns (changed, errors).
pub fn print_applied(applied: &[SeriesApplied]) -> usize {
    let mut errors = 0;
    for item in applied {
        let key = item.document.label();
        match &item.outcome {
            Err(err) => {
                errors += 1;
                println!("! series {key}: {err}");
            }
            Ok(result) => {
                let current = result.current.as_deref().unwrap_or("none yet");
                println!("series {key}: current {current}");
                for line in &result.versions {
                    let image = line.image.as_ref();
                    println!(
                        "  {:<14} {:<8} {:<36} {:<11} {}",
                        line.version,
                        line.role,
                        image.map_or("-", |i| i.id.as_str()),
                        image.map_or("-".to_string(), |i| i.status.to_string()),
                        image.and_then(|i| i.name.as_deref()).unwrap_or("-"),
                    );
                    if let Some(problem) = &line.problem {
                        errors += 1;
                        println!("  ! {}: {problem}", line.version);
                    }
                }
                for version in &result.deleted {
                    println!("  {version:<14} deleted");
                }
                for (version, why) in &result.kept {
                    println!(
                        "  {version:<14} kept: still in use ({why}); hidden, and the next apply tries to delete it again"
                    );
                }
            }
        }
    }
    errors
}

/// What plan prints for one series: the releases, and the rotation apply would make if every
/// kept release uploads cleanly. Returns (changes, errors).
pub async fn print_plan(
    destinations: &Destinations,
    policy: &Arc<SourcePolicy>,
    documents: &[SeriesDocument],
) -> (usize, usize) {
    let (mut changes, mut errors) = (0, 0);
    for document in documents {
        let key = document.label();
        let Some(api) = destinations.api_at(&place_of(document.target.as_ref())) else {
            errors += 1;
            println!("! series {key}: no cloud to plan it against");
            continue;
        };
        let api = api.as_ref();
        let (releases, held) = match releases(document, policy).await {
            Ok(releases) => match held(api, document).await {
                Ok(held) => (releases, held),
                Err(err) => {
                    errors += 1;
                    println!("! series {key}: {err}");
                    continue;
                }
            },
            Err(err) => {
                errors += 1;
                println!("! series {key}: {err}");
                continue;
            }
        };
        let now = rotation(document, &releases, &held);
        // As it will be once every kept release is in (a quarantined one never is): what
        // apply aims at.
        let mut hoped: Vec<Held> = held.iter().map(|(held, _)| held.clone()).collect();
        for version in &now.versions {
            let on_its_way =
                |image: &GlanceImage| !image.properties.contains_key(QUARANTINE_PROPERTY);
            match held.iter().find(|(h, _)| h.version == version.version) {
                Some((_, image)) if on_its_way(image) => {
                    if let Some(entry) = hoped.iter_mut().find(|h| h.version == version.version) {
                        entry.usable = true;
                    }
                }
                Some(_) => {}
                None => hoped.push(Held {
                    version: version.version.clone(),
                    usable: true,
                    ..Held::default()
                }),
            }
        }
        let after = series::plan::plan(
            &document.series.spec,
            &stable_name(document),
            &document.key(),
            &releases,
            &hoped,
            &BTreeSet::new(),
        );
        let mut lines = Vec::new();
        for version in &after.versions {
            let exists = held.iter().find(|(h, _)| h.version == version.version);
            match exists {
                None => lines.push(format!(
                    "+ {}: create and upload {} ({})",
                    version.version,
                    url_of(version),
                    version.role.word()
                )),
                Some((_, image)) => {
                    let uid = series::observe::version_uid(&document.owner(), &version.version);
                    let desired = Desired::from_spec(&version.spec, "", &uid);
                    let ops = crate::pass::plan::patch_ops(&desired, image);
                    if !ops.is_empty() {
                        lines.push(format!(
                            "~ {}: {} ({})",
                            version.version,
                            super::report::describe(
                                &crate::pass::plan::Step::Patch(ops),
                                Some(image),
                                ""
                            )
                            .join(", "),
                            version.role.word()
                        ));
                    }
                }
            }
        }
        for (gone, _) in &after.delete {
            lines.push(format!(
                "- {}: delete {} (beyond the newest {} imported versions)",
                gone.version,
                gone.id,
                document.series.spec.keep()
            ));
        }
        let current = |plan: &SeriesPlan| plan.current.clone().unwrap_or_else(|| "none".into());
        let standard = super::standard::series_lines(
            &document.series.spec,
            after.versions.last(),
            jiff::Timestamp::now(),
        );
        if lines.is_empty() {
            println!("= series {key}: no changes (current {})", current(&now));
        } else {
            changes += 1;
            println!(
                "~ series {key}: current {} -> {} once its data is in",
                current(&now),
                current(&after)
            );
            for line in lines {
                println!("    {line}");
            }
        }
        for line in standard {
            println!("  ? {line}");
        }
    }
    (changes, errors)
}

fn url_of(version: &VersionPlan) -> &str {
    version
        .spec
        .source
        .as_ref()
        .map_or("-", |source| source.url.as_str())
}
