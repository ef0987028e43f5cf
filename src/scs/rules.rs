//! The standard's rules an image would break, each with what to change in the manifest.

use std::collections::BTreeMap;
use std::fmt;

use super::stamp::{build_date_of, frequency_for, outdated_after, replace_frequency};
use super::{
    HOTFIX_HOURS, IMAGE_BUILD_DATE, IMAGE_DESCRIPTION, IMAGE_ORIGINAL_USER, IMAGE_SOURCE,
    PROVIDED_UNTIL, REPLACE_FREQUENCY, UUID_VALIDITY,
};
use crate::crd::{ImageSeriesSpec, ImageSpec, ReplaceFrequency, Retirement, Visibility};

/// One rule an image would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The property (or the series' field) the rule is about.
    pub about: &'static str,
    /// What is wrong and what to change.
    pub message: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.about, self.message)
    }
}

/// The manifest the report speaks to, so each fix names the field to edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manifest {
    Image,
    /// A series; `stamped` when its spec.scsMetadata is set.
    Series {
        stamped: bool,
    },
}

impl Manifest {
    fn field(self, name: &str) -> String {
        match self {
            Self::Image => format!("spec.{name}"),
            Self::Series { .. } => format!("spec.image.{name}"),
        }
    }

    fn property(self, key: &str) -> String {
        self.field(&format!("properties.{key}"))
    }
}

/// Whether the standard speaks to an image this visible: it is about images a cloud offers
/// to all its users.
pub fn applies_to(visibility: Option<Visibility>) -> bool {
    matches!(visibility, Some(Visibility::Public | Visibility::Community))
}

const ARCHITECTURES: &[&str] = &["x86_64", "aarch64", "risc-v"];
const DISK_BUSES: &[&str] = &["virtio", "scsi"];
const HYPERVISORS: &[&str] = &["qemu", "kvm", "xen", "hyper-v", "esxi"];
/// The date forms SCS's check reads in image_build_date and date-valued uuid_validity.
const DATE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
];

/// The rules the image `spec` describes would break (its properties as glint would write
/// them), at `now`.
pub fn broken(spec: &ImageSpec, manifest: Manifest, now: jiff::Timestamp) -> Vec<Broken> {
    let properties = &spec.properties;
    let mut found = Vec::new();
    let mut rule = |about: &'static str, message: String| found.push(Broken { about, message });
    let value = |key: &str| {
        properties
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };

    match value("architecture") {
        Some(arch) if ARCHITECTURES.contains(&arch) => {}
        other => rule(
            "architecture",
            format!(
                "{}; set {} to x86_64, aarch64 or risc-v",
                said(other),
                manifest.property("architecture")
            ),
        ),
    }
    if spec.min_disk_gb.unwrap_or(0) == 0 {
        rule(
            "min_disk",
            format!(
                "is 0; set {} to the disk a server needs, in GiB",
                manifest.field("minDiskGB")
            ),
        );
    }
    if spec.min_ram_mb.unwrap_or(0) == 0 {
        rule(
            "min_ram",
            format!(
                "is 0; set {} to the memory a server needs to boot, in MiB",
                manifest.field("minRamMB")
            ),
        );
    }
    for (key, example) in [
        ("os_distro", "ubuntu, debian, fedora, almalinux, ..."),
        ("os_version", "24.04"),
    ] {
        if value(key).is_none() {
            rule(
                key,
                format!("is missing; set {} ({example})", manifest.property(key)),
            );
        }
    }
    match value("hw_disk_bus") {
        Some(bus) if DISK_BUSES.contains(&bus) => {}
        other => rule(
            "hw_disk_bus",
            format!(
                "{}; set {} to scsi (with hw_scsi_model: virtio-scsi) or virtio",
                said(other),
                manifest.property("hw_disk_bus")
            ),
        ),
    }
    if let Some(hypervisor) = value("hypervisor_type")
        && !HYPERVISORS.contains(&hypervisor)
    {
        rule(
            "hypervisor_type",
            format!("is {hypervisor:?}; use qemu, kvm, xen, hyper-v or esxi, or leave it out"),
        );
    }
    if let Some(model) = value("hw_rng_model")
        && model != "virtio"
    {
        rule(
            "hw_rng_model",
            format!("is {model:?}; use virtio, or leave it out"),
        );
    }
    handling_rules(properties, manifest, now, &mut rule);
    found
}

