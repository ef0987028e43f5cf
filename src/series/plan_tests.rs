use super::*;
use crate::crd::{HashAlgorithm, ImageSource, SeriesRelease};

const A: &str = "aaaaaaaa11111111aaaaaaaa11111111aaaaaaaa11111111aaaaaaaa11111111";
const B: &str = "bbbbbbbb22222222bbbbbbbb22222222bbbbbbbb22222222bbbbbbbb22222222";

fn series(keep: u32, retired: Retirement) -> ImageSeriesSpec {
    ImageSeriesSpec {
        keep: Some(keep),
        retired: Some(retired),
        ..ImageSeriesSpec::default()
    }
}

fn release(version: &str, digest: &str) -> Release {
    Release {
        version: version.to_string(),
        source: ImageSource {
            url: format!("https://x/{version}.img"),
            hash: Some(SourceHash {
                algorithm: HashAlgorithm::Sha256,
                value: digest.to_string(),
            }),
            ..ImageSource::default()
        },
    }
}

fn releases(versions: &[&str]) -> Vec<Release> {
    versions.iter().map(|version| release(version, A)).collect()
}

/// A held version made from digest A (`usable`: active and verified).
fn held(version: &str, usable: bool, latest: bool) -> Held {
    Held {
        version: version.into(),
        id: format!("id-{version}"),
        usable,
        latest,
        digest: Some(format!("sha256:{A}")),
        ..Held::default()
    }
}

fn quarantined(version: &str) -> Held {
    Held {
        quarantined: true,
        ..held(version, false, false)
    }
}

fn made_from(image: Held, digest: &str) -> Held {
    Held {
        digest: Some(format!("sha256:{digest}")),
        ..image
    }
}

fn roles(plan: &SeriesPlan) -> Vec<(&str, Role)> {
    plan.versions
        .iter()
        .map(|v| (v.version.as_str(), v.role))
        .collect()
}

fn deleted(plan: &SeriesPlan) -> Vec<(&str, Removal)> {
    plan.delete
        .iter()
        .map(|(h, why)| (h.version.as_str(), *why))
        .collect()
}

