//! `glint apply -f` of an ImageSeries, run as the real binary against the Keystone-backed
//! Glance (the embedded cloud when no bed runs), with releases published by Python's own http.server (an ordinary web server) as a
//! distribution publishes them: image files beside a SHA256SUMS.

mod common;

use std::process::Stdio;

use common::harness::client_for;
use common::mirror::{Mirror, SeriesCli};
use glint::glance::{GlanceImage, GlanceStatus};

fn currents(found: &[(String, GlanceImage)]) -> Vec<&str> {
    found
        .iter()
        .filter(|(_, image)| image.properties.contains_key("glint.dev/latest"))
        .map(|(version, _)| version.as_str())
        .collect()
}

/// One line of the rotation's timeline (shown with --nocapture): version, id, name, current.
fn timeline(step: &str, found: &[(String, GlanceImage)]) {
    eprintln!("{step}: {}", common::mirror::timeline(found));
}

fn summary(found: &[(String, GlanceImage)]) -> Vec<(String, String, bool)> {
    found
        .iter()
        .map(|(version, image)| {
            (
                version.clone(),
                image.name.clone().unwrap_or_default(),
                image.hidden,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_series_rotates_releases_keeps_n_and_a_corrupt_or_interrupted_one_never_displaces_the_current()
 {
    let bed = glance_under_test!();
    let run = SeriesCli::with_bed(&bed);
    let mirror = Mirror::start(&run.dir.join("mirror"));
    let name = common::unique("tiny");
    let key = format!("default/{name}");
    let manifest = run.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: raw, properties: {{os_distro: tiny}}}}\n  checksums:\n    url: {}\n    pattern: 'tiny-(?P<version>[0-9.]+)\\.img'\n  keep: 2\n",
            mirror.checksums_url()
        ),
    );
    let apply = || run.run(&["apply", "-f", &manifest]);
    let glance = client_for(&bed.demo_cloud());

    // v1 published: it becomes the current version under the stable name.
    mirror.publish(
        "tiny-1.0.img",
        &common::pseudo_random_bytes(200_000, 1),
        true,
    );
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("v1 published and applied", &found);
    assert_eq!(summary(&found), [("1.0".into(), name.clone(), false)]);
    assert_eq!(currents(&found), ["1.0"]);

    // v2 published: plan says so, apply rotates; v1 is renamed and hidden, still there.
    mirror.publish(
        "tiny-1.1.img",
        &common::pseudo_random_bytes(200_000, 2),
        true,
    );
    let (code, out) = run.run(&["plan", "-f", &manifest]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("current 1.0 -> 1.1"), "{out}");
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("v2 published and applied", &found);
    assert_eq!(
        summary(&found),
        [
            ("1.0".into(), format!("{name}-1.0"), true),
            ("1.1".into(), name.clone(), false),
        ]
    );
    assert_eq!(currents(&found), ["1.1"]);
    let first_ids: Vec<String> = found.iter().map(|(_, i)| i.id.clone()).collect();

    // v3 corrupt (its checksum is wrong): it fails with the reason, v2 stays current, and
    // v1 stays too: keep 2 counts the versions glint imported, and v3 is not one.
    mirror.publish(
        "tiny-1.2.img",
        &common::pseudo_random_bytes(200_000, 3),
        false,
    );
    let (code, out) = apply();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("HashMismatch"), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("v3 (corrupt) published and applied", &found);
    assert_eq!(
        found.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        ["1.0", "1.1", "1.2"]
    );
    assert_eq!(currents(&found), ["1.1"]);
    assert_eq!(found[1].1.name.as_deref(), Some(name.as_str()));
    assert_eq!(
        found[1].1.id, first_ids[1],
        "the current image is the same one"
    );

    // v4, large, and glint killed with SIGKILL while it uploads: nothing duplicated, v2 still
    // current; the next apply finishes the rotation with exactly one current version.
    mirror.publish(
        "tiny-1.3.img",
        &common::pseudo_random_bytes(256 * 1024 * 1024, 4),
        true,
    );
    let mut child = run
        .command(&["apply", "-f", &manifest])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("apply");
    let mut seen_upload = false;
    for _ in 0..600 {
        let found = common::mirror::series_versions(&glance, &key).await;
        // Killed while the data flows into Glance.
        if found
            .iter()
            .any(|(v, image)| v == "1.3" && image.status == GlanceStatus::Saving)
        {
            seen_upload = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(seen_upload, "the killed apply was uploading v4");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("after SIGKILL during v4's upload", &found);
    assert_eq!(currents(&found), ["1.1"], "the kill left v2 current");
    let (code, out) = apply();
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("v4 applied again", &found);
    let versions: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        versions,
        ["1.1", "1.2", "1.3"],
        "v1, beyond the newest 2 imported once v4 is in, is gone; v3, still failed, stays: {out}"
    );
    assert_eq!(currents(&found), ["1.3"], "{out}");
    assert_eq!(code, Some(1), "v3 still fails, and says so: {out}");
    let current = &found[2].1;
    assert_eq!(current.name.as_deref(), Some(name.as_str()));
    assert_eq!(current.status, GlanceStatus::Active);
}

#[test]
fn bad_series_manifests_are_refused_with_what_to_fix() {
    let bed = glance_under_test!();
    let run = SeriesCli::with_bed(&bed);
    let rows = [
        (
            "keep 0",
            "  image: {diskFormat: raw}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n  keep: 0\n",
            "keep must be 1 to 100",
        ),
        (
            "release folders without the checksums file's name",
            "  image: {diskFormat: raw}\n  checksums: {url: 'http://x/', folders: '(?P<version>.*)', pattern: 'tiny-.*'}\n",
            "with folders, file names the checksums file in each folder",
        ),
        (
            "a file name with a url that is not a folder",
            "  image: {diskFormat: raw}\n  checksums: {url: 'http://x/SHA256SUMS', file: SHA256SUMS, pattern: 'tiny-.*'}\n",
            "url is the folder whose index page lists them",
        ),
        (
            "both versions and checksums",
            "  image: {diskFormat: raw}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n  checksums: {url: 'http://x/SHA256SUMS', pattern: '(?P<version>.*)'}\n",
            "exactly one of spec.versions",
        ),
        (
            "a cron that is not five fields",
            "  image: {diskFormat: raw}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n  schedule: {cron: 'every day'}\n",
            "cron needs five fields",
        ),
        (
            "both a period and a cron",
            "  image: {diskFormat: raw}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n  schedule: {cron: '0 3 * * *', every: 24h}\n",
            "every or cron, not both",
        ),
        (
            "a conversion from a format nothing converts",
            "  image: {diskFormat: iso, convertTo: raw}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n",
            "diskFormat names the release files' format",
        ),
        (
            "who converts, without what to",
            "  image: {diskFormat: qcow2, conversion: glance, method: glanceDirect}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n",
            "conversion says who converts: set convertTo too",
        ),
        (
            "a property that would mark every version current",
            "  image: {diskFormat: raw, properties: {glint.dev/latest: 'true'}}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n",
            "must not set glint.dev/ keys",
        ),
        (
            "a Glance key as a property",
            "  image: {diskFormat: raw, properties: {os_hash_value: x}}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n",
            "must not set Glance's own keys",
        ),
        (
            "webDownload, which cannot be checked",
            "  image: {diskFormat: raw, method: webDownload}\n  versions: [{version: '1', url: 'http://x/1.img'}]\n",
            "not webDownload",
        ),
    ];
    for (what, body, message) in rows {
        let manifest = run.manifest(&common::unique("bad"), body);
        let (code, out) = run.run(&["plan", "-f", &manifest]);
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(out.contains(message), "{what}: {out}");
    }
}

#[test]
fn a_series_rotates_on_the_embedded_cloud_from_a_local_checksums_file() {
    // No cloud configured: glint starts its embedded cloud, as the README's first command does.
    let cli = SeriesCli::embedded();
    let mirror = cli.dir.join("mirror");
    std::fs::create_dir_all(&mirror).expect("mirror");
    let publish = |file: &str, seed: u64| {
        let data = common::pseudo_random_bytes(100_000, seed);
        std::fs::write(mirror.join(file), &data).expect("release");
        let digest: String =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data))
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
        let sums = mirror.join("SHA256SUMS");
        let mut text = std::fs::read_to_string(&sums).unwrap_or_default();
        text.push_str(&format!("{digest}  {file}\n"));
        std::fs::write(sums, text).expect("SHA256SUMS");
    };
    let manifest = cli.manifest(
        "local",
        "  image: {diskFormat: raw}\n  checksums: {url: 'file:mirror/SHA256SUMS', pattern: 'local-(?P<version>[0-9.]+)\\.img'}\n  keep: 1\n",
    );
    let apply = || applied(&cli, &manifest);
    publish("local-1.img", 31);
    assert!(apply().contains("series default/local: current 1"));
    publish("local-2.img", 32);
    let second = apply();
    assert!(
        second.contains("series default/local: current 2"),
        "{second}"
    );
    assert!(
        second.contains("1              deleted"),
        "keep 1 deletes v1: {second}"
    );
}

