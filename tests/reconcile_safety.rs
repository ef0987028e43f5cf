//! What no manifest may do to the controller, run through glint's real reconcile against the
//! bed's Keystone + Glance, or the embedded cloud without a bed (Kubernetes is the API double): a panic stays with its object,
//! deletion ends or says why, sources obey the address policy, cloud handles are built once
//! and follow their Secret, edits read Glance directly, and bad data stays deactivated.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::*;
use glint::controller::REFRESH_ANNOTATION;
use glint::glance::{GlanceApi, GlanceStatus};
use serde_json::json;

fn stalled_reason(image: Option<&glint::crd::Image>) -> Option<String> {
    condition(image, "Stalled")
        .filter(|(status, _)| status == "True")
        .map(|(_, reason)| reason)
}

#[tokio::test]
async fn a_panic_in_one_reconcile_stalls_only_that_object_with_an_internal_error() {
    let bed = glance_under_test!();
    let doomed = common::unique("boom");
    let marked = doomed.clone();
    let yaml = bed.demo_cloud();
    let h = Harness::with_clouds_yaml(bed, &yaml, move |ctx| {
        ctx.with_pass_hook(Arc::new(move |image| {
            if image.metadata.name.as_deref() == Some(marked.as_str()) {
                panic!("forced by the test for {}", marked);
            }
        }))
    });
    let calm = common::unique("calm");
    h.apply(&doomed, json!({}));
    h.apply(&calm, json!({}));
    let requeue = h
        .reconcile_once(&doomed)
        .await
        .expect("the panic is contained, not returned");
    assert!(
        format!("{requeue:?}").contains("None"),
        "waits for a change: {requeue:?}"
    );
    let object = h.object(&doomed).expect("object");
    assert_eq!(
        stalled_reason(Some(&object)).as_deref(),
        Some("InternalError")
    );
    let message = condition_message(&object, "Stalled");
    assert!(message.contains("forced by the test"), "{message}");
    assert!(
        h.double
            .event_reasons()
            .contains(&"InternalError".to_string())
    );
    assert_eq!(h.ctx.metrics.reconciles_with("panic"), 1);
    // The same controller goes on with everything else.
    let done = h.settle(&calm, ready).await.expect("object");
    h.glance()
        .delete(&status_id(&done))
        .await
        .expect("clean up");
}

#[tokio::test]
async fn an_image_whose_credentials_never_resolved_is_deleted_at_once() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let no_secret = common::unique("nosecret");
    h.apply(
        &no_secret,
        json!({"cloudCredentialsRef": {"secretName": "absent", "cloudName": "bed"}}),
    );
    let no_cloud = common::unique("nocloud");
    h.apply(
        &no_cloud,
        json!({"cloudCredentialsRef": {"secretName": "cloud", "cloudName": "not-in-clouds-yaml"}}),
    );
    for (name, reason) in [(&no_secret, "SecretNotFound"), (&no_cloud, "CloudNotFound")] {
        let stuck = h.settle(name, stalled_with(reason)).await.expect("object");
        assert!(
            stuck.metadata.finalizers.unwrap_or_default().is_empty(),
            "{name}: no finalizer before glint could have reached Glance"
        );
        h.double.mark_deleted(NS, name);
        assert!(h.object(name).is_none(), "{name}: deleted at once");
    }
}

#[tokio::test]
async fn a_blocked_deletion_says_why_and_ends_when_the_secret_is_back() {
    let bed = glance_under_test!();
    let h = Harness::new(bed.clone());
    let name = common::unique("blocked");
    h.apply(&name, json!({}));
    let id = status_id(&h.settle(&name, ready).await.expect("object"));
    h.double.remove("secrets", NS, "cloud");
    h.double.mark_deleted(NS, &name);
    let blocked = h
        .settle(&name, stalled_with("DeletionBlocked"))
        .await
        .expect("still there");
    let message = condition_message(&blocked, "Ready");
    for words in [id.as_str(), "does not exist", "spec.onDelete: detach"] {
        assert!(message.contains(words), "{words:?} in {message}");
    }
    assert_eq!(
        condition(Some(&blocked), "Ready").map(|(status, _)| status),
        Some("False".to_string())
    );
    // Nothing loops while it waits.
    let writes = h.double.writes();
    h.reconcile_once(&name).await.expect("reconcile");
    assert!(h.double.writes() <= writes + 1, "at most the Warning event");
    h.put_demo_secret("cloud");
    h.settle(&name, |object| object.is_none()).await;
    let gone = h.glance().get_image(&id).await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone}");
}

