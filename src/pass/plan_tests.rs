//! Table tests of the plan: each row is one rule, with the smallest difference that shows it.

use super::*;
use crate::crd::CloudCredentialsRef;

const UID: &str = "uid-1";

fn spec() -> ImageSpec {
    ImageSpec {
        cloud_credentials_ref: Some(CloudCredentialsRef {
            secret_name: "s".into(),
            cloud_name: "c".into(),
        }),
        disk_format: Some(crate::crd::DiskFormat::Qcow2),
        ..ImageSpec::default()
    }
}

fn desired(change: impl FnOnce(&mut ImageSpec)) -> Desired {
    let mut spec = spec();
    change(&mut spec);
    Desired::from_spec(&spec, "obj", UID)
}

/// The image exactly as `desired(|_| {})` wants it, active.
fn matching_image() -> GlanceImage {
    let wanted = desired(|_| {});
    let image: GlanceImage = serde_json::from_value(serde_json::json!({
        "id": "i-1", "name": "obj", "status": "active", "visibility": "private",
        "protected": false, "os_hidden": false, "min_disk": 0, "min_ram": 0,
        "container_format": "bare", "disk_format": "qcow2", "tags": [],
        "glint.dev/uid": UID, "glint.dev/properties": "[]",
    }))
    .unwrap();
    assert_eq!(image.properties, wanted.properties_to_write());
    image
}

fn image(change: impl FnOnce(&mut GlanceImage)) -> GlanceImage {
    let mut image = matching_image();
    change(&mut image);
    image
}

fn set(key: &str, value: &str) -> PatchOp {
    PatchOp::SetProperty {
        key: key.into(),
        value: value.into(),
    }
}

fn no_members() -> BTreeSet<String> {
    BTreeSet::new()
}

