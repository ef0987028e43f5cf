//! glint cloud's metadata definitions API over HTTP, offline: the status codes, headers and
//! paths clients rely on, who may write, and that the catalogue survives a restart. Glance's
//! own conformance tests (scripts/tempest, in CI) run the same API against the real Glance and
//! glint cloud side by side; the rules themselves are table-tested in src/glance_server/metadefs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use glint::glance_server::{Access, CloudOptions, RunningCloud};
use serde_json::{Value, json};

async fn start(data_dir: &Path) -> RunningCloud {
    // The previous cloud on this folder lets go of its database once its connections close.
    let mut attempts = 0;
    loop {
        let started = glint::glance_server::start(CloudOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data_dir.to_path_buf(),
            access: Access::Open,
            policy: Default::default(),
            formats: Default::default(),
        })
        .await;
        match started {
            Ok(cloud) => return cloud,
            Err(_) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("the cloud does not start again: {err}"),
        }
    }
}

/// One call: its status, its Location header and its JSON body (null when empty).
async fn call(
    http: &reqwest::Client,
    cloud: &RunningCloud,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    project: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = http.request(method, format!("{}{path}", cloud.endpoint()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(project) = project {
        request = request
            .header("x-identity-status", "Confirmed")
            .header("x-project-id", project)
            .header("x-roles", "member");
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().expect("text").to_string());
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON")
    };
    (status, location, body)
}

#[tokio::test]
async fn a_namespace_is_created_filled_and_read_over_http_and_kept_across_a_restart() {
    use reqwest::Method;
    let data_dir = std::env::temp_dir().join(common::unique("glint-metadefs"));
    let cloud = start(&data_dir).await;
    let http = reqwest::Client::new();

    let types = call(
        &http,
        &cloud,
        Method::GET,
        "/v2/metadefs/resource_types",
        None,
        None,
    )
    .await;
    assert_eq!(types.0, 200);
    assert_eq!(types.2["resource_types"][0]["name"], "OS::Glance::Image");

    let namespace = json!({"namespace": "glint-test", "visibility": "private", "protected": true});
    let created = call(
        &http,
        &cloud,
        Method::POST,
        "/v2/metadefs/namespaces",
        Some(namespace),
        None,
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.2);
    assert_eq!(
        created.1.as_deref(),
        Some("/v2/metadefs/namespaces/glint-test")
    );
    assert_eq!(created.2["self"], "/v2/metadefs/namespaces/glint-test");

    let ns = "/v2/metadefs/namespaces/glint-test";
    let steps = [
        (
            Method::POST,
            format!("{ns}/resource_types"),
            Some(json!({"name": "OS::Glance::Image", "prefix": "hw_"})),
            201,
        ),
        (
            Method::POST,
            format!("{ns}/properties"),
            Some(json!({"name": "cpu_cores", "title": "Cores", "type": "integer"})),
            201,
        ),
        (
            Method::POST,
            format!("{ns}/objects"),
            Some(json!({"name": "CPU", "required": ["cpu_cores"]})),
            201,
        ),
        (
            Method::POST,
            format!("{ns}/tags"),
            Some(json!({"tags": [{"name": "a"}, {"name": "b"}]})),
            201,
        ),
        (Method::POST, format!("{ns}/tags/c"), None, 201),
        (Method::POST, format!("{ns}/tags/c"), None, 409),
        (
            Method::PUT,
            format!("{ns}/tags/c"),
            Some(json!({"name": "d"})),
            200,
        ),
        (Method::DELETE, format!("{ns}/tags/a"), None, 403),
        (Method::DELETE, ns.to_string(), None, 403),
        (Method::PATCH, ns.to_string(), Some(json!({})), 405),
        (
            Method::GET,
            format!("{ns}/resource_types/OS::Glance::Image"),
            None,
            405,
        ),
        (Method::DELETE, format!("{ns}/resource_types"), None, 405),
        (Method::GET, format!("{ns}/colours"), None, 404),
        (
            Method::GET,
            "/v2/metadefs/namespaces/missing".to_string(),
            None,
            404,
        ),
    ];
    for (method, path, body, expected) in steps {
        let (status, _, answer) = call(&http, &cloud, method.clone(), &path, body, None).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // A member of another project does not see a private namespace, nor may it write.
    let hidden = call(&http, &cloud, Method::GET, ns, None, Some("someone")).await;
    assert_eq!(hidden.0, 404);
    let refused = call(
        &http,
        &cloud,
        Method::POST,
        "/v2/metadefs/namespaces",
        Some(json!({"namespace": "theirs"})),
        Some("someone"),
    )
    .await;
    assert_eq!(refused.0, 403);
    // Schemas are for everyone, under their two-segment paths.
    let schema = call(
        &http,
        &cloud,
        Method::GET,
        "/v2/schemas/metadefs/resource_types",
        None,
        Some("someone"),
    )
    .await;
    assert_eq!(
        (schema.0, schema.2["name"].as_str()),
        (200, Some("resource_type_associations"))
    );

    drop(http);
    drop(cloud);
    let cloud = start(&data_dir).await;
    let http = reqwest::Client::new();
    let (status, _, shown) = call(
        &http,
        &cloud,
        Method::GET,
        &format!("{ns}?resource_type=OS::Glance::Image"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["properties"]["hw_cpu_cores"]["title"], "Cores",
        "{shown}"
    );
    assert_eq!(shown["objects"][0]["required"], json!(["hw_cpu_cores"]));
    let mut tags: Vec<&str> = shown["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|tag| tag["name"].as_str())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["a", "b", "d"]);
    let _ = std::fs::remove_dir_all(&data_dir);
}
