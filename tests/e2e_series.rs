//! End to end: the real `glint run` keeps an ImageSeries current against a real kube-apiserver
//! and the Keystone-backed Glance, following a mirror laid out as CirrOS publishes it (served
//! by nginx) with no edit between releases, driven with kubectl: a first release, a second that
//! takes over, a corrupt third that does not (and makes the series not Ready) until the mirror
//! fixes it, a fourth listed before its file is there, the apiserver refusing a bad series, and
//! the series' deletion taking its images with it.

mod common;

use common::harness::client_for;
use common::kubectl::{GlintProcess, Kubectl};
use common::layouts::Layout;
use common::mirror::{Mirror, WebServer};
use glint::glance::GlanceImage;

fn step(text: &str) {
    eprintln!("e2e series step: {text}");
}

async fn versions(glance: &glint::glance::GlanceClient, key: &str) -> Vec<GlanceImage> {
    common::mirror::series_versions(glance, key)
        .await
        .into_iter()
        .map(|(_, image)| image)
        .collect()
}

fn names(found: &[GlanceImage]) -> Vec<(String, bool, bool)> {
    found
        .iter()
        .map(|image| {
            (
                image.name.clone().unwrap_or_default(),
                image.hidden,
                image.properties.contains_key("glint.dev/latest"),
            )
        })
        .collect()
}

fn kept_versions(found: &[GlanceImage]) -> Vec<&str> {
    found
        .iter()
        .map(|image| image.properties["glint.dev/version"].as_str())
        .collect()
}

/// Asks glint to read the mirror now, as `flux reconcile` or a user would.
fn refresh(k: &Kubectl, round: u32) {
    k.ok(&[
        "annotate",
        "imageseries/cirros",
        &format!("glint.dev/reconcile-requested-at=round-{round}"),
        "--overwrite",
    ]);
}

fn field(k: &Kubectl, path: &str) -> String {
    k.ok(&[
        "get",
        "imageseries/cirros",
        "-o",
        &format!("jsonpath={path}"),
    ])
}

