//! The embedded cloud's error: what a request did wrong (or what went wrong on disk), and the
//! HTTP status and Glance-shaped body it turns into.

use http::StatusCode;

/// Why the embedded cloud refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    RequestTooLarge(String),
    /// The Keystone that identifies callers cannot be asked now (down, slow, or an answer
    /// that is not a token document): 503, as keystonemiddleware answers, worth retrying.
    #[error("{0}")]
    IdentityUnavailable(String),
    /// The database or the data folder failed: the request may succeed when retried.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl CloudError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::IdentityUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the same request may succeed later without a change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::IdentityUnavailable(_))
    }

    /// A short reason, as glint's conditions name their causes.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "NotFound",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::Conflict(_) => "Conflict",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::RequestTooLarge(_) => "RequestTooLarge",
            Self::IdentityUnavailable(_) => "KeystoneUnavailable",
            Self::Storage(_) => "StorageFailed",
        }
    }

    /// Glance's error body: `code` as "404 Not Found", the reason phrase as `title`.
    pub fn body(&self) -> serde_json::Value {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        serde_json::json!({
            "code": format!("{} {title}", status.as_u16()),
            "title": title,
            "message": self.to_string(),
        })
    }

    pub fn storage(error: impl std::fmt::Display) -> Self {
        Self::Storage(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_storage_failures_are_worth_retrying_unchanged() {
        assert!(CloudError::storage("disk full").is_transient());
        assert!(CloudError::IdentityUnavailable("Keystone down".into()).is_transient());
        assert!(!CloudError::Conflict("taken".into()).is_transient());
        assert!(!CloudError::NotFound("gone".into()).is_transient());
    }

    #[test]
    fn the_body_has_glances_code_title_and_message() {
        let body = CloudError::NotFound("No image found with ID x".into()).body();
        assert_eq!(body["code"], "404 Not Found");
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["message"], "No image found with ID x");
        assert_eq!(
            CloudError::UnsupportedMediaType("patch".into()).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
