//! What a series knows of SCS-0102's image handling properties, for each version.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    HOTFIX_HOURS, IMAGE_BUILD_DATE, IMAGE_DESCRIPTION, IMAGE_ORIGINAL_USER, IMAGE_SOURCE,
    PROVIDED_UNTIL, REPLACE_FREQUENCY, UUID_VALIDITY,
};
use crate::crd::{ImageSeriesSpec, ReplaceFrequency, Retirement, ScsMetadata};

const DAY: u64 = 24 * 3600;

/// The standard's properties for one version, when the spec asks for them. `source_url` is
/// the release's URL (or, for a version the mirror no longer lists, the one its image
/// carries).
pub fn properties(
    spec: &ImageSeriesSpec,
    version: &str,
    source_url: Option<&str>,
) -> BTreeMap<String, String> {
    let Some(scs) = &spec.scs_metadata else {
        return BTreeMap::new();
    };
    let mut stamped = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        // Glance holds at most 255 characters in a property.
        stamped.insert(key.to_string(), value.chars().take(255).collect::<String>());
    };
    if let Some(url) = source_url {
        put(IMAGE_SOURCE, url.to_string());
    }
    if let Some(date) = build_date_of(version) {
        put(IMAGE_BUILD_DATE, date);
    }
    put(IMAGE_ORIGINAL_USER, scs.original_user.clone());
    if let Some(description) = description(spec, scs, source_url) {
        put(IMAGE_DESCRIPTION, description);
    }
    if let Some(frequency) = replace_frequency(spec) {
        put(REPLACE_FREQUENCY, frequency.as_str().to_string());
    }
    put(
        PROVIDED_UNTIL,
        scs.provided_until.clone().unwrap_or_else(|| "none".into()),
    );
    put(UUID_VALIDITY, uuid_validity(spec));
    if let Some(hours) = scs.hotfix_hours {
        put(HOTFIX_HOURS, hours.to_string());
    }
    stamped
}

fn description(
    spec: &ImageSeriesSpec,
    scs: &ScsMetadata,
    source_url: Option<&str>,
) -> Option<String> {
    scs.description
        .clone()
        .or_else(|| spec.checksums.as_ref().map(|c| c.url.clone()))
        .or_else(|| source_url.map(str::to_string))
}

/// The build date a version names, as `YYYY-MM-DD`: the first run of eight digits that is a
/// date (Ubuntu's serial `20241201`, Debian's `20241201-1234`, AlmaLinux' `9.5-20241120`, a
/// current/ file's `20241201-194907`). Fedora's `41-1.4` names none.
pub fn build_date_of(version: &str) -> Option<String> {
    let bytes = version.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let run = bytes[start..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if run == 0 {
            start += 1;
            continue;
        }
        if run == 8 {
            let digits = &version[start..start + 8];
            let date = format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..]);
            if let Ok(parsed) = date.parse::<jiff::civil::Date>()
                && (1990..=2199).contains(&parsed.year())
            {
                return Some(date);
            }
        }
        start += run;
    }
    None
}

/// replace_frequency: the spec's, else the tightest promise glint's checks can keep.
pub fn replace_frequency(spec: &ImageSeriesSpec) -> Option<ReplaceFrequency> {
    let scs = spec.scs_metadata.as_ref()?;
    if let Some(frequency) = scs.replace_frequency {
        return Some(frequency);
    }
    if spec.schedule.as_ref().is_some_and(|s| s.cron.is_some()) {
        return None;
    }
    Some(frequency_for(spec.check_every()))
}

/// The tightest replace_frequency checks this far apart can keep.
pub fn frequency_for(every: Duration) -> ReplaceFrequency {
    let days = every.as_secs().div_ceil(DAY);
    match days {
        0..=1 => ReplaceFrequency::Daily,
        2..=7 => ReplaceFrequency::Weekly,
        8..=31 => ReplaceFrequency::Monthly,
        32..=92 => ReplaceFrequency::Quarterly,
        _ => ReplaceFrequency::Yearly,
    }
}

/// How long a frequency lets a version stand before SCS's check calls it outdated (the
/// period and its 10% grace); `None` for never and critical_bug.
pub fn outdated_after(frequency: ReplaceFrequency) -> Option<Duration> {
    let hours: u64 = match frequency {
        ReplaceFrequency::Yearly => 365 * 24,
        ReplaceFrequency::Quarterly => 92 * 24,
        ReplaceFrequency::Monthly => 31 * 24,
        ReplaceFrequency::Weekly => 7 * 25,
        ReplaceFrequency::Daily => 25,
        ReplaceFrequency::CriticalBug | ReplaceFrequency::Never => return None,
    };
    Some(Duration::from_secs(hours * 3600 * 11 / 10))
}