#[tokio::test]
async fn detach_set_during_a_blocked_deletion_releases_the_object_and_keeps_the_image() {
    let bed = glance_under_test!();
    let h = Harness::new(bed.clone());
    let name = common::unique("detachlate");
    h.apply(&name, json!({}));
    let id = status_id(&h.settle(&name, ready).await.expect("object"));
    // The Secret now names other clouds only.
    let other = bed.demo_cloud().replace("\n  bed:\n", "\n  elsewhere:\n");
    h.put_clouds_yaml("cloud", &other);
    h.double.mark_deleted(NS, &name);
    let blocked = h
        .settle(&name, stalled_with("DeletionBlocked"))
        .await
        .expect("still there");
    assert!(
        condition_message(&blocked, "Ready").contains("CloudNotFound"),
        "{:?}",
        condition_message(&blocked, "Ready")
    );
    h.double
        .edit_spec(NS, &name, |spec| spec["onDelete"] = json!("detach"));
    h.settle(&name, |object| object.is_none()).await;
    assert!(h.double.event_reasons().contains(&"Detached".to_string()));
    let api = h.glance();
    let kept = api.get_image(&id).await.expect("the image stays in Glance");
    assert_eq!(kept.id, id);
    api.delete(&id).await.expect("clean up");
}

#[tokio::test]
async fn sources_on_refused_addresses_stall_with_the_rule_that_refused_them() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    // 127.0.0.2 stands for an address the operator denied (--source-deny-cidrs 127.0.0.2/32).
    let (target, _target_server) = common::serve_slowly(vec![7; 1024], Duration::ZERO).await;
    let (redirector, _redirect_server) =
        common::serve_redirect(move |_| format!("http://127.0.0.2:{target}/image.raw")).await;
    let (looping, _loop_server) =
        common::serve_redirect(|port| format!("http://127.0.0.1:{port}/again")).await;
    let cases = [
        (
            format!("http://127.0.0.2:{target}/image.raw"),
            "127.0.0.2 is refused by --source-deny-cidrs 127.0.0.2/32",
        ),
        (
            format!("http://127.0.0.1:{redirector}/image.raw"),
            "redirected to http://127.0.0.2",
        ),
        (
            format!("http://127.0.0.1:{looping}/image.raw"),
            "redirected more than 5 times",
        ),
        // A file on the controller's node is not the user's: only the CLI reads file: URLs.
        (
            "file:///etc/passwd".to_string(),
            "a local file, which only `glint apply` on the same machine can read",
        ),
    ];
    let api = h.glance();
    for (url, words) in cases {
        let name = common::unique("ssrf");
        h.apply(&name, json!({"source": {"url": url}}));
        let stalled = h
            .settle(&name, stalled_with("SourceNotAllowed"))
            .await
            .expect("object");
        let message = condition_message(&stalled, "Stalled");
        assert!(message.contains(words), "{url}: {message}");
        let image = api.get_image(&status_id(&stalled)).await.expect("image");
        assert_eq!(
            image.status,
            glint::glance::GlanceStatus::Queued,
            "no byte was stored"
        );
        api.delete(&image.id).await.expect("clean up");
    }
}

#[tokio::test]
async fn concurrent_first_reconciles_share_one_cloud_handle_that_follows_its_secret() {
    let bed = glance_under_test!();
    let h = Harness::new(bed.clone());
    let names: Vec<String> = (0..6).map(|_| common::unique("shared")).collect();
    let (port, _server) = common::serve_slowly(
        common::pseudo_random_bytes(1 << 20, 9),
        Duration::from_millis(150),
    )
    .await;
    for (index, name) in names.iter().enumerate() {
        let spec = if index == 0 {
            json!({"source": {"url": format!("http://127.0.0.1:{port}/slow.raw")}})
        } else {
            json!({})
        };
        h.apply(name, spec);
    }
    let first = futures::future::join_all(names.iter().map(|name| h.reconcile_once(name))).await;
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    assert_eq!(h.ctx.clouds.handles_built(), 1, "one handle for one Secret");
    assert_eq!(h.ctx.clouds.logins(), 1, "one login, not one per Image");
    // Start the slow transfer, then rotate the Secret while it runs.
    let uploading = &names[0];
    h.settle(uploading, |object| {
        object
            .and_then(|o| o.status.as_ref()?.transfer.as_ref())
            .is_some_and(|t| t.bytes_done > 0)
    })
    .await;
    h.put_demo_secret("cloud");
    h.reconcile_once(uploading).await.expect("reconcile");
    assert_eq!(h.ctx.clouds.credentials_rotated(), 1);
    assert_eq!(h.ctx.clouds.handles_built(), 1, "swapped in place");
    let after = h.object(uploading).expect("object");
    let transfer = after
        .status
        .as_ref()
        .and_then(|s| s.transfer.clone())
        .expect("the running transfer is still visible");
    assert_eq!(transfer.attempts, 1, "not restarted: {transfer:?}");
    let done = h.settle(uploading, ready).await.expect("object");
    assert_eq!(
        done.status.and_then(|s| s.glance).and_then(|g| g.size),
        Some(1 << 20)
    );
    // Deleting every Image lets the handle go.
    for name in &names {
        h.settle(name, ready).await;
        h.double.mark_deleted(NS, name);
        h.settle(name, |object| object.is_none()).await;
    }
    assert!(h.ctx.clouds.is_empty(), "no Image uses the cloud any more");
}