/// Polls the series' field at `path` until `fits` takes it (for a minute); its value then.
fn poll_field(k: &Kubectl, path: &str, fits: impl Fn(&str) -> bool, wanted: &str) -> String {
    let mut value = String::new();
    for _ in 0..300 {
        value = field(k, path);
        if fits(&value) {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{path} never {wanted}: {value:?}");
}

/// Waits until the jsonpath's value contains `words` (kubectl wait matches whole values).
fn wait_for_words(k: &Kubectl, path: &str, words: &str) -> String {
    poll_field(
        k,
        path,
        |value| value.contains(words),
        &format!("said {words:?}"),
    )
}

/// Waits until the jsonpath's value is exactly `value`.
fn wait_for_value(k: &Kubectl, path: &str, value: &str) {
    poll_field(k, path, |seen| seen == value, &format!("read {value:?}"));
}

/// A fresh namespace on the test cluster (which serves while the returned handle lives) with
/// the CRDs and a Secret `cloud` holding the demo user's clouds.yaml (returned too).
fn series_namespace(
    bed: &common::Testbed,
    prefix: &str,
) -> (common::cluster::Cluster, Kubectl, String) {
    let cluster = common::cluster::cluster();
    let k = Kubectl::in_fresh_namespace(&cluster, prefix);
    let clouds = bed.demo_cloud();
    k.install_with_cloud_secret(&clouds);
    k.wait("crd/imageseries.glint.dev", "condition=Established");
    (cluster, k, clouds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn glint_run_follows_a_mirror_without_edits_and_deleting_the_series_takes_its_images() {
    let bed = require_testbed!();
    let (_cluster, k, clouds) = series_namespace(&bed, "series");
    let namespace = k.namespace.clone();
    let glance = client_for(&clouds);
    let scratch = std::env::temp_dir().join(&namespace);
    // CirrOS' layout (a folder per release, MD5SUMS in each) as nginx's autoindex serves it.
    let layout = Layout::CirrosFolders;
    let mirror = Mirror::start_with(&scratch.join("mirror"), WebServer::Nginx);
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let data = |n: u32| common::pseudo_random_bytes(200_000, 20 + u64::from(n));
    let version = |n: u32| layout.version(n).unwrap_or_default();
    let key = format!("{namespace}/cirros");

    step("the apiserver refuses a series that keeps nothing");
    // A week between scheduled checks: every check below comes from the refresh annotation.
    let manifest = |keep: u32, tag: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: cirros}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw, tags: [{tag}]}}\n  keep: {keep}\n  schedule: {{every: 168h}}\n{}",
            layout.checksums_spec(&mirror.url(""))
        )
    };
    let refused = k.refused(&manifest(0, "a"));
    assert!(refused.contains("keep must be 1 to 100"), "{refused}");

    step("v1 published: the series makes it current");
    layout.publish(mirror.dir(), 1, &data(1), true);
    k.apply(&manifest(2, "a"));
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(1)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    common::gitops::assert_gitops_view(
        "imageseries/cirros",
        &k.object("imageseries/cirros"),
        "Healthy",
        "Current",
    );
    assert_eq!(
        names(&versions(&glance, &key).await),
        [("cirros".into(), false, true)]
    );

    step("v2 published, no edit: a refresh reads the mirror, v2 takes over, v1 is retired");
    layout.publish(mirror.dir(), 2, &data(2), true);
    refresh(&k, 2);
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(2)),
    );
    k.apply(&manifest(2, "b"));
    k.wait(
        "imageseries/cirros",
        "jsonpath={.status.observedGeneration}=2",
    );
    let found = versions(&glance, &key).await;
    assert_eq!(
        names(&found),
        [
            (format!("cirros-{}", version(1)), true, false),
            ("cirros".into(), false, true),
        ]
    );
    assert!(
        found.iter().all(|image| image.tags == ["b"]),
        "the edit reached every version"
    );

    step("v3 corrupt: v2 stays current, the series is not Ready, v1 stays (keep counts imports)");
    layout.publish(mirror.dir(), 3, &data(3), false);
    refresh(&k, 3);
    let problem = wait_for_words(
        &k,
        &format!(
            "{{.status.versions[?(@.version==\"{}\")].problem}}",
            version(3)
        ),
        "HashMismatch",
    );
    assert!(
        problem.contains("glint.dev/retry"),
        "says how to retry: {problem}"
    );
    k.wait("imageseries/cirros", "condition=Ready=false");
    assert_eq!(
        field(&k, "{.status.conditions[?(@.type==\"Stalled\")].reason}"),
        "ReleaseFailed"
    );
    assert_eq!(field(&k, "{.status.current}"), version(2));
    let found = versions(&glance, &key).await;
    assert_eq!(kept_versions(&found), [1, 2, 3].map(version));
    assert_eq!(
        found
            .iter()
            .filter(|i| i.properties.contains_key("glint.dev/latest"))
            .count(),
        1,
        "never two current"
    );
    let listed_ids = field(&k, "{.status.versions[*].id}");
    assert!(
        found.iter().all(|image| listed_ids.contains(&image.id)),
        "status lists every version glint holds, the current one included: {listed_ids}"
    );

    step("the mirror fixes v3: it is replaced and becomes current, v1 goes");
    layout.publish(mirror.dir(), 3, &data(3), true);
    refresh(&k, 4);
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(3)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    let found = versions(&glance, &key).await;
    assert_eq!(kept_versions(&found), [2, 3].map(version));
    assert!(
        found
            .iter()
            .all(|image| !image.properties.contains_key("glint.dev/quarantined")),
        "no failed image left behind"
    );

    step("v4 listed before its file is on the mirror (404): retried until it is, no action");
    let folder = mirror.dir().join(version(4));
    layout.publish(mirror.dir(), 4, &data(4), true);
    let image_file = folder.join(format!("cirros-{}-x86_64-disk.img", version(4)));
    let hidden_away = folder.join("held-back");
    std::fs::rename(&image_file, &hidden_away).expect("hold the file back");
    refresh(&k, 5);
    wait_for_words(
        &k,
        "{.status.conditions[?(@.type==\"Ready\")].message}",
        "404",
    );
    assert_eq!(field(&k, "{.status.current}"), version(3));
    std::fs::rename(&hidden_away, &image_file).expect("the mirror catches up");
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(4)),
    );
    k.wait("imageseries/cirros", "condition=Ready");

    step(
        "v5's file is corrupt on the mirror (its listed digest is right): retried once the mirror replaces the file",
    );
    layout.publish(mirror.dir(), 5, &data(5), true);
    let file = mirror
        .dir()
        .join(version(5))
        .join(format!("cirros-{}-x86_64-disk.img", version(5)));
    std::fs::write(&file, common::pseudo_random_bytes(200_000, 99)).expect("corrupt the file");
    refresh(&k, 6);
    wait_for_words(
        &k,
        &format!(
            "{{.status.versions[?(@.version==\"{}\")].problem}}",
            version(5)
        ),
        "HashMismatch",
    );
    assert_eq!(field(&k, "{.status.current}"), version(4));
    // Glance's updated_at and Last-Modified count whole seconds: the fix comes later than both.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&file, data(5)).expect("the mirror fixes the file");
    refresh(&k, 7);
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(5)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    assert_eq!(glint.metric("glint_series_versions"), Some(2.0));
    // The versions' uploads ended into a reconcile of the series, not onto its timer.
    let (woke, ended) = (
        glint.metric("glint_transfer_wakeups_total").unwrap_or(0.0),
        glint.metric("glint_transfers_total").unwrap_or(0.0),
    );
    assert!(
        woke >= 1.0 && woke <= ended,
        "{woke} wakeups for {ended} transfers"
    );
    assert!(
        glint
            .metric("glint_series_last_check_timestamp_seconds")
            .is_some_and(|at| at > 1.7e9),
        "the last check's time is exported"
    );
    let events = k.ok(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    for reason in ["NewVersion", "Promoted", "Retired", "Deleted"] {
        assert!(events.contains(reason), "{reason} in {events}");
    }

    step("deleting the series deletes its images");
    k.ok(&["delete", "imageseries/cirros", "--timeout=120s"]);
    assert!(
        versions(&glance, &key).await.is_empty(),
        "no image left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_refresh_the_mirror_fails_is_read_again_until_the_new_release_is_current() {
    use common::fault_proxy::{Fault, FaultProxy, Route};
    let bed = require_testbed!();
    let (_cluster, k, _) = series_namespace(&bed, "refresh");
    let namespace = k.namespace.clone();
    let scratch = std::env::temp_dir().join(&namespace);
    let layout = Layout::CirrosFolders;
    let mirror = Mirror::start(&scratch.join("mirror"));
    let proxy = FaultProxy::start(&mirror.url("")).await;
    let log = scratch.join("glint.log");
    let _glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let version = |n: u32| layout.version(n).unwrap_or_default();
    layout.publish(
        mirror.dir(),
        1,
        &common::pseudo_random_bytes(100_000, 81),
        true,
    );
    k.apply(&format!(
        "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: cirros}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw}}\n  keep: 2\n  schedule: {{every: 168h}}\n{}",
        layout.checksums_spec(&format!("{}/", proxy.url()))
    ));
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(1)),
    );

    step("v2 published; the refresh's first reads of the mirror fail");
    layout.publish(
        mirror.dir(),
        2,
        &common::pseudo_random_bytes(100_000, 82),
        true,
    );
    proxy.inject(Route::new("GET", "*"), Fault::Status(503), 2);
    refresh(&k, 1);
    let message = wait_for_words(&k, "{.status.conditions[*].message}", "could not be read");
    eprintln!("while the mirror fails: {message}");
    // No second refresh: glint reads the mirror again by itself.
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(2)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    let glance = client_for(&bed.demo_cloud());
    let key = format!("{namespace}/cirros");
    let (v1, v2) = (version(1), version(2));
    assert_eq!(
        kept_versions(&versions(&glance, &key).await),
        [v1.as_str(), v2.as_str()]
    );
    k.ok(&[
        "delete",
        "imageseries/cirros",
        "--wait=true",
        "--timeout=120s",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_series_in_two_regions_downloads_each_release_once_and_rotates_in_both() {
    use glint::glance::{GlanceApi, GlanceStatus, Visibility};
    use sha2::Digest;
    let bed = require_testbed!();
    let (_cluster, k, clouds) = series_namespace(&bed, "regions");
    let namespace = k.namespace.clone();
    // The same Secret and cloud; the second target names the bed's other region, whose
    // Glance (C) is another service behind the same Keystone.
    let glance_b = client_for(&clouds);
    let glance_c = client_for(&common::keystone::production_auth(&bed));
    let scratch = std::env::temp_dir().join(&namespace);
    let layout = Layout::CirrosFolders;
    let mirror = Mirror::start_with(&scratch.join("mirror"), WebServer::Nginx);
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let data = |n: u32| common::pseudo_random_bytes(300_000, 40 + u64::from(n));
    let version = |n: u32| layout.version(n).unwrap_or_default();
    let file = |n: u32| format!("/{v}/cirros-{v}-x86_64-disk.img", v = version(n));
    let key = format!("{namespace}/cirros");
    let eu = "  - {name: eu, cloudCredentialsRef: {secretName: cloud, cloudName: bed}}\n";
    let us = format!(
        "  - {{name: us, cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}, region: {}, visibility: community}}\n",
        bed.prod_region
    );
    let manifest = |targets: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: cirros}}\nspec:\n  targets:\n{targets}  image: {{diskFormat: raw}}\n  keep: 2\n  schedule: {{every: 168h}}\n{}",
            layout.checksums_spec(&mirror.url(""))
        )
    };
    let ids = |k: &Kubectl| {
        (
            field(k, "{.status.imageIds.eu}"),
            field(k, "{.status.imageIds.us}"),
        )
    };

    step("v1 published: both regions get it, from one download");
    layout.publish(mirror.dir(), 1, &data(1), true);
    k.apply(&manifest(&format!("{eu}{us}")));
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(1)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    assert_eq!(field(&k, "{.status.targetsReady}"), "2/2 ready");
    let (eu1, us1) = ids(&k);
    let (in_b, in_c) = (
        glance_b
            .get_image(&eu1)
            .await
            .expect("eu's image in Glance B"),
        glance_c
            .get_image(&us1)
            .await
            .expect("us' image in Glance C"),
    );
    let sha512: String = sha2::Sha512::digest(data(1))
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for image in [&in_b, &in_c] {
        assert_eq!(image.status, GlanceStatus::Active);
        assert_eq!(image.os_hash_value.as_deref(), Some(sha512.as_str()));
        assert_eq!(image.name.as_deref(), Some("cirros"));
    }
    assert_eq!(in_b.visibility, Visibility::Private);
    assert_eq!(in_c.visibility, Visibility::Community, "us' own visibility");
    assert_eq!(mirror.downloads(&file(1)), 1, "one download for both");

    step("v2 published: a refresh rotates both regions, again from one download");
    layout.publish(mirror.dir(), 2, &data(2), true);
    refresh(&k, 2);
    k.wait(
        "imageseries/cirros",
        &format!("jsonpath={{.status.current}}={}", version(2)),
    );
    k.wait("imageseries/cirros", "condition=Ready");
    assert_eq!(mirror.downloads(&file(2)), 1, "one download for both");
    let (eu2, us2) = ids(&k);
    assert!(eu2 != eu1 && us2 != us1, "the new release's images");
    for target in ["eu", "us"] {
        assert_eq!(
            field(
                &k,
                &format!("{{.status.targets[?(@.name==\"{target}\")].versions[*].role}}")
            ),
            "retired current",
            "{target}"
        );
    }
    let scraped = glint.scrape().unwrap_or_default();
    let into_c = format!("cloud=\"bed\",region=\"{}\"", bed.prod_region);
    assert!(
        scraped.lines().any(
            |line| line.starts_with("glint_transfers_total{result=\"succeeded\"")
                && line.contains(&into_c)
        ),
        "transfers into us' region are counted as its: {scraped}"
    );
    let notes = k.ok(&["get", "events", "-o", "jsonpath={.items[*].message}"]);
    for target in ["eu", "us"] {
        let promoted = format!("target {target}: version {} is now current", version(2));
        assert!(notes.contains(&promoted), "{promoted} in {notes}");
    }

    step("us taken out of the list: its versions are deleted, eu's stay");
    k.apply(&manifest(eu));
    wait_for_value(&k, "{.status.targets[*].name}", "eu");
    for id in [&us1, &us2] {
        assert!(glance_c.get_image(id).await.is_err(), "{id} deleted");
    }
    assert_eq!(
        glance_b.get_image(&eu2).await.expect("eu's current").status,
        GlanceStatus::Active
    );
    assert_eq!(field(&k, "{.status.targetsReady}"), "1/1 ready");

    step("deleting the series deletes the last target's versions");
    k.ok(&["delete", "imageseries/cirros", "--timeout=120s"]);
    assert!(versions(&glance_b, &key).await.is_empty(), "none left in B");
    assert!(versions(&glance_c, &key).await.is_empty(), "none left in C");
    drop(glint);
}
