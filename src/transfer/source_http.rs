//! The HTTP client that fetches image sources, with the [`SourcePolicy`] built into its DNS
//! resolver and redirect handling, so no request can reach an address the policy refuses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::source_policy::{Refusal, SourcePolicy};
use crate::http::{HttpOptions, client_builder};

/// Redirects glint follows for one source before it gives up.
pub const MAX_REDIRECTS: usize = 5;

/// Resolves names with the system resolver and lets through only names whose every address
/// the policy allows. reqwest connects to exactly the addresses returned here.
struct CheckingResolver {
    policy: Arc<SourcePolicy>,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
            policy
                .check_all(&ips)
                .map_err(|refusal| NamedRefusal { host, refusal })?;
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

/// A refusal of one of the addresses a host name resolved to.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {refusal}")]
pub struct NamedRefusal {
    pub host: String,
    pub refusal: Refusal,
}

/// A redirect the policy refuses, or one too many.
#[derive(Debug, thiserror::Error)]
pub enum RedirectRefusal {
    #[error("the source redirected more than {0} times")]
    TooMany(usize),
    #[error("the source redirected to {url}, which is not http or https")]
    Scheme { url: String },
    #[error("the source redirected to {url}: {refusal}")]
    Address { url: String, refusal: Refusal },
}

/// Checks a URL whose host is an address literal (DNS never sees those).
pub fn check_literal(url: &Url, policy: &SourcePolicy) -> Result<(), Refusal> {
    let address = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    policy.check(address)
}

/// How one source is fetched: timeouts, redirects, extra trust.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceClientOptions {
    pub connect_timeout: Duration,
    /// How long a download may go without receiving a byte.
    pub idle_timeout: Duration,
    /// At most [`MAX_REDIRECTS`].
    pub max_redirects: usize,
    /// PEM certificates to trust besides the system's.
    pub ca_bundle: Option<Vec<u8>>,
}

impl Default for SourceClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(300),
            max_redirects: MAX_REDIRECTS,
            ca_bundle: None,
        }
    }
}

/// The source client: checked DNS, checked redirects (at most [`MAX_REDIRECTS`]), and no
/// proxy from the environment (a proxy would resolve the name where the policy cannot see).
pub fn source_client(
    policy: Arc<SourcePolicy>,
    options: &SourceClientOptions,
) -> Result<reqwest::Client, String> {
    let redirect_policy = policy.clone();
    let max_redirects = options.max_redirects.min(MAX_REDIRECTS);
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(RedirectRefusal::TooMany(max_redirects));
        }
        let url = attempt.url().clone();
        if !matches!(url.scheme(), "http" | "https") {
            return attempt.error(RedirectRefusal::Scheme {
                url: url.to_string(),
            });
        }
        match check_literal(&url, &redirect_policy) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(RedirectRefusal::Address {
                url: url.to_string(),
                refusal,
            }),
        }
    });
    let trust = HttpOptions {
        ca_bundle_pem: options.ca_bundle.clone(),
        insecure: false,
    };
    client_builder(&trust)?
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.idle_timeout)
        .dns_resolver(Arc::new(CheckingResolver { policy }))
        .redirect(redirects)
        .no_proxy()
        .build()
        .map_err(|err| format!("cannot build the HTTP client for image sources: {err}"))
}

/// How long one small document (a checksums file, an index page, a HEAD) may take in all:
/// a mirror that trickles must not hold a series' check.
pub const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a small document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub message: String,
    /// The server answered 404 or 410 (or the local file is not there): the document is not
    /// published (yet), as opposed to a server or network failure.
    pub missing: bool,
}

impl FetchError {
    fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            missing: false,
        }
    }
}

impl From<String> for FetchError {
    fn from(message: String) -> Self {
        Self::other(message)
    }
}

