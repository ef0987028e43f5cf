//! Proof that no secret (password, token, application credential secret) reaches a log line
//! at TRACE level, an error message or Debug output, through successful and failed logins.
//! Its own test binary because it installs the process-wide tracing subscriber.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::keystone::{cloud_yaml, demo_token, password_auth};
use glint::auth::{AuthOptions, Authenticator, CloudsFile};
use glint::glance::{GlanceApi, GlanceClient, ListQuery};

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let bed = require_testbed!();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global, not scoped: this binary holds this one test, and a scoped subscriber can miss
    // events whose callsites another thread registered first.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let token = demo_token(&bed).await;
    let wrong = "wrong-pw-for-the-log-test-5512";
    let mut shown = String::new();
    for yaml in [
        bed.demo_cloud(),
        password_auth(&bed, wrong),
        cloud_yaml(
            &bed,
            "v3token",
            &format!(
                "      token: {token}\n      project_id: {}\n",
                bed.demo_project_id
            ),
        ),
    ] {
        let file = CloudsFile::from_bytes(yaml.as_bytes()).expect("clouds.yaml");
        let cloud = file.cloud("bed").expect("cloud");
        shown.push_str(&format!("{file:?}{cloud:?}"));
        let auth = Authenticator::from_cloud(cloud, AuthOptions::default()).expect("authenticator");
        shown.push_str(&format!("{auth:?}"));
        if let Ok(credential) = auth.credential().await {
            shown.push_str(&format!("{credential:?}"));
        }
        match GlanceClient::new(auth)
            .list_page(&ListQuery::default(), None)
            .await
        {
            Ok(page) => shown.push_str(&format!("{page:?}")),
            Err(err) => shown.push_str(&format!("{err} {err:?}")),
        }
    }
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("glance call"),
        "the capture really saw glint's logs"
    );
    for secret in [bed.demo_password.as_str(), wrong, token.as_str()] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(
            !shown.contains(secret),
            "a secret is in Debug or error output"
        );
    }
}
