//! The rotation of a series, as data: which version is current, what every kept version's
//! Image looks like, and which versions go. Pure: no client, no clock.
//!
//! Rules:
//! - the newest `keep` releases are kept; the current version is the newest kept release
//!   whose image is active and not quarantined, so a failed or corrupt release never
//!   displaces it, and until a kept release is usable the version glint last made current
//!   stays current (and is not deleted);
//! - only the current version carries the stable name and `glint.dev/latest`; every other
//!   version is named NAME-VERSION, so no two images share a name;
//! - versions newer than the current one are hidden until they are current; older ones are
//!   retired as spec.retired says; versions glint holds that are neither kept nor current are
//!   deleted.

use std::cmp::Ordering;

use super::{Release, version};
use crate::crd::{ImageSeriesSpec, ImageSpec, Retirement};

/// The property naming the series a version belongs to (`namespace/name`).
pub const SERIES_PROPERTY: &str = "glint.dev/series";
/// The property holding a version's version.
pub const VERSION_PROPERTY: &str = "glint.dev/version";
/// The property only the current version carries.
pub const LATEST_PROPERTY: &str = "glint.dev/latest";

/// A version's image as Glance holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub version: String,
    pub id: String,
    /// Active, and not quarantined for bad data: fit to be current.
    pub usable: bool,
    /// It carries `glint.dev/latest`: glint made it current last time.
    pub latest: bool,
    pub protected: bool,
}

/// What a kept version is in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Carries the stable name.
    Current,
    /// Older than the current version.
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
}

/// One kept version and the Image spec its image must match.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionPlan {
    pub version: String,
    pub role: Role,
    pub spec: ImageSpec,
}

/// The whole rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPlan {
    /// The version that carries the stable name after this plan, if any.
    pub current: Option<String>,
    /// Kept versions, oldest first.
    pub versions: Vec<VersionPlan>,
    /// Versions to delete: neither kept nor current.
    pub delete: Vec<Held>,
}

