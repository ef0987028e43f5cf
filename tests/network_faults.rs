//! The network breaking inside transfers and in front of Keystone: glint's real reconcile and
//! transfers against the bed's Keystone + Glance B (the embedded cloud when no bed runs), with
//! the fault proxy (tests/common/fault_proxy.rs) between glint and the service it breaks.
//! Every forwarded byte meets the real service; what Glance holds afterwards is checked without
//! the proxy, by hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Route};
use common::harness::*;
use common::sources::{Reply, SourceServer};
use glint::crd::{Image, TransferPhase, TransferStatus};
use glint::glance::{GlanceApi, GlanceClient, GlanceStatus};
use serde_json::json;
use sha2::Digest;

/// How long the tests let Glance stall an upload (the controller's default is 2 minutes).
const STALL: Duration = Duration::from_secs(2);

fn upload() -> Route {
    Route::new("PUT", "/v2/images/*/file")
}

fn tokens() -> Route {
    Route::new("POST", "/v3/auth/tokens")
}

/// A harness whose glint reaches Glance through a fresh proxy (Keystone directly), stalls
/// uploads after [`STALL`], and a client that checks Glance without the proxy.
async fn glance_through_proxy(bed: common::Testbed) -> (Harness, FaultProxy, GlanceClient) {
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let yaml = bed.demo_cloud_via(proxy.url());
    let h = Harness::with_settings(
        bed,
        glint::controller::Settings {
            upload_stall: STALL,
            ..settings()
        },
    );
    h.put_clouds_yaml("cloud", &yaml);
    let api = h.glance();
    (h, proxy, api)
}

/// One Image whose source (`size` pseudo-random bytes) goes to Glance through a proxy that
/// breaks what `faults` say, applied once the faults are armed.
struct Scenario {
    h: Harness,
    proxy: FaultProxy,
    api: GlanceClient,
    data: Vec<u8>,
    server: SourceServer,
    name: String,
}

async fn scenario(
    prefix: &str,
    size: usize,
    seed: u64,
    faults: &[(Route, Fault, u32)],
) -> Scenario {
    let bed = glance_under_test!();
    let (h, proxy, api) = glance_through_proxy(bed).await;
    let data = common::pseudo_random_bytes(size, seed);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    for (route, fault, times) in faults {
        proxy.inject(route.clone(), *fault, *times);
    }
    let name = common::unique(prefix);
    h.apply(&name, json!({"source": {"url": server.url("/disk.raw")}}));
    Scenario {
        h,
        proxy,
        api,
        data,
        server,
        name,
    }
}

fn transfer_of(object: Option<&Image>) -> Option<TransferStatus> {
    object?.status.as_ref()?.transfer.clone()
}

/// Ready, with the transfer's success recorded.
fn transferred(object: Option<&Image>) -> bool {
    ready(object) && transfer_of(object).is_some_and(|t| t.phase == TransferPhase::Succeeded)
}

