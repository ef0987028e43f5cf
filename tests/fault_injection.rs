//! glint's real reconcile against the bed's Keystone + Glance (the embedded cloud when no bed
//! runs), with a fault-injecting proxy
//! (tests/common/fault_proxy.rs) between glint and Glance: 5xx answers, dropped connections,
//! slow answers, creates whose answer is lost after Glance acted, and a Glance restart.
//! Whatever breaks, each object must end with exactly one image in Glance, and none once the
//! object is deleted.
//!
//! The proxy counts what reached Glance, so "never repeated a create" is checked by count, and
//! the checks themselves read Glance directly, never through the proxy.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::Testbed;
use common::fault_proxy::{Fault, FaultProxy, Route};
use common::harness::*;
use futures::TryStreamExt;
use futures::future::join_all;
use glint::glance::{GlanceApi, GlanceClient, ListQuery};
use glint::pass::observe::{OWNER_PROPERTY, derived_id};
use kube::runtime::controller::Action;
use serde_json::json;

fn create() -> Route {
    Route::new("POST", "/v2/images")
}

fn get_one() -> Route {
    Route::new("GET", "/v2/images/*")
}

fn patch() -> Route {
    Route::new("PATCH", "/v2/images/*")
}

/// A harness whose Secret sends glint's Glance calls through a fresh proxy in front of the
/// Keystone-backed Glance (Keystone is reached directly), and a client that checks Glance
/// without the proxy. One checking client per test: each new login costs a token that Glance
/// must validate with Keystone, seconds on a loaded machine.
async fn through_proxy(bed: Testbed) -> (Harness, FaultProxy, GlanceClient) {
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let yaml = bed.demo_cloud_via(proxy.url());
    let h = Harness::with_clouds_yaml(bed, &yaml, |ctx| ctx);
    let api = h.glance();
    (h, proxy, api)
}

fn uid_of(h: &Harness, name: &str) -> String {
    h.object(name)
        .and_then(|o| o.metadata.uid)
        .expect("the object has a uid")
}

fn condition_is(h: &Harness, name: &str, kind: &str) -> (String, String) {
    condition(h.object(name).as_ref(), kind).unwrap_or_else(|| panic!("{name} has no {kind}"))
}

fn message_of(h: &Harness, name: &str, kind: &str) -> String {
    condition_message(&h.object(name).expect("object"), kind)
}

fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_string(), reason.to_string())
}

/// Deletes the objects the way `kubectl delete` and the controller would, then checks that
/// none of their images is left in Glance.
async fn delete_and_check_no_leaks(h: &Harness, api: &GlanceClient, names: &[String]) {
    let uids: Vec<String> = names.iter().map(|name| uid_of(h, name)).collect();
    for name in names {
        h.double.mark_deleted(NS, name);
    }
    join_all(names.iter().map(|name| h.settle(name, |o| o.is_none()))).await;
    let left = join_all(uids.iter().map(|uid| images_marked(api, uid))).await;
    for (name, left) in names.iter().zip(left) {
        assert_eq!(left, 0, "{name} left an image");
    }
}

#[tokio::test]
async fn transient_503s_on_create_show_progressing_with_glances_reason_then_one_image_is_ready() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("flaky-create");
    h.apply(&name, json!({}));
    let uid = uid_of(&h, &name);
    proxy.inject(create(), Fault::Status(503), 3);

    for attempt in 1..=3 {
        let err = h
            .reconcile_once(&name)
            .await
            .expect_err("a 503 fails the pass and goes back for a retry");
        assert!(err.contains("503"), "attempt {attempt}: {err}");
        assert_eq!(
            condition_is(&h, &name, "Reconciling"),
            is("True", "GlanceUnavailable")
        );
        assert_eq!(
            condition_is(&h, &name, "Ready"),
            is("False", "GlanceUnavailable")
        );
        assert_eq!(condition_is(&h, &name, "Stalled").0, "False");
        let message = message_of(&h, &name, "Reconciling");
        assert!(
            message.contains("injected by the fault proxy") && message.contains("req-fault-503"),
            "Glance's own message and request id are shown: {message}"
        );
    }
    assert_eq!(proxy.forwarded(&create()), 0);

    let done = h.settle(&name, ready).await.expect("object");
    eprintln!("{}", proxy.summary());
    assert_eq!(status_id(&done), derived_id(&uid, 0));
    assert_eq!(proxy.seen(&create()), 4, "three refused, then one");
    assert_eq!(proxy.forwarded(&create()), 1, "one create reached Glance");
    assert_eq!(images_marked(&api, &uid).await, 1, "no duplicate");
    delete_and_check_no_leaks(&h, &api, &[name]).await;
}