#[tokio::test]
async fn an_edit_or_a_refresh_request_reads_glance_directly() {
    let bed = glance_under_test!();
    for trigger in ["edit", "annotation"] {
        // A harness each: its listing cache starts empty, so the first resync lists afresh.
        let h = Harness::new(bed.clone());
        let api = h.glance();
        let name = common::unique("fresh");
        h.apply(&name, json!({"tags": ["one"]}));
        let id = status_id(&h.settle(&name, ready).await.expect("object"));
        // A resync now fills the shared listing, which then holds the image for 10 s.
        h.reconcile_once(&name).await.expect("resync");
        api.delete(&id).await.expect("deleted behind glint's back");
        h.reconcile_once(&name).await.expect("resync");
        assert!(
            ready(h.object(&name).as_ref()),
            "{trigger}: a resync answers from the listing"
        );
        match trigger {
            "edit" => h
                .double
                .edit_spec(NS, &name, |spec| spec["tags"] = json!(["two"])),
            _ => h
                .double
                .annotate(NS, &name, REFRESH_ANNOTATION, "2026-11-22T20:00:00Z"),
        }
        h.reconcile_once(&name).await.expect("reconcile");
        let object = h.object(&name).expect("object");
        assert_ne!(
            status_id(&object),
            id,
            "{trigger}: the vanished image was seen and created again"
        );
        if trigger == "annotation" {
            assert_eq!(
                object
                    .status
                    .as_ref()
                    .and_then(|s| s.last_handled_reconcile_at.as_deref()),
                Some("2026-11-22T20:00:00Z")
            );
        }
        let done = h.settle(&name, ready).await.expect("object");
        api.delete(&status_id(&done)).await.expect("clean up");
        assert!(h.double.event_reasons().contains(&"Recreated".to_string()));
    }
}

#[tokio::test]
async fn an_absurd_resync_period_that_slipped_past_admission_is_clamped_not_a_crash() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    // The double applies no CEL, like an apiserver holding objects from before the rule.
    let cases = [
        ("100000000000000000000s", glint::controller::DEFAULT_RESYNC),
        ("1s", glint::controller::MIN_RESYNC),
        ("9000h", glint::controller::MAX_RESYNC),
    ];
    let api = h.glance();
    for (period, expected) in cases {
        let name = common::unique("period");
        h.apply(&name, json!({"resyncPeriod": period}));
        let done = h.settle(&name, ready).await.expect("object");
        let requeue = h.reconcile_once(&name).await.expect("reconcile");
        assert_eq!(
            format!("{requeue:?}"),
            format!("{:?}", kube::runtime::controller::Action::requeue(expected)),
            "{period}"
        );
        api.delete(&status_id(&done)).await.expect("clean up");
    }
}

#[tokio::test]
async fn an_image_deactivated_for_bad_data_stays_deactivated_after_a_restart() {
    let bed = glance_under_test!();
    let h = Harness::new(bed.clone());
    let _server = common::serve_file(bed.webdl_port, common::pseudo_random_bytes(300_000, 9)).await;
    let name = common::unique("quarantine");
    h.apply(
        &name,
        json!({"source": {
            "url": format!("http://127.0.0.1:{}/image.raw", bed.webdl_port),
            "method": "webDownload",
            "hash": {"algorithm": "sha512", "value": "0".repeat(128)},
        }}),
    );
    let failed = h
        .settle(&name, stalled_with("HashMismatch"))
        .await
        .expect("object");
    let id = status_id(&failed);
    let status_in_glance = || async { h.glance().get_image(&id).await.expect("image").status };
    assert_eq!(status_in_glance().await, GlanceStatus::Deactivated);

    // A new controller process remembers no failed transfer: the mark on the image speaks.
    let restarted = h.restarted();
    let after = restarted
        .settle(&name, stalled_with("Quarantined"))
        .await
        .expect("object");
    let message = condition_message(&after, "Stalled");
    assert!(
        message.contains("HashMismatch") && message.contains("delete this Image"),
        "{message}"
    );
    for round in 0..2 {
        restarted
            .double
            .annotate(NS, &name, REFRESH_ANNOTATION, &format!("r{round}"));
        restarted.reconcile_once(&name).await.expect("reconcile");
    }
    assert_eq!(
        status_in_glance().await,
        GlanceStatus::Deactivated,
        "the wrong bytes were never reactivated"
    );
}