/// `glint apply -f MANIFEST`, which must succeed; its output.
fn applied(cli: &SeriesCli, manifest: &str) -> String {
    let (code, out) = cli.run(&["apply", "-f", manifest]);
    assert_eq!(code, Some(0), "{out}");
    out
}

// Two workers: the test's own server answers while glint runs as a blocking child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_never_changes_on_a_server_without_last_modified_stalls_instead_of_guessing() {
    // A server that sends no Last-Modified (unlike nginx and http.server): nothing tells one
    // build of noble-server-cloudimg-amd64.img from the next, so glint must say so.
    let data = common::pseudo_random_bytes(50_000, 61);
    let digest: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data))
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
    let sums = format!("{digest} *noble-server-cloudimg-amd64.img\n");
    let server = common::sources::SourceServer::start(move |request| {
        if request.path.ends_with("SHA256SUMS") {
            common::sources::Reply::ok(sums.clone())
        } else {
            common::sources::Reply::ok(data.clone())
        }
    })
    .await;
    let cli = SeriesCli::embedded();
    let manifest = cli.manifest(
        "noble",
        &format!(
            "  image: {{diskFormat: raw}}\n  checksums: {{url: '{}', pattern: 'noble-server-cloudimg-amd64\\.img'}}\n",
            server.url("/noble/current/SHA256SUMS")
        ),
    );
    let (code, text) = cli.run(&["apply", "-f", &manifest]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ReleaseVersionUnknown"), "{text}");
    assert!(
        text.contains("Last-Modified"),
        "says what is missing: {text}"
    );
    assert!(
        server.requests().iter().any(|r| r.method == "HEAD"),
        "glint asked the server when the file changed"
    );
}

