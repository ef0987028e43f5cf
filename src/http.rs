//! HTTP plumbing shared by `auth`, `glance` and `transfer`: how a client is built (system
//! roots plus a CA bundle, or no verification when a cloud says `verify: false`), how a
//! reqwest error is told in words, and which failures deserve one immediate retry. reqwest
//! types stay inside the modules that use this; none reaches `crd` or `reconcile`.

use std::sync::OnceLock;
use std::time::Duration;

/// TLS and timeout settings of one cloud.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// PEM bundle trusted in addition to the system roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// `false` accepts any certificate; logged as a warning when the client is built.
    pub insecure: bool,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("ca_bundle_pem", &self.ca_bundle_pem.as_ref().map(Vec::len))
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// How long to wait for a TCP connection. Data transfers have no overall timeout because an
/// image upload can take hours; stalled downloads are caught by the read timeout, which
/// reqwest resets on each read of an answer's body.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// But reqwest's read timeout is also one deadline from a request's start to its answer's
/// headers, which an upload can outlast: uploads use [`build_streaming_client`] instead.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A client builder with glint's timeouts, user agent and trust settings; callers add what
/// is theirs (a DNS resolver, a redirect policy) and build it. Errors are in words.
pub(crate) fn client_builder(options: &HttpOptions) -> Result<reqwest::ClientBuilder, String> {
    Ok(streaming_builder(options)?.read_timeout(READ_TIMEOUT))
}

/// [`client_builder`] without the read timeout: for requests whose body takes as long as it
/// takes, and whose caller bounds the wait itself (`glance::stall`).
fn streaming_builder(options: &HttpOptions) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("glint/", env!("CARGO_PKG_VERSION")))
        // Images are streamed in large chunks: Nagle only adds latency.
        .tcp_nodelay(true)
        // The system's roots come from `system_roots`, read once, not at every build.
        .tls_built_in_root_certs(false);
    for root in system_roots() {
        builder = builder.add_root_certificate(root.clone());
    }
    if let Some(pem) = &options.ca_bundle_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|err| format!("the CA bundle is not valid PEM: {err}"))?;
        if certs.is_empty() {
            return Err("the CA bundle holds no certificate".to_string());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if options.insecure {
        tracing::warn!(
            "TLS certificate verification is OFF for this client (verify: false); traffic can be intercepted"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// The system's trusted roots, read once per process. Left to reqwest, every client build
/// reads the whole store again (on Debian the bundle and each of /etc/ssl/certs' ~290 files)
/// and parses every root it found, twice over, and one `glint apply` builds three clients
/// before its data moves.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::debug!(error = %err, "a file of the system's certificate store was not read");
        }
        // Debian's store holds each root twice (the bundle and /etc/ssl/certs' own files),
        // and every client build parses what it is given: once is enough.
        let mut seen = std::collections::HashSet::new();
        // Stores carry old certificates rustls cannot take as a root; reqwest would refuse to
        // build a client given one, so they are skipped here, as reqwest's own loading does.
        let mut check = rustls::RootCertStore::empty();
        found
            .certs
            .into_iter()
            .filter(|der| seen.insert(der.to_vec()))
            .filter_map(|der| {
                let bytes = der.to_vec();
                check.add(der).ok()?;
                reqwest::Certificate::from_der(&bytes).ok()
            })
            .collect()
    })
}

/// Starts reading the system's roots on a thread of its own at start-up, so that a command's
/// first connection does not wait for them after its manifests are read (on the test bed the
/// store takes 7-18 ms; the manifests' checks about 10). Whoever needs them first waits for
/// this read rather than starting another.
pub fn read_system_roots_early() {
    let started = std::thread::Builder::new()
        .name("system-roots".to_string())
        .spawn(|| {
            system_roots();
        });
    if let Err(err) = started {
        tracing::debug!(error = %err, "the system's roots will be read when first needed");
    }
}

/// The client of one cloud for uploads: see [`streaming_builder`].
pub(crate) fn build_streaming_client(options: &HttpOptions) -> Result<reqwest::Client, String> {
    streaming_builder(options)?
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// The client of one cloud: [`client_builder`] as it is.
pub(crate) fn build_client(options: &HttpOptions) -> Result<reqwest::Client, String> {
    client_builder(options)?
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// A reqwest error with its causes ("error sending request: connection reset by peer"): the
/// top-level message alone does not say what went wrong. The URL is left out; callers name
/// the service themselves.
pub(crate) fn describe_http_error(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

/// When a request failed because the server's certificate is not trusted (an unknown CA, a
/// name it was not issued for, expired): what the TLS library found, in words. Such a failure
/// is not transient: no retry makes the certificate trusted.
pub(crate) fn untrusted_certificate(err: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if let Some(rustls::Error::InvalidCertificate(why)) = error.downcast_ref::<rustls::Error>()
        {
            return Some(why.to_string());
        }
        // rustls' error arrives wrapped in io::Errors (hyper-rustls wraps tokio-rustls' one),
        // and an io::Error's `source` skips what it wraps: unwrap those by hand.
        cause = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// Whether a failed send deserves one immediate retry: the connection broke before an answer
/// (typically a pooled keep-alive connection the server closed just as it was reused: uwsgi
/// does so after 4 idle seconds) rather than the server being slow. Callers retry only
/// requests that are safe to repeat.
pub(crate) fn is_broken_connection(err: &reqwest::Error) -> bool {
    (err.is_request() || err.is_connect()) && !err.is_timeout()
}
