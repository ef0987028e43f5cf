use super::*;

const DIGEST: &str = "6b6e8e5a8a1c2f7e5e9a7a4c3f1d2b0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
const OTHER: &str = "0b6e8e5a8a1c2f7e5e9a7a4c3f1d2b0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

fn source(url: &str, pattern: &str) -> ChecksumsSource {
    ChecksumsSource {
        url: url.into(),
        pattern: pattern.into(),
        ..ChecksumsSource::default()
    }
}

fn at(url: &str) -> url::Url {
    url::Url::parse(url).unwrap()
}

fn versions_and_urls(found: &[Found]) -> Vec<(Option<&str>, &str)> {
    found
        .iter()
        .map(|f| (f.version.as_deref(), f.url.as_str()))
        .collect()
}

#[test]
fn a_checksums_file_becomes_releases_beside_it_with_their_hashes() {
    let text = format!(
        "{DIGEST}  cirros-0.6.2-x86_64-disk.img\n{DIGEST}  cirros-0.6.2-aarch64-disk.img\n{OTHER}  cirros-0.6.10-x86_64-disk.img\n"
    );
    let url = "https://mirror.example/cirros/SHA256SUMS";
    let layout = Layout::of(&source(
        url,
        r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img",
    ))
    .unwrap();
    let found = found_in(&layout, &at(url), &text, None).unwrap();
    assert_eq!(
        versions_and_urls(&found),
        [
            (
                Some("0.6.2"),
                "https://mirror.example/cirros/cirros-0.6.2-x86_64-disk.img"
            ),
            (
                Some("0.6.10"),
                "https://mirror.example/cirros/cirros-0.6.10-x86_64-disk.img"
            ),
        ]
    );
    assert_eq!(found[0].hash.value, DIGEST);
}

