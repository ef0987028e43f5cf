//! [`ReconcileError`]: why a reconcile could not finish. Each error knows whether trying again
//! can help and which condition reason it shows as.

use crate::auth::AuthError;
use crate::pass::PassError;
use crate::reason::Reason;
use crate::transfer::TransferSetupError;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Secret {namespace}/{name} (spec.cloudCredentialsRef.secretName) does not exist")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key clouds.yaml")]
    SecretWithoutClouds { namespace: String, name: String },
    #[error("Secret {namespace}/{name} (spec.source.secretRef) does not exist")]
    SourceSecretNotFound { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} (spec.source.secretRef) needs key authorization, or keys username and password, or key ca.crt"
    )]
    SourceSecretInvalid { namespace: String, name: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    TransferSetup(#[from] TransferSetupError),
    #[error("the object has no {0}")]
    Incomplete(&'static str),
    /// The keys spec.source.hashFrom.signature trusts could not be read (a ConfigMap not
    /// created yet, say): retried with backoff, as a series' check would be.
    #[error("{message}")]
    TrustedKeys { reason: Reason, message: String },
}

impl ReconcileError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::SecretNotFound { .. }
            | Self::SecretWithoutClouds { .. }
            | Self::SourceSecretNotFound { .. }
            | Self::SourceSecretInvalid { .. }
            | Self::Incomplete(_)
            | Self::TransferSetup(_) => false,
            Self::Auth(err) => err.is_transient(),
            Self::Pass(err) => err.is_transient(),
            Self::Kube(_) | Self::TrustedKeys { .. } => true,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::SecretNotFound { .. } => Reason::SecretNotFound,
            Self::SecretWithoutClouds { .. } | Self::SourceSecretInvalid { .. } => {
                Reason::InvalidSecret
            }
            Self::SourceSecretNotFound { .. } => Reason::SecretNotFound,
            Self::Auth(err) => err.reason(),
            Self::Pass(err) => err.reason(),
            Self::Kube(_) => Reason::KubernetesUnavailable,
            Self::Incomplete(_) => Reason::InvalidObject,
            Self::TransferSetup(_) => Reason::TransferSetupFailed,
            Self::TrustedKeys { reason, .. } => *reason,
        }
    }

    /// Whether the error happened before glint could talk to the cloud at all (the Secret,
    /// clouds.yaml or the login), so that nothing was sent to Glance.
    pub fn is_before_glance(&self) -> bool {
        matches!(
            self,
            Self::SecretNotFound { .. } | Self::SecretWithoutClouds { .. } | Self::Auth(_)
        )
    }
}