fn hex_sha512(data: &[u8]) -> String {
    sha2::Sha512::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The object is Ready on exactly one image of its own, active and holding `data` (Glance's
/// size and sha512, read without the proxy); returns that image's id.
async fn holds_exactly(h: &Harness, api: &GlanceClient, name: &str, data: &[u8]) -> String {
    let object = h.object(name).expect("object");
    let uid = object.metadata.uid.clone().expect("uid");
    let image = api.get_image(&status_id(&object)).await.expect("image");
    assert_eq!(image.status, GlanceStatus::Active);
    assert_eq!(image.size, Some(data.len() as u64), "size");
    assert_eq!(
        image.os_hash_value.as_deref(),
        Some(hex_sha512(data).as_str()),
        "Glance holds the source's bytes"
    );
    assert_eq!(images_marked(api, &uid).await, 1, "one image, no duplicate");
    image.id
}

async fn clean_up(h: &Harness, api: &GlanceClient, name: &str) {
    if let Some(object) = h.object(name) {
        api.delete_if_exists(&status_id(&object))
            .await
            .expect("clean up");
    }
}

/// Reconciles until the first attempt failed and returns its error.
async fn first_failure(h: &Harness, name: &str) -> String {
    let failed = h
        .settle(name, |object| {
            transfer_of(object).is_some_and(|t| t.phase == TransferPhase::Failed)
        })
        .await;
    let transfer = transfer_of(failed.as_ref()).expect("a transfer");
    assert_eq!(transfer.attempts, 1, "{transfer:?}");
    transfer.last_error.expect("lastError")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_reset_midway_is_retried_and_glance_ends_with_the_sources_bytes_once() {
    let Scenario {
        h,
        proxy,
        api,
        data,
        server: _server,
        name,
    } = scenario(
        "upload-reset",
        8 << 20,
        33,
        &[(upload(), Fault::CutBodyAfter(3 << 20), 1)],
    )
    .await;

    let error = first_failure(&h, &name).await;
    eprintln!("first attempt: {error}");
    assert!(
        error.contains("Glance upload image data failed before an answer"),
        "the message says the upload broke: {error}"
    );
    let done = h.settle(&name, transferred).await;
    assert_eq!(transfer_of(done.as_ref()).map(|t| t.attempts), Some(2));
    holds_exactly(&h, &api, &name, &data).await;
    assert_eq!(proxy.seen(&upload()), 2, "{}", proxy.summary());
    clean_up(&h, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_glance_stops_taking_is_given_up_after_the_stall_limit_and_retried() {
    // Silent for five times the limit (then the balancer gives up on Glance too, which puts
    // the image back to queued): only glint's own watch can end the attempt sooner.
    let Scenario {
        h,
        proxy: _proxy,
        api,
        data,
        server: _server,
        name,
    } = scenario(
        "upload-stall",
        8 << 20,
        34,
        &[(upload(), Fault::StallBodyAfter(2 << 20, 5 * STALL), 1)],
    )
    .await;

    let started = Instant::now();
    let error = first_failure(&h, &name).await;
    let noticed = started.elapsed();
    eprintln!("first attempt ended after {noticed:?}: {error}");
    assert!(
        error.contains("Glance took none of the upload's data for 2 s")
            && error.contains("--upload-stall-timeout"),
        "the message says Glance stalled, and which limit: {error}"
    );
    let object = h.object(&name);
    let (_, reason) = condition(object.as_ref(), "Ready").expect("Ready");
    assert_eq!(
        reason, "TransferFailed",
        "whether or not Glance still shows the image saving"
    );

    let done = h.settle(&name, transferred).await;
    assert_eq!(transfer_of(done.as_ref()).map(|t| t.attempts), Some(2));
    holds_exactly(&h, &api, &name, &data).await;
    clean_up(&h, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_stall_limit_is_not_a_stall_while_it_waits_on_its_source() {
    let bed = glance_under_test!();
    let (h, _proxy, api) = glance_through_proxy(bed).await;
    let data = common::pseudo_random_bytes(5 << 18, 35);
    // 4 pauses of 1.5 s: the upload takes three times the limit, most of it waiting on the
    // source, and never a stall.
    let server = SourceServer::serving(
        Reply::ok(data.clone()).slowly(256 << 10, Duration::from_millis(1500)),
    )
    .await;
    let name = common::unique("slow-source");
    h.apply(&name, json!({"source": {"url": server.url("/disk.raw")}}));

    let done = h.settle(&name, transferred).await;
    let transfer = transfer_of(done.as_ref()).expect("transfer");
    assert_eq!(transfer.attempts, 1, "{transfer:?}");
    assert!(
        transfer.elapsed_seconds.unwrap_or(0) >= 2 * STALL.as_secs(),
        "{transfer:?}"
    );
    holds_exactly(&h, &api, &name, &data).await;
    clean_up(&h, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_answered_after_the_whole_upload_by_a_balancer_glance_never_reached_is_retried() {
    let Scenario {
        h,
        proxy,
        api,
        data,
        server: _server,
        name,
    } = scenario(
        "upload-502",
        4 << 20,
        36,
        &[(upload(), Fault::SwallowThen(502), 1)],
    )
    .await;

    let error = first_failure(&h, &name).await;
    assert!(error.contains("502"), "{error}");
    let done = h.settle(&name, transferred).await;
    assert_eq!(transfer_of(done.as_ref()).map(|t| t.attempts), Some(2));
    holds_exactly(&h, &api, &name, &data).await;
    assert_eq!(proxy.forwarded(&upload()), 1, "{}", proxy.summary());
    clean_up(&h, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_answered_after_glance_stored_the_upload_ends_ready_on_the_checked_bytes() {
    let Scenario {
        h,
        proxy,
        api,
        data,
        server: _server,
        name,
    } = scenario(
        "stored-then-502",
        4 << 20,
        37,
        &[(upload(), Fault::ActThenRefuse(502), 1)],
    )
    .await;

    let done = h.settle(&name, transferred).await;
    eprintln!("{:?}", transfer_of(done.as_ref()));
    holds_exactly(&h, &api, &name, &data).await;
    // Sent once by glint (Glance's own answer may not reach the proxy either).
    assert_eq!(
        proxy.seen(&upload()),
        1,
        "the data went once: {}",
        proxy.summary()
    );
    clean_up(&h, &api, &name).await;
}

/// A clouds.yaml whose Keystone is reached through `proxy` (Glance as the catalog says).
fn keystone_through(bed: &common::Testbed, proxy: &FaultProxy) -> String {
    bed.demo_cloud()
        .replace(&bed.keystone_url, &format!("{}/v3", proxy.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn keystone_answering_503_dropping_and_slow_on_tokens_delays_the_image_but_it_ends_ready() {
    let bed = require_testbed!();
    let keystone = FaultProxy::start(&bed.keystone_url.replace("/v3", "")).await;
    let h = Harness::new(bed.clone());
    h.put_clouds_yaml("cloud", &keystone_through(&bed, &keystone));
    let api = h.glance();
    keystone.inject(tokens(), Fault::Status(503), 2);
    keystone.inject(tokens(), Fault::Drop, 1);
    keystone.inject(tokens(), Fault::Delay(Duration::from_secs(2)), 1);
    let data = common::pseudo_random_bytes(1 << 20, 38);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let name = common::unique("keystone-faults");
    h.apply(&name, json!({"source": {"url": server.url("/disk.raw")}}));

    let err = h.reconcile_once(&name).await.expect_err("no token yet");
    eprintln!("first pass: {err}");
    let object = h.object(&name);
    let (status, reason) = condition(object.as_ref(), "Ready").expect("Ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "KeystoneUnavailable")
    );
    let message = condition_message(object.as_ref().expect("object"), "Ready");
    assert!(
        message.contains("503"),
        "Keystone's answer is shown: {message}"
    );
    assert!(
        !message.contains(&bed.demo_password),
        "no secret in the message"
    );

    h.settle(&name, transferred).await;
    holds_exactly(&h, &api, &name, &data).await;
    assert_eq!(keystone.injected(), 4, "{}", keystone.summary());
    clean_up(&h, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_token_that_expires_during_a_long_upload_breaks_nothing_and_never_shows_in_the_log() {
    let bed = require_testbed!();
    const LIFETIME: u32 = 6;
    let keystone = common::keystone::ShortLivedKeystone::start(&bed, LIFETIME);
    let glance = FaultProxy::start(&bed.keystone_glance_url).await;
    let run = common::mirror::SeriesCli::with_bed(&bed);
    let yaml = format!(
        "{}    image_endpoint_override: {}\n",
        bed.demo_cloud().replace(&bed.keystone_url, &keystone.url),
        glance.url()
    );
    std::fs::write(run.dir.join("clouds.yaml"), yaml).expect("clouds.yaml");
    // 12 MiB at about 1 MiB/s: the upload outlives the token it started with.
    let data = common::pseudo_random_bytes(12 << 20, 39);
    let server =
        SourceServer::serving(Reply::ok(data.clone()).slowly(1 << 20, Duration::from_secs(1)))
            .await;
    let name = common::unique("token-expiry");
    let manifest = run.dir.join("image.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n  source: {{url: '{}'}}\n",
            server.url("/disk.raw")
        ),
    )
    .expect("manifest");

    let started = Instant::now();
    let output = run
        .command(&["apply", "-f", &manifest.display().to_string()])
        .env("GLINT_LOG", "debug")
        .output()
        .expect("glint apply");
    let took = started.elapsed();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(
        took > Duration::from_secs(u64::from(LIFETIME) + 3),
        "the upload outlived its token: {took:?}"
    );
    assert_eq!(
        glance.seen(&upload()),
        1,
        "one upload, never retried: {}",
        glance.summary()
    );
    assert_eq!(glance.answered(&upload(), 204), 1, "{}", glance.summary());
    assert!(
        log.contains("issued a Keystone token"),
        "the debug log was on: {log}"
    );
    assert!(
        !log.contains(&bed.demo_password),
        "the password is in the log"
    );
    // Fernet tokens start with gAAAAA: none, whole or in part, in the log.
    assert!(!log.contains("gAAAAA"), "a token is in the log");

    let api = common::harness::client_for(&bed.demo_cloud());
    let query = glint::glance::ListQuery {
        name: Some(glint::glance::NameFilter::Exactly(name.clone())),
        ..Default::default()
    };
    let found: Vec<glint::glance::GlanceImage> =
        futures::TryStreamExt::try_collect(api.list_images(&query))
            .await
            .expect("list");
    assert_eq!(found.len(), 1, "one image");
    assert_eq!(
        found[0].os_hash_value.as_deref(),
        Some(hex_sha512(&data).as_str())
    );
    api.delete_if_exists(&found[0].id).await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_quota_or_store_says_what_to_change_and_is_not_retried_within_a_minute() {
    // Glance's own words (glance/api/v2/image_data.py) for what the bed cannot reach: a
    // project over its quota, a store out of space.
    let cases = [
        (
            "Image exceeds the storage quota: The size of the data 8388608 will exceed the limit. 1048576 bytes remaining.",
            "GlanceQuotaExceeded",
            "delete images it no longer needs",
        ),
        (
            "Image storage media is full: There is not enough disk space on the image storage media.",
            "GlanceStorageFull",
            "Glance's store is full",
        ),
    ];
    for (words, reason, advice) in cases {
        let bed = glance_under_test!();
        let (h, proxy, api) = glance_through_proxy(bed).await;
        let data = common::pseudo_random_bytes(8 << 20, 40);
        let server = SourceServer::serving(Reply::ok(data.clone())).await;
        proxy.inject(upload(), Fault::GlanceSays(413, words), u32::MAX);
        let name = common::unique("over-limit");
        h.apply(&name, json!({"source": {"url": server.url("/disk.raw")}}));

        let error = first_failure(&h, &name).await;
        assert!(error.contains(advice) && error.contains(words), "{error}");
        // A few seconds of passes, as watch events would bring: no second attempt.
        for _ in 0..10 {
            let _ = h.reconcile_once(&name).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let object = h.object(&name);
        assert_eq!(
            condition(object.as_ref(), "Ready").map(|(_, reason)| reason),
            Some(reason.to_string())
        );
        assert_eq!(
            condition(object.as_ref(), "Stalled").map(|(status, _)| status),
            Some("False".to_string()),
            "{reason} is retried, later"
        );
        assert_eq!(transfer_of(object.as_ref()).map(|t| t.attempts), Some(1));
        assert_eq!(proxy.seen(&upload()), 1, "one upload, no storm");
        assert_eq!(server.gets(), 1, "the source was read once");
        clean_up(&h, &api, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn an_image_over_the_clouds_size_cap_stalls_with_what_to_change_and_leaves_no_data() {
    // Glance C caps images at 64 MiB (scripts/testbed), as production clouds set image_size_cap.
    let bed = require_testbed!();
    let h = Harness::with_clouds_yaml(
        bed.clone(),
        &common::keystone::production_auth(&bed),
        |ctx| ctx,
    );
    let data = common::pseudo_random_bytes((64 << 20) + 4096, 41);
    let server = SourceServer::serving(Reply::ok(data)).await;
    let name = common::unique("too-large");
    h.apply(&name, json!({"source": {"url": server.url("/disk.raw")}}));

    let stalled = h.settle(&name, stalled_with("ImageTooLarge")).await;
    let object = stalled.expect("object");
    let message = condition_message(&object, "Stalled");
    eprintln!("Stalled: {message}");
    assert!(
        message.contains("image_size_cap") && message.contains("The incoming image is too large"),
        "what to change, and Glance's words: {message}"
    );
    let api = common::harness::client_for(&common::keystone::production_auth(&bed));
    let image = api.get_image(&status_id(&object)).await.expect("image");
    assert_eq!(image.status, GlanceStatus::Queued, "Glance kept none of it");
    assert_eq!(server.gets(), 1, "not retried");
    api.delete_if_exists(&image.id).await.expect("clean up");
}

/// `glint apply -f MANIFEST` through `proxy` in front of Glance, with `extra` flags; (success,
/// output).
fn apply_through(
    bed: &common::Testbed,
    proxy: &FaultProxy,
    manifest: &str,
    extra: &[&str],
) -> (bool, String) {
    let run = common::mirror::SeriesCli::with_bed(bed);
    std::fs::write(run.dir.join("clouds.yaml"), bed.demo_cloud_via(proxy.url()))
        .expect("clouds.yaml");
    let path = run.dir.join("images.yaml");
    std::fs::write(&path, manifest).expect("manifest");
    let path = path.display().to_string();
    let mut args = vec!["apply", "-f", path.as_str()];
    args.extend_from_slice(extra);
    let output = run.command(&args).output().expect("glint apply");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn image_document(name: &str, url: &str) -> String {
    format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n  source: {{url: '{url}'}}\n---\n"
    )
}

// Two workers: the proxy and the source answer while glint runs as a blocking child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glint_apply_rides_out_faults_on_every_call_and_leaves_each_image_once_with_its_bytes() {
    let bed = glance_under_test!();
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    // Each image's first upload breaks a different way: cut mid-body, stored but answered
    // 502, swallowed by a balancer; creates, listings and reads fail too.
    proxy.inject(upload(), Fault::CutBodyAfter(1 << 20), 1);
    proxy.inject(upload(), Fault::ActThenRefuse(502), 1);
    proxy.inject(upload(), Fault::SwallowThen(502), 1);
    let create = Route::new("POST", "/v2/images");
    proxy.inject(create.clone(), Fault::LoseAnswer, 1);
    proxy.inject(create, Fault::Status(503), 1);
    proxy.inject(Route::new("GET", "/v2/images"), Fault::Status(503), 2);
    proxy.inject(Route::new("GET", "/v2/images/*"), Fault::Drop, 2);
    let sources: Vec<Vec<u8>> = (0..3)
        .map(|i| common::pseudo_random_bytes(4 << 20, 50 + i))
        .collect();
    let served = sources.clone();
    let server = SourceServer::start(move |request| {
        let i: usize = request
            .path
            .trim_start_matches("/disk-")
            .trim_end_matches(".raw")
            .parse()
            .unwrap_or(0);
        Reply::ok(served[i.min(2)].clone())
    })
    .await;
    let prefix = common::unique("cli-faults");
    let manifest: String = (0..3)
        .map(|i| {
            image_document(
                &format!("{prefix}-{i}"),
                &server.url(&format!("/disk-{i}.raw")),
            )
        })
        .collect();

    let (ok, out) = apply_through(&bed, &proxy, &manifest, &[]);
    eprintln!("{out}\n{}", proxy.summary());
    assert!(ok, "{out}");
    // Which reads meet the last faults depends on the order of calls; the uploads' always.
    assert!(
        proxy.injected() >= 8,
        "the faults were met: {}",
        proxy.summary()
    );
    assert_eq!(
        proxy.seen(&upload()),
        5,
        "three broken uploads, two sent again (the stored one is checked, not sent): {}",
        proxy.summary()
    );
    let api = common::harness::client_for(&bed.demo_cloud());
    for (i, data) in sources.iter().enumerate() {
        let query = glint::glance::ListQuery {
            name: Some(glint::glance::NameFilter::Exactly(format!("{prefix}-{i}"))),
            ..Default::default()
        };
        let found: Vec<glint::glance::GlanceImage> =
            futures::TryStreamExt::try_collect(api.list_images(&query))
                .await
                .expect("list");
        assert_eq!(found.len(), 1, "image {i}: one, no duplicate");
        assert_eq!(
            found[0].os_hash_value.as_deref(),
            Some(hex_sha512(data).as_str())
        );
        api.delete_if_exists(&found[0].id).await.expect("clean up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glint_apply_gives_an_object_up_after_retry_for_and_says_so() {
    let bed = glance_under_test!();
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let name = common::unique("cli-gives-up");
    let manifest = format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n"
    );
    // Glance answers every listing 503: the pass cannot even look.
    proxy.inject(
        Route::new("GET", "/v2/images"),
        Fault::Status(503),
        u32::MAX,
    );
    let (ok, out) = apply_through(&bed, &proxy, &manifest, &["--retry-for", "3s"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("GlanceUnavailable") && out.contains("gave up after retrying for 3 s"),
        "{out}"
    );
    let tries = proxy.seen(&Route::new("GET", "/v2/images"));
    eprintln!("{out}\nlistings tried: {tries}");
    assert!(
        (2..=12).contains(&tries),
        "retried with a backoff, not a storm: {tries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_and_next_reads_are_lost_is_never_ready_before_glint_checked_it() {
    // Glance stores the data but the answer is lost, and so are the next reads of the image.
    let Scenario {
        h,
        proxy,
        api,
        data,
        server: _server,
        name,
    } = scenario(
        "unchecked",
        4 << 20,
        42,
        &[
            (upload(), Fault::ActThenRefuse(502), 1),
            (Route::new("GET", "/v2/images/*"), Fault::Status(503), 4),
        ],
    )
    .await;

    let mut failed_seen = false;
    for _ in 0..150 {
        let _ = h.reconcile_once(&name).await;
        let object = h.object(&name);
        let transfer = transfer_of(object.as_ref());
        failed_seen |= transfer
            .as_ref()
            .is_some_and(|t| t.phase == TransferPhase::Failed);
        assert!(
            !ready(object.as_ref())
                || transfer_of(object.as_ref())
                    .is_some_and(|t| t.phase == TransferPhase::Succeeded),
            "Ready before glint checked what Glance stored: {transfer:?}"
        );
        if transferred(object.as_ref()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        transferred(h.object(&name).as_ref()),
        "{:?}",
        transfer_of(h.object(&name).as_ref())
    );
    eprintln!("{}", proxy.summary());
    assert!(failed_seen, "the lost answer made an attempt fail first");
    holds_exactly(&h, &api, &name, &data).await;
    assert_eq!(
        proxy.seen(&upload()),
        1,
        "the data went once: {}",
        proxy.summary()
    );
    clean_up(&h, &api, &name).await;
}