/// What a report says of a value a rule does not accept.
fn said(value: Option<&str>) -> String {
    value.map_or("is missing".to_string(), |value| format!("is {value:?}"))
}

/// The image handling properties: where the image comes from, when it was built, how long it
/// stays.
fn handling_rules(
    properties: &BTreeMap<String, String>,
    manifest: Manifest,
    now: jiff::Timestamp,
    rule: &mut impl FnMut(&'static str, String),
) {
    let value = |key: &str| {
        properties
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    // Where the value comes from: an Image's properties, or a series' spec.scsMetadata (the
    // field named; glint stamps the rest itself).
    let fix = |key: &str, field: &str, what: &str| match manifest {
        Manifest::Series { stamped: false } => {
            "set spec.scsMetadata (originalUser at least), and glint stamps it on every version"
                .to_string()
        }
        Manifest::Series { stamped: true } => format!("set spec.scsMetadata.{field} ({what})"),
        Manifest::Image => format!("set {} ({what})", manifest.property(key)),
    };
    match value(IMAGE_SOURCE) {
        Some(source) if source == "private" || is_download_url(source) => {}
        other => rule(
            IMAGE_SOURCE,
            format!(
                "{}; {}",
                said(other),
                fix(
                    IMAGE_SOURCE,
                    "-",
                    "the URL the image was downloaded from, or private"
                )
            ),
        ),
    }
    match value(IMAGE_BUILD_DATE) {
        None => rule(
            IMAGE_BUILD_DATE,
            match manifest {
                Manifest::Series { stamped: true } => "is missing: the release's version names no date (Fedora's composes do not), so glint cannot stamp one; give it in spec.image.properties.image_build_date if every version shares it, or follow releases whose versions carry their date".to_string(),
                _ => format!("is missing; {}", fix(IMAGE_BUILD_DATE, "-", "YYYY-MM-DD, the day the image's packages were last updated")),
            },
        ),
        Some(date) => match parse_date(date) {
            None => rule(
                IMAGE_BUILD_DATE,
                format!("{date:?} is not a date SCS reads; write YYYY-MM-DD or YYYY-MM-DD hh:mm[:ss] (UTC)"),
            ),
            Some(at) if at > now => rule(
                IMAGE_BUILD_DATE,
                format!("{date} is in the future; it is the day the image was built"),
            ),
            Some(_) => {}
        },
    }
    for (key, field, what) in [
        (
            IMAGE_ORIGINAL_USER,
            "originalUser",
            "the login user, or none",
        ),
        (
            IMAGE_DESCRIPTION,
            "description",
            "release notes: a URL or a text",
        ),
    ] {
        if value(key).is_none() {
            rule(key, format!("is missing; {}", fix(key, field, what)));
        }
    }
    let frequency = value(REPLACE_FREQUENCY);
    if frequency.and_then(frequency_named).is_none() {
        rule(
            REPLACE_FREQUENCY,
            format!(
                "{}; {}",
                said(frequency),
                fix(
                    REPLACE_FREQUENCY,
                    "replaceFrequency",
                    "yearly, quarterly, monthly, weekly, daily, critical_bug or never"
                )
            ),
        );
    }
    let until = value(PROVIDED_UNTIL);
    if !until.is_some_and(|u| u == "none" || u == "notice" || parse_date(u).is_some()) {
        rule(
            PROVIDED_UNTIL,
            format!(
                "{}; {}",
                said(until),
                fix(
                    PROVIDED_UNTIL,
                    "providedUntil",
                    "YYYY-MM-DD, none or notice"
                )
            ),
        );
    }
    let validity = value(UUID_VALIDITY);
    if !validity.is_some_and(uuid_validity_reads) {
        rule(
            UUID_VALIDITY,
            format!(
                "{}; {}",
                said(validity),
                fix(
                    UUID_VALIDITY,
                    "-",
                    "none, last-N, YYYY-MM-DD, notice or forever"
                )
            ),
        );
    }
    if let Some(hours) = value(HOTFIX_HOURS)
        && !hours.bytes().all(|b| b.is_ascii_digit())
    {
        rule(HOTFIX_HOURS, format!("{hours:?} is not a number of hours"));
    }
}

fn is_download_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https" | "ftp" | "ftps"))
}

fn frequency_named(word: &str) -> Option<ReplaceFrequency> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

fn uuid_validity_reads(text: &str) -> bool {
    matches!(text, "none" | "notice" | "forever")
        || text
            .strip_prefix("last-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || parse_date(text).is_some()
}

/// A date in one of the forms SCS's check reads, as UTC.
fn parse_date(text: &str) -> Option<jiff::Timestamp> {
    DATE_FORMATS.iter().find_map(|format| {
        if *format == "%Y-%m-%d" {
            return text
                .parse::<jiff::civil::Date>()
                .ok()
                .filter(|_| text.len() == 10)
                .and_then(|date| date.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|zoned| zoned.timestamp());
        }
        jiff::civil::DateTime::strptime(format, text)
            .ok()
            .and_then(|at| at.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|zoned| zoned.timestamp())
    })
}

/// The rules only a series can break: how it names and keeps replaced versions, and whether
/// its newest release would already count as outdated. `newest` is the newest listed
/// release's version, when the mirror was read.
pub fn broken_by_series(
    spec: &ImageSeriesSpec,
    newest: Option<&str>,
    now: jiff::Timestamp,
) -> Vec<Broken> {
    let mut found = Vec::new();
    if spec.retired == Some(Retirement::Listed) {
        found.push(Broken {
            about: "outdated images",
            message: "spec.retired: listed leaves replaced versions visible as NAME-VERSION; SCS-0102 wants them hidden (spec.retired: hidden, the default) so that the name finds the current one".to_string(),
        });
    }
    let Some(frequency) = replace_frequency(spec) else {
        return found;
    };
    let checks = frequency_for(spec.check_every());
    if spec.schedule.as_ref().is_none_or(|s| s.cron.is_none())
        && let (Some(promised), Some(possible)) =
            (outdated_after(frequency), outdated_after(checks))
        && promised < possible
    {
        found.push(Broken {
            about: REPLACE_FREQUENCY,
            message: format!(
                "{} promises a new version more often than glint looks for one (spec.schedule.every: {}); check more often or set spec.scsMetadata.replaceFrequency to {}",
                frequency.as_str(),
                spec.schedule.as_ref().and_then(|s| s.every.as_deref()).unwrap_or("24h"),
                checks.as_str()
            ),
        });
    }
    let built = newest
        .and_then(build_date_of)
        .and_then(|date| parse_date(&date).map(|at| (date, at)));
    if let (Some((date, at)), Some(limit)) = (built, outdated_after(frequency))
        && let Ok(span) = jiff::SignedDuration::try_from(limit)
        && at.checked_add(span).is_ok_and(|due| due < now)
    {
        found.push(Broken {
            about: REPLACE_FREQUENCY,
            message: format!(
                "the newest release ({}) was built on {date}, so with replace_frequency {} SCS's check already counts it as outdated; set spec.scsMetadata.replaceFrequency to how often the distribution really publishes",
                newest.unwrap_or_default(),
                frequency.as_str()
            ),
        });
    }
    found
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
