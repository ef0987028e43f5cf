//! Contract tests of image listings against the real Glance: pagination through the empty
//! last page, every filter, find by name, and the listing cache that serves resyncs.

mod common;

use std::collections::BTreeMap;

use futures::TryStreamExt;
use glint::glance::{
    ContainerFormat, DiskFormat, GlanceApi, GlanceStatus, ListQuery, NameFilter, NewImage, PatchOp,
    SortDirection, TimeComparison, Visibility,
};

#[tokio::test]
async fn listing_follows_pages_lazily_through_the_empty_last_page() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let tag = common::unique("page");
    let mut ids = Vec::new();
    for index in 0..4 {
        let image = api
            .create_image(&NewImage {
                name: Some(format!("{tag}-{index}")),
                tags: vec![tag.clone()],
                ..NewImage::default()
            })
            .await
            .expect("create");
        ids.push(image.id);
    }
    let query = ListQuery {
        tags: vec![tag.clone()],
        page_size: Some(2),
        ..ListQuery::default()
    };
    // Page by page: two full pages, each announcing a next one, then the empty last page.
    let first = api.list_page(&query, None).await.expect("page 1");
    assert_eq!(first.images.len(), 2);
    let second = api
        .list_page(&query, first.next_marker.as_deref())
        .await
        .expect("page 2");
    assert_eq!(second.images.len(), 2);
    let marker = second
        .next_marker
        .clone()
        .expect("a full page announces a next one");
    let last = api.list_page(&query, Some(&marker)).await.expect("page 3");
    assert!(
        last.images.is_empty() && last.next_marker.is_none(),
        "{last:?}"
    );
    // The stream yields every image once.
    let mut listed: Vec<String> = api
        .list_images(&query)
        .map_ok(|image| image.id)
        .try_collect()
        .await
        .expect("stream");
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    // Unknown marker: Glance refuses it.
    let bad = api
        .list_page(&query, Some("00000000-0000-4000-8000-000000000000"))
        .await
        .expect_err("bad marker");
    assert_eq!(bad.status(), Some(400), "{bad}");
    for id in ids {
        api.delete(&id).await.expect("delete");
    }
}

