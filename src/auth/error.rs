//! The auth domain's error: what went wrong reaching or convincing Keystone, whether a retry can
//! help, and the condition reason a Kubernetes status shows for it.

use crate::reason::Reason;
use std::path::PathBuf;

/// Failures of configuration, Keystone and catalog look-up. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// clouds.yaml (or a value in it) cannot work; the message says what to change.
    #[error("invalid cloud configuration: {0}")]
    InvalidConfig(String),

    #[error("cloud {name:?} is not in clouds.yaml (it defines: {})", available.join(", "))]
    CloudNotFound {
        name: String,
        available: Vec<String>,
    },

    #[error(
        "no clouds.yaml found (looked in: {}); create one or set OS_CLIENT_CONFIG_FILE",
        display_paths(searched)
    )]
    NoCloudsFile { searched: Vec<PathBuf> },

    /// Keystone answered 401/403 to the credentials themselves.
    #[error(
        "Keystone at {auth_url} refused the credentials of cloud {cloud:?} ({status}): {message}; check the user, password or application credential, and the domains and project"
    )]
    Rejected {
        cloud: String,
        auth_url: String,
        status: u16,
        message: String,
    },

    /// Keystone answered with another error status.
    #[error("Keystone at {auth_url} answered {status}: {message}")]
    Keystone {
        auth_url: String,
        status: u16,
        message: String,
    },

    #[error("the service catalog has no {interface} image endpoint{}; it lists: {available}", region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    NoImageEndpoint {
        interface: String,
        region: Option<String>,
        available: String,
    },

    /// The connection to Keystone failed or timed out.
    #[error("cannot reach Keystone at {auth_url}: {detail}")]
    Unreachable { auth_url: String, detail: String },

    /// Keystone's TLS certificate is not trusted: no retry changes that.
    #[error(
        "Keystone at {auth_url}: the server's TLS certificate is not trusted ({detail}); put the cloud's CA in clouds.yaml's cacert (in a Secret, its cacert key)"
    )]
    Untrusted { auth_url: String, detail: String },

    #[error("Keystone at {auth_url} sent a response glint cannot read: {detail}")]
    BadResponse { auth_url: String, detail: String },

    /// A TLS setting (CA bundle) cannot be used.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl AuthError {
    /// Whether the same call can succeed later without anyone changing the configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Keystone { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A stable PascalCase reason for a status condition.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidConfig(_) | Self::Tls(_) => Reason::InvalidCloudConfig,
            Self::CloudNotFound { .. } | Self::NoCloudsFile { .. } => Reason::CloudNotFound,
            Self::Rejected { .. } => Reason::AuthenticationFailed,
            Self::Untrusted { .. } => Reason::CertificateUntrusted,
            Self::NoImageEndpoint { .. } => Reason::ImageEndpointNotFound,
            Self::Keystone { .. } | Self::Unreachable { .. } | Self::BadResponse { .. } => {
                Reason::KeystoneUnavailable
            }
        }
    }
}
