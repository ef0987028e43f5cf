//! The in-use guard: an image glint is to delete that Glance refuses to delete because it is in
//! use. A Glance on an rbd (Ceph) store answers a delete with 409 while volumes or ephemeral
//! disks cloned from the image exist; the test bed's Glance stores files, so a proxy in front
//! of it answers the deletes as an rbd-backed Glance does, and everything else (the hide, the
//! deactivate, the mark, the later delete) meets the real Glance. What glint left is read from
//! Glance directly, not through the proxy.

// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::expect_used)]

mod common;

use common::fault_proxy::{Fault, FaultProxy, Route};
use common::harness::client_for;
use common::mirror::{Mirror, SeriesCli};
use glint::glance::{GlanceApi, GlanceImage, GlanceStatus};

const IN_USE_MARK: &str = "glint.dev/in-use";

/// The test bed's demo cloud with Glance's endpoint moved to the proxy.
fn through(proxy: &FaultProxy, bed: &common::Testbed) -> String {
    format!(
        "{}    image_endpoint_override: {}\n",
        bed.demo_cloud(),
        proxy.url()
    )
}

fn deletes() -> Route {
    Route::new("DELETE", "/v2/images/*")
}

/// Each version with what users of `openstack image show` read: name, status, hidden, mark.
fn shown(found: &[(String, GlanceImage)]) -> Vec<(String, String, GlanceStatus, bool, bool)> {
    found
        .iter()
        .map(|(version, image)| {
            (
                version.clone(),
                image.name.clone().unwrap_or_default(),
                image.status.clone(),
                image.hidden,
                image.properties.contains_key(IN_USE_MARK),
            )
        })
        .collect()
}

/// A series with keep 1 named `prefix-…`, following `mirror`'s `prefix-VERSION.img` files, as
/// `run` applies it: its name, its key (`default/NAME`) and its manifest's path.
fn keep_one_series(run: &SeriesCli, mirror: &Mirror, prefix: &str) -> (String, String, String) {
    let name = common::unique(prefix);
    let manifest = run.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: raw}}\n  checksums:\n    url: {}\n    pattern: '{prefix}-(?P<version>[0-9.]+)\\.img'\n  keep: 1\n",
            mirror.checksums_url()
        ),
    );
    (name.clone(), format!("default/{name}"), manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_beyond_keep_that_glance_says_is_in_use_is_kept_hidden_until_a_later_apply_deletes_it()
 {
    let bed = glance_under_test!();
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let run = SeriesCli::with_bed(&bed);
    std::fs::write(run.dir.join("clouds.yaml"), through(&proxy, &bed)).expect("clouds.yaml");
    let mirror = Mirror::start(&run.dir.join("mirror"));
    let (name, key, manifest) = keep_one_series(&run, &mirror, "used");
    let apply = || tokio::task::block_in_place(|| run.run(&["apply", "-f", &manifest]));
    let glance = client_for(&bed.demo_cloud());

    mirror.publish(
        "used-1.0.img",
        &common::pseudo_random_bytes(150_000, 61),
        true,
    );
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");

    // v2 arrives while servers run from v1: Glance refuses v1's delete as in use.
    mirror.publish(
        "used-1.1.img",
        &common::pseudo_random_bytes(150_000, 62),
        true,
    );
    proxy.inject(deletes(), Fault::InUseByStore, 100);
    let (code, out) = apply();
    eprintln!("apply while 1.0 is in use:\n{out}");
    assert_eq!(
        code,
        Some(0),
        "an image still in use is not an error: {out}"
    );
    assert!(
        out.contains("1.0") && out.contains("kept: still in use"),
        "{out}"
    );
    let found = common::mirror::series_versions(&glance, &key).await;
    eprintln!("in use: {}", common::mirror::timeline(&found));
    assert_eq!(
        shown(&found),
        [
            (
                "1.0".into(),
                format!("{name}-1.0"),
                GlanceStatus::Active,
                true,
                true
            ),
            (
                "1.1".into(),
                name.clone(),
                GlanceStatus::Active,
                false,
                false
            ),
        ],
        "v1 stays, hidden and marked, under its versioned name; v2 alone has the stable name"
    );
    let mark = &found[0].1.properties[IN_USE_MARK];
    assert!(mark.contains("in use"), "Glance's words: {mark}");

    // Still in use at the next apply: one more try, no loop.
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(proxy.seen(&deletes()), 2, "{}", proxy.summary());

    // Free at last: the next apply deletes it.
    proxy.clear();
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1.0") && out.contains("deleted"), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(
        shown(&found),
        [(
            "1.1".into(),
            name.clone(),
            GlanceStatus::Active,
            false,
            false
        )]
    );
    glance.delete(&found[0].1.id).await.expect("clean up");
}

