//! Contract tests of image metadata calls against the real Glance: create with every field,
//! get, find, patch, tags, delete, and the error paths. Listing is in glance_listing.rs.

mod common;

use std::collections::BTreeMap;

use glint::glance::{
    ContainerFormat, DiskFormat, GlanceApi, GlanceStatus, NewImage, PatchOp, Visibility,
};

#[tokio::test]
async fn an_image_created_with_every_field_reads_back_the_same() {
    let bed = glance_under_test!();
    let project = common::unique_project();
    let api = bed.admin_of(&project);
    let id = common::unique_uuid();
    let name = common::unique("every-field");
    let created = api
        .create_image(&NewImage {
            id: Some(id.clone()),
            name: Some(name.clone()),
            visibility: Some(Visibility::Community),
            tags: vec!["b".into(), "a".into()],
            container_format: Some(ContainerFormat::Ovf),
            disk_format: Some(DiskFormat::Qcow2),
            min_disk: Some(3),
            min_ram: Some(512),
            protected: Some(false),
            hidden: Some(true),
            properties: BTreeMap::from([
                ("os_distro".to_string(), "debian".to_string()),
                ("glint.dev/owner".to_string(), "uid-1".to_string()),
            ]),
        })
        .await
        .expect("create");
    let fetched = api.get_image(&id).await.expect("get");
    assert_eq!(created, fetched);
    assert_eq!(fetched.id, id);
    assert_eq!(fetched.name.as_deref(), Some(name.as_str()));
    assert_eq!(fetched.status, GlanceStatus::Queued);
    assert_eq!(fetched.visibility, Visibility::Community);
    let mut tags = fetched.tags.clone();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(fetched.container_format, Some(ContainerFormat::Ovf));
    assert_eq!(fetched.disk_format, Some(DiskFormat::Qcow2));
    assert_eq!((fetched.min_disk, fetched.min_ram), (3, 512));
    assert!(fetched.hidden && !fetched.protected);
    assert_eq!(fetched.owner.as_deref(), Some(project.as_str()));
    assert_eq!(
        fetched.properties.get("os_distro").map(String::as_str),
        Some("debian")
    );
    assert_eq!(
        fetched
            .properties
            .get("glint.dev/owner")
            .map(String::as_str),
        Some("uid-1")
    );
    api.delete(&id).await.expect("delete");
}

#[tokio::test]
async fn a_reused_id_is_a_conflict_even_after_the_image_is_deleted() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let id = common::unique_uuid();
    let new = NewImage {
        id: Some(id.clone()),
        name: Some(common::unique("reuse")),
        ..NewImage::default()
    };
    api.create_image(&new).await.expect("first create");
    let again = api.create_image(&new).await.expect_err("second create");
    assert_eq!(again.status(), Some(409), "{again}");
    assert!(!again.is_transient());
    api.delete(&id).await.expect("delete");
    let after_delete = api
        .create_image(&new)
        .await
        .expect_err("create after delete");
    assert_eq!(
        after_delete.status(),
        Some(409),
        "soft-deleted ids stay taken: {after_delete}"
    );
}

#[tokio::test]
async fn a_protected_image_refuses_deletion_until_unprotected() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("protected")),
            protected: Some(true),
            ..NewImage::default()
        })
        .await
        .expect("create");
    let refused = api.delete(&image.id).await.expect_err("protected delete");
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(
        refused.to_string().contains("protected"),
        "Glance says why: {refused}"
    );
    api.update_image(&image.id, &[PatchOp::SetProtected(false)])
        .await
        .expect("unprotect");
    api.delete(&image.id).await.expect("delete");
    assert!(
        !api.delete_if_exists(&image.id)
            .await
            .expect("second delete is not an error")
    );
    let second = api
        .delete(&image.id)
        .await
        .expect_err("plain second delete");
    assert!(second.is_not_found(), "{second}");
}

#[tokio::test]
async fn a_missing_image_is_a_clean_404_with_a_request_id() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let err = api
        .get_image("00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("missing image");
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_transient());
    assert_eq!(err.reason().as_str(), "GlanceNotFound");
    let text = err.to_string();
    assert!(!text.contains('<'), "no HTML left in {text:?}");
    assert!(text.contains("(request req-"), "request id quoted: {text}");
    assert!(
        api.find_image("00000000-0000-4000-8000-000000000000")
            .await
            .expect("find")
            .is_none()
    );
}