#[tokio::test]
async fn a_create_that_glance_carried_out_but_whose_answer_was_lost_is_adopted_not_repeated() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("lost-answer");
    h.apply(&name, json!({"tags": ["kept"]}));
    let uid = uid_of(&h, &name);
    proxy.inject(create(), Fault::LoseAnswer, 1);

    let err = h
        .reconcile_once(&name)
        .await
        .expect_err("no answer: the pass fails and is retried");
    assert_eq!(
        condition_is(&h, &name, "Reconciling"),
        is("True", "GlanceUnreachable"),
        "{err}"
    );
    assert_eq!(proxy.forwarded(&create()), 1, "the create reached Glance");
    assert_eq!(
        images_marked(&api, &uid).await,
        1,
        "and Glance made the image"
    );
    let status_id_before = h.object(&name).and_then(|o| o.status?.id);
    assert_eq!(status_id_before, None, "glint never saw the answer");

    let done = h.settle(&name, ready).await.expect("object");
    eprintln!("{}", proxy.summary());
    assert_eq!(
        status_id(&done),
        derived_id(&uid, 0),
        "the landed image is the object's"
    );
    assert_eq!(
        proxy.answered(&create(), 201),
        1,
        "one create took effect; a retry under the same derived id can only meet a 409"
    );
    assert!(
        h.double.event_reasons().contains(&"Adopted".to_string()),
        "the user is told the landed image was adopted: {:?}",
        h.double.event_reasons()
    );
    assert_eq!(images_marked(&api, &uid).await, 1, "no duplicate");
    let image = api.get_image(&status_id(&done)).await.expect("image");
    assert_eq!(image.tags, ["kept"]);
    delete_and_check_no_leaks(&h, &api, &[name]).await;
}

fn at_generation(generation: i64) -> impl Fn(Option<&glint::crd::Image>) -> bool {
    move |o| ready(o) && o.and_then(|o| o.status.as_ref()?.observed_generation) == Some(generation)
}

#[tokio::test]
async fn edits_converge_through_dropped_connections_slow_answers_and_a_lost_patch_answer() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("flaky-edit");
    h.apply(
        &name,
        json!({"tags": ["a"], "properties": {"keep": "1", "drop": "2"}}),
    );
    let uid = uid_of(&h, &name);
    let id = status_id(&h.settle(&name, ready).await.expect("object"));
    let patches_before = proxy.forwarded(&patch());

    h.double.edit_spec(NS, &name, |spec| {
        spec["tags"] = json!(["a", "b"]);
        spec["properties"] = json!({"keep": "1", "new": "3"});
    });
    // An edit reads the image fresh; glint sends a GET once more when its connection broke,
    // so two drops fail the pass.
    proxy.inject(get_one(), Fault::Drop, 2);
    proxy.inject(patch(), Fault::Drop, 1);
    // The patch lands, with its `remove`, which would fail with 409 if sent a second time.
    proxy.inject(patch(), Fault::LoseAnswer, 1);
    let err = h.reconcile_once(&name).await.expect_err("two drops");
    assert!(err.contains("before an answer"), "{err}");
    assert_eq!(
        condition_is(&h, &name, "Reconciling"),
        is("True", "GlanceUnreachable")
    );
    let done = h.settle(&name, at_generation(2)).await.expect("object");
    assert_eq!(status_id(&done), id, "the same image throughout");
    assert_eq!(
        proxy.forwarded(&patch()) - patches_before,
        1,
        "one atomic patch carried the edit, and it was not repeated after its answer was lost"
    );

    h.double
        .edit_spec(NS, &name, |spec| spec["tags"] = json!(["a", "b", "c"]));
    proxy.inject(get_one(), Fault::Delay(Duration::from_millis(500)), 1);
    proxy.inject(patch(), Fault::Delay(Duration::from_millis(500)), 1);
    h.settle(&name, at_generation(3)).await.expect("object");

    eprintln!("{}", proxy.summary());
    assert_eq!(
        proxy.injected(),
        6,
        "every fault was met, the slow answers too"
    );
    assert_eq!(proxy.forwarded(&patch()) - patches_before, 2);
    let image = api.get_image(&id).await.expect("image");
    assert_eq!(image.tags, ["a", "b", "c"]);
    assert_eq!(image.properties.get("keep").map(String::as_str), Some("1"));
    assert_eq!(image.properties.get("new").map(String::as_str), Some("3"));
    assert!(!image.properties.contains_key("drop"));
    assert_eq!(images_marked(&api, &uid).await, 1, "no duplicate");
    delete_and_check_no_leaks(&h, &api, &[name]).await;
}

