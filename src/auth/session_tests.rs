//! The renew rule and the first-use gate of [`super::Authenticator`].

use super::*;
use crate::auth::CloudsFile;

#[test]
fn a_token_is_renewed_a_margin_before_expiry_or_at_half_its_life_whichever_is_later() {
    let now: Timestamp = "2026-12-06T12:00:00Z".parse().expect("time");
    let at = |text: &str| -> Timestamp { text.parse().expect("time") };
    let five_minutes = SignedDuration::from_secs(300);
    for (expires, renewed, why) in [
        (
            "2026-12-06T13:00:00Z",
            "2026-12-06T12:55:00Z",
            "an hour's token: 5 min before",
        ),
        (
            "2026-12-06T12:06:00Z",
            "2026-12-06T12:03:00Z",
            "6 min: at half its life",
        ),
        (
            "2026-12-06T12:00:20Z",
            "2026-12-06T12:00:10Z",
            "20 s: at half its life",
        ),
        (
            "2026-12-06T11:59:00Z",
            "2026-12-06T11:59:00Z",
            "already expired: at once",
        ),
    ] {
        assert_eq!(
            renew_at(now, at(expires), five_minutes),
            at(renewed),
            "{why}"
        );
    }
}

fn keystone_authenticator() -> Authenticator {
    let yaml = b"clouds:\n  c:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      user_id: u\n      password: p\n";
    let file = CloudsFile::from_bytes(yaml).expect("clouds.yaml");
    Authenticator::from_cloud(file.cloud("c").expect("cloud"), AuthOptions::default())
        .expect("authenticator")
}

fn credential(generation: u64) -> Credential {
    Credential {
        headers: Vec::new(),
        generation,
    }
}

#[tokio::test]
async fn a_new_token_goes_out_alone_until_the_service_has_answered_it() {
    let auth = keystone_authenticator();
    let first = auth.first_use(&credential(1)).await;
    assert!(
        first.is_some(),
        "the first request with a new token goes first"
    );
    let second = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        auth.first_use(&credential(1)),
    )
    .await;
    assert!(second.is_err(), "a second request waits for the first");
    auth.answered(&credential(1));
    drop(first);
    assert!(
        auth.first_use(&credential(1)).await.is_none(),
        "once the service answered it, nobody waits"
    );
    assert!(
        auth.first_use(&credential(2)).await.is_some(),
        "a renewed token goes out alone again"
    );
}

#[tokio::test]
async fn requests_without_a_keystone_token_never_wait() {
    let identity = TrustedIdentity {
        project_id: "p1".into(),
        user_id: "u1".into(),
        roles: vec!["member".into()],
    };
    let auth = Authenticator::trusted_headers("http://127.0.0.1:9", &identity).expect("auth");
    assert!(auth.first_use(&credential(0)).await.is_none());
    assert!(auth.first_use(&credential(1)).await.is_none());
}