#[test]
fn a_url_template_places_each_file_by_name_and_version() {
    let text = format!("{DIGEST}  cirros-0.6.2-x86_64-disk.img\n");
    let url = "https://mirror.example/cirros/SHA256SUMS";
    let layout = Layout::of(&ChecksumsSource {
        url_template: Some("https://cdn.example/{version}/{file}".into()),
        ..source(url, r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img")
    })
    .unwrap();
    let found = found_in(&layout, &at(url), &text, None).unwrap();
    assert_eq!(
        found[0].url,
        "https://cdn.example/0.6.2/cirros-0.6.2-x86_64-disk.img"
    );
}

#[test]
fn the_version_comes_from_the_pattern_else_the_folder_or_file_else_nobody() {
    // Ubuntu's serial folders list the same file name in each: the folder is the version.
    let text = format!("{DIGEST} *noble-server-cloudimg-amd64.img\n");
    let folder = "https://cloud-images.ubuntu.com/noble/20241201/";
    let layout = Layout::of(&ChecksumsSource {
        folders: Some("(?P<version>[0-9]{8}(\\.[0-9]+)?)".into()),
        file: Some("SHA256SUMS".into()),
        ..source(
            "https://cloud-images.ubuntu.com/noble/",
            r"noble-server-cloudimg-amd64\.img",
        )
    })
    .unwrap();
    let sums = at(folder).join("SHA256SUMS").unwrap();
    let found = found_in(&layout, &sums, &text, Some("20241201")).unwrap();
    assert_eq!(
        versions_and_urls(&found),
        [(
            Some("20241201"),
            "https://cloud-images.ubuntu.com/noble/20241201/noble-server-cloudimg-amd64.img"
        )]
    );
    // Ubuntu's current/: nothing names the build, so the mirror's Last-Modified must.
    let current = "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS";
    let layout = Layout::of(&source(current, r"noble-server-cloudimg-amd64\.img")).unwrap();
    let found = found_in(&layout, &at(current), &text, None).unwrap();
    assert_eq!(found[0].version, None);
}

#[test]
fn bad_layouts_are_refused_with_what_to_fix() {
    let text = format!("{DIGEST}  cirros-0.6.2-x86_64-disk.img.sig\n");
    let file = "https://mirror.example/cirros/SHA256SUMS";
    let rows: Vec<(&str, ChecksumsSource, &str)> = vec![
        (
            "a pattern that matches no listed file",
            source(file, r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img"),
            "NoMatchingRelease",
        ),
        (
            "a pattern that is no regular expression",
            source(file, r"cirros-(?P<version>[0-9.+"),
            "InvalidPattern",
        ),
        (
            "folders without a version group",
            ChecksumsSource {
                folders: Some("[0-9.]+".into()),
                file: Some("SHA256SUMS".into()),
                ..source("https://mirror.example/cirros/", ".*")
            },
            "InvalidPattern",
        ),
        (
            "folders without the checksums file's name",
            ChecksumsSource {
                folders: Some("(?P<version>[0-9.]+)".into()),
                ..source("https://mirror.example/cirros/", ".*")
            },
            "InvalidChecksumsUrl",
        ),
        (
            "file with a url that is not a folder",
            ChecksumsSource {
                file: Some("SHA256SUMS".into()),
                ..source(file, ".*")
            },
            "InvalidChecksumsUrl",
        ),
    ];
    for (what, source, reason) in rows {
        let err = Layout::of(&source)
            .and_then(|layout| found_in(&layout, &at(file), &text, None))
            .expect_err(what);
        assert_eq!(err.reason().as_str(), reason, "{what}: {err}");
    }
    let layout = Layout::of(&source(file, "(?P<version>.*)")).unwrap();
    let err = found_in(&layout, &at(file), "<html>", None).expect_err("html");
    assert_eq!(err.reason().as_str(), "ChecksumFormatUnknown");
}

#[test]
fn folders_and_per_release_files_are_read_newest_first() {
    let listed = |names: &[&str]| -> Vec<Listed> {
        names
            .iter()
            .map(|name| Listed {
                name: name.trim_end_matches('/').to_string(),
                folder: name.ends_with('/'),
            })
            .collect()
    };
    type Row = (
        &'static str,
        Vec<&'static str>,
        &'static str,
        bool,
        Vec<&'static str>,
    );
    let rows: Vec<Row> = vec![
        (
            "CirrOS version folders, 0.6.10 after 0.6.9",
            vec!["0.5.3/", "0.6.10/", "0.6.9/", "MD5SUMS", "README"],
            r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+)",
            true,
            vec!["0.6.10", "0.6.9", "0.5.3"],
        ),
        (
            "Debian dated folders beside latest/ and daily/",
            vec!["20241110-1910/", "daily/", "20241201-1949/", "latest/"],
            r"(?P<version>[0-9]{8}-[0-9]{4})",
            true,
            vec!["20241201-1949", "20241110-1910"],
        ),
        (
            "Fedora's CHECKSUM per compose, beside the images",
            vec![
                "Fedora-Cloud-41-1.4-x86_64-CHECKSUM",
                "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2",
                "Fedora-Cloud-41-1.10-x86_64-CHECKSUM",
                "Fedora-Cloud-41-1.5-x86_64-CHECKSUM",
            ],
            r"Fedora-Cloud-(?P<version>41-[0-9.]+)-x86_64-CHECKSUM",
            false,
            vec!["41-1.10", "41-1.5", "41-1.4"],
        ),
    ];
    for (what, names, pattern, folders, expected) in rows {
        let pattern = whole("test", pattern).unwrap();
        let found = newest_matching(&listed(&names), &pattern, folders);
        let versions: Vec<&str> = found.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(versions, expected, "{what}");
    }
}

#[test]
fn an_alias_of_the_same_bytes_is_one_release_under_its_dated_version() {
    let item = |version: Option<&str>, digest: &str| Found {
        version: version.map(str::to_string),
        url: format!("https://x/{}", version.unwrap_or("-")),
        hash: SourceHash {
            algorithm: crate::crd::HashAlgorithm::Sha256,
            value: digest.to_string(),
        },
    };
    type Row = (&'static str, Vec<Found>, Vec<Option<&'static str>>);
    let rows: Vec<Row> = vec![
        (
            "AlmaLinux: -latest listed after the dated file",
            vec![
                item(Some("9.5-20241120"), DIGEST),
                item(Some("latest"), DIGEST),
            ],
            vec![Some("9.5-20241120")],
        ),
        (
            "the alias listed first",
            vec![
                item(Some("latest"), DIGEST),
                item(Some("9.5-20241120"), DIGEST),
            ],
            vec![Some("9.5-20241120")],
        ),
        (
            "different bytes are different releases",
            vec![
                item(Some("9.4-20240805"), OTHER),
                item(Some("9.5-20241120"), DIGEST),
            ],
            vec![Some("9.4-20240805"), Some("9.5-20241120")],
        ),
        (
            "the same version twice (a newer folder first): the first wins",
            vec![item(Some("1.0"), DIGEST), item(Some("1.0"), OTHER)],
            vec![Some("1.0")],
        ),
        (
            "a name without a version and a dated name of the same bytes",
            vec![item(None, DIGEST), item(Some("20241201"), DIGEST)],
            vec![Some("20241201")],
        ),
    ];
    for (what, found, expected) in rows {
        let merged = merge_aliases(found);
        let versions: Vec<Option<&str>> = merged.iter().map(|f| f.version.as_deref()).collect();
        assert_eq!(versions, expected, "{what}");
    }
}

#[test]
fn a_file_that_never_changes_name_is_versioned_by_its_last_modified_time() {
    let modified = source_http::http_date("Sun, 01 Dec 2024 19:49:07 GMT").expect("an HTTP date");
    assert_eq!(version_from_modified(modified), "20241201-194907");
    let later = source_http::http_date("Tue, 10 Dec 2024 08:01:00 GMT").unwrap();
    assert!(
        version::compare(
            &version_from_modified(modified),
            &version_from_modified(later)
        )
        .is_lt()
    );
    assert_eq!(source_http::http_date("yesterday"), None);
}
