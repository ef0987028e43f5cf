//! What `glint plan` says of Sovereign Cloud Stack's image metadata standard (SCS-0102):
//! which of its rules an Image or a series would break, before anything is published. The
//! rules speak to images offered to everyone (public, community) and to series that stamp the
//! standard's properties (spec.scsMetadata); other images are not its concern. Advice, not
//! errors: the exit code stays what the plan's changes make it.

use crate::crd::ImageSeriesSpec;
use crate::scs::rules::{Manifest, applies_to, broken, broken_by_series};
use crate::series::plan::VersionPlan;

use super::manifests::Document;

/// The lines to print under an Image's plan.
pub fn image_lines(document: &Document, now: jiff::Timestamp) -> Vec<String> {
    let spec = &document.image.spec;
    if !applies_to(spec.visibility) {
        return Vec::new();
    }
    broken(spec, Manifest::Image, now)
        .iter()
        .map(line)
        .collect()
}

/// The lines to print under a series' plan; `newest` is the newest version it would hold, as
/// it would be written to Glance.
pub fn series_lines(
    spec: &ImageSeriesSpec,
    newest: Option<&VersionPlan>,
    now: jiff::Timestamp,
) -> Vec<String> {
    let stamped = spec.scs_metadata.is_some();
    if !stamped && !applies_to(spec.image.visibility) {
        return Vec::new();
    }
    let mut found = Vec::new();
    if let Some(version) = newest {
        found.extend(broken(&version.spec, Manifest::Series { stamped }, now));
    }
    found.extend(broken_by_series(
        spec,
        newest.map(|v| v.version.as_str()),
        now,
    ));
    found.iter().map(line).collect()
}

fn line(broken: &crate::scs::rules::Broken) -> String {
    format!("{} {broken}", crate::scs::STANDARD)
}
