//! glint on a Glance shaped like production clouds: the bed's Glance C converts every import to
//! raw (image_conversion, as Ceph-backed clouds run it), adds a property to every import by a
//! non-admin (inject_image_metadata) and reserves `locked_*` properties for admins (property
//! protections). The controller's reconcile runs for real against it and Keystone, with the
//! Kubernetes double in place of an apiserver.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::harness::*;
use common::keystone::{production_admin_auth, production_auth};
use glint::controller::REFRESH_ANNOTATION;
use glint::glance::{DiskFormat, GlanceApi, GlanceClient, GlanceStatus, PatchOp};
use glint::pass::plan::PROPERTIES_RECORD;
use serde_json::json;
use sha2::Digest;

/// The virtual size of the test disks: what Glance stores once it has converted one to raw.
const VIRTUAL_SIZE: u64 = 32 * 1024 * 1024;

/// A real qcow2 made by qemu-img: a 32 MiB disk with 1 MiB of data, so the qcow2 is small and
/// the raw Glance makes of it is not.
fn qcow2_disk(seed: u64) -> Vec<u8> {
    common::disks::disk_in("qcow2", VIRTUAL_SIZE, seed).1
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn production(bed: &common::Testbed) -> Harness {
    Harness::with_clouds_yaml(bed.clone(), &production_auth(bed), |ctx| ctx)
}

fn production_glance(bed: &common::Testbed) -> GlanceClient {
    client_for(&production_auth(bed))
}

/// A glanceDirect source served on loopback, with its sha256.
async fn served(data: Vec<u8>) -> (serde_json::Value, common::FileServer) {
    let port = free_port();
    let hash = sha256_hex(&data);
    let server = common::serve_file(port, data).await;
    let source = json!({
        "url": format!("http://127.0.0.1:{port}/image.raw"),
        "method": "glanceDirect",
        "hash": {"algorithm": "sha256", "value": hash},
    });
    (source, server)
}

/// A resync that reads Glance directly, as `kubectl annotate ... reconcile-requested-at` asks.
async fn resync(h: &Harness, name: &str, round: u32) {
    h.double
        .annotate(NS, name, REFRESH_ANNOTATION, &format!("resync-{round}"));
    h.reconcile_once(name).await.expect("resync");
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn an_image_glance_converts_to_raw_is_ready_with_the_stored_format_and_never_patched_back() {
    let bed = require_testbed!();
    let h = production(&bed);
    let disk = qcow2_disk(1);
    let (source, _server) = served(disk.clone()).await;
    let name = common::unique("converted");
    h.apply(
        &name,
        json!({"diskFormat": "qcow2", "properties": {"os_distro": "cirros"}, "source": source}),
    );
    let done = h.settle(&name, ready).await.expect("object");
    let status = done.status.clone().expect("status");
    let view = status.glance.expect("Glance's view");
    assert_eq!(view.disk_format, Some(DiskFormat::Raw), "the stored format");
    assert_eq!(view.size, Some(VIRTUAL_SIZE));
    let conversion = status
        .transfer
        .and_then(|transfer| transfer.conversion)
        .expect("status.transfer.conversion");
    assert_eq!(conversion.sent_format, Some(DiskFormat::Qcow2));
    assert_eq!(conversion.stored_format, Some(DiskFormat::Raw));
    assert_eq!(conversion.sent_bytes, Some(disk.len() as u64));
    assert_eq!(conversion.stored_bytes, Some(VIRTUAL_SIZE));
    let ready_message = condition_message(&done, "Ready");
    assert!(
        ready_message.contains("stored as raw"),
        "Ready says what servers boot: {ready_message}"
    );
    assert!(
        h.double
            .event_notes()
            .iter()
            .any(|note| note.contains("converted it (from qcow2 to raw")),
        "the Uploaded Event names the conversion: {:?}",
        h.double.event_notes()
    );

    let id = status_id(&done);
    let glance = production_glance(&bed);
    let before = glance.get_image(&id).await.expect("image");
    assert_eq!(before.status, GlanceStatus::Active);
    for round in 0..3 {
        resync(&h, &name, round).await;
    }
    let after = glance.get_image(&id).await.expect("image");
    assert_eq!(
        after.updated_at, before.updated_at,
        "three resyncs with fresh reads changed nothing in Glance"
    );
    assert_eq!(after.disk_format, Some(DiskFormat::Raw));
    assert!(ready(h.object(&name).as_ref()));
    assert!(!h.double.event_reasons().contains(&"Updated".to_string()));
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_corrupt_source_is_refused_before_glance_converts_anything() {
    let bed = require_testbed!();
    let h = production(&bed);
    let (mut source, _server) = served(qcow2_disk(2)).await;
    source["hash"]["value"] = json!("0".repeat(64));
    let name = common::unique("corrupt");
    h.apply(&name, json!({"diskFormat": "qcow2", "source": source}));
    let done = h
        .settle(&name, stalled_with("HashMismatch"))
        .await
        .expect("object");
    let image = production_glance(&bed)
        .get_image(&status_id(&done))
        .await
        .expect("image");
    assert_eq!(
        image.status,
        GlanceStatus::Queued,
        "the wrong data never reached the import"
    );
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn properties_glint_did_not_set_survive_resyncs_and_edits_while_its_own_are_kept_exact() {
    let bed = require_testbed!();
    let h = production(&bed);
    let (source, _server) = served(qcow2_disk(3)).await;
    let name = common::unique("props");
    h.apply(
        &name,
        json!({"diskFormat": "qcow2", "source": source,
               "properties": {"os_distro": "cirros", "hw_disk_bus": "virtio"}}),
    );
    let done = h.settle(&name, ready).await.expect("object");
    let id = status_id(&done);
    let glance = production_glance(&bed);
    let imported = glance.get_image(&id).await.expect("image");
    assert_eq!(
        imported.properties.get("injected_by").map(String::as_str),
        Some("glance-import-plugin"),
        "Glance's inject_image_metadata added a property of its own"
    );
    // Behind glint's back: a new property, and a change to one glint set.
    glance
        .update_image(
            &id,
            &[
                PatchOp::SetProperty {
                    key: "added_by_hand".into(),
                    value: "keep me".into(),
                },
                PatchOp::SetProperty {
                    key: "os_distro".into(),
                    value: "tampered".into(),
                },
            ],
        )
        .await
        .expect("an edit outside glint");
    resync(&h, &name, 0).await;
    let resynced = glance.get_image(&id).await.expect("image");
    let property =
        |image: &glint::glance::GlanceImage, key: &str| image.properties.get(key).cloned();
    assert_eq!(property(&resynced, "os_distro").as_deref(), Some("cirros"));
    assert_eq!(
        property(&resynced, "added_by_hand").as_deref(),
        Some("keep me")
    );
    assert_eq!(
        property(&resynced, "injected_by").as_deref(),
        Some("glance-import-plugin")
    );

    h.double.edit_spec(NS, &name, |spec| {
        spec["properties"] = json!({"os_distro": "cirros"});
    });
    h.settle(&name, ready).await.expect("object");
    let edited = glance.get_image(&id).await.expect("image");
    assert_eq!(
        property(&edited, "hw_disk_bus"),
        None,
        "a key dropped from the spec is removed"
    );
    assert_eq!(
        property(&edited, "added_by_hand").as_deref(),
        Some("keep me")
    );
    assert_eq!(
        property(&edited, "injected_by").as_deref(),
        Some("glance-import-plugin")
    );
    assert_eq!(
        property(&edited, PROPERTIES_RECORD).as_deref(),
        Some(r#"["os_distro"]"#)
    );

    // Claimed with own: the hand-made property goes, Glance's own keys stay.
    h.double.edit_spec(NS, &name, |spec| {
        spec["propertyOwnership"] = json!({"own": ["added_*"]});
    });
    h.settle(&name, ready).await.expect("object");
    let claimed = glance.get_image(&id).await.expect("image");
    assert_eq!(property(&claimed, "added_by_hand"), None);
    assert!(property(&claimed, "injected_by").is_some());
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_protected_property_stalls_with_its_name_and_is_not_retried() {
    let bed = require_testbed!();
    let h = production(&bed);
    let name = common::unique("locked");
    h.apply(&name, json!({"properties": {"locked_tier": "gold"}}));
    let stalled = h
        .settle(&name, stalled_with("PropertyProtected"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    assert!(
        message.contains("\"locked_tier\"") && message.contains("remove it from spec.properties"),
        "{message}"
    );
    assert_eq!(
        h.reconcile_once(&name).await.expect("a stalled reconcile"),
        kube::runtime::controller::Action::await_change(),
        "glint waits for a change instead of retrying"
    );
    let uid = stalled.metadata.uid.clone().expect("uid");
    let glance = production_glance(&bed);
    assert_eq!(
        images_marked(&glance, &uid).await,
        0,
        "the refused create left no image"
    );

    // Without the key the image is made; an admin then sets it, which glint leaves alone.
    h.double.edit_spec(NS, &name, |spec| {
        spec["properties"] = json!({"os_distro": "cirros"});
    });
    let done = h.settle(&name, ready).await.expect("object");
    let id = status_id(&done);
    client_for(&production_admin_auth(&bed))
        .update_image(
            &id,
            &[PatchOp::SetProperty {
                key: "locked_tier".into(),
                value: "gold".into(),
            }],
        )
        .await
        .expect("an admin sets a protected property");
    resync(&h, &name, 0).await;
    assert!(
        ready(h.object(&name).as_ref()),
        "a protected key glint did not set is no reason to stall"
    );

    // Told to own every property, glint must remove it, may not, and says how to let it be.
    h.double.edit_spec(NS, &name, |spec| {
        spec["propertyOwnership"] = json!({"own": ["*"]});
    });
    let refused = h
        .settle(&name, stalled_with("PropertyProtected"))
        .await
        .expect("object");
    let message = condition_message(&refused, "Stalled");
    assert!(
        message.contains("remove property \"locked_tier\"")
            && message.contains("spec.propertyOwnership.ignore"),
        "{message}"
    );
    let image = glance.get_image(&id).await.expect("image");
    assert_eq!(
        image.properties.get("locked_tier").map(String::as_str),
        Some("gold")
    );
}
