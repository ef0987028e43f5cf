//! Callers identified by Keystone, as keystonemiddleware identifies them for Glance: each
//! request's `X-Auth-Token` is validated with Keystone, and its project and roles decide what
//! the caller sees and may change, so several projects share one `glint cloud` the way they
//! share a Glance.
//!
//! A token validates itself (`GET /v3/auth/tokens` with the token as both `X-Auth-Token` and
//! `X-Subject-Token`, which Keystone's default policy allows its subject), so the cloud needs
//! no service account of its own. Answers are cached per token for at most five minutes (the
//! time keystonemiddleware caches them in a Glance deployment), never past the token's expiry,
//! for a bounded number of tokens. A Keystone answer is untrusted input: bounded in time and
//! size, and anything unreadable refuses the request instead of guessing an identity.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::CloudError;
use super::caller::Caller;

/// How long a validated token is believed before Keystone is asked again (revocations show
/// within this time, as with keystonemiddleware's default cache).
const CACHE_FOR: Duration = Duration::from_secs(300);
/// Tokens remembered at once; past this the expired ones go, then all of them.
const MAX_CACHED: usize = 4096;
/// A token document without its catalog is a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates tokens with one Keystone and remembers the answers.
pub struct KeystoneTokens {
    http: reqwest::Client,
    tokens_url: String,
    cache: Mutex<HashMap<String, Remembered>>,
}

struct Remembered {
    caller: Caller,
    until: Instant,
}

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub project: Option<String>,
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// Seconds the token stays valid from now (0 when it has expired).
    pub valid_for: u64,
}

impl KeystoneTokens {
    /// For the Keystone at `auth_url` (with or without `/v3`, as in clouds.yaml).
    pub fn new(auth_url: &str) -> Result<Self, CloudError> {
        let root = auth_url.trim_end_matches('/');
        let root = root.strip_suffix("/v3").unwrap_or(root);
        let http = crate::http::build_client(&crate::http::HttpOptions::default())
            .map_err(|err| CloudError::IdentityUnavailable(format!("HTTP client: {err}")))?;
        Ok(Self {
            http,
            tokens_url: format!("{root}/v3/auth/tokens?nocatalog"),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The caller a request's token stands for, or 401 when it carries none or a token
    /// Keystone does not accept.
    pub async fn caller(&self, token: Option<&str>) -> Result<Caller, CloudError> {
        let token = token.filter(|token| !token.is_empty()).ok_or_else(|| {
            CloudError::Unauthorized("This server could not verify that you are authorized to access the document you requested: send a Keystone token in X-Auth-Token.".into())
        })?;
        if let Some(caller) = self.remembered(token) {
            return Ok(caller);
        }
        let identity = self.ask(token).await?;
        let caller = Caller::identified(identity.project, identity.user, &identity.roles);
        self.remember(
            token,
            &caller,
            CACHE_FOR.min(Duration::from_secs(identity.valid_for)),
        );
        Ok(caller)
    }

    fn remembered(&self, token: &str) -> Option<Caller> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(token)
            .filter(|entry| entry.until > Instant::now())
            .map(|entry| entry.caller.clone())
    }

    fn remember(&self, token: &str, caller: &Caller, duration: Duration) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, entry| entry.until > now);
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(
            token.to_string(),
            Remembered {
                caller: caller.clone(),
                until: now + duration,
            },
        );
    }

    async fn ask(&self, token: &str) -> Result<TokenIdentity, CloudError> {
        let unavailable = |detail: String| {
            CloudError::IdentityUnavailable(format!(
                "Keystone at {} cannot validate tokens now: {detail}",
                self.tokens_url
            ))
        };
        let mut response = self
            .http
            .get(&self.tokens_url)
            .header("x-auth-token", token)
            .header("x-subject-token", token)
            .timeout(ASK_TIMEOUT)
            .send()
            .await
            .map_err(|err| unavailable(crate::http::describe_http_error(err)))?;
        let status = response.status().as_u16();
        if matches!(status, 401 | 403 | 404) {
            return Err(CloudError::Unauthorized(
                "The token in X-Auth-Token is not valid (Keystone refused it): get a new one."
                    .into(),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| unavailable(crate::http::describe_http_error(err)))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_ANSWER_BYTES {
                return Err(unavailable(format!(
                    "its answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status != 200 {
            return Err(unavailable(format!("it answered {status}")));
        }
        identity_of(&body, jiff::Timestamp::now()).map_err(unavailable)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: TokenDocument,
}

#[derive(Deserialize)]
struct TokenDocument {
    expires_at: jiff::Timestamp,
    #[serde(default)]
    project: Option<IdOnly>,
    #[serde(default)]
    user: Option<IdOnly>,
    #[serde(default)]
    roles: Vec<NameOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct NameOnly {
    name: String,
}

/// Reads Keystone's token document as of `now`. A token without a project scope (domain or
/// system scoped, or unscoped) acts as no project, so it owns nothing and sees only what is
/// public, unless its roles make it an administrator.
pub fn identity_of(body: &[u8], now: jiff::Timestamp) -> Result<TokenIdentity, String> {
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|err| format!("an unreadable token document: {err}"))?;
    let token = answer.token;
    let valid_for = token
        .expires_at
        .duration_since(now)
        .as_secs()
        .max(0)
        .unsigned_abs();
    Ok(TokenIdentity {
        project: token.project.map(|project| project.id),
        user: token.user.map(|user| user.id),
        roles: token.roles.into_iter().map(|role| role.name).collect(),
        valid_for,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-12-05T12:00:00Z".parse().expect("timestamp")
    }

    #[test]
    fn a_project_token_names_its_project_roles_and_remaining_time() {
        let body =
            br#"{"token": {"expires_at": "2026-12-05T13:00:00.000000Z", "methods": ["password"],
            "user": {"id": "u1", "name": "demo"}, "project": {"id": "p1", "name": "demo"},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}]}}"#;
        assert_eq!(
            identity_of(body, now()),
            Ok(TokenIdentity {
                project: Some("p1".into()),
                user: Some("u1".into()),
                roles: vec!["member".into(), "reader".into()],
                valid_for: 3600,
            })
        );
    }

    #[test]
    fn an_expired_or_unscoped_token_has_no_time_and_no_project() {
        let body = br#"{"token": {"expires_at": "2026-12-05T11:00:00Z", "roles": []}}"#;
        let identity = identity_of(body, now()).expect("readable");
        assert_eq!(identity.valid_for, 0);
        assert_eq!(identity.project, None);
    }

    #[test]
    fn what_is_not_a_token_document_is_refused_not_guessed() {
        for body in [
            &b"<html>proxy error</html>"[..],
            br#"{"token": {"roles": []}}"#,
            br#"{"error": {"code": 401}}"#,
        ] {
            assert!(identity_of(body, now()).is_err(), "{body:?}");
        }
    }
}
