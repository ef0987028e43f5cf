//! spec.source.convertTo against the real Glance: real qcow2, vmdk, vhd and vhdx files made by
//! qemu-img in the test, converted by glint (Glance B, which converts nothing) or by Glance's
//! image_conversion plugin (Glance C), and the bad inputs that must leave nothing active.

mod common;

use common::disks::qemu_img;
use common::harness::*;
use common::keystone::production_auth;
use glint::glance::{DiskFormat, GlanceStatus};
use serde_json::json;
use sha2::Digest;

/// The virtual size of the test disks: the size of the raw image made of one.
const VIRTUAL_SIZE: u64 = 16 * 1024 * 1024;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn disk_in(format: &str, seed: u64) -> (Vec<u8>, Vec<u8>) {
    common::disks::disk_in(format, VIRTUAL_SIZE, seed)
}

async fn served(
    data: Vec<u8>,
    extra: serde_json::Value,
) -> (serde_json::Value, common::FileServer) {
    let port = free_port();
    let server = common::serve_file(port, data).await;
    let mut source =
        json!({"url": format!("http://127.0.0.1:{port}/image.raw"), "convertTo": "raw"});
    if let (Some(source), Some(extra)) = (source.as_object_mut(), extra.as_object()) {
        source.extend(extra.clone());
    }
    (source, server)
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn qcow2_vmdk_vhd_and_vhdx_sources_are_converted_by_glint_and_stored_as_raw() {
    let bed = require_testbed!();
    let h = Harness::new(bed);
    for (seed, (glance_format, qemu_format)) in [
        ("qcow2", "qcow2"),
        ("vmdk", "vmdk"),
        ("vhd", "vpc"),
        ("vhdx", "vhdx"),
    ]
    .into_iter()
    .enumerate()
    {
        let (raw, image) = disk_in(qemu_format, 10 + seed as u64);
        let (source, _server) = served(image.clone(), json!({})).await;
        let name = common::unique(&format!("conv-{glance_format}"));
        let started = std::time::Instant::now();
        h.apply(
            &name,
            json!({"diskFormat": glance_format, "source": source}),
        );
        let done = h.settle(&name, ready).await.expect("object");
        let whole = started.elapsed();
        let status = done.status.clone().expect("status");
        let conversion = status
            .transfer
            .and_then(|transfer| transfer.conversion)
            .expect("status.transfer.conversion");
        assert_eq!(conversion.by.as_deref(), Some("glint"), "{glance_format}");
        let ready_message = condition_message(&done, "Ready");
        assert!(
            ready_message.contains(&format!(
                "stored as raw: glint converted the {glance_format} data"
            )),
            "{ready_message}"
        );
        assert_eq!(
            conversion.sent_format,
            Some(DiskFormat::from(glance_format))
        );
        assert_eq!(conversion.stored_format, Some(DiskFormat::Raw));
        assert_eq!(conversion.sent_bytes, Some(image.len() as u64));
        // Figures for the record, not judged: a test is no benchmark.
        eprintln!(
            "{glance_format}: {} bytes as {qemu_format} -> {VIRTUAL_SIZE} bytes raw, converted in {} ms, applied -> Ready in {} ms",
            image.len(),
            conversion.milliseconds.unwrap_or_default(),
            whole.as_millis()
        );
        let image = h.glance_image_of(&done).await;
        assert_eq!(image.status, GlanceStatus::Active, "{glance_format}");
        assert_eq!(image.disk_format, Some(DiskFormat::Raw), "{glance_format}");
        assert_eq!(image.size, Some(VIRTUAL_SIZE), "{glance_format}");
        assert_eq!(
            image.os_hash_value.as_deref(),
            Some(hex(&sha2::Sha512::digest(&raw)).as_str()),
            "{glance_format}: Glance holds exactly the raw disk"
        );
    }
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn glances_own_conversion_is_used_when_asked_and_said_in_status() {
    let bed = require_testbed!();
    let h = Harness::with_clouds_yaml(bed.clone(), &production_auth(&bed), |ctx| ctx);
    let (_, image) = disk_in("qcow2", 20);
    let (source, _server) = served(
        image,
        json!({"conversion": "glance", "method": "glanceDirect"}),
    )
    .await;
    let name = common::unique("conv-by-glance");
    h.apply(&name, json!({"diskFormat": "qcow2", "source": source}));
    let done = h.settle(&name, ready).await.expect("object");
    let conversion = done
        .status
        .clone()
        .and_then(|status| status.transfer)
        .and_then(|transfer| transfer.conversion)
        .expect("status.transfer.conversion");
    assert_eq!(conversion.by.as_deref(), Some("glance"));
    assert_eq!(conversion.stored_format, Some(DiskFormat::Raw));
    let ready_message = condition_message(&done, "Ready");
    assert!(
        ready_message.contains("stored as raw: Glance converted the qcow2 data"),
        "{ready_message}"
    );
    assert_eq!(conversion.stored_bytes, Some(VIRTUAL_SIZE));
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn asking_glance_to_convert_on_a_cloud_that_does_not_leaves_the_image_deactivated() {
    let bed = require_testbed!();
    let h = Harness::new(bed);
    let (_, image) = disk_in("qcow2", 21);
    let (source, _server) = served(
        image,
        json!({"conversion": "glance", "method": "glanceDirect"}),
    )
    .await;
    let name = common::unique("conv-not-done");
    h.apply(&name, json!({"diskFormat": "qcow2", "source": source}));
    let done = h
        .settle(&name, stalled_with("ConversionNotDone"))
        .await
        .expect("object");
    let message = condition_message(&done, "Ready");
    assert!(message.contains("conversion: glint"), "{message}");
    let image = h.glance_image_of(&done).await;
    assert_ne!(
        image.status,
        GlanceStatus::Active,
        "the unconverted image is not usable"
    );
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn bad_sources_fail_with_their_own_reason_and_nothing_turns_active() {
    let bed = require_testbed!();
    let h = Harness::new(bed);
    let (raw, qcow2) = disk_in("qcow2", 30);
    // A qcow2 whose backing file is a file on glint's host.
    let dir = std::env::temp_dir().join(format!("glint-backing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backed = dir.join("backed.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        "/etc/hostname",
        &backed.display().to_string(),
    ]);
    let backed = std::fs::read(&backed).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let cases: Vec<(&str, Vec<u8>, &str, &'static str, &str)> = vec![
        (
            "raw claimed as qcow2",
            raw,
            "qcow2",
            "FormatMismatch",
            "set diskFormat: raw",
        ),
        (
            "a backing file",
            backed,
            "qcow2",
            "UnsafeImage",
            "backing file",
        ),
        (
            "a qcow2 claimed as vmdk",
            qcow2.clone(),
            "vmdk",
            "FormatMismatch",
            "qcow2 data",
        ),
    ];
    for (what, data, claimed, reason, words) in cases {
        let (source, _server) = served(data, json!({})).await;
        let name = common::unique("conv-bad");
        h.apply(&name, json!({"diskFormat": claimed, "source": source}));
        let done = h.settle(&name, stalled_with(reason)).await.expect("object");
        let message = condition_message(&done, "Ready");
        assert!(message.contains(words), "{what}: {message}");
        let image = h.glance_image_of(&done).await;
        assert_eq!(
            image.status,
            GlanceStatus::Queued,
            "{what}: no data reached Glance"
        );
    }
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_conversion_bigger_than_the_scratch_limit_stops_before_upload_and_leaves_no_files() {
    let bed = require_testbed!();
    let (_raw, qcow2) = disk_in("qcow2", 40);
    // The disk is sparse: its qcow2 holds the 1 MiB of data, far less than the 16 MiB raw.
    let source_len = qcow2.len() as u64;
    assert!(source_len < VIRTUAL_SIZE / 2);
    let cases = [
        // The download itself passes the limit: it is cut off there.
        ("a source bigger than the limit", source_len / 2),
        // The source fits, but the source plus the converted 16 MiB do not.
        (
            "a source that fits but not with its conversion",
            source_len + VIRTUAL_SIZE / 2,
        ),
    ];
    for (what, limit_bytes) in cases {
        let scratch = std::env::temp_dir().join(common::unique("glint-scratch"));
        std::fs::create_dir_all(&scratch).unwrap();
        let mut settings = settings();
        let mut policy = (*settings.source_policy).clone();
        policy.scratch = glint::transfer::convert::ScratchSpace {
            dir: Some(scratch.clone()),
            limit_bytes,
        };
        settings.source_policy = std::sync::Arc::new(policy);
        let h = Harness::with_settings(bed.clone(), settings);
        let (source, _server) = served(qcow2.clone(), json!({})).await;
        let name = common::unique("conv-big");
        h.apply(&name, json!({"diskFormat": "qcow2", "source": source}));
        let done = h
            .settle(&name, stalled_with("ScratchLimitExceeded"))
            .await
            .expect("object");
        let message = condition_message(&done, "Ready");
        assert!(
            message.contains(&format!("more than the limit of {limit_bytes} bytes")),
            "{what}: {message}"
        );
        let image = h.glance_image_of(&done).await;
        assert_eq!(
            image.status,
            GlanceStatus::Queued,
            "{what}: nothing uploaded"
        );
        let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
        assert!(left.is_empty(), "{what}: the scratch folder kept {left:?}");
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