struct Row {
    what: &'static str,
    listed: Vec<Release>,
    held: Vec<Held>,
    retry: &'static [&'static str],
    current: Option<&'static str>,
    roles: Vec<(&'static str, Role)>,
    deleted: Vec<(&'static str, Removal)>,
}

#[test]
fn the_newest_usable_wanted_release_is_current_and_keep_counts_what_glint_imported() {
    use Removal::{BeyondKeep, Replaced};
    use Role::{Current, Pending, Retired};
    let spec = series(2, Retirement::Hidden);
    let rows = vec![
        Row {
            what: "first run: nothing held, the newest two are pending",
            listed: releases(&["0.1", "0.2", "0.3"]),
            held: vec![],
            retry: &[],
            current: None,
            roles: vec![("0.2", Pending), ("0.3", Pending)],
            deleted: vec![],
        },
        Row {
            what: "v1 is up: it is current",
            listed: releases(&["0.1"]),
            held: vec![held("0.1", true, false)],
            retry: &[],
            current: Some("0.1"),
            roles: vec![("0.1", Current)],
            deleted: vec![],
        },
        Row {
            what: "v2 published and uploading: v1 stays current",
            listed: releases(&["0.1", "0.2"]),
            held: vec![held("0.1", true, true), held("0.2", false, false)],
            retry: &[],
            current: Some("0.1"),
            roles: vec![("0.1", Current), ("0.2", Pending)],
            deleted: vec![],
        },
        Row {
            what: "v2 active: it takes over, v1 is retired",
            listed: releases(&["0.1", "0.2"]),
            held: vec![held("0.1", true, true), held("0.2", true, false)],
            retry: &[],
            current: Some("0.2"),
            roles: vec![("0.1", Retired), ("0.2", Current)],
            deleted: vec![],
        },
        Row {
            what: "v3 corrupt: v2 stays current and v1 stays too, among the newest 2 imported",
            listed: releases(&["0.1", "0.2", "0.3"]),
            held: vec![
                held("0.1", true, false),
                held("0.2", true, true),
                quarantined("0.3"),
            ],
            retry: &[],
            current: Some("0.2"),
            roles: vec![("0.1", Retired), ("0.2", Current), ("0.3", Pending)],
            deleted: vec![],
        },
        Row {
            what: "v3 in: v1 is beyond the newest 2 imported and goes",
            listed: releases(&["0.1", "0.2", "0.3"]),
            held: vec![
                held("0.1", true, false),
                held("0.2", true, true),
                held("0.3", true, false),
            ],
            retry: &[],
            current: Some("0.3"),
            roles: vec![("0.2", Retired), ("0.3", Current)],
            deleted: vec![("0.1", BeyondKeep)],
        },
        Row {
            what: "v3 and v4 both failed: v2, no longer wanted, stays current",
            listed: releases(&["0.2", "0.3", "0.4"]),
            held: vec![
                held("0.2", true, true),
                quarantined("0.3"),
                quarantined("0.4"),
            ],
            retry: &[],
            current: Some("0.2"),
            roles: vec![("0.2", Current), ("0.3", Pending), ("0.4", Pending)],
            deleted: vec![],
        },
        Row {
            what: "the listing moved on (a new checksums URL lists only v3): v1 and v2 stay until v3 is in",
            listed: releases(&["0.3"]),
            held: vec![
                held("0.1", true, false),
                held("0.2", true, true),
                held("0.3", false, false),
            ],
            retry: &[],
            current: Some("0.2"),
            roles: vec![("0.1", Retired), ("0.2", Current), ("0.3", Pending)],
            deleted: vec![],
        },
        Row {
            what: "a failed version no longer listed goes",
            listed: releases(&["0.2"]),
            held: vec![quarantined("0.1"), held("0.2", true, true)],
            retry: &[],
            current: Some("0.2"),
            roles: vec![("0.2", Current)],
            deleted: vec![("0.1", BeyondKeep)],
        },
        Row {
            what: "versions order by number, not text",
            listed: releases(&["0.10", "0.9"]),
            held: vec![held("0.9", true, true), held("0.10", true, false)],
            retry: &[],
            current: Some("0.10"),
            roles: vec![("0.9", Retired), ("0.10", Current)],
            deleted: vec![],
        },
        Row {
            what: "the mirror rebuilt the current version under its name: a new build, not current until it is in",
            listed: vec![release("noble", B)],
            held: vec![held("noble", true, true)],
            retry: &[],
            current: Some("noble"),
            roles: vec![("noble", Current), ("noble+bbbbbbbb", Pending)],
            deleted: vec![],
        },
        Row {
            what: "the rebuild is in: it is current, the old build retired",
            listed: vec![release("noble", B)],
            held: vec![
                held("noble", true, true),
                made_from(held("noble+bbbbbbbb", true, false), B),
            ],
            retry: &[],
            current: Some("noble+bbbbbbbb"),
            roles: vec![("noble", Retired), ("noble+bbbbbbbb", Current)],
            deleted: vec![],
        },
        Row {
            what: "a corrupt release whose listed digest the mirror fixed is replaced",
            listed: vec![release("0.1", A), release("0.2", B)],
            held: vec![held("0.1", true, true), quarantined("0.2")],
            retry: &[],
            current: Some("0.1"),
            roles: vec![("0.1", Current), ("0.2", Pending)],
            deleted: vec![("0.2", Replaced)],
        },
        Row {
            what: "a corrupt release with the same digest is replaced when the user asks",
            listed: releases(&["0.1", "0.2"]),
            held: vec![held("0.1", true, true), quarantined("0.2")],
            retry: &["0.2"],
            current: Some("0.1"),
            roles: vec![("0.1", Current), ("0.2", Pending)],
            deleted: vec![("0.2", Replaced)],
        },
        Row {
            what: "a release whose upload failed (still queued) is replaced when asked too",
            listed: releases(&["0.1", "0.2"]),
            held: vec![held("0.1", true, true), held("0.2", false, false)],
            retry: &["0.2"],
            current: Some("0.1"),
            roles: vec![("0.1", Current), ("0.2", Pending)],
            deleted: vec![("0.2", Replaced)],
        },
        Row {
            what: "and is left alone when nobody asks",
            listed: releases(&["0.1", "0.2"]),
            held: vec![held("0.1", true, true), quarantined("0.2")],
            retry: &[],
            current: Some("0.1"),
            roles: vec![("0.1", Current), ("0.2", Pending)],
            deleted: vec![],
        },
    ];
    for row in rows {
        let retry: BTreeSet<String> = row.retry.iter().map(|v| v.to_string()).collect();
        let plan = plan(&spec, "cirros", "ns/cirros", &row.listed, &row.held, &retry);
        let what = row.what;
        assert_eq!(plan.current.as_deref(), row.current, "{what}");
        assert_eq!(roles(&plan), row.roles, "{what}");
        assert_eq!(deleted(&plan), row.deleted, "{what}");
        let currents = plan
            .versions
            .iter()
            .filter(|v| v.spec.properties.contains_key(LATEST_PROPERTY))
            .count();
        assert!(currents <= 1, "{what}: never two current");
        if let Some(current) = &plan.current {
            assert!(
                plan.versions.iter().any(|v| &v.version == current),
                "{what}: status lists the current version"
            );
        }
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
        let plan = plan(
            &series(3, retired),
            "cirros",
            "ns/cirros",
            &list,
            &holding,
            &BTreeSet::new(),
        );
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
            assert_eq!(
                version
                    .properties
                    .get(RELEASE_DIGEST_PROPERTY)
                    .map(String::as_str),
                Some(format!("sha256:{A}").as_str()),
                "every version records the bytes it was made from"
            );
        }
        assert_eq!(
            pending.source.as_ref().map(|s| s.url.as_str()),
            Some("https://x/3.img")
        );
    }
}

#[test]
fn a_version_no_longer_listed_keeps_its_recorded_digest_and_needs_no_source() {
    let plan = plan(
        &series(2, Retirement::Hidden),
        "cirros",
        "ns/cirros",
        &releases(&["2"]),
        &[held("1", true, false), held("2", true, true)],
        &BTreeSet::new(),
    );
    let old = &plan.versions[0];
    assert_eq!((old.version.as_str(), old.role), ("1", Role::Retired));
    assert_eq!(old.spec.source, None);
    assert_eq!(
        old.spec
            .properties
            .get(RELEASE_DIGEST_PROPERTY)
            .map(String::as_str),
        Some(format!("sha256:{A}").as_str())
    );
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