/// uuid_validity: `last-N`, N the replaced versions keep holds and a server can still boot;
/// `none` when keep is 1 or retired versions are deactivated.
pub fn uuid_validity(spec: &ImageSeriesSpec) -> String {
    let replaced_kept = spec.keep().saturating_sub(1);
    if replaced_kept == 0 || spec.retired.unwrap_or_default() == Retirement::Deactivated {
        "none".to_string()
    } else {
        format!("last-{replaced_kept}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ChecksumsSource, SeriesSchedule};

    #[test]
    fn a_build_date_is_read_from_the_versions_distributions_give() {
        let table = [
            ("20241201", Some("2024-12-01")),
            ("20241201-1234", Some("2024-12-01")),
            ("20241201-194907", Some("2024-12-01")),
            ("9.5-20241120", Some("2024-11-20")),
            ("9-20241202.0", Some("2024-12-02")),
            ("41-1.4", None),
            ("0.6.3", None),
            ("20241341", None),
            ("123456789", None),
            ("1234567", None),
            ("v12345678-20250102", Some("2025-01-02")),
            ("", None),
        ];
        for (version, date) in table {
            assert_eq!(build_date_of(version).as_deref(), date, "{version}");
        }
    }

    #[test]
    fn the_replace_frequency_is_the_tightest_the_checks_can_keep() {
        let table = [
            (3600, ReplaceFrequency::Daily),
            (DAY, ReplaceFrequency::Daily),
            (DAY + 1, ReplaceFrequency::Weekly),
            (7 * DAY, ReplaceFrequency::Weekly),
            (31 * DAY, ReplaceFrequency::Monthly),
            (60 * DAY, ReplaceFrequency::Quarterly),
            (100 * DAY, ReplaceFrequency::Yearly),
        ];
        for (seconds, frequency) in table {
            assert_eq!(
                frequency_for(Duration::from_secs(seconds)),
                frequency,
                "{seconds}"
            );
        }
    }

    fn series(keep: u32, retired: Option<Retirement>) -> ImageSeriesSpec {
        ImageSeriesSpec {
            keep: Some(keep),
            retired,
            checksums: Some(ChecksumsSource {
                url: "https://cloud-images.ubuntu.com/noble/".into(),
                ..ChecksumsSource::default()
            }),
            schedule: Some(SeriesSchedule {
                every: Some("168h".into()),
                ..SeriesSchedule::default()
            }),
            scs_metadata: Some(ScsMetadata {
                original_user: "ubuntu".into(),
                ..ScsMetadata::default()
            }),
            ..ImageSeriesSpec::default()
        }
    }

    #[test]
    fn uuid_validity_counts_the_replaced_versions_that_stay_bootable() {
        let table = [
            (3, None, "last-2"),
            (1, None, "none"),
            (2, Some(Retirement::Listed), "last-1"),
            (3, Some(Retirement::Deactivated), "none"),
        ];
        for (keep, retired, expected) in table {
            assert_eq!(
                uuid_validity(&series(keep, retired)),
                expected,
                "{keep} {retired:?}"
            );
        }
    }

    #[test]
    fn a_version_is_stamped_with_what_the_series_knows_and_the_spec_gives() {
        let spec = series(3, None);
        let stamped = properties(
            &spec,
            "20241201",
            Some("https://cloud-images.ubuntu.com/noble/20241201/noble-server-cloudimg-amd64.img"),
        );
        let expected: BTreeMap<String, String> = [
            (
                IMAGE_SOURCE,
                "https://cloud-images.ubuntu.com/noble/20241201/noble-server-cloudimg-amd64.img",
            ),
            (IMAGE_BUILD_DATE, "2024-12-01"),
            (IMAGE_ORIGINAL_USER, "ubuntu"),
            (IMAGE_DESCRIPTION, "https://cloud-images.ubuntu.com/noble/"),
            (REPLACE_FREQUENCY, "weekly"),
            (PROVIDED_UNTIL, "none"),
            (UUID_VALIDITY, "last-2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(stamped, expected);
        assert!(properties(&ImageSeriesSpec::default(), "20241201", None).is_empty());
    }
}
