//! An Image with spec.targets through glint's real reconcile, against the bed's Keystone +
//! Glance B (the embedded cloud when no bed runs): every target gets its own image from one
//! download, status has an entry and an id per target and one Ready for all, a target taken
//! out of the list has its image deleted and only its, and deleting the object deletes every
//! target's image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::harness::*;
use common::sources::{Reply, SourceServer};
use glint::crd::Image;
use glint::glance::{GlanceApi, GlanceStatus};
use serde_json::{Value, json};
use sha2::Digest;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn target(name: &str) -> Value {
    json!({"name": name, "cloudCredentialsRef": {"secretName": "cloud", "cloudName": "bed"}})
}

/// An Image publishing `url` to `targets` (no spec.cloudCredentialsRef).
fn put_image(h: &Harness, name: &str, url: &str, targets: Vec<Value>) {
    h.double.put(
        "images",
        json!({"apiVersion": "glint.dev/v1alpha1", "kind": "Image",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"diskFormat": "raw", "source": {"url": url}, "targets": targets}}),
    );
}

fn every_target_ready(count: usize) -> impl Fn(Option<&Image>) -> bool {
    move |object| {
        ready(object)
            && object
                .and_then(|o| o.status.as_ref())
                .is_some_and(|status| {
                    status.targets.len() == count
                        && status.targets.iter().all(|target| {
                            target
                                .transfer
                                .as_ref()
                                .is_some_and(|t| t.phase == glint::crd::TransferPhase::Succeeded)
                        })
                })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_gets_its_own_image_from_one_download_and_one_ready_sums_them_up() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let api = h.glance();
    let data = common::pseudo_random_bytes(3 << 20, 341);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let name = common::unique("targets");
    put_image(
        &h,
        &name,
        &server.url("/disk.raw"),
        vec![target("eu"), target("us")],
    );

    let done = h.settle(&name, every_target_ready(2)).await.unwrap();
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.targets_ready.as_deref(), Some("2/2 ready"));
    assert_eq!(status.id, None, "no single id for several targets");
    let (eu, us) = (&status.image_ids["eu"], &status.image_ids["us"]);
    assert_ne!(eu, us, "two targets, two images");
    for id in [eu, us] {
        let image = api.get_image(id).await.unwrap();
        assert_eq!(image.status, GlanceStatus::Active);
        assert_eq!(
            image.os_hash_value.as_deref(),
            Some(hex(&sha2::Sha512::digest(&data)).as_str())
        );
    }
    assert_eq!(server.gets(), 1, "one download for both targets");
    let notes = h.double.event_notes();
    for target in ["eu", "us"] {
        let uploaded = format!("target {target}: copied 3.0 MiB");
        assert!(
            notes.iter().any(|note| note.starts_with(&uploaded)),
            "{uploaded} in {notes:?}"
        );
    }

    // Taken out of the list: that target's image goes, the other stays.
    h.double
        .edit_spec(NS, &name, |spec| spec["targets"] = json!([target("eu")]));
    let left = h
        .settle(&name, |object| {
            object
                .and_then(|o| o.status.as_ref())
                .is_some_and(|status| status.targets.len() == 1)
        })
        .await
        .unwrap();
    let status = left.status.as_ref().unwrap();
    assert_eq!(status.targets[0].name, "eu");
    assert!(
        api.get_image(us).await.is_err(),
        "the removed target's image is deleted"
    );
    assert_eq!(
        api.get_image(eu).await.unwrap().status,
        GlanceStatus::Active
    );

    // Deleting the object deletes every target's image.
    h.double.mark_deleted(NS, &name);
    h.settle(&name, |object| object.is_none()).await;
    assert!(
        api.get_image(eu).await.is_err(),
        "the last target's image is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_secret_is_missing_waits_with_its_reason_while_the_others_become_ready() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let api = h.glance();
    let data = common::pseudo_random_bytes(1 << 20, 342);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let name = common::unique("targets-missing");
    let broken =
        json!({"name": "ap", "cloudCredentialsRef": {"secretName": "absent", "cloudName": "bed"}});
    put_image(
        &h,
        &name,
        &server.url("/disk.raw"),
        vec![target("eu"), broken],
    );

    let object = h
        .settle(&name, |object| {
            object
                .and_then(|o| o.status.as_ref())
                .is_some_and(|status| status.targets_ready.as_deref() == Some("1/2 ready"))
        })
        .await
        .unwrap();
    assert!(!ready(Some(&object)), "not Ready while a target is not");
    let message = condition_message(&object, "Ready");
    assert!(message.contains("target ap:"), "{message}");
    assert!(
        message.contains("absent"),
        "names the missing Secret: {message}"
    );
    // The target's own entry says so too, in its own conditions.
    let status = object.status.as_ref().unwrap();
    let ap = status
        .targets
        .iter()
        .find(|t| t.name == "ap")
        .expect("ap's entry");
    let ap_ready = ap
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("ap's Ready");
    assert_eq!(ap_ready.status, "False", "{ap_ready:?}");
    assert!(ap_ready.message.contains("absent"), "{ap_ready:?}");
    let eu = &status.image_ids["eu"];
    assert_eq!(
        api.get_image(eu).await.unwrap().status,
        GlanceStatus::Active
    );

    h.double.mark_deleted(NS, &name);
    h.settle(&name, |object| object.is_none()).await;
    assert!(api.get_image(eu).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_image_whose_status_never_recorded_its_targets_still_deletes_their_images() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let api = h.glance();
    let server = SourceServer::serving(Reply::ok(common::pseudo_random_bytes(1 << 20, 343))).await;
    let name = common::unique("targets-unrecorded");
    put_image(
        &h,
        &name,
        &server.url("/disk.raw"),
        vec![target("eu"), target("us")],
    );
    let done = h.settle(&name, every_target_ready(2)).await.unwrap();
    let ids: Vec<String> = done
        .status
        .as_ref()
        .unwrap()
        .image_ids
        .values()
        .cloned()
        .collect();
    assert_eq!(ids.len(), 2);

    // As if the status write after the creates never landed, and glint restarted since.
    let mut object = h.double.get("images", NS, &name).unwrap();
    object.as_object_mut().unwrap().remove("status");
    h.double.put("images", object);
    let h = h.restarted();
    h.double.mark_deleted(NS, &name);
    h.settle(&name, |object| object.is_none()).await;
    for id in &ids {
        assert!(api.get_image(id).await.is_err(), "{id} deleted, not leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_glance_answers_503_mid_upload_retries_from_the_same_download_while_the_other_finishes()
 {
    use common::fault_proxy::{Fault, FaultProxy, Route};
    let bed = glance_under_test!();
    // us reaches the same Glance through a proxy that swallows its first upload and says 503,
    // as a load balancer whose backend fell over while the data came in.
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let via_proxy = bed.demo_cloud_via(proxy.url());
    let h = Harness::new(bed);
    h.put_clouds_yaml("proxied", &via_proxy);
    proxy.inject(
        Route::new("PUT", "/v2/images/*/file"),
        Fault::SwallowThen(503),
        1,
    );
    let api = h.glance();
    let data = common::pseudo_random_bytes(2 << 20, 344);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let name = common::unique("targets-503");
    let proxied =
        json!({"name": "us", "cloudCredentialsRef": {"secretName": "proxied", "cloudName": "bed"}});
    put_image(
        &h,
        &name,
        &server.url("/disk.raw"),
        vec![target("eu"), proxied],
    );

    let done = h.settle(&name, every_target_ready(2)).await.unwrap();
    let status = done.status.as_ref().unwrap();
    let attempts = |target: &str| {
        let entry = status.targets.iter().find(|t| t.name == target).unwrap();
        entry.transfer.as_ref().unwrap().attempts
    };
    assert_eq!((attempts("eu"), attempts("us")), (1, 2), "{status:?}");
    assert_eq!(server.gets(), 1, "us' retry read the same download");
    let sha512 = hex(&sha2::Sha512::digest(&data));
    for id in status.image_ids.values() {
        let image = api.get_image(id).await.unwrap();
        assert_eq!(image.status, GlanceStatus::Active);
        assert_eq!(image.os_hash_value.as_deref(), Some(sha512.as_str()));
    }
    let uid = done.metadata.uid.clone().unwrap();
    for target in ["eu", "us"] {
        let marked = images_marked(&api, &format!("{uid}/{target}")).await;
        assert_eq!(marked, 1, "no duplicate for {target}");
    }

    h.double.mark_deleted(NS, &name);
    h.settle(&name, |object| object.is_none()).await;
    for target in ["eu", "us"] {
        let marked = images_marked(&api, &format!("{uid}/{target}")).await;
        assert_eq!(marked, 0, "nothing of {target} left");
    }
}
