//! Table tests of SCS-0102's rules: one image that keeps them all, then one change per row.

use super::*;
use crate::crd::{ChecksumsSource, ScsMetadata, SeriesSchedule};

fn now() -> jiff::Timestamp {
    "2026-12-06T06:00:00Z".parse().expect("a time")
}

/// An Image spec that keeps every rule.
fn keeping() -> ImageSpec {
    let properties = [
        ("architecture", "x86_64"),
        ("os_distro", "ubuntu"),
        ("os_version", "24.04"),
        ("hw_disk_bus", "scsi"),
        ("hw_scsi_model", "virtio-scsi"),
        (
            IMAGE_SOURCE,
            "https://cloud-images.ubuntu.com/noble/20261201/noble.img",
        ),
        (IMAGE_BUILD_DATE, "2026-12-01"),
        (IMAGE_ORIGINAL_USER, "ubuntu"),
        (IMAGE_DESCRIPTION, "https://ubuntu.com/about/release-cycle"),
        (REPLACE_FREQUENCY, "weekly"),
        (PROVIDED_UNTIL, "none"),
        (UUID_VALIDITY, "last-2"),
    ];
    ImageSpec {
        min_disk_gb: Some(4),
        min_ram_mb: Some(512),
        properties: properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ImageSpec::default()
    }
}

fn with(change: impl FnOnce(&mut ImageSpec)) -> ImageSpec {
    let mut spec = keeping();
    change(&mut spec);
    spec
}

fn set(key: &'static str, value: &'static str) -> impl FnOnce(&mut ImageSpec) {
    move |spec| {
        spec.properties.insert(key.into(), value.into());
    }
}

fn unset(key: &'static str) -> impl FnOnce(&mut ImageSpec) {
    move |spec| {
        spec.properties.remove(key);
    }
}

fn abouts(spec: &ImageSpec, manifest: Manifest) -> Vec<&'static str> {
    broken(spec, manifest, now())
        .into_iter()
        .map(|b| b.about)
        .collect()
}

#[test]
fn an_image_with_every_property_right_breaks_no_rule() {
    assert_eq!(broken(&keeping(), Manifest::Image, now()), []);
    for value in [
        "2026-12-01 10:00",
        "2026-12-01 10:00:00",
        "2026-12-01T10:00:00Z",
    ] {
        assert_eq!(
            abouts(&with(set(IMAGE_BUILD_DATE, value)), Manifest::Image),
            Vec::<&str>::new(),
            "{value}"
        );
    }
    for value in ["none", "notice", "forever", "last-3", "2027-06-30"] {
        assert_eq!(
            abouts(&with(set(UUID_VALIDITY, value)), Manifest::Image),
            Vec::<&str>::new(),
            "{value}"
        );
    }
    assert_eq!(
        abouts(&with(set(IMAGE_SOURCE, "private")), Manifest::Image),
        Vec::<&str>::new()
    );
}

#[test]
fn each_rule_an_image_breaks_is_named_once() {
    let rows: Vec<(&str, ImageSpec, &str)> = vec![
        (
            "no architecture",
            with(unset("architecture")),
            "architecture",
        ),
        (
            "an architecture OpenStack does not name",
            with(set("architecture", "amd64")),
            "architecture",
        ),
        ("no min disk", with(|s| s.min_disk_gb = None), "min_disk"),
        (
            "a zero min RAM",
            with(|s| s.min_ram_mb = Some(0)),
            "min_ram",
        ),
        ("no distro", with(unset("os_distro")), "os_distro"),
        (
            "an empty version",
            with(set("os_version", "")),
            "os_version",
        ),
        ("no disk bus", with(unset("hw_disk_bus")), "hw_disk_bus"),
        (
            "an ide disk bus",
            with(set("hw_disk_bus", "ide")),
            "hw_disk_bus",
        ),
        (
            "an unknown hypervisor",
            with(set("hypervisor_type", "vbox")),
            "hypervisor_type",
        ),
        (
            "a non-virtio RNG",
            with(set("hw_rng_model", "random")),
            "hw_rng_model",
        ),
        (
            "a source that is not a download URL",
            with(set(IMAGE_SOURCE, "file:///tmp/x")),
            IMAGE_SOURCE,
        ),
        (
            "no build date",
            with(unset(IMAGE_BUILD_DATE)),
            IMAGE_BUILD_DATE,
        ),
        (
            "a build date in words",
            with(set(IMAGE_BUILD_DATE, "1 Dec 2026")),
            IMAGE_BUILD_DATE,
        ),
        (
            "a build date in the future",
            with(set(IMAGE_BUILD_DATE, "2027-01-01")),
            IMAGE_BUILD_DATE,
        ),
        (
            "no login user",
            with(unset(IMAGE_ORIGINAL_USER)),
            IMAGE_ORIGINAL_USER,
        ),
        (
            "no description",
            with(unset(IMAGE_DESCRIPTION)),
            IMAGE_DESCRIPTION,
        ),
        (
            "a frequency outside the vocabulary",
            with(set(REPLACE_FREQUENCY, "often")),
            REPLACE_FREQUENCY,
        ),
        (
            "no provided_until",
            with(unset(PROVIDED_UNTIL)),
            PROVIDED_UNTIL,
        ),
        (
            "a provided_until in words",
            with(set(PROVIDED_UNTIL, "forever")),
            PROVIDED_UNTIL,
        ),
        (
            "a uuid_validity without N",
            with(set(UUID_VALIDITY, "last-")),
            UUID_VALIDITY,
        ),
        (
            "hotfix hours in words",
            with(set(HOTFIX_HOURS, "soon")),
            HOTFIX_HOURS,
        ),
    ];
    for (row, spec, about) in rows {
        assert_eq!(abouts(&spec, Manifest::Image), [about], "{row}");
    }
}

