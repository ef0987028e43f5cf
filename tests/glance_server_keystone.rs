//! `glint cloud --keystone`: the embedded cloud identifies each caller by its Keystone token,
//! validated by the bed's real Keystone, so projects, members and the admin role count as they
//! do in Glance (with auth none everyone is the administrator).
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::Testbed;
use common::keystone::{admin_token, demo_token};
use glint::glance::GlanceApi;
use glint::glance_server::{Access, CloudOptions, RunningCloud};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `glint cloud` in this process behind the bed's Keystone, on a scratch folder.
struct KeystoneCloud {
    running: RunningCloud,
    data_dir: PathBuf,
    http: reqwest::Client,
}

impl KeystoneCloud {
    async fn start(auth_url: &str) -> Self {
        let data_dir = std::env::temp_dir().join(common::unique("glint-cloud-keystone"));
        let running = glint::glance_server::start(CloudOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data_dir.clone(),
            access: Access::Keystone(auth_url.to_string()),
            policy: Default::default(),
            formats: Default::default(),
        })
        .await
        .expect("glint cloud starts");
        Self {
            running,
            data_dir,
            http: reqwest::Client::new(),
        }
    }

    /// (status, JSON body or Null) of one call with this token (or none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Value)>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.running.endpoint()));
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        if let Some((content_type, body)) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates an image as the token's holder; its record.
    async fn create(&self, token: &str, body: Value) -> Value {
        let (status, image) = self
            .call(
                Method::POST,
                "/v2/images",
                Some(token),
                Some(("application/json", body)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{image}");
        image
    }

    async fn listed(&self, token: &str, id: &str) -> bool {
        let (status, page) = self
            .call(Method::GET, "/v2/images?limit=1000", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["images"]
            .as_array()
            .expect("images")
            .iter()
            .any(|image| image["id"] == id)
    }
}

impl Drop for KeystoneCloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

async fn tokens(bed: &Testbed) -> (String, String) {
    (demo_token(bed).await, admin_token(bed).await)
}

#[tokio::test]
#[ignore = "needs the real services (Keystone): scripts/test runs it"]
async fn calls_without_a_token_keystone_accepts_are_refused_but_the_version_document_is_open() {
    let bed = require_testbed!();
    let cloud = KeystoneCloud::start(&bed.keystone_url).await;
    let (status, _) = cloud.call(Method::GET, "/v2/images", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
    let (status, body) = cloud
        .call(Method::GET, "/v2/images", Some("gAAAAAnot-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token Keystone refuses");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid")),
        "{body}"
    );
    let (status, versions) = cloud.call(Method::GET, "/versions", None, None).await;
    assert_eq!(
        status,
        StatusCode::MULTIPLE_CHOICES,
        "as Glance answers: {versions}"
    );
    assert!(
        versions["versions"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    let (demo, _) = tokens(&bed).await;
    let (status, _) = cloud
        .call(Method::GET, "/v2/images", Some(&demo), None)
        .await;
    assert_eq!(status, StatusCode::OK, "a token Keystone accepts");
}

#[tokio::test]
#[ignore = "needs the real services (Keystone): scripts/test runs it"]
async fn each_token_acts_as_its_project_and_only_the_admin_role_publicizes_or_sees_all() {
    let bed = require_testbed!();
    let cloud = KeystoneCloud::start(&bed.keystone_url).await;
    let (demo, admin) = tokens(&bed).await;
    let mine = cloud
        .create(&demo, json!({"name": common::unique("demo-owned")}))
        .await;
    assert_eq!(
        mine["owner"], bed.demo_project_id,
        "owned by the token's project"
    );
    let id = mine["id"].as_str().expect("id");
    let publicize = json!([{"op": "replace", "path": "/visibility", "value": "public"}]);
    let patch = Some((glint::glance_server::routes::PATCH_MEDIA_TYPE, publicize));
    let (status, _) = cloud
        .call(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            Some(&demo),
            patch.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member may not publicize");
    let (status, patched) = cloud
        .call(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            Some(&admin),
            patch,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the admin may: {patched}");

    let private = cloud
        .create(
            &admin,
            json!({"name": common::unique("admin-private"), "visibility": "private"}),
        )
        .await;
    assert_ne!(private["owner"], bed.demo_project_id);
    let private_id = private["id"].as_str().expect("id");
    let (status, _) = cloud
        .call(
            Method::GET,
            &format!("/v2/images/{private_id}"),
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another project's private image"
    );
    assert!(!cloud.listed(&demo, private_id).await);
    assert!(cloud.listed(&admin, private_id).await);
    assert!(
        cloud.listed(&admin, id).await,
        "the admin lists every project's images"
    );
}

#[tokio::test]
#[ignore = "needs the real services (Keystone): scripts/test runs it"]
async fn a_share_is_listed_by_the_member_only_once_it_accepts_and_only_the_member_may_accept() {
    let bed = require_testbed!();
    let cloud = KeystoneCloud::start(&bed.keystone_url).await;
    let (demo, admin) = tokens(&bed).await;
    let shared = cloud
        .create(
            &admin,
            json!({"name": common::unique("shared-by-admin"), "visibility": "shared"}),
        )
        .await;
    let id = shared["id"].as_str().expect("id");
    let (status, _) = cloud
        .call(
            Method::POST,
            &format!("/v2/images/{id}/members"),
            Some(&admin),
            Some(("application/json", json!({"member": bed.demo_project_id}))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!cloud.listed(&demo, id).await, "pending: not listed yet");
    let (status, _) = cloud
        .call(Method::GET, &format!("/v2/images/{id}"), Some(&demo), None)
        .await;
    assert_eq!(status, StatusCode::OK, "a member sees the image by id");
    let accept = json!({"status": "accepted"});
    let (status, _) = cloud
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/members/{}", bed.demo_project_id),
            Some(&demo),
            Some(("application/json", accept.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the member accepts");
    assert!(cloud.listed(&demo, id).await, "accepted: listed");

    // The other way round: the owner is an ordinary project and may not answer for its member.
    let own = cloud
        .create(
            &demo,
            json!({"name": common::unique("shared-by-demo"), "visibility": "shared"}),
        )
        .await;
    let own_id = own["id"].as_str().expect("id");
    let member = shared["owner"].as_str().expect("the admin's project");
    let (status, _) = cloud
        .call(
            Method::POST,
            &format!("/v2/images/{own_id}/members"),
            Some(&demo),
            Some(("application/json", json!({"member": member}))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cloud
        .call(
            Method::PUT,
            &format!("/v2/images/{own_id}/members/{member}"),
            Some(&demo),
            Some(("application/json", accept)),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the owner may not accept for its member"
    );
}

#[tokio::test]
#[ignore = "needs the real services (Keystone): scripts/test runs it"]
async fn glint_reaches_a_keystone_cloud_with_an_ordinary_password_clouds_yaml() {
    let bed = require_testbed!();
    let cloud = KeystoneCloud::start(&bed.keystone_url).await;
    let yaml = format!(
        "{}    image_endpoint_override: {}\n",
        bed.demo_cloud(),
        cloud.running.endpoint()
    );
    let api = common::harness::client_for(&yaml);
    let name = common::unique("via-glint");
    let created = api
        .create_image(&glint::glance::NewImage {
            name: Some(name.clone()),
            disk_format: Some(glint::glance::DiskFormat::Raw),
            container_format: Some(glint::glance::ContainerFormat::Bare),
            ..Default::default()
        })
        .await
        .expect("create through Keystone auth");
    assert_eq!(created.owner.as_deref(), Some(bed.demo_project_id.as_str()));
    api.upload(&created.id, common::stream_of(b"data"), Some(4))
        .await
        .expect("upload");
    let stored = api.get_image(&created.id).await.expect("get");
    assert_eq!(stored.size, Some(4));
}