/// A small text document, such as a release's checksums file or a mirror's index page,
/// fetched the way sources are (the policy's addresses only; `file:` only where the policy
/// allows local files), within [`DOCUMENT_TIMEOUT`] and at most `limit` bytes of it: an
/// answer past that is refused, not cut. A local folder reads as a plain list of its entries,
/// folders ending in `/`, as a mirror's index would list them.
pub async fn fetch_text(
    policy: Arc<SourcePolicy>,
    url: &str,
    limit: usize,
) -> Result<String, FetchError> {
    let bytes = fetch_bytes(policy, url, limit).await?;
    String::from_utf8(bytes).map_err(|_| FetchError::other(format!("{url} is not text")))
}

/// A small document as bytes (a binary signature, say), under the same bounds as
/// [`fetch_text`].
pub async fn fetch_bytes(
    policy: Arc<SourcePolicy>,
    url: &str,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let parsed = url::Url::parse(url).map_err(|err| format!("{url} is not a URL: {err}"))?;
    let bytes = if parsed.scheme() == "file" {
        local_text(&policy, &parsed, limit).await?
    } else {
        tokio::time::timeout(DOCUMENT_TIMEOUT, remote_text(policy, &parsed, limit))
            .await
            .map_err(|_| {
                FetchError::other(format!(
                    "{url} did not answer in full within {} s",
                    DOCUMENT_TIMEOUT.as_secs()
                ))
            })??
    };
    Ok(bytes)
}

fn local_path(policy: &SourcePolicy, url: &Url) -> Result<std::path::PathBuf, FetchError> {
    if !policy.allow_files {
        return Err(FetchError::other(format!(
            "{url} is a local file, which only `glint apply` on the same machine can read"
        )));
    }
    url.to_file_path()
        .map_err(|()| FetchError::other(format!("{url} does not name a local file")))
}

fn local_error(path: &std::path::Path, err: std::io::Error) -> FetchError {
    FetchError {
        message: format!("cannot read {}: {err}", path.display()),
        missing: err.kind() == std::io::ErrorKind::NotFound,
    }
}

async fn local_text(policy: &SourcePolicy, url: &Url, limit: usize) -> Result<Vec<u8>, FetchError> {
    let path = local_path(policy, url)?;
    let metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|err| local_error(&path, err))?;
    let bytes = if metadata.is_dir() {
        let mut entries = tokio::fs::read_dir(&path)
            .await
            .map_err(|err| local_error(&path, err))?;
        let mut listing = String::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|err| local_error(&path, err))?
        {
            let folder = entry.file_type().await.is_ok_and(|kind| kind.is_dir());
            listing.push_str(&entry.file_name().to_string_lossy());
            listing.push_str(if folder { "/\n" } else { "\n" });
            if listing.len() > limit {
                break;
            }
        }
        listing.into_bytes()
    } else {
        tokio::fs::read(&path)
            .await
            .map_err(|err| local_error(&path, err))?
    };
    if bytes.len() > limit {
        return Err(FetchError::other(format!(
            "{url} is larger than {limit} bytes"
        )));
    }
    Ok(bytes)
}

async fn remote_text(
    policy: Arc<SourcePolicy>,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut response = send(policy, url, reqwest::Method::GET).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("reading {url}: {}", crate::http::describe_http_error(err)))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(FetchError::other(format!(
                "{url} is larger than {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// One request under the policy, answered with a success.
async fn send(
    policy: Arc<SourcePolicy>,
    url: &Url,
    method: reqwest::Method,
) -> Result<reqwest::Response, FetchError> {
    check_literal(url, &policy).map_err(|refusal| format!("{url} is not allowed: {refusal}"))?;
    let client = source_client(policy, &SourceClientOptions::default())?;
    let response =
        client
            .request(method, url.clone())
            .send()
            .await
            .map_err(|err| match refusal_in(&err) {
                Some(words) => format!("{url} is not allowed: {words}"),
                None if let Some(detail) = crate::http::untrusted_certificate(&err) => format!(
                    "{url}: the server's TLS certificate is not trusted ({detail}); add its CA to the system's store (SSL_CERT_FILE)"
                ),
                None => format!(
                    "cannot reach {url}: {}",
                    crate::http::describe_http_error(err)
                ),
            })?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError {
            message: format!("{url} answered {status}"),
            missing: matches!(status.as_u16(), 404 | 410),
        });
    }
    Ok(response)
}

/// When the file at `url` last changed, as the server says (`Last-Modified` of a HEAD
/// answer; a local file's modification time). `None` when the server does not say, or says
/// something that is not an HTTP date.
pub fn last_modified(
    policy: Arc<SourcePolicy>,
    url: &str,
) -> futures::future::BoxFuture<'_, Result<Option<jiff::Timestamp>, FetchError>> {
    // Boxed: one copy of the request's code for every place that asks.
    Box::pin(head_last_modified(policy, url))
}