fn jsonpath(k: &common::kubectl::Kubectl, what: &str, path: &str) -> String {
    k.run(&["get", what, "-o", &format!("jsonpath={path}")], None)
        .1
}

/// Waits until `path` of `what` contains `words`; returns it.
fn wait_for(k: &common::kubectl::Kubectl, what: &str, path: &str, words: &str) -> String {
    let mut value = String::new();
    for _ in 0..300 {
        value = jsonpath(k, what, path);
        if value.contains(words) {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{what} {path} never said {words:?}: {value}");
}

fn refresh(k: &common::kubectl::Kubectl, what: &str, round: u32) {
    k.ok(&[
        "annotate",
        what,
        &format!("glint.dev/reconcile-requested-at=round-{round}"),
        "--overwrite",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn glint_run_keeps_what_glance_says_is_in_use_says_so_and_deletes_it_once_free() {
    use common::kubectl::{GlintProcess, Kubectl};
    let bed = require_testbed!();
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let cluster = common::cluster::cluster();
    let k = Kubectl::in_fresh_namespace(&cluster, "inuse");
    let namespace = k.namespace.clone();
    k.install_with_cloud_secret(&through(&proxy, &bed));
    k.wait("crd/imageseries.glint.dev", "condition=Established");
    let scratch = std::env::temp_dir().join(&namespace);
    let mirror = Mirror::start(&scratch.join("mirror"));
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let _glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let glance = client_for(&bed.demo_cloud());
    let ready_reason = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    let ready_message = "{.status.conditions[?(@.type==\"Ready\")].message}";

    // An Image deleted while in use, with whenInUse: deactivate.
    mirror.publish("disk.img", &common::pseudo_random_bytes(150_000, 71), true);
    k.apply(&format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: disk}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  diskFormat: raw\n  whenInUse: deactivate\n  source: {{url: \"{}\"}}\n",
        mirror.url("disk.img")
    ));
    k.wait("image/disk", "condition=Ready");
    let id = k.status_id("disk");
    proxy.inject(deletes(), Fault::InUseByStore, 1000);
    k.ok(&["delete", "image/disk", "--wait=false"]);
    wait_for(&k, "image/disk", ready_reason, "InUse");
    let said = jsonpath(&k, "image/disk", ready_message);
    eprintln!("Image deleted while in use: {said}");
    assert!(
        said.contains(&id) && said.contains("spec.onDelete: detach"),
        "{said}"
    );
    let image = glance
        .get_image(&id)
        .await
        .expect("the image is still there");
    assert_eq!(
        (image.status.clone(), image.hidden),
        (GlanceStatus::Deactivated, true),
        "kept hidden and deactivated: {image:?}"
    );
    assert!(image.properties.contains_key(IN_USE_MARK), "{image:?}");
    let events = k.ok(&["get", "events", "--field-selector", "reason=InUse"]);
    assert!(events.contains("Warning"), "{events}");

    // A series with keep 1 whose old version is in use when v2 arrives.
    mirror.publish(
        "rel-1.0.img",
        &common::pseudo_random_bytes(150_000, 72),
        true,
    );
    k.apply(&format!(
        "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: rel}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw}}\n  schedule: {{every: 168h}}\n  keep: 1\n  checksums:\n    url: {}\n    pattern: 'rel-(?P<version>[0-9.]+)\\.img'\n",
        mirror.checksums_url()
    ));
    k.wait("imageseries/rel", "jsonpath={.status.current}=1.0");
    mirror.publish(
        "rel-1.1.img",
        &common::pseudo_random_bytes(150_000, 73),
        true,
    );
    refresh(&k, "imageseries/rel", 1);
    k.wait("imageseries/rel", "jsonpath={.status.current}=1.1");
    let line = wait_for(
        &k,
        "imageseries/rel",
        "{.status.versions[?(@.version==\"1.0\")]}",
        "deleting",
    );
    eprintln!("the series' line for 1.0: {line}");
    assert!(line.contains("InUse"), "{line}");
    k.wait("imageseries/rel", "condition=Ready");
    let key = format!("{namespace}/rel");
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(
        shown(&found),
        [
            (
                "1.0".into(),
                "rel-1.0".into(),
                GlanceStatus::Active,
                true,
                true
            ),
            (
                "1.1".into(),
                "rel".into(),
                GlanceStatus::Active,
                false,
                false
            ),
        ]
    );

    // The series is deleted while both versions are in use: it waits, and says so.
    k.ok(&["delete", "imageseries/rel", "--wait=false"]);
    wait_for(&k, "imageseries/rel", ready_reason, "InUse");
    let said = jsonpath(&k, "imageseries/rel", ready_message);
    eprintln!("series deleted while in use: {said}");
    assert!(
        said.contains("2 of its versions")
            && said.contains("version 1.0")
            && said.contains("version 1.1"),
        "{said}"
    );
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(
        shown(&found),
        [
            (
                "1.0".into(),
                "rel-1.0".into(),
                GlanceStatus::Active,
                true,
                true
            ),
            ("1.1".into(), "rel".into(), GlanceStatus::Active, true, true),
        ],
        "both kept, hidden and marked"
    );

    // Free: the next try (a refresh stands in for the 5-minute timer) deletes both images and
    // lets both objects go.
    proxy.clear();
    refresh(&k, "image/disk", 2);
    refresh(&k, "imageseries/rel", 2);
    k.wait("image/disk", "delete");
    k.wait("imageseries/rel", "delete");
    let gone = glance.get_image(&id).await;
    assert!(
        matches!(&gone, Err(err) if err.is_not_found())
            || matches!(&gone, Ok(image) if image.status == GlanceStatus::Deleted),
        "{gone:?}"
    );
    assert!(
        common::mirror::series_versions(&glance, &key)
            .await
            .is_empty()
    );
}

/// The test bed's Nova (nova-api of 2026.2), through its own API: what a user's
/// `openstack server create` and `server delete` send.
struct Nova {
    url: String,
    http: reqwest::Client,
}

impl Nova {
    fn of_bed() -> Self {
        let url = std::env::var("GLINT_TEST_COMPUTE_URL").unwrap_or_else(|_| {
            panic!("GLINT_TEST_COMPUTE_URL is not set: scripts/testbed starts Nova with the default Glance release")
        });
        Self {
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("x-auth-token", token)
            // 2.37: a server without networks (the bed has no Neutron).
            .header("openstack-api-version", "compute 2.37");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("Nova answers");
        let status = answer.status();
        let text = answer.text().await.expect("Nova's body");
        assert!(status.is_success(), "Nova {method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_version_a_server_was_booted_from_is_kept_until_the_server_is_gone() {
    let bed = require_testbed!();
    let nova = Nova::of_bed();
    let run = SeriesCli::with_bed(&bed);
    let mirror = Mirror::start(&run.dir.join("mirror"));
    let (name, key, manifest) = keep_one_series(&run, &mirror, "booted");
    let apply = || tokio::task::block_in_place(|| run.run(&["apply", "-f", &manifest]));
    let glance = client_for(&bed.demo_cloud());
    mirror.publish(
        "booted-1.0.img",
        &common::pseudo_random_bytes(150_000, 91),
        true,
    );
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    let v1 = found[0].1.id.clone();

    // A server booted from 1.0, as the demo user (the flavor is an admin's to make).
    let admin = common::keystone::admin_token(&bed).await;
    let demo = common::keystone::demo_token(&bed).await;
    let flavor = nova
        .call(
            &admin,
            reqwest::Method::POST,
            "/flavors",
            Some(serde_json::json!({"flavor": {"name": common::unique("tiny"), "ram": 64, "vcpus": 1, "disk": 1}})),
        )
        .await["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string();
    let server = nova
        .call(
            &demo,
            reqwest::Method::POST,
            "/servers",
            Some(serde_json::json!({"server": {"name": common::unique("vm"), "imageRef": v1, "flavorRef": flavor, "networks": "none"}})),
        )
        .await["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string();

    // 1.1 arrives: 1.0 is beyond keep, but the server keeps it, hidden and marked.
    mirror.publish(
        "booted-1.1.img",
        &common::pseudo_random_bytes(150_000, 92),
        true,
    );
    let (code, out) = apply();
    eprintln!("apply while a server runs from 1.0:\n{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("1 server was booted from it (counted in this project only"),
        "{out}"
    );
    let found = common::mirror::series_versions(&glance, &key).await;
    eprintln!("kept: {}", common::mirror::timeline(&found));
    assert_eq!(
        shown(&found),
        [
            (
                "1.0".into(),
                format!("{name}-1.0"),
                GlanceStatus::Active,
                true,
                true
            ),
            (
                "1.1".into(),
                name.clone(),
                GlanceStatus::Active,
                false,
                false
            ),
        ]
    );

    // The server is deleted: the next apply deletes 1.0.
    nova.call(
        &demo,
        reqwest::Method::DELETE,
        &format!("/servers/{server}"),
        None,
    )
    .await;
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(
        shown(&found),
        [(
            "1.1".into(),
            name.clone(),
            GlanceStatus::Active,
            false,
            false
        )],
        "{out}"
    );
    nova.call(
        &admin,
        reqwest::Method::DELETE,
        &format!("/flavors/{flavor}"),
        None,
    )
    .await;
    glance.delete(&found[0].1.id).await.expect("clean up");
}