#[tokio::test]
async fn patches_change_every_mutable_field_atomically() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("patch")),
            disk_format: Some(DiskFormat::Raw),
            container_format: Some(ContainerFormat::Bare),
            properties: BTreeMap::from([("to_remove".to_string(), "x".to_string())]),
            ..NewImage::default()
        })
        .await
        .expect("create");
    let renamed = common::unique("patched");
    let patched = api
        .update_image(
            &image.id,
            &[
                PatchOp::SetName(renamed.clone()),
                PatchOp::SetVisibility(Visibility::Shared),
                PatchOp::SetHidden(true),
                PatchOp::SetMinDisk(5),
                PatchOp::SetMinRam(1024),
                PatchOp::SetContainerFormat(ContainerFormat::Ova),
                PatchOp::SetDiskFormat(DiskFormat::Qcow2),
                PatchOp::SetTags(vec!["x".into(), "y".into()]),
                PatchOp::SetProperty {
                    key: "os_distro".into(),
                    value: "ubuntu".into(),
                },
                PatchOp::SetProperty {
                    key: "with/slash".into(),
                    value: "ok".into(),
                },
                PatchOp::RemoveProperty("to_remove".into()),
            ],
        )
        .await
        .expect("patch");
    assert_eq!(patched.name.as_deref(), Some(renamed.as_str()));
    assert_eq!(patched.visibility, Visibility::Shared);
    assert!(patched.hidden);
    assert_eq!((patched.min_disk, patched.min_ram), (5, 1024));
    assert_eq!(patched.container_format, Some(ContainerFormat::Ova));
    assert_eq!(patched.disk_format, Some(DiskFormat::Qcow2));
    let mut tags = patched.tags.clone();
    tags.sort();
    assert_eq!(tags, ["x", "y"]);
    assert_eq!(
        patched.properties.get("os_distro").map(String::as_str),
        Some("ubuntu")
    );
    assert_eq!(
        patched.properties.get("with/slash").map(String::as_str),
        Some("ok")
    );
    assert!(!patched.properties.contains_key("to_remove"));

    // Atomic: a failing operation (removing a missing key is 409) leaves the name unchanged.
    let failed = api
        .update_image(
            &image.id,
            &[
                PatchOp::SetName("never-applied".into()),
                PatchOp::RemoveProperty("absent".into()),
            ],
        )
        .await
        .expect_err("remove of a missing property");
    assert_eq!(failed.status(), Some(409), "{failed}");
    let unchanged = api.get_image(&image.id).await.expect("get");
    assert_eq!(unchanged.name.as_deref(), Some(renamed.as_str()));

    // Reserved keys are Glance's: a property patch on them is refused.
    let reserved = api
        .update_image(
            &image.id,
            &[PatchOp::SetProperty {
                key: "os_glance_foo".into(),
                value: "x".into(),
            }],
        )
        .await
        .expect_err("reserved key");
    assert_eq!(reserved.status(), Some(403), "{reserved}");
    api.delete(&image.id).await.expect("delete");
}

#[tokio::test]
async fn a_patch_sent_as_plain_json_is_refused_with_415() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("mediatype")),
            ..NewImage::default()
        })
        .await
        .expect("create");
    // The client always sends the right media type, so this asks Glance directly.
    let response = reqwest::Client::new()
        .patch(format!("{}/v2/images/{}", bed.glance_url, image.id))
        .header("x-identity-status", "Confirmed")
        .header("x-project-id", image.owner.clone().unwrap_or_default())
        .header("x-roles", "admin")
        .header("content-type", "application/json")
        .body(r#"[{"op": "replace", "path": "/name", "value": "x"}]"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 415);
    api.delete(&image.id).await.expect("delete");
}

