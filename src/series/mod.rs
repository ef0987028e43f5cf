//! Image series: the releases of one image, each a Glance image of its own, rotated so that
//! the newest active release carries the stable name (`spec.keep` of them kept).
//!
//! ```text
//! spec.versions ─┐
//!                ├─► releases ─► plan (pure) ─► one Image pass per version ─► Glance
//! checksums file ┘   (version order)  current, retired, pending, deleted
//! ```
//!
//! - [`checksums`]: checksums files as distributions publish them.
//! - [`version`]: version order (0.6.10 after 0.6.9).
//! - [`plan`]: which version is current, what every version's Image looks like, what goes.
//! - [`observe`]: the versions Glance holds (the one part that reads Glance).
//!
//! The rotation never trusts memory: which version is current is decided from what Glance
//! holds (the newest kept release whose image is active and not quarantined), and every
//! version's image is made to match its role through the same pass an Image takes, so a run
//! cut short anywhere is finished by the next one.

pub mod checksums;
pub mod cron;
pub mod observe;
pub mod plan;
pub mod version;

use crate::crd::{ChecksumsSource, ImageSeriesSpec, ImageSource, SeriesRelease, SourceHash};
use crate::reason::Reason;

/// One release: a version and where its data is.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub version: String,
    pub source: ImageSource,
}

/// Why the releases could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ReleasesError {
    /// The checksums file could not be fetched (the words say why); trying later can help.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Checksums(#[from] checksums::ChecksumsError),
    #[error("spec.checksums.pattern is not a regular expression glint can use: {0}")]
    Pattern(String),
    #[error(
        "no file in the checksums file matches spec.checksums.pattern {pattern:?} (it lists {listed}); fix the pattern"
    )]
    NoMatch { pattern: String, listed: String },
    #[error("spec.checksums.url {url:?} is not a URL: {reason}")]
    Url { url: String, reason: String },
}

impl ReleasesError {
    /// A stable PascalCase reason for conditions and the CLI.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unavailable(_) => Reason::ChecksumsUnavailable,
            Self::Checksums(_) => Reason::ChecksumFormatUnknown,
            Self::Pattern(_) => Reason::InvalidPattern,
            Self::NoMatch { .. } => Reason::NoMatchingRelease,
            Self::Url { .. } => Reason::InvalidChecksumsUrl,
        }
    }
}

/// When the check after one at `last` is due: the next cron time, or `every` later (24 h by
/// default). `None` when the cron expression names a time that never comes.
pub fn next_check(
    spec: &ImageSeriesSpec,
    last: jiff::Timestamp,
) -> Result<Option<jiff::Timestamp>, cron::CronError> {
    if let Some(expression) = spec.schedule.as_ref().and_then(|s| s.cron.as_deref()) {
        return Ok(cron::Cron::parse(expression)?.next_after(last));
    }
    Ok(last.checked_add(spec.check_every()).ok())
}

/// The releases spec.versions lists.
pub fn listed(spec: &ImageSeriesSpec) -> Vec<Release> {
    spec.versions.iter().map(Release::from).collect()
}

impl From<&SeriesRelease> for Release {
    fn from(release: &SeriesRelease) -> Self {
        Self {
            version: release.version.clone(),
            source: ImageSource {
                url: release.url.clone(),
                hash: release.hash.clone(),
                ..ImageSource::default()
            },
        }
    }
}

impl From<&Release> for SeriesRelease {
    fn from(release: &Release) -> Self {
        Self {
            version: release.version.clone(),
            url: release.source.url.clone(),
            hash: release.source.hash.clone(),
        }
    }
}