#[test]
fn release_folders_are_followed_on_the_embedded_cloud_from_a_local_mirror() {
    // CirrOS' layout in a local folder (file: URLs read folders as plain lists), applied to
    // the embedded cloud: no test bed needed.
    let cli = SeriesCli::embedded();
    let mirror = cli.dir.join("mirror");
    let layout = common::layouts::Layout::CirrosFolders;
    std::fs::create_dir_all(&mirror).expect("mirror");
    let base = format!("file://{}/", mirror.display());
    let manifest = cli.manifest(
        "cirros",
        &format!(
            "  image: {{diskFormat: raw}}\n  keep: 2\n{}",
            layout.checksums_spec(&base)
        ),
    );
    let apply = || applied(&cli, &manifest);
    for n in 1..=3 {
        layout.publish(
            &mirror,
            n,
            &common::pseudo_random_bytes(60_000, u64::from(n)),
            true,
        );
        let out = apply();
        let version = layout.version(n).unwrap_or_default();
        assert!(
            out.contains(&format!("series default/cirros: current {version}")),
            "release {n} found in its folder without an edit: {out}"
        );
    }
    let out = apply();
    assert!(out.contains("current 0.6.11"), "{out}");
    assert!(
        !out.contains("0.6.9 "),
        "0.6.9, beyond keep 2, is gone: {out}"
    );
}

// Two workers: the proxy answers while glint runs as a blocking child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_whose_old_version_cannot_give_up_the_name_never_puts_it_on_two_images() {
    use common::fault_proxy::{Fault, FaultProxy, Route};
    let bed = glance_under_test!();
    let run = SeriesCli::with_bed(&bed);
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    std::fs::write(run.dir.join("clouds.yaml"), bed.demo_cloud_via(proxy.url()))
        .expect("clouds.yaml");
    let mirror = Mirror::start(&run.dir.join("mirror"));
    let name = common::unique("rename");
    let key = format!("default/{name}");
    let manifest = run.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: raw}}\n  checksums:\n    url: {}\n    pattern: 'tiny-(?P<version>[0-9.]+)\\.img'\n  keep: 2\n",
            mirror.checksums_url()
        ),
    );
    let apply = || run.run(&["apply", "-f", &manifest]);
    let glance = client_for(&bed.demo_cloud());
    let with_name = |found: &[(String, GlanceImage)]| -> Vec<String> {
        found
            .iter()
            .filter(|(_, image)| image.name.as_deref() == Some(name.as_str()))
            .map(|(version, _)| version.clone())
            .collect()
    };
    mirror.publish(
        "tiny-1.0.img",
        &common::pseudo_random_bytes(100_000, 71),
        true,
    );
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");

    // v2: the old version's rename is refused (the pass's first PATCH); v2 must wait.
    mirror.publish(
        "tiny-1.1.img",
        &common::pseudo_random_bytes(100_000, 72),
        true,
    );
    proxy.inject(Route::new("PATCH", "/v2/images/*"), Fault::Status(400), 1);
    let (code, out) = apply();
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("v2 applied, v1's rename refused", &found);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not made current yet"), "{out}");
    assert_eq!(with_name(&found), ["1.0"], "one image with the stable name");

    // Glance accepts again: the next apply finishes the rotation.
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline("applied again", &found);
    assert_eq!(with_name(&found), ["1.1"]);
    assert_eq!(currents(&found), ["1.1"]);
}