#[tokio::test]
async fn list_filters_select_by_name_tags_visibility_status_owner_property_size_and_time() {
    let bed = glance_under_test!();
    let project = common::unique_project();
    let api = bed.admin_of(&project);
    let base = common::unique("filter");
    let started = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(5))
        .expect("time");
    let a = api
        .create_image(&NewImage {
            name: Some(format!("{base}-a")),
            tags: vec![base.clone(), "one".into()],
            visibility: Some(Visibility::Private),
            properties: BTreeMap::from([("flavour".to_string(), "vanilla".to_string())]),
            disk_format: Some(DiskFormat::Raw),
            container_format: Some(ContainerFormat::Bare),
            ..NewImage::default()
        })
        .await
        .expect("create a");
    let b = api
        .create_image(&NewImage {
            name: Some(format!("{base}-b")),
            tags: vec![base.clone(), "one".into(), "two".into()],
            visibility: Some(Visibility::Shared),
            properties: BTreeMap::from([("flavour".to_string(), "chocolate".to_string())]),
            ..NewImage::default()
        })
        .await
        .expect("create b");
    api.upload(&a.id, common::stream_of(&[7u8; 1000]), Some(1000))
        .await
        .expect("upload a");

    let ids = |query: ListQuery| {
        let api = api.clone();
        async move {
            let mut ids: Vec<String> = api
                .list_images(&query)
                .map_ok(|image| image.id)
                .try_collect()
                .await
                .expect("list");
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let tagged = || ListQuery {
        tags: vec![base.clone()],
        ..ListQuery::default()
    };
    assert_eq!(
        ids(ListQuery {
            name: Some(NameFilter::Exactly(format!("{base}-a"))),
            ..ListQuery::default()
        })
        .await,
        [a.id.as_str()]
    );
    assert_eq!(
        ids(ListQuery {
            name: Some(NameFilter::AnyOf(vec![
                format!("{base}-a"),
                format!("{base}-b")
            ])),
            ..ListQuery::default()
        })
        .await,
        sorted(vec![a.id.clone(), b.id.clone()])
    );
    assert_eq!(
        ids(ListQuery {
            tags: vec![base.clone(), "two".into()],
            ..ListQuery::default()
        })
        .await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(ListQuery {
            visibility: Some(Visibility::Shared),
            ..tagged()
        })
        .await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(ListQuery {
            status: Some(GlanceStatus::Active),
            ..tagged()
        })
        .await,
        [a.id.as_str()]
    );
    assert_eq!(
        ids(ListQuery {
            owner: Some(project.clone()),
            ..tagged()
        })
        .await,
        sorted(vec![a.id.clone(), b.id.clone()])
    );
    assert!(
        ids(ListQuery {
            owner: Some(common::unique_project()),
            ..tagged()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(ListQuery {
            properties: BTreeMap::from([("flavour".to_string(), "chocolate".to_string())]),
            ..tagged()
        })
        .await,
        [b.id.as_str()]
    );
    assert_eq!(
        ids(ListQuery {
            size_min: Some(500),
            size_max: Some(2000),
            ..tagged()
        })
        .await,
        [a.id.as_str()]
    );
    let since = started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        ids(ListQuery {
            created_at: Some((TimeComparison::Gte, since.clone())),
            ..tagged()
        })
        .await
        .len(),
        2
    );
    assert!(
        ids(ListQuery {
            created_at: Some((TimeComparison::Lt, since)),
            ..tagged()
        })
        .await
        .is_empty()
    );
    let by_name_desc: Vec<String> = api
        .list_images(&ListQuery {
            sort: vec![("name".into(), SortDirection::Desc)],
            ..tagged()
        })
        .map_ok(|image| image.name.unwrap_or_default())
        .try_collect()
        .await
        .expect("sorted list");
    assert_eq!(by_name_desc, [format!("{base}-b"), format!("{base}-a")]);

    assert_eq!(
        api.find_image(&format!("{base}-a"))
            .await
            .expect("find by name")
            .map(|i| i.id),
        Some(a.id.clone())
    );
    assert_eq!(
        api.find_image(&b.id)
            .await
            .expect("find by id")
            .map(|i| i.id),
        Some(b.id.clone())
    );
    let twin = api
        .create_image(&NewImage {
            name: Some(format!("{base}-a")),
            ..NewImage::default()
        })
        .await
        .expect("create twin");
    let ambiguous = api
        .find_image(&format!("{base}-a"))
        .await
        .expect_err("two images share a name");
    assert_eq!(ambiguous.reason().as_str(), "AmbiguousImageName");
    for id in [a.id, b.id, twin.id] {
        api.delete(&id).await.expect("delete");
    }
}

#[tokio::test]
async fn one_listing_answers_many_lookups_and_writes_are_never_read_back_stale() {
    use glint::glance::ListingCache;
    let bed = glance_under_test!();
    let project = common::unique_project();
    let api = bed.admin_of(&project);
    let mut ids = Vec::new();
    for index in 0..5 {
        let image = api
            .create_image(&NewImage {
                name: Some(format!("{}-{index}", common::unique("cache"))),
                ..NewImage::default()
            })
            .await
            .expect("create");
        ids.push(image.id);
    }
    let cache = ListingCache::new(
        api.clone(),
        Some(project.clone()),
        std::time::Duration::from_millis(1500),
    );
    for id in &ids {
        assert_eq!(&cache.get_image(id).await.expect("cached get").id, id);
    }
    assert_eq!(cache.listings(), 1, "five lookups, one listing");

    cache
        .update_image(&ids[0], &[PatchOp::SetName("renamed".into())])
        .await
        .expect("update");
    assert_eq!(
        cache.get_image(&ids[0]).await.expect("get").name.as_deref(),
        Some("renamed"),
        "a write is never read back stale"
    );

    let foreign = bed.admin_of(&common::unique_project());
    let other = foreign
        .create_image(&NewImage {
            name: Some(common::unique("other")),
            visibility: Some(Visibility::Community),
            ..NewImage::default()
        })
        .await
        .expect("create");
    assert_eq!(
        cache
            .get_image(&other.id)
            .await
            .expect("falls through to a GET")
            .id,
        other.id
    );
    let missing = cache
        .get_image("00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");

    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    cache
        .get_image(&ids[1])
        .await
        .expect("get after the snapshot aged");
    assert_eq!(cache.listings(), 2, "a stale snapshot is listed again");
    foreign.delete(&other.id).await.expect("delete");
    for id in ids {
        api.delete(&id).await.expect("delete");
    }
}

#[tokio::test]
async fn a_created_or_patched_image_is_read_back_from_the_answer_without_a_get() {
    use common::fault_proxy::{FaultProxy, Route};
    use glint::glance::ListingCache;
    let bed = glance_under_test!();
    let project = common::unique_project();
    let proxy = FaultProxy::start(&bed.glance_url).await;
    let cache = ListingCache::new(
        bed.admin_of_via(&project, proxy.url()),
        Some(project.clone()),
        std::time::Duration::from_secs(60),
    );
    let get_one = Route::new("GET", "/v2/images/*");
    let created = cache
        .create_image(&NewImage {
            name: Some(common::unique("remembered")),
            ..NewImage::default()
        })
        .await
        .expect("create");
    // The first lookup lists the project (the new image is in that listing too).
    assert_eq!(
        cache.get_image(&created.id).await.expect("get").id,
        created.id
    );
    let later = cache
        .create_image(&NewImage {
            name: Some(common::unique("remembered")),
            ..NewImage::default()
        })
        .await
        .expect("create after the listing");
    for _ in 0..3 {
        assert_eq!(
            cache.get_image(&later.id).await.expect("get").id,
            later.id,
            "an image created after the listing is served from the create's answer"
        );
    }
    cache
        .update_image(&later.id, &[PatchOp::SetName("patched".into())])
        .await
        .expect("update");
    assert_eq!(
        cache
            .get_image(&later.id)
            .await
            .expect("get")
            .name
            .as_deref(),
        Some("patched"),
        "the patch's answer replaces the cached image"
    );
    assert_eq!(proxy.seen(&get_one), 0, "no GET by id: {}", proxy.summary());
    assert_eq!(cache.listings(), 1);

    let api = bed.admin_of(&project);
    for id in [created.id, later.id] {
        api.delete(&id).await.expect("delete");
    }
}

/// The bed's Glance A knows one disk format (`glintfmt`) and one container format
/// (`glintbox`) beyond Glance's defaults, the way deployments configure their own.
#[tokio::test]
async fn images_in_formats_glint_does_not_know_are_listed_shown_and_round_trip() {
    let bed = glance_under_test!();
    let api = bed.admin_of(&common::unique_project());
    let tag = common::unique("odd");
    let known = api
        .create_image(&NewImage {
            name: Some(format!("{tag}-known")),
            tags: vec![tag.clone()],
            disk_format: Some(DiskFormat::Raw),
            ..NewImage::default()
        })
        .await
        .expect("create known");
    let odd = api
        .create_image(&NewImage {
            name: Some(format!("{tag}-odd")),
            tags: vec![tag.clone()],
            disk_format: Some(DiskFormat::from("glintfmt")),
            container_format: Some(ContainerFormat::from("glintbox")),
            ..NewImage::default()
        })
        .await
        .expect("Glance accepts the deployment's own formats, and so does glint's client");
    assert_eq!(odd.disk_format, Some(DiskFormat::Other("glintfmt".into())));
    assert_eq!(
        odd.container_format,
        Some(ContainerFormat::Other("glintbox".into()))
    );
    // One odd image does not break the page it is on.
    let query = ListQuery {
        tags: vec![tag.clone()],
        ..ListQuery::default()
    };
    let listed: Vec<_> = api
        .list_images(&query)
        .try_collect()
        .await
        .expect("the listing decodes");
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The unknown word goes back to Glance unchanged: a filter by it finds the image.
    let by_format = ListQuery {
        tags: vec![tag.clone()],
        properties: [("disk_format".to_string(), "glintfmt".to_string())].into(),
        ..ListQuery::default()
    };
    let found: Vec<_> = api
        .list_images(&by_format)
        .map_ok(|image| image.id)
        .try_collect()
        .await
        .expect("filter");
    assert_eq!(found, std::slice::from_ref(&odd.id));
    let shown = api
        .find_image(&odd.id)
        .await
        .expect("show")
        .expect("exists");
    assert_eq!(
        shown.disk_format.as_ref().map(DiskFormat::as_str),
        Some("glintfmt")
    );
    for id in [known.id, odd.id] {
        api.delete(&id).await.expect("delete");
    }
}
