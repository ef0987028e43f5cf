//! The rotation of a series, as data: which version is current, what every version glint
//! holds looks like, and which versions go. Pure: no client, no clock.
//!
//! Rules:
//! - the newest `keep` listed releases are wanted: glint imports those it does not hold;
//! - the current version is the newest wanted release whose image is active and not
//!   quarantined, so a failed or corrupt release never displaces it; until a wanted release
//!   is usable, the version glint last made current stays current (and is never deleted);
//! - keep counts what glint imported, not what the mirror lists: a usable version stays
//!   (retired as spec.retired says) until it is beyond the newest `keep` usable versions,
//!   whatever the listing or the spec's URLs now say;
//! - two builds never share a version: a release whose listed digest differs from the one
//!   the usable image of its version was made from is a new build, `VERSION+DIGEST8`; a failed
//!   or unfinished image of a release whose digest changed (or that the user asked to retry)
//!   is replaced;
//! - only the current version carries the stable name and `glint.dev/latest`; every other
//!   version is named NAME-VERSION, so no two images share a name;
//! - versions newer than the current one are hidden until they are current; older ones are
//!   retired as spec.retired says.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{Release, version};
use crate::crd::{ImageSeriesSpec, ImageSpec, Retirement, SourceHash};
use crate::scs;

pub use crate::marks::{
    IN_USE_PROPERTY, LATEST_PROPERTY, RELEASE_DIGEST_PROPERTY, SERIES_PROPERTY, VERSION_PROPERTY,
};

/// How many hex digits of its digest a rebuilt version carries (`0.6.3+1a2b3c4d`).
const BUILD_SUFFIX_DIGITS: usize = 8;

/// A version's image as Glance holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    pub version: String,
    pub id: String,
    /// Active, and not quarantined for bad data: fit to be current.
    pub usable: bool,
    /// Deactivated by glint for bad data: it never becomes usable as it is.
    pub quarantined: bool,
    /// It carries `glint.dev/latest`: glint made it current last time.
    pub latest: bool,
    pub protected: bool,
    /// [`RELEASE_DIGEST_PROPERTY`], when the image has it.
    pub digest: Option<String>,
    /// Why it is still in use, when a delete found it so ([`IN_USE_PROPERTY`]).
    pub in_use: Option<String>,
    /// The SCS-0102 image_source it carries: a version the mirror no longer lists keeps it.
    pub image_source: Option<String>,
}

/// What a kept version is in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Carries the stable name.
    Current,
    /// Older than the current version, or no longer listed.
    Retired,
    /// Newer than the current version (or there is none yet): on its way, or failed.
    Pending,
}

impl Role {
    pub fn word(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Retired => "retired",
            Self::Pending => "pending",
        }
    }

    /// The order versions are brought to their roles in: retired ones first (they give up
    /// the stable name), the current one last (it takes the name).
    pub fn pass_order(self) -> u8 {
        match self {
            Self::Retired => 0,
            Self::Pending => 1,
            Self::Current => 2,
        }
    }
}

/// One kept version and the Image spec its image must match.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionPlan {
    pub version: String,
    pub role: Role,
    pub spec: ImageSpec,
}

/// Why a held version's image goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Beyond the newest `keep` imported versions, or failed and no longer wanted.
    BeyondKeep,
    /// Failed or unfinished, and its release is to be tried again (new bytes, or asked for):
    /// a new image takes its place in the same pass.
    Replaced,
}

/// The whole rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPlan {
    /// The version that carries the stable name after this plan, if any.
    pub current: Option<String>,
    /// Every version glint keeps (the current one included), oldest first.
    pub versions: Vec<VersionPlan>,
    /// Versions to delete, with why.
    pub delete: Vec<(Held, Removal)>,
}

/// Whether `image` still carries the stable name: the current version must not take it
/// while another image does, or two images would share it.
pub fn carries_name(image: Option<&crate::glance::GlanceImage>, stable: &str) -> bool {
    image.and_then(|image| image.name.as_deref()) == Some(stable)
}

/// The patch by which a version that goes gives up the stable name and the latest mark, before
/// it is deleted: if Glance keeps it (in use), the name is free all the same, so no two images
/// ever carry it.
pub fn step_aside(stable: &str, gone: &Held) -> [crate::glance::PatchOp; 2] {
    [
        crate::glance::PatchOp::SetName(versioned_name(stable, &gone.version)),
        crate::glance::PatchOp::RemoveProperty(LATEST_PROPERTY.to_string()),
    ]
}

/// `ALGORITHM:HEX`, as [`RELEASE_DIGEST_PROPERTY`] holds it.
pub fn digest_word(hash: &SourceHash) -> String {
    format!(
        "{}:{}",
        hash.algorithm.as_str(),
        hash.value.to_ascii_lowercase()
    )
}

/// The releases with their versions settled against what Glance holds: a release whose
/// version has a usable image made from other bytes is a new build, `VERSION+DIGEST8`.
pub fn builds(releases: &[Release], held: &[Held]) -> Vec<Release> {
    releases
        .iter()
        .map(|release| {
            let Some(hash) = &release.source.hash else {
                return release.clone();
            };
            let digest = digest_word(hash);
            let other_bytes = held.iter().any(|image| {
                image.version == release.version
                    && image.usable
                    && image.digest.as_ref().is_some_and(|d| *d != digest)
            });
            if !other_bytes {
                return release.clone();
            }
            let digits: String = hash.value.chars().take(BUILD_SUFFIX_DIGITS).collect();
            Release {
                version: format!("{}+{digits}", release.version),
                source: release.source.clone(),
            }
        })
        .collect()
}