fn members(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn plan_for(desired: &Desired, image: GlanceImage, members: &BTreeSet<String>) -> Plan {
    plan(
        desired,
        &Observation::Owned(image),
        members,
        &TransferState::Idle,
    )
}

#[test]
fn a_matching_image_needs_nothing() {
    let plan = plan_for(&desired(|_| {}), matching_image(), &no_members());
    assert_eq!(plan.steps, []);
    assert_eq!(plan.progress, Progress::InSync);
}

#[test]
fn each_field_difference_becomes_one_patch_operation() {
    let mut props = BTreeMap::new();
    props.insert("os_distro".to_string(), "debian".to_string());
    let rows: Vec<(&str, Desired, GlanceImage, Vec<PatchOp>)> = vec![
        (
            "name from metadata.name",
            desired(|_| {}),
            image(|i| i.name = Some("old".into())),
            vec![PatchOp::SetName("obj".into())],
        ),
        (
            "explicit name",
            desired(|s| s.name = Some("n".into())),
            matching_image(),
            vec![PatchOp::SetName("n".into())],
        ),
        (
            "visibility",
            desired(|s| s.visibility = Some(crate::crd::Visibility::Community)),
            matching_image(),
            vec![PatchOp::SetVisibility(Visibility::Community)],
        ),
        (
            "protect",
            desired(|s| s.protected = true),
            matching_image(),
            vec![PatchOp::SetProtected(true)],
        ),
        (
            "unprotect",
            desired(|_| {}),
            image(|i| i.protected = true),
            vec![PatchOp::SetProtected(false)],
        ),
        (
            "hide",
            desired(|s| s.hidden = true),
            matching_image(),
            vec![PatchOp::SetHidden(true)],
        ),
        (
            "min disk",
            desired(|s| s.min_disk_gb = Some(2)),
            matching_image(),
            vec![PatchOp::SetMinDisk(2)],
        ),
        (
            "min ram",
            desired(|s| s.min_ram_mb = Some(256)),
            matching_image(),
            vec![PatchOp::SetMinRam(256)],
        ),
        (
            "tags as a whole sorted list",
            desired(|s| s.tags = vec!["b".into(), "a".into(), "a".into()]),
            matching_image(),
            vec![PatchOp::SetTags(vec!["a".into(), "b".into()])],
        ),
        (
            "tags removed",
            desired(|_| {}),
            image(|i| i.tags = vec!["x".into()]),
            vec![PatchOp::SetTags(vec![])],
        ),
        (
            "new property, recorded in the same patch",
            desired(|s| s.properties = props.clone()),
            matching_image(),
            vec![
                set(PROPERTIES_RECORD, r#"["os_distro"]"#),
                set("os_distro", "debian"),
            ],
        ),
        (
            "changed property",
            desired(|s| s.properties = props.clone()),
            image(|i| {
                i.properties.insert("os_distro".into(), "arch".into());
                i.properties
                    .insert(PROPERTIES_RECORD.into(), r#"["os_distro"]"#.into());
            }),
            vec![set("os_distro", "debian")],
        ),
        (
            "a property glint did not set is left alone",
            desired(|_| {}),
            image(|i| {
                i.properties.insert("x".into(), "y".into());
            }),
            vec![],
        ),
        (
            "Glance's own properties kept",
            desired(|_| {}),
            image(|i| {
                i.properties
                    .insert("os_glance_failed_import".into(), "".into());
            }),
            vec![],
        ),
        (
            "lost ownership mark restored",
            desired(|_| {}),
            image(|i| {
                i.properties.clear();
            }),
            vec![set(PROPERTIES_RECORD, "[]"), set(OWNER_PROPERTY, UID)],
        ),
        (
            "formats fixed while queued",
            desired(|_| {}),
            image(|i| {
                i.status = GlanceStatus::Queued;
                i.disk_format = Some(DiskFormat::Raw);
                i.container_format = Some(ContainerFormat::Ovf);
            }),
            vec![
                PatchOp::SetContainerFormat(ContainerFormat::Bare),
                PatchOp::SetDiskFormat(DiskFormat::Qcow2),
            ],
        ),
        (
            "formats left alone once active",
            desired(|_| {}),
            image(|i| i.disk_format = Some(DiskFormat::Raw)),
            vec![],
        ),
    ];
    for (what, desired, image, expected) in rows {
        assert_eq!(patch_ops(&desired, &image), expected, "{what}");
        let plan = plan_for(&desired, image, &no_members());
        let want_actions = if expected.is_empty() {
            vec![]
        } else {
            vec![Step::Patch(expected)]
        };
        assert_eq!(plan.steps, want_actions, "{what}");
    }
}

#[test]
fn several_changes_go_in_one_atomic_patch() {
    let wanted = desired(|s| {
        s.name = Some("n".into());
        s.hidden = true;
        s.tags = vec!["t".into()];
    });
    let plan = plan_for(&wanted, matching_image(), &no_members());
    assert_eq!(
        plan.steps,
        [Step::Patch(vec![
            PatchOp::SetName("n".into()),
            PatchOp::SetHidden(true),
            PatchOp::SetTags(vec!["t".into()])
        ])]
    );
    assert!(matches!(
        plan.progress,
        Progress::Working {
            reason: Reason::Updating,
            ..
        }
    ));
}

#[test]
fn members_are_added_after_sharing_and_removed_before_unsharing() {
    let share = desired(|s| {
        s.visibility = Some(crate::crd::Visibility::Shared);
        s.members = vec!["p1".into(), "p2".into()];
    });
    type Row<'a> = (
        &'a str,
        &'a Desired,
        GlanceImage,
        BTreeSet<String>,
        Vec<Step>,
    );
    let rows: Vec<Row> = vec![
        (
            "share a private image",
            &share,
            matching_image(),
            no_members(),
            vec![
                Step::Patch(vec![PatchOp::SetVisibility(Visibility::Shared)]),
                Step::AddMember("p1".into()),
                Step::AddMember("p2".into()),
            ],
        ),
        (
            "add the missing member",
            &share,
            image(|i| i.visibility = Visibility::Shared),
            members(&["p1"]),
            vec![Step::AddMember("p2".into())],
        ),
        (
            "remove an extra member",
            &share,
            image(|i| i.visibility = Visibility::Shared),
            members(&["p1", "p2", "p3"]),
            vec![Step::RemoveMember("p3".into())],
        ),
    ];
    for (what, wanted, image, current, expected) in rows {
        assert_eq!(plan_for(wanted, image, &current).steps, expected, "{what}");
    }
    let unshare = desired(|_| {});
    assert_eq!(
        plan_for(
            &unshare,
            image(|i| i.visibility = Visibility::Shared),
            &members(&["p1"])
        )
        .steps,
        [
            Step::RemoveMember("p1".into()),
            Step::Patch(vec![PatchOp::SetVisibility(Visibility::Private)])
        ],
        "members go before the image stops being shared"
    );
    assert_eq!(
        plan_for(&unshare, matching_image(), &members(&["stale"])).steps,
        [],
        "member calls on an unshared image would be refused, and Glance ignores its members"
    );
}

#[test]
fn deactivation_follows_the_spec_once_the_image_has_data() {
    let off = desired(|s| s.deactivated = true);
    let rows: Vec<(&str, &Desired, GlanceImage, Vec<Step>)> = vec![
        (
            "deactivate an active image",
            &off,
            matching_image(),
            vec![Step::Deactivate],
        ),
        (
            "already deactivated",
            &off,
            image(|i| i.status = GlanceStatus::Deactivated),
            vec![],
        ),
        (
            "a queued image cannot be deactivated yet",
            &off,
            image(|i| i.status = GlanceStatus::Queued),
            vec![],
        ),
    ];
    for (what, wanted, image, expected) in rows {
        assert_eq!(
            plan_for(wanted, image, &no_members()).steps,
            expected,
            "{what}"
        );
    }
    let on = desired(|_| {});
    assert_eq!(
        plan_for(
            &on,
            image(|i| i.status = GlanceStatus::Deactivated),
            &no_members()
        )
        .steps,
        [Step::Reactivate]
    );
}

#[test]
fn a_queued_image_with_a_source_gets_its_data_through_a_transfer() {
    let with_source = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.qcow2".into(),
            ..ImageSource::default()
        })
    });
    let queued = image(|i| i.status = GlanceStatus::Queued);
    let rows: Vec<(&str, TransferState, Vec<Step>, &str)> = vec![
        (
            "idle: start",
            TransferState::Idle,
            vec![Step::StartTransfer],
            "Transferring",
        ),
        (
            "running: wait",
            TransferState::Running,
            vec![],
            "Transferring",
        ),
        (
            "failed, retryable: start again, under the failure's reason",
            TransferState::Failed {
                reason: Reason::SourceUnavailable,
                message: "reset".into(),
                retry: true,
            },
            vec![Step::StartTransfer],
            "SourceUnavailable",
        ),
        (
            "failed for good: blocked with the transfer's reason",
            TransferState::Failed {
                reason: Reason::SourceNotAllowed,
                message: "169.254.169.254 is refused".into(),
                retry: false,
            },
            vec![],
            "SourceNotAllowed",
        ),
    ];
    for (what, transfer, expected, reason) in rows {
        let plan = plan(
            &with_source,
            &Observation::Owned(queued.clone()),
            &no_members(),
            &transfer,
        );
        assert_eq!(plan.steps, expected, "{what}");
        let got = match &plan.progress {
            Progress::Working { reason, .. } | Progress::Blocked { reason, .. } => reason.as_str(),
            Progress::InSync => "InSync",
        };
        assert_eq!(got, reason, "{what}");
    }
    let no_source = plan_for(&desired(|_| {}), queued, &no_members());
    assert_eq!(
        (no_source.steps, no_source.progress),
        (vec![], Progress::InSync),
        "an image without a source stays queued"
    );
    let saving = plan_for(
        &with_source,
        image(|i| i.status = GlanceStatus::Saving),
        &no_members(),
    );
    assert!(matches!(
        saving.progress,
        Progress::Working {
            reason: Reason::GlanceProcessing,
            ..
        }
    ));
}

