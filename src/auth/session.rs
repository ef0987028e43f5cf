//! [`Authenticator`]: turns a cloud's configuration into credentials for each request and the
//! image endpoint. With Keystone it issues a token, caches it, renews it before it expires and
//! drops it when Glance answers 401 so that the next call issues a fresh one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::AuthError;
use super::clouds::{AuthType, CloudConfig};
use super::keystone::{self, CatalogService, TokenResponse};
use super::token_store::TokenStore;
use crate::http::{HttpOptions, build_client, build_streaming_client};

/// Renew this long before Keystone's expiry, so that a token never dies in the middle of a
/// call that was started with it (half a token's life when that is shorter: see [`renew_at`]).
pub const DEFAULT_RENEW_MARGIN: Duration = Duration::from_secs(300);

/// Choices that do not come from clouds.yaml.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// A PEM CA bundle that replaces the cloud's `cacert` path (the operator passes the
    /// Secret's `cacert` key here).
    pub ca_bundle: Option<Vec<u8>>,
    /// Renew tokens this long before they expire, or at half their life if that comes
    /// later.
    pub renew_margin: Duration,
    /// Keep tokens here between runs and start with the one kept, when it has more than the
    /// renew margin left (the CLI, when clouds.yaml says `cache: {auth: true}`).
    pub token_store: Option<TokenStore>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            renew_margin: DEFAULT_RENEW_MARGIN,
            token_store: None,
        }
    }
}

/// The identity a Glance behind a trusted-header pipeline (no keystonemiddleware: an
/// authenticating proxy in front, or a test bed) takes from request headers.
#[derive(Debug, Clone)]
pub struct TrustedIdentity {
    pub project_id: String,
    pub user_id: String,
    /// Keystone role names, e.g. `["admin"]` or `["member", "reader"]`.
    pub roles: Vec<String>,
}