/// A series with spec.targets through `glint apply -f`: each target's versions in the cloud
/// its cloudName names (the bed's second region for one of them), the releases read once
/// and each release's file downloaded once for both (nginx's access log counts).
#[tokio::test]
async fn apply_keeps_a_series_current_in_every_target_from_one_download_per_release() {
    let bed = glance_under_test!();
    let run = SeriesCli::with_bed(&bed);
    let mirror = Mirror::start_with(&run.dir.join("mirror"), common::mirror::WebServer::Nginx);
    let name = common::unique("everywhere");
    let key = format!("default/{name}");
    let region = if bed.embedded() {
        String::new()
    } else {
        format!(", region: {}", bed.prod_region)
    };
    let manifest = run.dir.join("everywhere.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: {name}}}\nspec:\n  targets:\n  - {{name: eu, cloudCredentialsRef: {{secretName: s, cloudName: bed}}}}\n  - {{name: us, cloudCredentialsRef: {{secretName: s, cloudName: bed}}{region}, visibility: community}}\n  image: {{diskFormat: raw}}\n  checksums:\n    url: {}\n    pattern: 'tiny-(?P<version>[0-9.]+)\\.img'\n  keep: 2\n",
            mirror.checksums_url()
        ),
    )
    .expect("manifest");
    let manifest = manifest.to_str().expect("utf-8 path");
    let in_eu = client_for(&bed.demo_cloud());
    let in_us = if bed.embedded() {
        client_for(&bed.demo_cloud())
    } else {
        client_for(&common::keystone::production_auth(&bed))
    };
    // Each target's current version, by the version of the image that carries latest.
    let currents_of = |found: &[(String, GlanceImage)], visibility| -> Vec<String> {
        found
            .iter()
            .filter(|(_, image)| {
                image.properties.contains_key("glint.dev/latest") && image.visibility == visibility
            })
            .map(|(version, _)| version.clone())
            .collect()
    };
    use glint::glance::Visibility::{Community, Private};

    for (n, version) in [(1, "1.0"), (2, "1.1")] {
        let file = format!("tiny-{version}.img");
        mirror.publish(&file, &common::pseudo_random_bytes(300_000, 60 + n), true);
        let (code, out) = run.run(&["apply", "-f", manifest]);
        assert_eq!(code, Some(0), "{out}");
        for target in ["eu", "us"] {
            let line = format!("series {key}@{target}: current {version}");
            assert!(out.contains(&line), "{line} in {out}");
        }
        assert_eq!(
            mirror.downloads(&format!("/{file}")),
            1,
            "{file} once: {out}"
        );
        let eu = common::mirror::series_versions(&in_eu, &key).await;
        let us = common::mirror::series_versions(&in_us, &key).await;
        assert_eq!(currents_of(&eu, Private), [version], "eu");
        assert_eq!(
            currents_of(&us, Community),
            [version],
            "us, with its visibility"
        );
    }
    let (code, out) = run.run(&["plan", "-f", manifest]);
    assert_eq!(code, Some(0), "nothing left to do in either target: {out}");

    // The mirror loses its checksums file: each target says why, and nothing changes.
    std::fs::rename(
        mirror.dir().join("SHA256SUMS"),
        mirror.dir().join("SHA256SUMS.gone"),
    )
    .expect("hide the checksums file");
    let (code, out) = run.run(&["apply", "-f", manifest]);
    assert_eq!(code, Some(1), "{out}");
    for target in ["eu", "us"] {
        let line = format!("! series {key}@{target}: ");
        assert!(out.contains(&line), "{line} in {out}");
    }
    let eu = common::mirror::series_versions(&in_eu, &key).await;
    assert_eq!(currents_of(&eu, Private), ["1.1"], "eu unchanged");
}