#[tokio::test]
async fn a_final_error_stalls_with_glances_reason_without_retrying_until_the_spec_changes() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let cases = [(400, "GlanceBadRequest"), (403, "GlanceForbidden")];
    let mut names = Vec::new();
    for (code, reason) in cases {
        proxy.clear();
        proxy.inject(create(), Fault::Status(code), u32::MAX);
        let name = common::unique(&format!("final-{code}"));
        h.apply(&name, json!({}));
        for _ in 0..2 {
            let action = h
                .reconcile_once(&name)
                .await
                .expect("a final error is reported, not handed back for a retry");
            assert_eq!(
                action,
                Action::await_change(),
                "{code}: nothing requeues until a change"
            );
            assert_eq!(condition_is(&h, &name, "Stalled"), is("True", reason));
            assert_eq!(condition_is(&h, &name, "Reconciling").0, "False");
            let message = message_of(&h, &name, "Stalled");
            assert!(
                message.contains(&code.to_string()) && message.contains("req-fault"),
                "{message}"
            );
        }
        names.push(name);
    }
    assert_eq!(proxy.seen(&create()), 4);
    assert_eq!(proxy.forwarded(&create()), 0);

    proxy.clear();
    for name in &names {
        h.double
            .edit_spec(NS, name, |spec| spec["tags"] = json!(["fixed"]));
    }
    for name in &names {
        let done = h.settle(name, ready).await.expect("object");
        let image = api.get_image(&status_id(&done)).await.expect("image");
        assert_eq!(image.tags, ["fixed"]);
        assert_eq!(images_marked(&api, &uid_of(&h, name)).await, 1);
    }
    eprintln!("{}", proxy.summary());
    assert_eq!(proxy.forwarded(&create()), 2);
    delete_and_check_no_leaks(&h, &api, &names).await;
}

fn delete_one() -> Route {
    Route::new("DELETE", "/v2/images/*")
}

#[tokio::test]
async fn a_delete_refused_after_glance_carried_it_out_lets_the_object_go() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("overlapping-delete");
    h.apply(&name, json!({}));
    let id = status_id(&h.settle(&name, ready).await.expect("object"));
    // What the loser of two overlapping deletes of one image hears from Glance, as seen in a
    // scale run: the image is gone all the same.
    proxy.inject(delete_one(), Fault::ActThenRefuse(400), 1);

    delete_and_check_no_leaks(&h, &api, std::slice::from_ref(&name)).await;
    assert_eq!(proxy.answered(&delete_one(), 204), 1, "{}", proxy.summary());
    assert!(
        api.get_image(&id)
            .await
            .is_err_and(|err| err.is_not_found()),
        "the image is gone"
    );
    assert!(
        !h.double
            .event_reasons()
            .contains(&"DeletionBlocked".to_string()),
        "no warning for a delete that happened: {:?}",
        h.double.event_reasons()
    );
}