/// The rotation for `releases` (any order) given what Glance holds. `stable_name` is the
/// current version's Glance name, `series_key` the series' `namespace/name`.
pub fn plan(
    spec: &ImageSeriesSpec,
    stable_name: &str,
    series_key: &str,
    releases: &[Release],
    held: &[Held],
) -> SeriesPlan {
    let mut kept: Vec<&Release> = releases.iter().collect();
    kept.sort_by(|a, b| version::compare(&a.version, &b.version));
    kept.dedup_by(|a, b| a.version == b.version);
    let kept = kept.split_off(kept.len().saturating_sub(spec.keep()));
    let holding = |version: &str| held.iter().find(|image| image.version == version);
    let current = kept
        .iter()
        .rev()
        .find(|release| holding(&release.version).is_some_and(|image| image.usable))
        .map(|release| release.version.clone())
        .or_else(|| {
            held.iter()
                .find(|image| image.latest && image.usable)
                .map(|image| image.version.clone())
        });
    let versions = kept
        .iter()
        .map(|release| {
            let role = match current
                .as_deref()
                .map(|current| version::compare(&release.version, current))
            {
                Some(Ordering::Equal) => Role::Current,
                Some(Ordering::Less) => Role::Retired,
                _ => Role::Pending,
            };
            VersionPlan {
                version: release.version.clone(),
                role,
                spec: version_spec(spec, stable_name, series_key, release, role),
            }
        })
        .collect();
    let is_kept = |version: &str| kept.iter().any(|release| release.version == version);
    let delete = held
        .iter()
        .filter(|image| !is_kept(&image.version) && current.as_deref() != Some(&image.version))
        .cloned()
        .collect();
    SeriesPlan {
        current,
        versions,
        delete,
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
    release: &Release,
    role: Role,
) -> ImageSpec {
    let name = match role {
        Role::Current => stable_name.to_string(),
        Role::Retired | Role::Pending => versioned_name(stable_name, &release.version),
    };
    let mut image = spec.version_spec(&name, release.source.clone());
    image
        .properties
        .insert(SERIES_PROPERTY.into(), series_key.into());
    image
        .properties
        .insert(VERSION_PROPERTY.into(), release.version.clone());
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
mod tests {
    use super::*;
    use crate::crd::{ImageSource, SeriesRelease};

    fn series(keep: u32, retired: Retirement) -> ImageSeriesSpec {
        ImageSeriesSpec {
            keep: Some(keep),
            retired: Some(retired),
            ..ImageSeriesSpec::default()
        }
    }

    fn releases(versions: &[&str]) -> Vec<Release> {
        versions
            .iter()
            .map(|version| Release {
                version: version.to_string(),
                source: ImageSource {
                    url: format!("https://x/{version}.img"),
                    ..ImageSource::default()
                },
            })
            .collect()
    }

    fn held(version: &str, usable: bool, latest: bool) -> Held {
        Held {
            version: version.into(),
            id: format!("id-{version}"),
            usable,
            latest,
            protected: false,
        }
    }

    fn roles(plan: &SeriesPlan) -> Vec<(&str, Role)> {
        plan.versions
            .iter()
            .map(|v| (v.version.as_str(), v.role))
            .collect()
    }

    fn deleted(plan: &SeriesPlan) -> Vec<&str> {
        plan.delete.iter().map(|h| h.version.as_str()).collect()
    }

    #[test]
    fn the_newest_usable_kept_release_is_current_and_the_rest_fall_in_line() {
        let spec = series(2, Retirement::Hidden);
        type Row = (
            &'static str,
            Vec<&'static str>,
            Vec<Held>,
            Option<&'static str>,
            Vec<(&'static str, Role)>,
            Vec<&'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "first run: nothing held, the newest two are pending",
                vec!["0.1", "0.2", "0.3"],
                vec![],
                None,
                vec![("0.2", Role::Pending), ("0.3", Role::Pending)],
                vec![],
            ),
            (
                "v1 is up: it is current",
                vec!["0.1"],
                vec![held("0.1", true, false)],
                Some("0.1"),
                vec![("0.1", Role::Current)],
                vec![],
            ),
            (
                "v2 published and uploading: v1 stays current",
                vec!["0.1", "0.2"],
                vec![held("0.1", true, true), held("0.2", false, false)],
                Some("0.1"),
                vec![("0.1", Role::Current), ("0.2", Role::Pending)],
                vec![],
            ),
            (
                "v2 active: it takes over, v1 is retired",
                vec!["0.1", "0.2"],
                vec![held("0.1", true, true), held("0.2", true, false)],
                Some("0.2"),
                vec![("0.1", Role::Retired), ("0.2", Role::Current)],
                vec![],
            ),
            (
                "v3 corrupt: v2 stays current, v1 beyond keep goes",
                vec!["0.1", "0.2", "0.3"],
                vec![
                    held("0.1", true, false),
                    held("0.2", true, true),
                    held("0.3", false, false),
                ],
                Some("0.2"),
                vec![("0.2", Role::Current), ("0.3", Role::Pending)],
                vec!["0.1"],
            ),
            (
                "keep 2 with v3 and v4 both failed: v2, no longer kept, stays current and is not deleted",
                vec!["0.2", "0.3", "0.4"],
                vec![
                    held("0.2", true, true),
                    held("0.3", false, false),
                    held("0.4", false, false),
                ],
                Some("0.2"),
                vec![("0.3", Role::Pending), ("0.4", Role::Pending)],
                vec![],
            ),
            (
                "a version dropped from the releases is deleted",
                vec!["0.2"],
                vec![held("0.1", true, false), held("0.2", true, true)],
                Some("0.2"),
                vec![("0.2", Role::Current)],
                vec!["0.1"],
            ),
            (
                "versions order by number, not text",
                vec!["0.10", "0.9"],
                vec![held("0.9", true, true), held("0.10", true, false)],
                Some("0.10"),
                vec![("0.9", Role::Retired), ("0.10", Role::Current)],
                vec![],
            ),
        ];
        for (what, list, holding, current, want_roles, want_deleted) in rows {
            let plan = plan(&spec, "cirros", "ns/cirros", &releases(&list), &holding);
            assert_eq!(plan.current.as_deref(), current, "{what}");
            assert_eq!(roles(&plan), want_roles, "{what}");
            assert_eq!(deleted(&plan), want_deleted, "{what}");
            let currents = plan
                .versions
                .iter()
                .filter(|v| v.spec.properties.contains_key(LATEST_PROPERTY))
                .count();
            assert!(currents <= 1, "{what}: never two current");
        }
    }

    #[test]
    fn each_role_gets_its_name_marks_and_retirement() {
        let list = releases(&["1", "2", "3"]);
        let holding = [
            held("1", true, false),
            held("2", true, true),
            held("3", false, false),
        ];
        for (retired, hidden, deactivated) in [
            (Retirement::Hidden, true, false),
            (Retirement::Deactivated, false, true),
            (Retirement::Listed, false, false),
        ] {
            let plan = plan(&series(3, retired), "cirros", "ns/cirros", &list, &holding);
            let by_version = |v: &str| {
                plan.versions
                    .iter()
                    .find(|p| p.version == v)
                    .map(|p| &p.spec)
                    .expect("kept")
            };
            let (old, current, pending) = (by_version("1"), by_version("2"), by_version("3"));
            assert_eq!(old.name.as_deref(), Some("cirros-1"));
            assert_eq!(
                (old.hidden, old.deactivated),
                (hidden, deactivated),
                "{retired:?}"
            );
            assert_eq!(current.name.as_deref(), Some("cirros"));
            assert!(!current.hidden && !current.deactivated);
            assert_eq!(
                current.properties.get(LATEST_PROPERTY).map(String::as_str),
                Some("true")
            );
            assert_eq!(pending.name.as_deref(), Some("cirros-3"));
            assert!(pending.hidden, "a release on its way is not listed yet");
            for version in [old, current, pending] {
                assert_eq!(
                    version.properties.get(SERIES_PROPERTY).map(String::as_str),
                    Some("ns/cirros")
                );
            }
            assert_eq!(
                pending.source.as_ref().map(|s| s.url.as_str()),
                Some("https://x/3.img")
            );
        }
    }

    #[test]
    fn listed_releases_become_releases_with_their_hashes() {
        let spec = ImageSeriesSpec {
            versions: vec![SeriesRelease {
                version: "1.0".into(),
                url: "https://x/1.0.img".into(),
                hash: None,
            }],
            ..ImageSeriesSpec::default()
        };
        let found = super::super::listed(&spec);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].source.url, "https://x/1.0.img");
    }
}
