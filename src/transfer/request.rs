//! What a transfer needs to know: the spec's source, plus the credentials and CA bundle the
//! reconcile read from the source's Secret. Secrets never show in `Debug` output.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::checksums::signature::TrustedKeys;
use crate::crd::{ConversionBy, ImageSource, ImageSpec};
use crate::glance::DiskFormat;

/// Credentials for the source, from `spec.source.secretRef`.
#[derive(Clone, Default)]
pub struct SourceAccess {
    /// The whole Authorization header value.
    pub authorization: Option<SecretString>,
    /// Basic auth user and password.
    pub basic: Option<(String, SecretString)>,
    /// PEM certificates to trust, from the Secret's ca.crt.
    pub ca_bundle: Option<Vec<u8>>,
    /// A 404 or 410 from the source may pass (a mirror publishes its checksums file before
    /// the images it lists): retry with backoff instead of giving up. Set for series.
    pub missing_may_appear: bool,
    /// The OpenPGP keys spec.source.hashFrom.signature trusts, read from its ConfigMap or
    /// Secret; none when it names none.
    pub trusted_keys: Option<Arc<TrustedKeys>>,
}

impl std::fmt::Debug for SourceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceAccess")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("basic_user", &self.basic.as_ref().map(|(user, _)| user))
            .field("ca_bundle_bytes", &self.ca_bundle.as_ref().map(Vec::len))
            .field("missing_may_appear", &self.missing_may_appear)
            .field(
                "trusted_keys",
                &self.trusted_keys.as_ref().map(|keys| keys.fingerprints()),
            )
            .finish()
    }
}

impl PartialEq for SourceAccess {
    fn eq(&self, other: &Self) -> bool {
        let secret = |value: Option<&SecretString>| value.map(|s| s.expose_secret().to_string());
        secret(self.authorization.as_ref()) == secret(other.authorization.as_ref())
            && self
                .basic
                .as_ref()
                .map(|(user, pass)| (user, pass.expose_secret()))
                == other
                    .basic
                    .as_ref()
                    .map(|(user, pass)| (user, pass.expose_secret()))
            && self.ca_bundle == other.ca_bundle
            // By content: the keys are read afresh at every reconcile.
            && self.trusted_keys.as_ref().map(|keys| keys.fingerprints())
                == other.trusted_keys.as_ref().map(|keys| keys.fingerprints())
    }
}

/// Everything one transfer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRequest {
    pub source: ImageSource,
    pub access: SourceAccess,
    /// The disk format glint declared for the image: an import that stores another one was
    /// converted by Glance.
    pub disk_format: Option<DiskFormat>,
    /// The conversion the spec asks for (spec.source.convertTo).
    pub conversion: Option<Conversion>,
    /// Transfers with the same key read one download of the source between them (the
    /// targets of one object, each into its own cloud); `None`: this transfer downloads alone.
    pub share: Option<String>,
}

impl TransferRequest {
    /// Where the source's expected hash was read, when not from spec.source.hash itself.
    pub fn hash_said_by(&self) -> Option<String> {
        let from = self.source.hash_from.as_ref()?;
        Some(format!("{} (spec.source.hashFrom)", from.url))
    }

    pub fn new(source: ImageSource) -> Self {
        Self {
            source,
            access: SourceAccess::default(),
            disk_format: None,
            conversion: None,
            share: None,
        }
    }

    /// The CA bundle to trust: spec.source.caBundle and the Secret's ca.crt together.
    pub fn ca_bundle(&self) -> Option<Vec<u8>> {
        let mut pem = Vec::new();
        if let Some(bundle) = &self.source.options.ca_bundle {
            pem.extend_from_slice(bundle.as_bytes());
            pem.push(b'\n');
        }
        if let Some(bundle) = &self.access.ca_bundle {
            pem.extend_from_slice(bundle);
        }
        (!pem.is_empty()).then_some(pem)
    }

    /// The timeouts and redirect limit the spec sets, with glint's defaults for the rest.
    pub fn client_options(&self) -> super::source_http::SourceClientOptions {
        let defaults = super::source_http::SourceClientOptions::default();
        let duration = |text: &Option<String>| text.as_deref().and_then(crate::crd::parse_duration);
        super::source_http::SourceClientOptions {
            connect_timeout: duration(&self.source.options.connect_timeout)
                .map_or(defaults.connect_timeout, |d| {
                    d.clamp(Duration::from_secs(1), Duration::from_secs(600))
                }),
            idle_timeout: duration(&self.source.options.idle_timeout)
                .map_or(defaults.idle_timeout, |d| {
                    d.clamp(Duration::from_secs(1), Duration::from_secs(3600))
                }),
            max_redirects: self
                .source
                .options
                .max_redirects
                .map_or(defaults.max_redirects, |max| {
                    usize::from(max).min(super::source_http::MAX_REDIRECTS)
                }),
            ca_bundle: self.ca_bundle(),
        }
    }
}

/// A conversion the spec asks for: from the source's format (spec.diskFormat) to
/// spec.source.convertTo, by glint or by Glance's import.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub from: DiskFormat,
    pub to: DiskFormat,
    /// Glint or Glance, never Auto.
    pub by: ConversionBy,
}

impl Conversion {
    /// None without convertTo, or when the source already is in that format.
    pub fn of(spec: &ImageSpec) -> Option<Self> {
        let source = spec.source.as_ref()?;
        let to = source.options.convert_to?.disk_format();
        let from: DiskFormat = spec.disk_format?.into();
        (from != to).then(|| Self {
            from,
            to,
            by: source.options.conversion.unwrap_or_default().resolved(),
        })
    }
}