#[tokio::test]
async fn a_delete_glance_refused_while_the_image_is_still_there_blocks_deletion_with_its_reason() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("refused-delete");
    h.apply(&name, json!({}));
    let id = status_id(&h.settle(&name, ready).await.expect("object"));
    proxy.inject(delete_one(), Fault::Status(400), 1);

    h.double.mark_deleted(NS, &name);
    let action = h
        .reconcile_once(&name)
        .await
        .expect("a final refusal is reported, not retried");
    assert_eq!(action, Action::await_change());
    assert_eq!(
        condition_is(&h, &name, "Stalled"),
        is("True", "DeletionBlocked")
    );
    let message = message_of(&h, &name, "Stalled");
    assert!(
        message.contains("400") && message.contains(&id),
        "{message}"
    );
    assert!(api.get_image(&id).await.is_ok(), "the image is still there");
    assert!(h.object(&name).is_some(), "the object waits for a fix");

    // A later pass (any change to the object triggers one) deletes once Glance agrees.
    h.settle(&name, |o| o.is_none()).await;
    assert!(
        api.get_image(&id)
            .await
            .is_err_and(|err| err.is_not_found())
    );
}

/// Which jitter `0..=1000` produced this requeue after the `failures`-th failure, if any.
fn jitter_of(action: &Action, failures: u32) -> Option<u64> {
    (0..=1000).find(|random| {
        *action == Action::requeue(glint::controller::backoff_delay(failures, *random))
    })
}

#[tokio::test]
async fn backoff_grows_with_each_consecutive_failure_with_jitter_and_restarts_after_a_success() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let names: Vec<String> = (0..3).map(|_| common::unique("backoff")).collect();
    for name in &names {
        h.apply(name, json!({}));
    }
    proxy.inject(create(), Fault::Status(503), u32::MAX);

    let fail_once = |name: &String| {
        let image = Arc::new(h.object(name).expect("object"));
        let ctx = h.ctx.clone();
        async move {
            let err = glint::controller::reconcile(image.clone(), ctx.clone())
                .await
                .expect_err("503");
            glint::controller::error_policy(image, &err, ctx)
        }
    };
    // waits[failures - 1] holds each object's wait after that many failures.
    let mut waits = vec![BTreeSet::new(); 4];
    for name in &names {
        let mut previous = Duration::ZERO;
        for failures in 1..=4 {
            let action = fail_once(name).await;
            let jitter = jitter_of(&action, failures).unwrap_or_else(|| {
                panic!("{name}: failure {failures} gave {action:?}, not the {failures}-th backoff")
            });
            let wait = glint::controller::backoff_delay(failures, jitter);
            assert!(wait >= previous, "{name}: {wait:?} after {previous:?}");
            previous = wait;
            waits[failures as usize - 1].insert(wait);
        }
    }
    for (index, set) in waits.iter().enumerate() {
        assert!(
            set.len() > 1,
            "objects failing together do not retry together (failure {}): {set:?}",
            index + 1
        );
    }

    let action = fail_once(&names[1]).await;
    assert!(
        jitter_of(&action, 5).is_some(),
        "still failing: the count goes on ({action:?})"
    );

    proxy.clear();
    h.settle(&names[0], ready).await.expect("object");
    h.double
        .edit_spec(NS, &names[0], |spec| spec["tags"] = json!(["x"]));
    proxy.inject(patch(), Fault::Status(503), 1);
    let action = fail_once(&names[0]).await;
    assert!(
        jitter_of(&action, 1).is_some(),
        "a success ended the run of failures: back to the first wait ({action:?})"
    );
    eprintln!("{}", proxy.summary());
    proxy.clear();
    for name in &names {
        h.settle(name, ready).await;
    }
    delete_and_check_no_leaks(&h, &api, &names).await;
}