/// What to attach to one request. `Debug` shows header names only.
#[derive(Clone)]
pub struct Credential {
    headers: Vec<(&'static str, SecretString)>,
    /// Which issued token this is, so a 401 only drops the token that failed.
    generation: u64,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Credential")
            .field("headers", &names)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Credential {
    /// The Keystone token this credential carries, if any (none without Keystone).
    pub fn auth_token(&self) -> Option<&SecretString> {
        self.headers
            .iter()
            .find(|(name, _)| *name == "x-auth-token")
            .map(|(_, value)| value)
    }

    /// Header name and value pairs; values may be secret, so callers must not log them.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (*name, value.expose_secret()))
    }
}

struct IssuedToken {
    value: SecretString,
    /// When the next call asks for a new token instead ([`renew_at`]).
    renew_at: Timestamp,
    catalog: Vec<CatalogService>,
    project_id: Option<String>,
    generation: u64,
}

struct KeystoneSession {
    cloud: CloudConfig,
    v3_root: String,
    cached: Mutex<Option<IssuedToken>>,
    renew_margin: SignedDuration,
    /// Tokens Keystone issued to this session.
    issued: AtomicU64,
    /// Tokens taken into use, issued or kept from an earlier run: each one's generation.
    generations: AtomicU64,
    /// The store and this cloud's key in it.
    store: Option<(TokenStore, String)>,
    /// The kept token is tried once: after a refusal, or once renewed, Keystone is asked.
    store_tried: AtomicBool,
}

enum Mode {
    Keystone(Box<KeystoneSession>),
    Static {
        endpoint: String,
        headers: Vec<(&'static str, SecretString)>,
    },
}

/// Credentials and the image endpoint of one cloud. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    http: reqwest::Client,
    /// The same trust settings without a read timeout, for uploads.
    streaming_http: reqwest::Client,
    cloud_name: String,
    /// The generation of the newest token a service has answered (0: none yet).
    answered: AtomicU64,
    /// Held by the first request that carries a new token; see [`Authenticator::first_use`].
    first_use: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.inner.mode {
            Mode::Keystone(session) => format!("keystone {}", session.v3_root),
            Mode::Static { endpoint, .. } => format!("static {endpoint}"),
        };
        f.debug_struct("Authenticator")
            .field("cloud", &self.inner.cloud_name)
            .field("mode", &mode)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for a `clouds.yaml` entry.
    pub fn from_cloud(cloud: &CloudConfig, options: AuthOptions) -> Result<Self, AuthError> {
        let ca_bundle_pem = match (options.ca_bundle, &cloud.cacert) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => Some(std::fs::read(path).map_err(|err| {
                AuthError::InvalidConfig(format!(
                    "cloud {:?}: cannot read cacert {}: {err}",
                    cloud.name,
                    path.display()
                ))
            })?),
            (None, None) => None,
        };
        let http_options = HttpOptions {
            ca_bundle_pem,
            insecure: !cloud.verify,
        };
        let http = build_client(&http_options).map_err(AuthError::Tls)?;
        let streaming_http = build_streaming_client(&http_options).map_err(AuthError::Tls)?;
        let mode = match (&cloud.auth_type, &cloud.auth_url) {
            (AuthType::None, _) => Mode::Static {
                endpoint: cloud.image_endpoint_override.clone().unwrap_or_default(),
                headers: Vec::new(),
            },
            (AuthType::Token, None) => Mode::Static {
                endpoint: cloud.image_endpoint_override.clone().unwrap_or_default(),
                headers: cloud
                    .token
                    .clone()
                    .map(|token| ("x-auth-token", token))
                    .into_iter()
                    .collect(),
            },
            (_, Some(auth_url)) => {
                let v3_root = keystone::v3_root(auth_url);
                let store = options.token_store.and_then(|store| {
                    let request = keystone::token_request(cloud).ok()?;
                    let key = TokenStore::key(&v3_root, &request);
                    Some((store, key))
                });
                Mode::Keystone(Box::new(KeystoneSession {
                    cloud: cloud.clone(),
                    v3_root,
                    cached: Mutex::new(None),
                    renew_margin: SignedDuration::try_from(options.renew_margin).map_err(|_| {
                        AuthError::InvalidConfig("the token renew margin is too long".to_string())
                    })?,
                    issued: AtomicU64::new(0),
                    generations: AtomicU64::new(0),
                    store,
                    store_tried: AtomicBool::new(false),
                }))
            }
            (_, None) => {
                return Err(AuthError::InvalidConfig(format!(
                    "cloud {:?}: auth.auth_url is required",
                    cloud.name
                )));
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                mode,
                http,
                streaming_http,
                cloud_name: cloud.name.clone(),
                answered: AtomicU64::new(0),
                first_use: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// An authenticator for a Glance that trusts identity headers (no Keystone).
    pub fn trusted_headers(endpoint: &str, identity: &TrustedIdentity) -> Result<Self, AuthError> {
        let headers = vec![
            ("x-identity-status", SecretString::from("Confirmed")),
            (
                "x-project-id",
                SecretString::from(identity.project_id.clone()),
            ),
            ("x-user-id", SecretString::from(identity.user_id.clone())),
            ("x-roles", SecretString::from(identity.roles.join(","))),
        ];
        Ok(Self {
            inner: Arc::new(Inner {
                mode: Mode::Static {
                    endpoint: endpoint.to_string(),
                    headers,
                },
                http: build_client(&HttpOptions::default()).map_err(AuthError::Tls)?,
                streaming_http: build_streaming_client(&HttpOptions::default())
                    .map_err(AuthError::Tls)?,
                cloud_name: format!("trusted-headers:{}", identity.project_id),
                answered: AtomicU64::new(0),
                first_use: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The cloud's name, for messages.
    pub fn cloud_name(&self) -> &str {
        &self.inner.cloud_name
    }

    /// How many tokens this authenticator has issued (0 without Keystone).
    pub fn tokens_issued(&self) -> u64 {
        match &self.inner.mode {
            Mode::Keystone(session) => session.issued.load(Ordering::Relaxed),
            Mode::Static { .. } => 0,
        }
    }

    /// The project the credentials act in, when Keystone says so.
    pub async fn project_id(&self) -> Result<Option<String>, AuthError> {
        match &self.inner.mode {
            Mode::Keystone(session) => {
                let guard = self.fresh_token(session).await?;
                Ok(guard.project_id.clone())
            }
            Mode::Static { headers, .. } => Ok(headers
                .iter()
                .find(|(name, _)| *name == "x-project-id")
                .map(|(_, value)| value.expose_secret().to_string())),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// [`Self::http`] without a read timeout: for uploads, which the caller bounds itself.
    pub(crate) fn streaming_http(&self) -> &reqwest::Client {
        &self.inner.streaming_http
    }

    /// The image service URL as the catalog (or the override) gives it, before version
    /// discovery.
    pub async fn image_endpoint(&self) -> Result<String, AuthError> {
        match &self.inner.mode {
            Mode::Static { endpoint, .. } => Ok(endpoint.clone()),
            Mode::Keystone(session) => {
                if let Some(endpoint) = &session.cloud.image_endpoint_override {
                    return Ok(endpoint.clone());
                }
                let token = self.fresh_token(session).await?;
                keystone::image_endpoint(
                    &token.catalog,
                    &session.cloud.interface,
                    session.cloud.region_name.as_deref(),
                )
            }
        }
    }

    /// The compute service (Nova) from the same catalog, interface and region as the image
    /// endpoint; `None` without a Keystone catalog or without a compute service in it.
    pub async fn compute_endpoint(&self) -> Result<Option<String>, AuthError> {
        match &self.inner.mode {
            Mode::Static { .. } => Ok(None),
            Mode::Keystone(session) => {
                let token = self.fresh_token(session).await?;
                Ok(keystone::service_endpoint(
                    &token.catalog,
                    "compute",
                    &session.cloud.interface,
                    session.cloud.region_name.as_deref(),
                ))
            }
        }
    }

    /// Headers for the next request, issuing or renewing a token when needed.
    pub async fn credential(&self) -> Result<Credential, AuthError> {
        match &self.inner.mode {
            Mode::Static { headers, .. } => Ok(Credential {
                headers: headers.clone(),
                generation: 0,
            }),
            Mode::Keystone(session) => {
                let token = self.fresh_token(session).await?;
                Ok(Credential {
                    headers: vec![("x-auth-token", token.value.clone())],
                    generation: token.generation,
                })
            }
        }
    }

    /// A new token goes out alone first: the service validates it with Keystone once, and
    /// caches it, before the others arrive. Sent by many requests at once, each validates it
    /// on its own; Glance's first creates after a start waited 4 to 8 s for that. Returns a
    /// guard to hold until the answer when this request must go first, `None` when the token
    /// has been answered already (or no Keystone token is in use).
    pub(crate) async fn first_use(
        &self,
        credential: &Credential,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !matches!(self.inner.mode, Mode::Keystone(_)) {
            return None;
        }
        let answered = || self.inner.answered.load(Ordering::Acquire) >= credential.generation;
        if answered() {
            return None;
        }
        let guard = self.inner.first_use.lock().await;
        (!answered()).then_some(guard)
    }

    /// The service answered a request that carried `credential` (with anything but a 401).
    pub(crate) fn answered(&self, credential: &Credential) {
        self.inner
            .answered
            .fetch_max(credential.generation, Ordering::AcqRel);
    }

    /// The service answered 401 to `credential`: forget that token (not a newer one that
    /// another task may have issued meanwhile).
    pub async fn reject(&self, credential: &Credential) {
        if let Mode::Keystone(session) = &self.inner.mode {
            let mut cached = session.cached.lock().await;
            if cached
                .as_ref()
                .is_some_and(|token| token.generation == credential.generation)
            {
                tracing::info!(cloud = %self.inner.cloud_name, "token refused by the service; a new one will be issued");
                *cached = None;
                if let Some((store, key)) = &session.store {
                    store.forget(key);
                }
            }
        }
    }

    /// Whether a failed request may be sent again with a new credential.
    pub(crate) fn can_reissue(&self) -> bool {
        matches!(self.inner.mode, Mode::Keystone(_))
    }

    async fn fresh_token<'a>(
        &'a self,
        session: &'a KeystoneSession,
    ) -> Result<tokio::sync::MappedMutexGuard<'a, IssuedToken>, AuthError> {
        // Holding the lock while issuing makes concurrent callers wait for one token instead
        // of each issuing their own.
        let mut cached = session.cached.lock().await;
        let now = Timestamp::now();
        let needs_new = cached.as_ref().is_none_or(|token| now >= token.renew_at);
        if needs_new {
            let kept = if cached.is_none() {
                Self::kept_token(session, now)
            } else {
                None
            };
            *cached = Some(match kept {
                Some(token) => token,
                None => self.issue(session).await?,
            });
        }
        tokio::sync::MutexGuard::try_map(cached, |slot| slot.as_mut()).map_err(|_| {
            AuthError::BadResponse {
                auth_url: session.v3_root.clone(),
                detail: "no token after issuing one".to_string(),
            }
        })
    }

    async fn issue(&self, session: &KeystoneSession) -> Result<IssuedToken, AuthError> {
        let url = format!("{}/auth/tokens", session.v3_root);
        let body = keystone::token_request(&session.cloud)?;
        let unreachable = |err: reqwest::Error| match crate::http::untrusted_certificate(&err) {
            Some(detail) => AuthError::Untrusted {
                auth_url: session.v3_root.clone(),
                detail,
            },
            None => AuthError::Unreachable {
                auth_url: session.v3_root.clone(),
                // reqwest's messages never include the request body (which holds the secret).
                detail: crate::http::describe_http_error(err),
            },
        };
        // Issuing a token has no side effect worth guarding, so a broken connection is retried.
        let send = || self.inner.http.post(&url).json(&body).send();
        let response = match send().await {
            Err(err) if crate::http::is_broken_connection(&err) => {
                tracing::debug!(error = %crate::http::describe_http_error(err), "Keystone connection broke; sending once more");
                send().await.map_err(unreachable)?
            }
            other => other.map_err(unreachable)?,
        };
        let status = response.status();
        let subject_token = response
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .map(|value| SecretString::from(value.to_string()));
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = keystone::error_message(&text);
            return Err(match status.as_u16() {
                401 | 403 => AuthError::Rejected {
                    cloud: session.cloud.name.clone(),
                    auth_url: session.v3_root.clone(),
                    status: status.as_u16(),
                    message,
                },
                code => AuthError::Keystone {
                    auth_url: session.v3_root.clone(),
                    status: code,
                    message,
                },
            });
        }
        let bad = |detail: String| AuthError::BadResponse {
            auth_url: session.v3_root.clone(),
            detail,
        };
        let value = subject_token.ok_or_else(|| bad("no X-Subject-Token header".to_string()))?;
        let parsed: TokenResponse =
            serde_json::from_str(&text).map_err(|err| bad(format!("token body: {err}")))?;
        session.issued.fetch_add(1, Ordering::Relaxed);
        if let Some((store, key)) = &session.store {
            store.save(key, &value, &text);
        }
        let now = Timestamp::now();
        let renew_at = renew_at(now, parsed.token.expires_at, session.renew_margin);
        tracing::debug!(
            cloud = %session.cloud.name,
            expires_at = %parsed.token.expires_at,
            "issued a Keystone token"
        );
        Ok(session.take_into_use(value, parsed, renew_at))
    }

    /// The token a previous run kept, once per session, when it has more than the renew
    /// margin left: a token that would be renewed at once is not worth Glance's check.
    fn kept_token(session: &KeystoneSession, now: Timestamp) -> Option<IssuedToken> {
        let (store, key) = session.store.as_ref()?;
        if session.store_tried.swap(true, Ordering::AcqRel) {
            return None;
        }
        let kept = store.load(key)?;
        let parsed: TokenResponse = serde_json::from_str(&kept.keystone_answer).ok()?;
        let renew_at = parsed
            .token
            .expires_at
            .checked_sub(session.renew_margin)
            .ok()?;
        if now >= renew_at {
            return None;
        }
        tracing::debug!(
            cloud = %session.cloud.name,
            expires_at = %parsed.token.expires_at,
            "using the Keystone token an earlier run kept"
        );
        Some(session.take_into_use(kept.value, parsed, renew_at))
    }
}

impl KeystoneSession {
    fn take_into_use(
        &self,
        value: SecretString,
        parsed: TokenResponse,
        renew_at: Timestamp,
    ) -> IssuedToken {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        IssuedToken {
            value,
            renew_at,
            catalog: parsed.token.catalog,
            project_id: parsed.token.project.map(|project| project.id),
            generation,
        }
    }
}

/// When a token issued `now` that expires at `expires_at` is renewed: `margin` before it
/// expires, but never before half its life, so that a cloud with tokens shorter than the margin
/// does not cost a new token per call.
fn renew_at(now: Timestamp, expires_at: Timestamp, margin: SignedDuration) -> Timestamp {
    let half_life = expires_at.duration_since(now) / 2;
    expires_at - margin.min(half_life).max(SignedDuration::ZERO)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