#[test]
fn every_method_and_compression_starts_a_transfer_into_a_queued_image() {
    use crate::crd::{Decompression, TransferMethod};
    let queued = image(|i| i.status = GlanceStatus::Queued);
    for decompress in [
        None,
        Some(Decompression::Gzip),
        Some(Decompression::Zstd),
        Some(Decompression::None),
    ] {
        for method in [
            None,
            Some(TransferMethod::WebDownload),
            Some(TransferMethod::GlanceDirect),
        ] {
            let wanted = desired(|s| {
                s.source = Some(ImageSource {
                    url: "https://x/i.qcow2.gz".into(),
                    options: crate::crd::SourceOptions {
                        decompress,
                        method,
                        ..Default::default()
                    },
                    ..ImageSource::default()
                })
            });
            let plan = plan(
                &wanted,
                &Observation::Owned(queued.clone()),
                &no_members(),
                &TransferState::Idle,
            );
            assert_eq!(
                plan.steps,
                [Step::StartTransfer],
                "{decompress:?} {method:?}"
            );
        }
    }
}

#[test]
fn an_active_image_is_not_ready_while_its_transfer_still_checks_it() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        })
    });
    let active = matching_image();
    let checking = plan(
        &wanted,
        &Observation::Owned(active.clone()),
        &no_members(),
        &TransferState::Running,
    );
    assert!(
        matches!(
            &checking.progress,
            Progress::Working {
                reason: Reason::Transferring,
                ..
            }
        ),
        "{:?}",
        checking.progress
    );
    let done = plan(
        &wanted,
        &Observation::Owned(active),
        &no_members(),
        &TransferState::Idle,
    );
    assert_eq!(done.progress, Progress::InSync);
}

