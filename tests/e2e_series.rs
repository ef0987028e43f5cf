//! End to end: the real `glint run` keeps an ImageSeries current against a real kube-apiserver
//! and the Keystone-backed Glance, releases published by Python's http.server, driven with
//! kubectl: a first release, a second one that takes over, a corrupt third that does not, the
//! apiserver refusing a bad series, and the series' deletion taking its images with it.

mod common;

use common::harness::client_for;
use common::keystone::password_auth;
use common::kubectl::{GlintProcess, Kubectl};
use common::mirror::Mirror;
use glint::glance::Image;

fn step(text: &str) {
    eprintln!("e2e series step: {text}");
}

async fn versions(glance: &glint::glance::GlanceClient, key: &str) -> Vec<Image> {
    common::mirror::series_versions(glance, key)
        .await
        .into_iter()
        .map(|(_, image)| image)
        .collect()
}

fn names(found: &[Image]) -> Vec<(String, bool, bool)> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glint_run_keeps_a_series_current_and_deleting_it_takes_its_images() {
    let bed = require_testbed!();
    let Some(cluster) = common::cluster::cluster() else {
        return;
    };
    let k = Kubectl::in_fresh_namespace(&cluster, "series");
    let namespace = k.namespace.clone();
    let clouds = password_auth(&bed, &bed.demo_password);
    k.install_with_cloud_secret(&clouds);
    k.wait("crd/imageseries.glint.dev", "condition=Established");
    let glance = client_for(&clouds);
    let scratch = std::env::temp_dir().join(&namespace);
    let mirror = Mirror::start(&scratch.join("mirror"));
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);

    step("the apiserver refuses a series that keeps nothing");
    let manifest = |keep: u32, tag: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: tiny}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw, tags: [{tag}]}}\n  checksums:\n    url: {}\n    pattern: 'tiny-(?P<version>[0-9.]+)\\.img'\n  keep: {keep}\n",
            mirror.checksums_url()
        )
    };
    let refused = k.refused(&manifest(0, "a"));
    assert!(refused.contains("keep must be 1 to 100"), "{refused}");

    step("v1 published: the series makes it current");
    mirror.publish(
        "tiny-1.0.img",
        &common::pseudo_random_bytes(200_000, 21),
        true,
    );
    k.apply(&manifest(2, "a"));
    k.wait("imageseries/tiny", "jsonpath={.status.current}=1.0");
    k.wait("imageseries/tiny", "condition=Ready");
    common::gitops::assert_gitops_view(
        "imageseries/tiny",
        &k.object("imageseries/tiny"),
        "Healthy",
        "Current",
    );
    let key = format!("{namespace}/tiny");
    assert_eq!(
        names(&versions(&glance, &key).await),
        [("tiny".into(), false, true)]
    );

    step("v2 published, the spec edited (a check at once): v2 takes over, v1 is retired");
    mirror.publish(
        "tiny-1.1.img",
        &common::pseudo_random_bytes(200_000, 22),
        true,
    );
    k.apply(&manifest(2, "b"));
    k.wait("imageseries/tiny", "jsonpath={.status.current}=1.1");
    let found = versions(&glance, &key).await;
    assert_eq!(
        names(&found),
        [
            ("tiny-1.0".into(), true, false),
            ("tiny".into(), false, true),
        ]
    );
    assert!(
        found.iter().all(|image| image.tags == ["b"]),
        "the edit reached every version"
    );

    step("v3 corrupt: v2 stays current, v3's failure is in status, v1 goes (keep 2)");
    mirror.publish(
        "tiny-1.2.img",
        &common::pseudo_random_bytes(200_000, 23),
        false,
    );
    k.apply(&manifest(2, "c"));
    k.wait(
        "imageseries/tiny",
        "jsonpath={.status.versions[?(@.version==\"1.2\")].role}=pending",
    );
    let mut problem = String::new();
    for _ in 0..150 {
        problem = k.ok(&[
            "get",
            "imageseries/tiny",
            "-o",
            "jsonpath={.status.versions[?(@.version==\"1.2\")].problem}",
        ]);
        if problem.contains("HashMismatch") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(problem.contains("HashMismatch"), "{problem}");
    let current = k.ok(&[
        "get",
        "imageseries/tiny",
        "-o",
        "jsonpath={.status.current}",
    ]);
    assert_eq!(current, "1.1");
    let found = versions(&glance, &key).await;
    let kept: Vec<&str> = found
        .iter()
        .map(|image| image.properties["glint.dev/version"].as_str())
        .collect();
    assert_eq!(kept, ["1.1", "1.2"]);
    assert_eq!(
        found
            .iter()
            .filter(|i| i.properties.contains_key("glint.dev/latest"))
            .count(),
        1,
        "never two current"
    );
    assert_eq!(glint.metric("glint_series_versions"), Some(2.0));
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
    k.ok(&["delete", "imageseries/tiny", "--timeout=120s"]);
    assert!(
        versions(&glance, &key).await.is_empty(),
        "no image left behind"
    );
}