/// The rotation for `releases` (any order) given what Glance holds. `stable_name` is the
/// current version's Glance name, `series_key` the series' `namespace/name`; `retry` names
/// versions whose failed image is to be replaced (the user asked, or the mirror changed the
/// file since).
pub fn plan(
    spec: &ImageSeriesSpec,
    stable_name: &str,
    series_key: &str,
    releases: &[Release],
    held: &[Held],
    retry: &BTreeSet<String>,
) -> SeriesPlan {
    let mut wanted: Vec<Release> = builds(releases, held);
    wanted.sort_by(|a, b| version::compare(&a.version, &b.version));
    wanted.dedup_by(|a, b| a.version == b.version);
    let wanted = wanted.split_off(wanted.len().saturating_sub(spec.keep()));
    let wanted_release = |version: &str| wanted.iter().find(|r| r.version == version);

    // Failed or unfinished images of wanted releases whose bytes changed, or that the user
    // asked to retry, are replaced; they no longer count as held.
    let replaced: Vec<&Held> = held
        .iter()
        .filter(|image| !image.usable)
        .filter(|image| match wanted_release(&image.version) {
            None => false,
            Some(release) => {
                let changed = match (&release.source.hash, &image.digest) {
                    (Some(hash), Some(digest)) => digest_word(hash) != *digest,
                    _ => false,
                };
                changed || retry.contains(&image.version)
            }
        })
        .collect();
    let standing: Vec<&Held> = held
        .iter()
        .filter(|image| !replaced.iter().any(|gone| gone.id == image.id))
        .collect();
    let holding = |version: &str| standing.iter().find(|image| image.version == version);

    let current = wanted
        .iter()
        .rev()
        .find(|release| holding(&release.version).is_some_and(|image| image.usable))
        .map(|release| release.version.clone())
        .or_else(|| {
            standing
                .iter()
                .find(|image| image.latest && image.usable)
                .map(|image| image.version.clone())
        });

    let mut imported: Vec<&Held> = standing.iter().copied().filter(|i| i.usable).collect();
    imported.sort_by(|a, b| version::compare(&b.version, &a.version));
    let retained: BTreeSet<&str> = imported
        .iter()
        .take(spec.keep())
        .map(|image| image.version.as_str())
        .chain(current.as_deref())
        .collect();

    let mut kept: Vec<VersionPlan> = Vec::new();
    for release in &wanted {
        let role = role_of(&release.version, current.as_deref(), true);
        let mut marks = scs::stamp::properties(spec, &release.version, Some(&release.source.url));
        if let Some(hash) = &release.source.hash {
            marks.insert(RELEASE_DIGEST_PROPERTY.into(), digest_word(hash));
        }
        kept.push(VersionPlan {
            version: release.version.clone(),
            role,
            spec: version_spec(
                spec,
                stable_name,
                series_key,
                &release.version,
                Some(release),
                marks,
                role,
            ),
        });
    }
    for image in &imported {
        if !retained.contains(image.version.as_str()) || wanted_release(&image.version).is_some() {
            continue;
        }
        let role = role_of(&image.version, current.as_deref(), false);
        let mut marks = scs::stamp::properties(spec, &image.version, image.image_source.as_deref());
        if let Some(digest) = &image.digest {
            marks.insert(RELEASE_DIGEST_PROPERTY.into(), digest.clone());
        }
        kept.push(VersionPlan {
            version: image.version.clone(),
            role,
            spec: version_spec(
                spec,
                stable_name,
                series_key,
                &image.version,
                None,
                marks,
                role,
            ),
        });
    }
    kept.sort_by(|a, b| version::compare(&a.version, &b.version));

    let mut delete: Vec<(Held, Removal)> = replaced
        .into_iter()
        .map(|image| (image.clone(), Removal::Replaced))
        .collect();
    delete.extend(
        standing
            .iter()
            .filter(|image| !kept.iter().any(|k| k.version == image.version))
            .map(|image| ((*image).clone(), Removal::BeyondKeep)),
    );
    SeriesPlan {
        current,
        versions: kept,
        delete,
    }
}

/// A version's role: current, older than current (or no longer listed: retired), or newer.
fn role_of(version: &str, current: Option<&str>, listed: bool) -> Role {
    match current.map(|current| version::compare(version, current)) {
        Some(Ordering::Equal) => Role::Current,
        Some(Ordering::Less) => Role::Retired,
        _ if !listed => Role::Retired,
        _ => Role::Pending,
    }
}

/// The Glance name of a version that is not current.
pub fn versioned_name(stable_name: &str, version: &str) -> String {
    format!("{stable_name}-{version}")
}

fn version_spec(
    spec: &ImageSeriesSpec,
    stable_name: &str,
    series_key: &str,
    version: &str,
    release: Option<&Release>,
    marks: BTreeMap<String, String>,
    role: Role,
) -> ImageSpec {
    let name = match role {
        Role::Current => stable_name.to_string(),
        Role::Retired | Role::Pending => versioned_name(stable_name, version),
    };
    let mut image = spec.version_spec(&name, release.map(|r| r.source.clone()));
    image
        .properties
        .insert(SERIES_PROPERTY.into(), series_key.into());
    image
        .properties
        .insert(VERSION_PROPERTY.into(), version.to_string());
    // The release's digest and the SCS-0102 stamp; spec.image.properties wins a clash.
    for (key, value) in marks {
        image.properties.entry(key).or_insert(value);
    }
    let retired = spec.retired.unwrap_or_default();
    match role {
        Role::Current => {
            image
                .properties
                .insert(LATEST_PROPERTY.into(), "true".into());
        }
        Role::Pending => image.hidden = true,
        Role::Retired => {
            image.hidden = retired == Retirement::Hidden;
            image.deactivated = retired == Retirement::Deactivated;
        }
    }
    image
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