#[test]
fn a_retried_transfer_says_why_the_last_attempt_failed() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        })
    });
    let queued = image(|i| i.status = GlanceStatus::Queued);
    let failed = TransferState::Failed {
        reason: Reason::SourceUnavailable,
        message: "https://x/i.raw answered 503 Service Unavailable (will retry)".into(),
        retry: true,
    };
    let retrying = plan(&wanted, &Observation::Owned(queued), &no_members(), &failed);
    assert_eq!(retrying.steps, [Step::StartTransfer]);
    assert!(
        matches!(&retrying.progress, Progress::Working { message, .. } if message.contains("503")),
        "{:?}",
        retrying.progress
    );
}

#[test]
fn an_image_left_saving_by_an_attempt_glint_gave_up_shows_the_failure_not_glance_at_work() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        })
    });
    let saving = image(|i| i.status = GlanceStatus::Saving);
    let failed = TransferState::Failed {
        reason: Reason::TransferFailed,
        message: "Glance took none of the upload's data for 120 s".into(),
        retry: true,
    };
    let waiting = plan(&wanted, &Observation::Owned(saving), &no_members(), &failed);
    assert_eq!(
        waiting.steps,
        [],
        "nothing to send while Glance holds the image"
    );
    assert!(
        matches!(&waiting.progress, Progress::Working { reason: Reason::TransferFailed, message }
            if message.contains("took none") && message.contains("still shows the image saving")),
        "{:?}",
        waiting.progress
    );
}

#[test]
fn an_active_image_whose_check_failed_for_now_is_not_ready_and_is_checked_again() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        })
    });
    let active = image(|i| i.status = GlanceStatus::Active);
    let failed = TransferState::Failed {
        reason: Reason::TransferFailed,
        message: "Glance get image after upload failed with 503".into(),
        retry: true,
    };
    let plan = plan(&wanted, &Observation::Owned(active), &no_members(), &failed);
    assert_eq!(plan.steps, [Step::StartTransfer], "the check runs again");
    assert!(
        matches!(&plan.progress, Progress::Working { reason: Reason::TransferFailed, message }
            if message.contains("could not check it yet") && message.contains("503")),
        "{:?}",
        plan.progress
    );
}

#[test]
fn a_transfer_that_failed_for_good_blocks_even_an_active_image() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        });
        s.name = Some("renamed".into());
    });
    let failed = TransferState::Failed {
        reason: Reason::HashMismatch,
        message: "Glance stored other bytes than glint sent".into(),
        retry: false,
    };
    let active = image(|i| i.status = GlanceStatus::Deactivated);
    let plan = plan(&wanted, &Observation::Owned(active), &no_members(), &failed);
    assert_eq!(plan.steps, [], "no reactivation, no patch");
    assert!(
        matches!(&plan.progress, Progress::Blocked { reason: Reason::HashMismatch, message } if message.contains("other bytes")),
        "{:?}",
        plan.progress
    );
}

#[test]
fn an_image_marked_for_bad_data_is_left_deactivated_whatever_the_process_remembers() {
    let wanted = desired(|s| {
        s.source = Some(ImageSource {
            url: "https://x/i.raw".into(),
            ..ImageSource::default()
        });
        s.tags = vec!["new".into()];
    });
    let marked = image(|i| {
        i.status = GlanceStatus::Deactivated;
        i.properties.insert(
            QUARANTINE_PROPERTY.into(),
            "HashMismatch: Glance stored other bytes".into(),
        );
    });
    // After a restart the transfer that failed is forgotten (Idle).
    let plan = plan_for(&wanted, marked, &no_members());
    assert_eq!(plan.steps, [], "no reactivation, no patch");
    assert!(
        matches!(&plan.progress, Progress::Blocked { reason: Reason::Quarantined, message } if message.contains("HashMismatch") && message.contains("delete this Image")),
        "{:?}",
        plan.progress
    );
    let unmarked = image(|i| i.status = GlanceStatus::Deactivated);
    assert!(
        plan_for(&wanted, unmarked, &no_members())
            .steps
            .contains(&Step::Reactivate),
        "without the mark, a deactivated image the spec wants active is reactivated"
    );
}

