//! Image series: the releases of one image, each a Glance image of its own, rotated so that
//! the newest active release carries the stable name (`spec.keep` of them kept).
//!
//! ```text
//! spec.versions ─┐
//!                ├─► releases ─► plan (pure) ─► one Image pass per version ─► Glance
//! checksums file ┘   (version order)  current, retired, pending, deleted
//! ```
//!
//! - [`discover`]: a mirror's releases, from its folders and checksums files (read and
//!   signature-checked by [`crate::checksums`]).
//! - [`version`]: version order (0.6.10 after 0.6.9).
//! - [`plan`]: which version is current, what every version's Image looks like, what goes.
//! - [`observe`]: the versions Glance holds (the one part that reads Glance).
//!
//! The rotation never trusts memory: which version is current is decided from what Glance
//! holds (the newest kept release whose image is active and not quarantined), and every
//! version's image is made to match its role through the same pass an Image takes, so a run
//! cut short anywhere is finished by the next one.

pub mod cron;
pub mod discover;
pub mod index;
pub mod observe;
pub mod plan;
pub mod version;

use crate::checksums::{self, signature};
use crate::crd::{ImageSeriesSpec, ImageSource, SeriesRelease};
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
    /// The checksums file's signature does not check out (or cannot be checked).
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error(
        "{url}: its name carries no version (the pattern has no version group, and neither folders nor file give one) and the mirror sends no Last-Modified for it, so glint cannot tell one build from the next; add a (?P<version>...) group to spec.checksums.pattern, or read the release folders with spec.checksums.folders"
    )]
    VersionUnknown { url: String },
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
            Self::VersionUnknown { .. } => Reason::ReleaseVersionUnknown,
            Self::Signature(err) => err.reason(),
        }
    }

    /// Whether checking again later can help (the mirror was unreachable, or mid-sync).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Signature(signature::SignatureError::Missing(_))
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