#[tokio::test]
async fn the_older_v2_0_patch_dialect_is_taken_as_well() {
    let bed = glance_under_test!();
    let project = common::unique_project();
    let api = bed.admin_of(&project);
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("dialect")),
            ..NewImage::default()
        })
        .await
        .expect("create");
    // tempest and older clients send {"replace": "/name", ...} under the v2.0 media type.
    let ops = serde_json::json!([
        {"replace": "/name", "value": "renamed"},
        {"add": "/glint_dialect", "value": "v2.0"}
    ]);
    let (status, patched) = bed
        .raw_call(
            &project,
            "admin",
            reqwest::Method::PATCH,
            &format!("/v2/images/{}", image.id),
            Some(("application/openstack-images-v2.0-json-patch", ops)),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["glint_dialect"], "v2.0");
    api.delete(&image.id).await.expect("delete");
}

#[tokio::test]
async fn an_admin_gives_an_image_to_another_project_and_a_member_may_not() {
    let bed = glance_under_test!();
    let (mine, theirs, third) = (
        common::unique_project(),
        common::unique_project(),
        common::unique_project(),
    );
    let create = |owner: &str| {
        Some((
            "application/json",
            serde_json::json!({"name": common::unique("owner"), "owner": owner}),
        ))
    };
    let (status, refused) = bed
        .raw_call(
            &mine,
            "member,reader",
            reqwest::Method::POST,
            "/v2/images",
            create(&theirs),
        )
        .await;
    assert_eq!(
        status, 403,
        "a member creates for its own project only: {refused}"
    );
    let (status, given) = bed
        .raw_call(
            &mine,
            "admin",
            reqwest::Method::POST,
            "/v2/images",
            create(&theirs),
        )
        .await;
    assert_eq!(status, 201, "{given}");
    assert_eq!(given["owner"], theirs.as_str());
    let id = given["id"].as_str().expect("id").to_string();
    let to_third = serde_json::json!([{"op": "replace", "path": "/owner", "value": third}]);
    let patch = |ops: &serde_json::Value| {
        Some(("application/openstack-images-v2.1-json-patch", ops.clone()))
    };
    let path = format!("/v2/images/{id}");
    let (status, _) = bed
        .raw_call(
            &theirs,
            "member,reader",
            reqwest::Method::PATCH,
            &path,
            patch(&to_third),
        )
        .await;
    assert_eq!(status, 403, "the owning member may not give it away");
    let (status, moved) = bed
        .raw_call(
            &mine,
            "admin",
            reqwest::Method::PATCH,
            &path,
            patch(&to_third),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["owner"], third.as_str());
    bed.admin_of(&third).delete(&id).await.expect("delete");
}

#[tokio::test]
async fn an_empty_image_id_is_not_found_rather_than_the_list() {
    let bed = glance_under_test!();
    let (status, body) = bed
        .raw_call(
            &common::unique_project(),
            "admin",
            reqwest::Method::GET,
            "/v2/images/",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn tags_are_added_and_removed_one_at_a_time() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("tags")),
            tags: vec!["keep".into()],
            ..NewImage::default()
        })
        .await
        .expect("create");
    api.add_tag(&image.id, "with space").await.expect("add tag");
    api.add_tag(&image.id, "with space")
        .await
        .expect("adding twice is fine");
    let tagged = api.get_image(&image.id).await.expect("get");
    assert_eq!(tagged.tags, ["keep", "with space"]);
    api.remove_tag(&image.id, "keep").await.expect("remove tag");
    let untagged = api.get_image(&image.id).await.expect("get");
    assert_eq!(untagged.tags, ["with space"]);
    let missing = api
        .remove_tag(&image.id, "never-there")
        .await
        .expect_err("missing tag");
    assert!(missing.is_not_found(), "{missing}");
    api.delete(&image.id).await.expect("delete");
}

#[tokio::test]
async fn a_tag_with_a_slash_can_only_be_set_through_the_whole_tag_list() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("slash")),
            ..NewImage::default()
        })
        .await
        .expect("create");
    // The client encodes `/` as %2F, but the WSGI server decodes it before Glance routes the
    // path, so the per-tag endpoint never matches.
    let per_tag = api
        .add_tag(&image.id, "a/b")
        .await
        .expect_err("per-tag path");
    assert!(per_tag.is_not_found(), "{per_tag}");
    let patched = api
        .update_image(&image.id, &[PatchOp::SetTags(vec!["a/b".into()])])
        .await
        .expect("replace /tags");
    assert_eq!(patched.tags, ["a/b"]);
    api.delete(&image.id).await.expect("delete");
}
