//! [`ReconcileError`]: why a reconcile could not finish. Each error knows whether trying again
//! can help and which condition reason it shows as.

use crate::auth::AuthError;
use crate::reconcile::pass::PassError;
use crate::transfer::TransferSetupError;

/// Condition reasons of this module's own errors.
pub mod reasons {
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const INVALID_SECRET: &str = "InvalidSecret";
    pub const KUBERNETES_UNAVAILABLE: &str = "KubernetesUnavailable";
    pub const INVALID_OBJECT: &str = "InvalidObject";
    pub const TRANSFER_SETUP_FAILED: &str = "TransferSetupFailed";
}

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
            Self::Kube(_) => true,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => reasons::SECRET_NOT_FOUND,
            Self::SecretWithoutClouds { .. } | Self::SourceSecretInvalid { .. } => {
                reasons::INVALID_SECRET
            }
            Self::SourceSecretNotFound { .. } => reasons::SECRET_NOT_FOUND,
            Self::Auth(err) => err.reason(),
            Self::Pass(err) => err.reason(),
            Self::Kube(_) => reasons::KUBERNETES_UNAVAILABLE,
            Self::Incomplete(_) => reasons::INVALID_OBJECT,
            Self::TransferSetup(_) => reasons::TRANSFER_SETUP_FAILED,
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
