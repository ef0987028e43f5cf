//! Auth tests against the real Keystone and the Glance behind it: password and application
//! credential logins, a wrong password, token caching, renewal and re-issue after revocation,
//! tokens kept between CLI runs (`cache: {auth: true}`), and proof that no secret reaches a
//! log line, an error or Debug output.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keystone::{admin_token, cloud_yaml, demo_token, password_auth};

use std::time::Duration;

use glint::auth::{AuthOptions, Authenticator, CloudsFile, TokenStore};
use glint::glance::{GlanceApi, GlanceClient, ListQuery};
use secrecy::ExposeSecret;

fn authenticator(yaml: &str, options: AuthOptions) -> Authenticator {
    let file = CloudsFile::from_bytes(yaml.as_bytes()).expect("clouds.yaml");
    Authenticator::from_cloud(file.cloud("bed").expect("cloud"), options).expect("authenticator")
}

async fn list_once(api: &GlanceClient) {
    api.list_page(
        &ListQuery {
            page_size: Some(1),
            ..ListQuery::default()
        },
        None,
    )
    .await
    .expect("list images through Keystone");
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_password_login_reaches_glance_through_the_catalog_and_caches_its_token() {
    let bed = require_testbed!();
    let auth = authenticator(&bed.demo_cloud(), AuthOptions::default());
    let api = GlanceClient::new(auth.clone());
    for _ in 0..3 {
        list_once(&api).await;
    }
    assert_eq!(
        auth.tokens_issued(),
        1,
        "one token serves every call until it nears expiry"
    );
    assert_eq!(
        auth.project_id().await.expect("project"),
        Some(bed.demo_project_id.clone())
    );
    assert_eq!(
        auth.image_endpoint()
            .await
            .expect("endpoint")
            .trim_end_matches('/'),
        bed.keystone_glance_url.trim_end_matches('/')
    );
    assert!(
        api.api_version()
            .await
            .expect("version")
            .is_some_and(|v| v.starts_with("2."))
    );
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_token_is_renewed_at_half_its_life_when_that_is_shorter_than_the_margin() {
    let bed = require_testbed!();
    // A Keystone whose tokens live 8 s (the bed's database and keys): shorter than the
    // 5-minute renew margin, so a token is kept for half its life, not renewed per call.
    let keystone = common::keystone::ShortLivedKeystone::start(&bed, 8);
    let yaml = bed.demo_cloud().replace(&bed.keystone_url, &keystone.url);
    let auth = authenticator(&yaml, AuthOptions::default());
    let api = GlanceClient::new(auth.clone());
    list_once(&api).await;
    list_once(&api).await;
    assert_eq!(
        auth.tokens_issued(),
        1,
        "one token for calls within half its life"
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    list_once(&api).await;
    assert_eq!(
        auth.tokens_issued(),
        2,
        "renewed past half its life, before it expired"
    );
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_revoked_token_is_reissued_once_and_the_call_succeeds() {
    let bed = require_testbed!();
    let auth = authenticator(&bed.demo_cloud(), AuthOptions::default());
    let api = GlanceClient::new(auth.clone());
    // A token Glance has never seen: Glance caches a validated token for 5 minutes, as
    // deployments do, so only an unseen one is checked with Keystone (and refused) at once.
    let held = auth.credential().await.expect("credential");
    assert_eq!(auth.tokens_issued(), 1);
    let held_token = held
        .auth_token()
        .expect("a Keystone credential carries a token")
        .expose_secret()
        .to_string();
    let admin = admin_token(&bed).await;
    let revoked = reqwest::Client::new()
        .delete(format!("{}/auth/tokens", bed.keystone_url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &held_token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status().as_u16(), 204);
    // Glance now answers 401 to the held token; glint drops it, issues a new one, and the call
    // succeeds without the caller seeing the 401.
    list_once(&api).await;
    assert_eq!(auth.tokens_issued(), 2, "exactly one re-issue");
    let fresh = auth.credential().await.expect("credential");
    assert_ne!(
        fresh.auth_token().expect("token").expose_secret(),
        held_token.as_str()
    );
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn an_application_credential_logs_in_without_a_project() {
    let bed = require_testbed!();
    let token = demo_token(&bed).await;
    let name = common::unique("appcred");
    let response = reqwest::Client::new()
        .post(format!("{}/users/{}/application_credentials", bed.keystone_url, bed.demo_user_id))
        .header("x-auth-token", &token)
                // Without explicit roles Keystone copies the token's, implied ones included, and then
        // refuses those the user holds only by implication.
        .json(&serde_json::json!({"application_credential": {"name": name, "roles": [{"name": "member"}]}}))
        .send()
        .await
        .expect("create application credential");
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().await.unwrap_or_default()
    );
    let body: serde_json::Value = response.json().await.expect("body");
    let id = body["application_credential"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let secret = body["application_credential"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    for credential in [
        format!("application_credential_id: {id}"),
        format!(
            "application_credential_name: {name}\n      user_id: {}",
            bed.demo_user_id
        ),
    ] {
        let yaml = cloud_yaml(
            &bed,
            "v3applicationcredential",
            &format!("      {credential}\n      application_credential_secret: {secret}\n"),
        );
        let auth = authenticator(&yaml, AuthOptions::default());
        list_once(&GlanceClient::new(auth.clone())).await;
        assert_eq!(
            auth.project_id().await.expect("project"),
            Some(bed.demo_project_id.clone())
        );
    }
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_wrong_password_is_a_clear_final_error() {
    let bed = require_testbed!();
    let auth = authenticator(
        &password_auth(&bed, "not-the-password-7731"),
        AuthOptions::default(),
    );
    let err = GlanceClient::new(auth)
        .list_page(&ListQuery::default(), None)
        .await
        .expect_err("wrong password");
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert_eq!(err.reason().as_str(), "AuthenticationFailed");
    assert!(
        text.contains("refused the credentials") && text.contains("check the user, password"),
        "{text}"
    );
    assert!(!text.contains("not-the-password-7731"), "{text}");
}

/// A folder removed at the end of a test.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(common::unique(prefix));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The token files in a store folder, and each one's token.
fn kept_tokens(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let body: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let token = body["token"].as_str().expect("token").to_string();
            (path, token)
        })
        .collect()
}

/// `glint image list` as a user runs it, with this clouds.yaml and cache folder.
fn glint_image_list(clouds: &std::path::Path, cache: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_glint"))
        .args(["image", "list"])
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env("OS_CLOUD", "bed")
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run glint");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn with_cache_auth_a_cli_run_uses_the_token_the_last_run_kept_and_only_for_the_same_secret() {
    let bed = require_testbed!();
    // A Keystone of the bed's own, so that its log counts this test's tokens only.
    let keystone = common::keystone::ShortLivedKeystone::start(&bed, 3600);
    let scratch = Scratch::new("kept-tokens");
    let cache = scratch.0.join("cache");
    let cloud = bed.demo_cloud().replace(&bed.keystone_url, &keystone.url);
    let kept = scratch.0.join("kept.yaml");
    std::fs::write(&kept, format!("cache:\n  auth: true\n{cloud}")).expect("clouds.yaml");

    for run in 1..=3 {
        let (ok, stderr) = glint_image_list(&kept, &cache);
        assert!(ok, "run {run}: {stderr}");
    }
    assert_eq!(
        keystone.tokens_issued(),
        1,
        "three runs, one token: the later runs use the kept one"
    );
    let tokens = kept_tokens(&cache.join("glint/tokens"));
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let (file, token) = &tokens[0];
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(file), 0o600, "only its owner reads a token");
    assert_eq!(mode(&cache.join("glint/tokens")), 0o700);
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        !name.contains("demo") && !name.contains(&bed.demo_password),
        "the file name gives nothing away: {name}"
    );

    // Another password is another secret: the kept token is not offered for it, and Keystone
    // refuses the wrong one.
    let wrong = scratch.0.join("wrong.yaml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&kept)
            .expect("read")
            .replace(&bed.demo_password, "not-the-password-5521"),
    )
    .expect("clouds.yaml");
    let (ok, stderr) = glint_image_list(&wrong, &cache);
    assert!(!ok, "a wrong password must not ride on a kept token");
    assert!(stderr.contains("refused the credentials"), "{stderr}");

    // Without the setting nothing is kept and every run asks Keystone.
    let plain = scratch.0.join("plain.yaml");
    std::fs::write(&plain, &cloud).expect("clouds.yaml");
    let fresh_cache = scratch.0.join("fresh-cache");
    let before = keystone.tokens_issued();
    for _ in 0..2 {
        let (ok, stderr) = glint_image_list(&plain, &fresh_cache);
        assert!(ok, "{stderr}");
    }
    assert_eq!(keystone.tokens_issued(), before + 2);
    assert!(!fresh_cache.exists(), "nothing written without cache.auth");
    assert_eq!(kept_tokens(&cache.join("glint/tokens"))[0].1, *token);
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_kept_token_keystone_revoked_is_replaced_and_the_call_succeeds() {
    let bed = require_testbed!();
    let scratch = Scratch::new("revoked-kept");
    let options = || AuthOptions {
        token_store: Some(TokenStore::at(&scratch.0)),
        ..AuthOptions::default()
    };
    // One run issues and keeps a token that Glance has not seen (Glance caches a validated
    // token for 5 minutes: only an unseen one is checked, and refused, at once).
    let first = authenticator(&bed.demo_cloud(), options());
    first.credential().await.expect("credential");
    let [(_, revoked_token)] = kept_tokens(&scratch.0).try_into().expect("one kept token");
    let admin = admin_token(&bed).await;
    let revoked = reqwest::Client::new()
        .delete(format!("{}/auth/tokens", bed.keystone_url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &revoked_token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status().as_u16(), 204);

    let next = authenticator(&bed.demo_cloud(), options());
    list_once(&GlanceClient::new(next.clone())).await;
    assert_eq!(next.tokens_issued(), 1, "refused once, issued once");
    let [(_, kept_now)] = kept_tokens(&scratch.0).try_into().expect("one kept token");
    assert_ne!(kept_now, revoked_token, "the refused token is not kept");
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_kept_token_closer_to_expiry_than_the_renew_margin_is_not_used() {
    let bed = require_testbed!();
    // Tokens of 8 s: a kept one always has less than the 5-minute margin left.
    let keystone = common::keystone::ShortLivedKeystone::start(&bed, 8);
    let yaml = bed.demo_cloud().replace(&bed.keystone_url, &keystone.url);
    let scratch = Scratch::new("expiring-kept");
    let options = || AuthOptions {
        token_store: Some(TokenStore::at(&scratch.0)),
        ..AuthOptions::default()
    };
    let first = authenticator(&yaml, options());
    list_once(&GlanceClient::new(first.clone())).await;
    assert_eq!(kept_tokens(&scratch.0).len(), 1);
    let next = authenticator(&yaml, options());
    list_once(&GlanceClient::new(next.clone())).await;
    assert_eq!(
        next.tokens_issued(),
        1,
        "a fresh token, not one about to expire"
    );
    assert_eq!(keystone.tokens_issued(), 2);
}
