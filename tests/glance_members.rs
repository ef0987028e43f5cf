//! Contract tests of image sharing against the real Glance: who may add, accept and remove
//! members, and what each side then sees.

mod common;

use futures::TryStreamExt;
use glint::glance::{GlanceApi, ListQuery, MemberStatus, NewImage, PatchOp, Visibility};

#[tokio::test]
async fn sharing_follows_glance_member_rules_from_add_to_remove() {
    let bed = glance_under_test!();
    let owner_project = common::unique_project();
    let member_project = common::unique_project();
    let owner = bed.member_of(&owner_project);
    let member = bed.member_of(&member_project);
    let image = owner
        .create_image(&NewImage {
            name: Some(common::unique("shared")),
            visibility: Some(Visibility::Private),
            ..NewImage::default()
        })
        .await
        .expect("create");

    let not_shared = owner
        .add_member(&image.id, &member_project)
        .await
        .expect_err("private image");
    assert_eq!(not_shared.status(), Some(403), "{not_shared}");

    owner
        .update_image(&image.id, &[PatchOp::SetVisibility(Visibility::Shared)])
        .await
        .expect("share");
    let added = owner
        .add_member(&image.id, &member_project)
        .await
        .expect("add member");
    assert_eq!(
        (added.member_id.as_str(), added.status.clone()),
        (member_project.as_str(), MemberStatus::Pending)
    );
    let duplicate = owner
        .add_member(&image.id, &member_project)
        .await
        .expect_err("duplicate member");
    assert_eq!(duplicate.status(), Some(409), "{duplicate}");

    let listed = owner.list_members(&image.id).await.expect("list members");
    assert_eq!(listed, vec![added.clone()]);
    assert_eq!(
        owner
            .get_member(&image.id, &member_project)
            .await
            .expect("get member"),
        added
    );

    let by_owner = owner
        .set_member_status(&image.id, &member_project, MemberStatus::Accepted)
        .await
        .expect_err("only the member may accept");
    assert_eq!(by_owner.status(), Some(403), "{by_owner}");
    let accepted = member
        .set_member_status(&image.id, &member_project, MemberStatus::Accepted)
        .await
        .expect("member accepts");
    assert_eq!(accepted.status, MemberStatus::Accepted);

    let seen: Vec<String> = member
        .list_images(&ListQuery {
            visibility: Some(Visibility::Shared),
            member_status: Some(MemberStatus::Accepted),
            ..ListQuery::default()
        })
        .map_ok(|image| image.id)
        .try_collect()
        .await
        .expect("member lists shared images");
    assert!(
        seen.contains(&image.id),
        "the member sees the accepted image"
    );

    owner
        .remove_member(&image.id, &member_project)
        .await
        .expect("remove member");
    let gone = member
        .get_image(&image.id)
        .await
        .expect_err("no longer shared");
    assert!(gone.is_not_found(), "{gone}");
    assert!(
        owner
            .list_members(&image.id)
            .await
            .expect("list")
            .is_empty()
    );
    owner.delete(&image.id).await.expect("delete");
}
