//! glint's main job with nothing installed: `glint apply` / `plan` / `image` with no cloud
//! configured run against the embedded cloud, on the shipped offline examples, as the README's
//! first command does. Also the embedded cloud's own guarantees across a restart.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use glint::glance_server::Access;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");

/// A user with no clouds.yaml anywhere glint looks: a scratch HOME and working folder.
struct NewUser {
    home: PathBuf,
}

impl NewUser {
    fn new() -> Self {
        let home = std::env::temp_dir().join(common::unique("glint-new-user"));
        std::fs::create_dir_all(&home).expect("home");
        Self { home }
    }

    fn data_dir(&self) -> PathBuf {
        self.home.join(".local/share/glint")
    }

    /// Runs glint; (exit code, stdout, stderr).
    fn glint(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(args)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .env_remove("GLINT_DATA_DIR")
            .output()
            .expect("run glint");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for NewUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The md5 of the example disk as Glance should store it: unpacked.
fn example_disk_md5() -> String {
    use md5::Digest;
    let packed = std::fs::read(Path::new(EXAMPLES).join("images/hello.img.gz")).expect("example");
    let mut disk = Vec::new();
    flate2::read::GzDecoder::new(packed.as_slice())
        .read_to_end(&mut disk)
        .expect("gunzip");
    assert_eq!(disk.len(), 1024 * 1024, "the example is a 1 MiB disk");
    md5::Md5::digest(&disk)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn with_no_cloud_configured_apply_uses_the_embedded_cloud_and_a_second_apply_changes_nothing() {
    let user = NewUser::new();
    let (code, stdout, stderr) = user.glint(&["apply", "-f", EXAMPLES]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no cloud configured; using the embedded cloud in")
            && stderr.contains(&user.data_dir().display().to_string()),
        "{stderr}"
    );
    let md5 = example_disk_md5();
    for name in ["default/hello ", "default/hello-shared "] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {stdout}"));
        assert!(
            row.contains(" active ") && row.contains(" 1048576 ") && row.ends_with(&md5),
            "{row}"
        );
    }
    assert!(
        user.data_dir().join("metadata.redb").is_file(),
        "the cloud keeps its data"
    );

    let (code, again, stderr) = user.glint(&["apply", "-f", EXAMPLES]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(again.contains("no changes"), "{again}");

    let (code, listed, stderr) = user.glint(&["image", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains("hello-disk") && !listed.contains("hello-shared"),
        "hidden images stay out of the default listing: {listed}"
    );
}

#[test]
fn with_no_cloud_configured_the_embedded_cloud_stands_in_for_every_target() {
    let user = NewUser::new();
    let disk = Path::new(EXAMPLES).join("images/hello.img.gz");
    std::fs::write(
        user.home.join("everywhere.yaml"),
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: everywhere}}\nspec:\n  diskFormat: raw\n  source: {{url: 'file://{}'}}\n  targets:\n  - {{name: eu, cloudCredentialsRef: {{secretName: s, cloudName: fra}}}}\n  - {{name: us, cloudCredentialsRef: {{secretName: s, cloudName: iad}}, region: East}}\n",
            disk.display()
        ),
    )
    .expect("manifest");
    let (code, stdout, stderr) = user.glint(&["apply", "-f", "everywhere.yaml"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("using the embedded cloud"), "{stderr}");
    let md5 = example_disk_md5();
    let mut ids = Vec::new();
    for target in ["eu", "us"] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("default/everywhere@{target} ")))
            .unwrap_or_else(|| panic!("no row for {target}: {stdout}"));
        assert!(row.contains(" active ") && row.ends_with(&md5), "{row}");
        ids.push(row.split_whitespace().nth(1).map(str::to_string));
    }
    assert_ne!(ids[0], ids[1], "each target's own image");
    let (code, again, stderr) = user.glint(&["apply", "-f", "everywhere.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(again.contains("no changes"), "{again}");
}

#[test]
fn plan_after_an_edit_shows_each_change_and_exits_2() {
    let user = NewUser::new();
    let (code, _, stderr) = user.glint(&["apply", "-f", &format!("{EXAMPLES}/hello.yaml")]);
    assert_eq!(code, Some(0), "{stderr}");
    // The edited copy lives elsewhere, so its file: URL is made absolute.
    let original = std::fs::read_to_string(Path::new(EXAMPLES).join("hello.yaml")).expect("read");
    let edited = original
        .replace("minDiskGB: 1", "minDiskGB: 2")
        .replace(
            "tags: [example, offline]",
            "tags: [example, offline, edited]",
        )
        .replace(
            "url: file:images/hello.img.gz",
            &format!("url: file://{EXAMPLES}/images/hello.img.gz"),
        );
    let edited_path = user.home.join("hello.yaml");
    std::fs::write(&edited_path, edited).expect("write");
    let (code, plan, stderr) = user.glint(&["plan", "-f", edited_path.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{plan}\n{stderr}");
    assert!(plan.contains("min_disk: 1 -> 2"), "{plan}");
    assert!(
        plan.contains(r#"tags: ["example", "offline"] -> ["edited", "example", "offline"]"#),
        "{plan}"
    );
    assert!(
        !plan.contains("upload"),
        "the data is unchanged, so nothing is uploaded again: {plan}"
    );
}

#[test]
fn the_embedded_cloud_keeps_images_across_restarts_and_an_interrupted_upload_is_not_active() {
    let user = NewUser::new();
    let data_dir = user.home.join("cloud");
    let data_arg = data_dir.to_str().expect("utf-8").to_string();
    let (code, _, stderr) = user.glint(&[
        "apply",
        "--data-dir",
        &data_arg,
        "-f",
        &format!("{EXAMPLES}/hello.yaml"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    // A crash mid-upload, as the store finds it: a record left `saving` and a partial file.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let interrupted_id = runtime.block_on(async {
        let store = glint::glance_server::store::Store::open(&data_dir).expect("open");
        let mut image = glint::glance_server::image::ImageRecord::create(
            &serde_json::json!({"name": "half", "disk_format": "raw"}),
            "local",
            "2026-01-01T00:00:00Z",
            &Default::default(),
        )
        .expect("record");
        image.status = "saving".into();
        store.put(&image).expect("put");
        std::fs::write(store.partial_path(&image.id), b"half an image").expect("partial");
        image.id
    });
    let (code, shown, stderr) =
        user.glint(&["image", "--data-dir", &data_arg, "show", &interrupted_id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        shown.contains("queued"),
        "back to queued, as Glance does: {shown}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(data_dir.join("images"))
        .expect("images folder")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial data is removed: {leftovers:?}"
    );
    let (code, listed, stderr) = user.glint(&["image", "--data-dir", &data_arg, "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains("hello-disk"),
        "kept across restarts: {listed}"
    );
}

/// `glint cloud` in this process on a scratch folder, with a client; cleaned up when dropped.
struct TestCloud {
    running: glint::glance_server::RunningCloud,
    data_dir: PathBuf,
    http: reqwest::Client,
}

impl TestCloud {
    async fn start(access: glint::glance_server::Access) -> Self {
        let data_dir = std::env::temp_dir().join(common::unique("glint-cloud-http"));
        let running = glint::glance_server::start(glint::glance_server::CloudOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data_dir.clone(),
            access,
            policy: Default::default(),
            formats: Default::default(),
        })
        .await
        .expect("start");
        Self {
            running,
            data_dir,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.endpoint())
    }
}

/// Sends `request` and reads its JSON answer.
async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON body")
}

impl Drop for TestCloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[tokio::test]
async fn a_keystone_cloud_that_cannot_reach_its_keystone_answers_503_instead_of_guessing_who_calls()
{
    // Nothing listens on this port: Keystone is down.
    let port = common::harness::free_port();
    let cloud = TestCloud::start(Access::Keystone(format!("http://127.0.0.1:{port}/v3"))).await;
    let response = cloud
        .http
        .get(cloud.url("/v2/images"))
        .header("x-auth-token", "a-token-nobody-can-check")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.expect("Glance's error shape");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot validate tokens") && message.contains(&port.to_string()),
        "{body}"
    );
    let response = cloud
        .http
        .get(cloud.url("/v2/images"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "no token: refused before Keystone is asked"
    );
}

#[tokio::test]
async fn a_token_cloud_refuses_calls_without_it_but_serves_its_version_document() {
    let cloud = TestCloud::start(Access::Token("s3cret".into())).await;
    let (http, url) = (&cloud.http, |path: &str| cloud.url(path));
    let versions = http.get(url("/")).send().await.expect("versions");
    assert_eq!(versions.status().as_u16(), 300);
    let versions: serde_json::Value = versions.json().await.expect("json");
    assert_eq!(
        versions["versions"][0]["links"][0]["href"],
        cloud.url("/v2/"),
        "links point where the client reached the cloud"
    );
    let refused = http.get(url("/v2/images")).send().await.expect("list");
    assert_eq!(refused.status().as_u16(), 401);
    assert!(
        refused
            .headers()
            .get("x-openstack-request-id")
            .and_then(|id| id.to_str().ok())
            .is_some_and(|id| id.starts_with("req-")),
        "every answer has a request id"
    );
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(
        body["code"], "401 Unauthorized",
        "Glance's error shape: {body}"
    );
    let allowed = http
        .get(url("/v2/images"))
        .header("x-auth-token", "s3cret")
        .send()
        .await
        .expect("list");
    assert_eq!(allowed.status().as_u16(), 200);
}

#[tokio::test]
async fn the_compute_image_proxy_shows_images_with_novas_names() {
    let cloud = TestCloud::start(Access::Open).await;
    let (http, url) = (&cloud.http, |path: &str| cloud.url(path));
    let created = json_of(
        http.post(url("/v2/images"))
            .json(&serde_json::json!({"name": "nova-view", "min_disk": 3, "os_distro": "debian"})),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let detail = json_of(http.get(url("/v2.1/images/detail?name=nova-view"))).await;
    let image = &detail["images"][0];
    assert_eq!(image["id"], id);
    assert_eq!(
        (&image["status"], &image["progress"], &image["minDisk"]),
        (
            &serde_json::json!("SAVING"),
            &serde_json::json!(25),
            &serde_json::json!(3)
        ),
        "{image}"
    );
    assert_eq!(image["metadata"]["os_distro"], "debian");
    let deleted = http
        .delete(url(&format!("/v2.1/images/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    let since = http
        .get(url("/v2.1/images?changes-since=2000-01-01T00:00:00Z"))
        .send()
        .await
        .expect("changes-since");
    let since: serde_json::Value = since.json().await.expect("json");
    assert_eq!(
        since["images"][0]["id"], id,
        "changes-since shows deletions too"
    );
    let gone = http
        .get(url(&format!("/v2.1/images/{id}")))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status().as_u16(), 404);
}

#[test]
fn prune_deletes_only_images_an_earlier_apply_made_from_manifests_now_gone() {
    let user = NewUser::new();
    let (code, _, stderr) = user.glint(&["apply", "-f", EXAMPLES]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) =
        user.glint(&["image", "create", "made-by-hand", "--disk-format", "raw"]);
    assert_eq!(code, Some(0), "{stderr}");

    let only_hello = format!("{EXAMPLES}/hello.yaml");
    let (code, plan, stderr) = user.glint(&["plan", "--prune", "-f", &only_hello]);
    assert_eq!(code, Some(2), "{plan}\n{stderr}");
    assert!(
        plan.lines()
            .any(|line| line.starts_with("- default/hello-shared (") && line.contains("delete")),
        "{plan}"
    );
    assert!(!plan.contains("made-by-hand"), "{plan}");
    let (code, _, _) = user.glint(&["plan", "-f", &only_hello]);
    assert_eq!(code, Some(0), "without --prune nothing changes");

    let (code, applied, stderr) = user.glint(&["apply", "--prune", "-f", &only_hello]);
    assert_eq!(code, Some(0), "{applied}\n{stderr}");
    assert!(
        applied
            .lines()
            .any(|line| line.starts_with("default/hello-shared")
                && line.contains("deleted (pruned)")),
        "{applied}"
    );
    let (_, shown, _) = user.glint(&["image", "show", "made-by-hand"]);
    assert!(
        shown.contains("made-by-hand"),
        "an image apply did not make is kept: {shown}"
    );
    let (code, again, _) = user.glint(&["apply", "--prune", "-f", &only_hello]);
    assert_eq!(code, Some(0));
    assert!(again.contains("no changes"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glint_reaches_a_token_cloud_with_auth_type_token_and_no_keystone() {
    let cloud = TestCloud::start(Access::Token("s3cret".into())).await;
    let user = NewUser::new();
    let clouds = user.home.join("clouds.yaml");
    let yaml = |token: &str| {
        format!(
            "clouds:\n  local:\n    auth_type: token\n    auth: {{token: {token}}}\n    image_endpoint_override: {}\n",
            cloud.url("")
        )
    };
    let run = |token: &'static str| {
        std::fs::write(&clouds, yaml(token)).expect("clouds.yaml");
        let clouds = clouds.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_glint"))
                    .args(["image", "create", "with-token", "--disk-format", "raw"])
                    .env("OS_CLIENT_CONFIG_FILE", &clouds)
                    .env("OS_CLOUD", "local")
                    .output()
                    .expect("run glint")
            })
            .await
            .expect("join")
        }
    };
    let refused = run("wrong").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    let created = run("s3cret").await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).starts_with("created "));
}

#[tokio::test]
async fn the_task_api_lists_imports_to_their_owner_only() {
    let cloud = TestCloud::start(Access::Open).await;
    let (http, url) = (&cloud.http, |path: &str| cloud.url(path));
    let as_project = |request: reqwest::RequestBuilder, project: &str| {
        request
            .header("x-identity-status", "Confirmed")
            .header("x-project-id", project)
            .header("x-roles", "member")
    };
    let created = json_of(
        as_project(http.post(url("/v2/images")), "p1")
            .json(&serde_json::json!({"name": "staged", "disk_format": "raw"})),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_string();
    let staged = as_project(http.put(url(&format!("/v2/images/{id}/stage"))), "p1")
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 4096])
        .send()
        .await
        .expect("stage");
    assert_eq!(staged.status().as_u16(), 204);
    let imported = as_project(http.post(url(&format!("/v2/images/{id}/import"))), "p1")
        .json(&serde_json::json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .expect("import");
    assert_eq!(imported.status().as_u16(), 202);
    let tasks_of = |project: &'static str| {
        let request = as_project(http.get(url("/v2/tasks")), project);
        async move {
            let body = json_of(request).await;
            body["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| panic!("no tasks in {body}"))
        }
    };
    let mine = tasks_of("p1").await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["image_id"], id.as_str());
    assert_eq!(mine[0]["owner"], "p1");
    assert!(tasks_of("p2").await.is_empty(), "another project sees none");
    let task_id = mine[0]["id"].as_str().expect("task id");
    let one = http
        .get(url(&format!("/v2/tasks/{task_id}")))
        .send()
        .await
        .expect("task");
    assert_eq!(
        one.status().as_u16(),
        200,
        "the administrator sees it by id"
    );
}