/// The releases a checksums file (its text, fetched from `source.url`) lists under the
/// pattern: each file that matches it whole, with its digest as the source hash and its URL
/// beside the checksums file.
pub fn published(source: &ChecksumsSource, text: &str) -> Result<Vec<Release>, ReleasesError> {
    let pattern = regex::Regex::new(&format!("^(?:{})$", source.pattern))
        .map_err(|err| ReleasesError::Pattern(err.to_string()))?;
    if !pattern.capture_names().any(|name| name == Some("version")) {
        return Err(ReleasesError::Pattern(
            "it has no group named version, as in (?P<version>[0-9.]+)".into(),
        ));
    }
    let base = url::Url::parse(&source.url).map_err(|err| ReleasesError::Url {
        url: source.url.clone(),
        reason: err.to_string(),
    })?;
    let entries = checksums::parse(text)?;
    let mut releases = Vec::new();
    for entry in &entries {
        let Some(version) = pattern
            .captures(&entry.file)
            .and_then(|captures| captures.name("version"))
        else {
            continue;
        };
        let url = match &source.url_template {
            Some(template) => {
                let filled = template
                    .replace("{file}", &entry.file)
                    .replace("{version}", version.as_str());
                url::Url::parse(&filled).map_err(|err| ReleasesError::Url {
                    url: filled.clone(),
                    reason: format!("spec.checksums.urlTemplate gave no URL: {err}"),
                })?
            }
            None => base.join(&entry.file).map_err(|err| ReleasesError::Url {
                url: source.url.clone(),
                reason: format!("{} does not resolve beside it: {err}", entry.file),
            })?,
        };
        releases.push(Release {
            version: version.as_str().to_string(),
            source: ImageSource {
                url: url.to_string(),
                hash: Some(SourceHash {
                    algorithm: entry.algorithm,
                    value: entry.digest.clone(),
                }),
                ..ImageSource::default()
            },
        });
    }
    if releases.is_empty() {
        let mut listed: Vec<&str> = entries.iter().map(|entry| entry.file.as_str()).collect();
        listed.truncate(5);
        return Err(ReleasesError::NoMatch {
            pattern: source.pattern.clone(),
            listed: listed.join(", "),
        });
    }
    Ok(releases)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "6b6e8e5a8a1c2f7e5e9a7a4c3f1d2b0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

    fn source(pattern: &str) -> ChecksumsSource {
        ChecksumsSource {
            url: "https://mirror.example/cirros/SHA256SUMS".into(),
            pattern: pattern.into(),
            url_template: None,
        }
    }

    #[test]
    fn a_url_template_places_each_file_by_name_and_version() {
        let text = format!("{DIGEST}  cirros-0.6.2-x86_64-disk.img\n");
        let source = ChecksumsSource {
            url_template: Some("https://cdn.example/{version}/{file}".into()),
            ..source(r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img")
        };
        let releases = published(&source, &text).unwrap();
        assert_eq!(
            releases[0].source.url,
            "https://cdn.example/0.6.2/cirros-0.6.2-x86_64-disk.img"
        );
    }

    #[test]
    fn a_checksums_file_becomes_releases_beside_it_with_their_hashes() {
        let text = format!(
            "{DIGEST}  cirros-0.6.2-x86_64-disk.img\n{DIGEST}  cirros-0.6.2-aarch64-disk.img\n{DIGEST}  cirros-0.6.10-x86_64-disk.img\n"
        );
        let releases = published(
            &source(r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img"),
            &text,
        )
        .unwrap();
        let found: Vec<(&str, &str)> = releases
            .iter()
            .map(|r| (r.version.as_str(), r.source.url.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "0.6.2",
                    "https://mirror.example/cirros/cirros-0.6.2-x86_64-disk.img"
                ),
                (
                    "0.6.10",
                    "https://mirror.example/cirros/cirros-0.6.10-x86_64-disk.img"
                ),
            ]
        );
        let hash = releases[0].source.hash.as_ref().expect("hash");
        assert_eq!(hash.value, DIGEST);
    }

    #[test]
    fn the_next_check_comes_from_cron_or_the_period() {
        let last: jiff::Timestamp = "2026-12-02T14:00:00Z".parse().unwrap();
        let with = |every: Option<&str>, cron: Option<&str>| ImageSeriesSpec {
            schedule: Some(crate::crd::SeriesSchedule {
                every: every.map(str::to_string),
                cron: cron.map(str::to_string),
            }),
            ..ImageSeriesSpec::default()
        };
        let at = |text: &str| Some(text.parse::<jiff::Timestamp>().unwrap());
        assert_eq!(
            next_check(&ImageSeriesSpec::default(), last).unwrap(),
            at("2026-12-03T14:00:00Z"),
            "every 24 h by default"
        );
        assert_eq!(
            next_check(&with(Some("6h"), None), last).unwrap(),
            at("2026-12-02T20:00:00Z")
        );
        assert_eq!(
            next_check(&with(None, Some("0 3 * * *")), last).unwrap(),
            at("2026-12-03T03:00:00Z")
        );
        assert!(next_check(&with(None, Some("0 25 * * *")), last).is_err());
    }

    #[test]
    fn a_pattern_must_match_a_whole_name_and_name_its_version() {
        let text = format!("{DIGEST}  cirros-0.6.2-x86_64-disk.img.sig\n");
        let rows = [
            (
                r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img",
                "NoMatchingRelease",
            ),
            (r"cirros-([0-9.]+).*", "InvalidPattern"),
            (r"cirros-(?P<version>[0-9.+", "InvalidPattern"),
        ];
        for (pattern, reason) in rows {
            let err = published(&source(pattern), &text).expect_err(pattern);
            assert_eq!(err.reason().as_str(), reason, "{pattern}: {err}");
        }
        let err = published(&source(r"(?P<version>.*)"), "<html>").expect_err("html");
        assert_eq!(err.reason().as_str(), "ChecksumFormatUnknown");
    }
}