async fn head_last_modified(
    policy: Arc<SourcePolicy>,
    url: &str,
) -> Result<Option<jiff::Timestamp>, FetchError> {
    let parsed = url::Url::parse(url).map_err(|err| format!("{url} is not a URL: {err}"))?;
    if parsed.scheme() == "file" {
        let path = local_path(&policy, &parsed)?;
        let modified = tokio::fs::metadata(&path)
            .await
            .and_then(|metadata| metadata.modified())
            .map_err(|err| local_error(&path, err))?;
        return Ok(jiff::Timestamp::try_from(modified).ok());
    }
    let response = tokio::time::timeout(
        DOCUMENT_TIMEOUT,
        send(policy, &parsed, reqwest::Method::HEAD),
    )
    .await
    .map_err(|_| {
        FetchError::other(format!(
            "{url} did not answer within {} s",
            DOCUMENT_TIMEOUT.as_secs()
        ))
    })??;
    Ok(response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|value| value.to_str().ok())
        .and_then(http_date))
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, and the two obsolete forms RFC 9110 says
/// to accept), read by the parser hyper already links for its own Date headers.
pub fn http_date(text: &str) -> Option<jiff::Timestamp> {
    let at = httpdate::parse_http_date(text.trim()).ok()?;
    jiff::Timestamp::try_from(at).ok()
}

/// The policy's words inside a failed request, if a refusal is what failed it.
pub fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<NamedRefusal>() {
            return Some(refusal.to_string());
        }
        if let Some(refusal) = error.downcast_ref::<RedirectRefusal>() {
            return Some(refusal.to_string());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals_are_checked_however_they_are_spelled() {
        let policy = SourcePolicy::default();
        let rows = [
            ("http://169.254.169.254/latest/meta-data/", false),
            // The URL parser normalizes these to 127.0.0.1 before anything connects.
            ("http://2130706433/", false),
            ("http://0x7f.1/", false),
            ("http://[::ffff:a9fe:a9fe]/", false),
            ("http://[::1]:8080/", false),
            ("https://203.0.113.7/image.raw", true),
            ("https://images.example.org/image.raw", true),
        ];
        for (url, allowed) in rows {
            let url = Url::parse(url).unwrap();
            assert_eq!(check_literal(&url, &policy).is_ok(), allowed, "{url}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_refused_address_is_never_connected_to() {
        let resolver = CheckingResolver {
            policy: Arc::new(SourcePolicy::default()),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused by default"),
            Err(err) => err,
        };
        let words = refusal_in(err.as_ref()).expect("a refusal");
        assert!(words.starts_with("localhost resolves to"), "{words}");
        assert!(words.contains("loopback"), "{words}");

        let allowing = CheckingResolver {
            policy: Arc::new(SourcePolicy {
                allow_loopback: true,
                ..SourcePolicy::default()
            }),
        };
        let addresses: Vec<SocketAddr> = allowing
            .resolve("localhost".parse().unwrap())
            .await
            .expect("allowed")
            .collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }
}