#[tokio::test]
async fn ten_images_converge_through_a_glance_restart_with_no_duplicate_and_no_leak() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    // Every image of this run carries its tag, so one listing finds them all.
    let run = common::unique("restart");
    let existing: Vec<String> = (0..5).map(|_| common::unique("restart-old")).collect();
    let new: Vec<String> = (0..5).map(|_| common::unique("restart-new")).collect();
    for name in &existing {
        h.apply(name, json!({"tags": [run, "before"]}));
    }
    join_all(existing.iter().map(|name| h.settle(name, ready))).await;
    let failures_before = h.ctx.metrics.reconciles_with("error");

    // Five objects are edited and five created just as Glance goes away for 2 s. The outage
    // starts first: with Glance's token cache, ten passes finish within 100 ms, so an outage
    // started after them could miss them all.
    proxy.outage(Duration::from_secs(2));
    for name in &existing {
        h.double
            .edit_spec(NS, name, |spec| spec["tags"] = json!([run, "after"]));
    }
    for name in &new {
        h.apply(name, json!({"tags": [run, "after"]}));
    }
    let all: Vec<String> = existing.iter().chain(&new).cloned().collect();
    let done = join_all(all.iter().map(|name| {
        h.settle(name, |o| {
            ready(o)
                && o.and_then(|o| o.status.as_ref()?.observed_generation)
                    == o.and_then(|o| o.metadata.generation)
        })
    }))
    .await;
    let failures = h.ctx.metrics.reconciles_with("error") - failures_before;
    eprintln!("{}; reconciles that failed: {failures}", proxy.summary());
    assert!(failures > 0, "the restart was felt");
    assert_eq!(
        proxy.forwarded(&create()),
        10,
        "one create per object reached Glance, none was repeated"
    );
    assert_eq!(proxy.answered(&create(), 201), 10);
    let query = ListQuery {
        tags: vec![run.clone()],
        ..ListQuery::default()
    };
    let images: Vec<glint::glance::GlanceImage> =
        api.list_images(&query).try_collect().await.expect("list");
    assert_eq!(images.len(), 10, "ten objects, ten images");
    for (name, object) in all.iter().zip(&done) {
        let object = object.as_ref().expect("object");
        let uid = uid_of(&h, name);
        let marked: Vec<_> = images
            .iter()
            .filter(|image| image.properties.get(OWNER_PROPERTY) == Some(&uid))
            .collect();
        assert_eq!(marked.len(), 1, "{name}: one image");
        assert_eq!(marked[0].id, status_id(object), "{name}");
        assert!(marked[0].tags.contains(&"after".to_string()), "{name}");
    }

    // Glance restarts again while the objects are being deleted.
    let restart = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.outage(Duration::from_secs(1));
    };
    tokio::join!(delete_and_check_no_leaks(&h, &api, &all), restart);
    eprintln!("after deletion: {}", proxy.summary());
}

#[tokio::test]
async fn a_glance_that_is_down_when_glint_first_reaches_it_is_waited_for_not_called_incompatible() {
    let bed = glance_under_test!();
    let (h, proxy, api) = through_proxy(bed).await;
    let name = common::unique("discover");
    h.apply(&name, json!({}));

    // The endpoint is the service root, so glint's first call reads Glance's version document.
    proxy.outage(Duration::from_secs(60));
    let err = h
        .reconcile_once(&name)
        .await
        .expect_err("Glance is down: a transient failure, retried");
    assert_eq!(
        condition_is(&h, &name, "Reconciling"),
        is("True", "GlanceUnreachable"),
        "{err}"
    );
    proxy.end_outage();
    proxy.inject(Route::new("GET", "/"), Fault::Status(503), 1);
    let err = h
        .reconcile_once(&name)
        .await
        .expect_err("Glance answers 503 while starting: retried");
    assert_eq!(
        condition_is(&h, &name, "Reconciling"),
        is("True", "GlanceUnavailable"),
        "{err}"
    );
    let done = h.settle(&name, ready).await.expect("object");
    eprintln!("{}", proxy.summary());
    assert_eq!(
        proxy.seen(&Route::new("GET", "/")),
        2,
        "discovered once it answered"
    );
    assert_eq!(images_marked(&api, &uid_of(&h, &name)).await, 1);
    assert!(!status_id(&done).is_empty());
    delete_and_check_no_leaks(&h, &api, &[name]).await;
}