#[test]
fn missing_and_killed_images_are_created_again() {
    let wanted = desired(|_| {});
    let fresh = plan(
        &wanted,
        &Observation::Absent { vanished: None },
        &no_members(),
        &TransferState::Idle,
    );
    assert_eq!(fresh.steps, [Step::Create]);
    assert!(matches!(
        fresh.progress,
        Progress::Working {
            reason: Reason::Creating,
            ..
        }
    ));
    let vanished = plan(
        &wanted,
        &Observation::Absent {
            vanished: Some("i-1".into()),
        },
        &no_members(),
        &TransferState::Idle,
    );
    assert!(matches!(
        vanished.progress,
        Progress::Working {
            reason: Reason::Recreating,
            ..
        }
    ));
    let killed = plan_for(
        &wanted,
        image(|i| {
            i.status = GlanceStatus::Killed;
            i.protected = true;
        }),
        &no_members(),
    );
    assert_eq!(killed.steps, [Step::Delete { unprotect: true }]);
}

#[test]
fn an_image_in_a_status_glint_does_not_know_is_left_alone_with_a_clear_reason() {
    let wanted = desired(|s| s.name = Some("renamed".into()));
    let odd = plan_for(
        &wanted,
        image(|i| i.status = GlanceStatus::Other("quarantined".into())),
        &no_members(),
    );
    assert_eq!(odd.steps, [], "no patch while the status is unknown");
    match odd.progress {
        Progress::Blocked { reason, message } => {
            assert_eq!(reason.as_str(), "UnknownGlanceStatus");
            assert!(message.contains("\"quarantined\""), "{message}");
        }
        other => panic!("expected Blocked, got {other:?}"),
    }
}

#[test]
fn imported_images_are_only_observed() {
    let wanted = desired(|s| s.name = Some("different".into()));
    let imported = plan(
        &wanted,
        &Observation::Imported(matching_image()),
        &no_members(),
        &TransferState::Idle,
    );
    assert_eq!(
        (imported.steps, imported.progress),
        (vec![], Progress::InSync)
    );
    let pending = plan(
        &wanted,
        &Observation::ImportPending,
        &no_members(),
        &TransferState::Idle,
    );
    assert!(matches!(
        pending.progress,
        Progress::Working {
            reason: Reason::WaitingForImport,
            ..
        }
    ));
    assert_eq!(
        plan_delete(&Observation::Imported(matching_image()), false),
        []
    );
}

#[test]
fn deletion_unprotects_first_and_detach_leaves_the_image() {
    let protected = Observation::Owned(image(|i| i.protected = true));
    assert_eq!(
        plan_delete(&protected, false),
        [Step::Delete { unprotect: true }]
    );
    assert_eq!(
        plan_delete(&Observation::Owned(matching_image()), false),
        [Step::Delete { unprotect: false }]
    );
    assert_eq!(plan_delete(&protected, true), []);
    assert_eq!(
        plan_delete(&Observation::Absent { vanished: None }, false),
        []
    );
}

#[test]
fn the_create_request_carries_every_field_and_the_ownership_mark() {
    let wanted = desired(|s| {
        s.name = Some("n".into());
        s.visibility = Some(crate::crd::Visibility::Shared);
        s.tags = vec!["t".into()];
        s.protected = true;
        s.hidden = true;
        s.min_disk_gb = Some(1);
        s.min_ram_mb = Some(2);
    });
    let request = wanted.new_image("id-1");
    assert_eq!(request.id.as_deref(), Some("id-1"));
    assert_eq!(request.visibility, Some(Visibility::Shared));
    assert_eq!(
        (request.protected, request.hidden),
        (Some(true), Some(true))
    );
    assert_eq!((request.min_disk, request.min_ram), (Some(1), Some(2)));
    assert_eq!(request.container_format, Some(ContainerFormat::Bare));
    assert_eq!(request.disk_format, Some(DiskFormat::Qcow2));
    assert_eq!(
        request.properties.get(OWNER_PROPERTY).map(String::as_str),
        Some(UID)
    );
}

#[path = "plan_property_tests.rs"]
mod properties;

#[path = "plan_field_tests.rs"]
mod fields;