#[test]
fn the_fix_names_the_field_of_the_manifest_at_hand() {
    let spec = with(unset("os_distro"));
    let image = broken(&spec, Manifest::Image, now());
    assert!(
        image[0].message.contains("spec.properties.os_distro"),
        "{}",
        image[0]
    );
    let series = broken(&spec, Manifest::Series { stamped: true }, now());
    assert!(
        series[0]
            .message
            .contains("spec.image.properties.os_distro"),
        "{}",
        series[0]
    );
    let unstamped = broken(
        &with(unset(IMAGE_ORIGINAL_USER)),
        Manifest::Series { stamped: false },
        now(),
    );
    assert!(
        unstamped[0].message.contains("set spec.scsMetadata"),
        "{}",
        unstamped[0]
    );
}

fn series(
    every: &str,
    frequency: Option<ReplaceFrequency>,
    retired: Option<Retirement>,
) -> ImageSeriesSpec {
    ImageSeriesSpec {
        retired,
        checksums: Some(ChecksumsSource::default()),
        schedule: Some(SeriesSchedule {
            every: Some(every.into()),
            ..SeriesSchedule::default()
        }),
        scs_metadata: Some(ScsMetadata {
            original_user: "ubuntu".into(),
            replace_frequency: frequency,
            ..ScsMetadata::default()
        }),
        ..ImageSeriesSpec::default()
    }
}

#[test]
fn a_series_is_told_what_the_standard_makes_of_its_rotation() {
    let rows: Vec<(&str, ImageSeriesSpec, Option<&str>, Vec<&str>)> = vec![
        (
            "weekly checks, a week-old release",
            series("168h", None, None),
            Some("20261201"),
            vec![],
        ),
        (
            "replaced versions left visible",
            series("168h", None, Some(Retirement::Listed)),
            Some("20261201"),
            vec!["outdated images"],
        ),
        (
            "a promise tighter than the checks",
            series("168h", Some(ReplaceFrequency::Daily), None),
            Some("20261206"),
            vec![REPLACE_FREQUENCY],
        ),
        (
            "a newest release older than its frequency allows",
            series("24h", None, None),
            Some("20261101"),
            vec![REPLACE_FREQUENCY],
        ),
        (
            "never: no release is outdated",
            series("24h", Some(ReplaceFrequency::Never), None),
            Some("20200101"),
            vec![],
        ),
        (
            "a version without a date is not judged by age",
            series("24h", None, None),
            Some("41-1.4"),
            vec![],
        ),
    ];
    for (row, spec, newest, expected) in rows {
        let found: Vec<&str> = broken_by_series(&spec, newest, now())
            .into_iter()
            .map(|b| b.about)
            .collect();
        assert_eq!(found, expected, "{row}");
    }
}

#[test]
fn only_images_offered_to_everyone_are_the_standards_concern() {
    for (visibility, applies) in [
        (None, false),
        (Some(Visibility::Private), false),
        (Some(Visibility::Shared), false),
        (Some(Visibility::Community), true),
        (Some(Visibility::Public), true),
    ] {
        assert_eq!(applies_to(visibility), applies, "{visibility:?}");
    }
}
