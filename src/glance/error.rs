//! The Glance domain's error: HTTP status, Glance's own message (cleaned of its HTML), the
//! request id to quote to the cloud's operators, and whether retrying can help.

use crate::auth::AuthError;
use crate::reason::Reason;

/// A failed Glance call.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    /// Glance answered with an error status.
    #[error(
        "Glance {operation} failed with {status}: {message}{}",
        request_id_suffix(request_id)
    )]
    Api {
        operation: &'static str,
        status: u16,
        message: String,
        request_id: Option<String>,
    },

    /// No answer: connection refused or reset, timeout, broken stream.
    #[error("Glance {operation} failed before an answer: {detail}")]
    Transport {
        operation: &'static str,
        detail: String,
    },

    /// Glance's TLS certificate is not trusted: no retry changes that.
    #[error(
        "Glance {operation} failed: the server's TLS certificate is not trusted ({detail}); put the cloud's CA in clouds.yaml's cacert (in a Secret, its cacert key)"
    )]
    Untrusted {
        operation: &'static str,
        detail: String,
    },

    /// The data to upload could not be read.
    #[error("reading the image data for {operation} failed: {detail}")]
    Source {
        operation: &'static str,
        detail: String,
    },

    /// Glance answered 2xx with a body glint cannot read.
    #[error(
        "Glance {operation} sent a response glint cannot read: {detail}{}",
        request_id_suffix(request_id)
    )]
    Decode {
        operation: &'static str,
        detail: String,
        request_id: Option<String>,
    },

    /// The endpoint does not serve the image API v2.
    #[error("no Glance v2 API at {endpoint}: {detail}")]
    Discovery { endpoint: String, detail: String },

    /// A name matched more than one image where one was expected.
    #[error("more than one image is named {name:?}; use the image id instead")]
    AmbiguousName { name: String },

    #[error(transparent)]
    Auth(#[from] AuthError),
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request {id})"))
        .unwrap_or_default()
}

impl GlanceError {
    /// The HTTP status Glance answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Glance's words, when it refused to delete an image because the image is still in use:
    /// an rbd store answers 409 for an image that has clones (volumes, ephemeral disks and
    /// snapshots made from it in Ceph) or snapshots of its own. Other 409s are not this.
    pub fn in_use(&self) -> Option<&str> {
        let Self::Api {
            status: 409,
            message,
            ..
        } = self
        else {
            return None;
        };
        let lower = message.to_ascii_lowercase();
        (lower.contains("in use") || lower.contains("has snapshot")).then_some(message.as_str())
    }

    /// The property Glance refused to let this caller write, when that was the refusal: the
    /// cloud's property protections (or a key it reserves) answer 403 "Attribute 'KEY' is
    /// reserved.", naming the key.
    pub fn reserved_property(&self) -> Option<&str> {
        let Self::Api {
            status: 403,
            message,
            ..
        } = self
        else {
            return None;
        };
        let (_, rest) = message.split_once("Attribute '")?;
        let (key, _) = rest.split_once("' is reserved")?;
        Some(key)
    }

    /// Whether the same call can succeed later without a change of spec or credentials:
    /// 5xx, 408, 429, and failures without an answer. 4xx answers are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Self::Transport { .. } | Self::Source { .. } => true,
            Self::Auth(auth) => auth.is_transient(),
            Self::Decode { .. }
            | Self::Discovery { .. }
            | Self::AmbiguousName { .. }
            | Self::Untrusted { .. } => false,
        }
    }

    /// A stable PascalCase reason for a status condition.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Api { status, .. } => match status {
                400 => Reason::GlanceBadRequest,
                401 => Reason::AuthenticationFailed,
                403 => Reason::GlanceForbidden,
                404 => Reason::GlanceNotFound,
                409 if self.in_use().is_some() => Reason::InUse,
                409 => Reason::GlanceConflict,
                413 => Reason::GlanceQuotaExceeded,
                415 => Reason::GlanceUnsupportedMediaType,
                _ if *status >= 500 => Reason::GlanceUnavailable,
                _ => Reason::GlanceRequestFailed,
            },
            Self::Transport { .. } => Reason::GlanceUnreachable,
            Self::Untrusted { .. } => Reason::CertificateUntrusted,
            Self::Source { .. } => Reason::SourceUnreadable,
            Self::Decode { .. } | Self::Discovery { .. } => Reason::GlanceIncompatible,
            Self::AmbiguousName { .. } => Reason::AmbiguousImageName,
            Self::Auth(auth) => auth.reason(),
        }
    }
}

/// Glance's message from an error body, without the HTML Glance wraps it in.
pub(crate) fn clean_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let message = value
                .get("message")
                .or_else(|| value.pointer("/error/message"))?;
            message.as_str().map(str::to_owned)
        });
    let raw = from_json.unwrap_or_else(|| body.to_string());
    let mut text = String::with_capacity(raw.len());
    let mut in_tag = false;
    for ch in raw.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        "no message".to_string()
    } else {
        collapsed.chars().take(500).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_messages_lose_their_html_and_spacing() {
        let table = [
            (
                r#"{"code": 409, "title": "Conflict", "message": "Image with identifier abc already exists!<br /><br />\n\n\n"}"#,
                "Image with identifier abc already exists!",
            ),
            (
                "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID x<br /><br />\n\n\n\n </body>\n</html>",
                "404 Not Found 404 Not Found No image found with ID x",
            ),
            (r#"{"error": {"message": "nested"}}"#, "nested"),
            ("", "no message"),
        ];
        for (body, expected) in table {
            assert_eq!(clean_message(body), expected);
        }
    }

    #[test]
    fn only_server_side_and_connection_failures_are_worth_retrying() {
        let api = |status| GlanceError::Api {
            operation: "get",
            status,
            message: String::new(),
            request_id: None,
        };
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(api(status).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 415] {
            assert!(!api(status).is_transient(), "{status}");
        }
        let transport = GlanceError::Transport {
            operation: "get",
            detail: "reset".into(),
        };
        assert!(transport.is_transient());
        assert_eq!(transport.reason().as_str(), "GlanceUnreachable");
        let untrusted = GlanceError::Untrusted {
            operation: "get",
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(
            !untrusted.is_transient(),
            "waiting does not make it trusted"
        );
        assert_eq!(untrusted.reason().as_str(), "CertificateUntrusted");
        assert!(untrusted.to_string().contains("cacert"), "{untrusted}");
        assert_eq!(api(409).reason().as_str(), "GlanceConflict");
    }

    #[test]
    fn only_a_refusal_that_says_the_image_is_in_use_means_in_use() {
        let answer = |status, message: &str| GlanceError::Api {
            operation: "delete",
            status,
            message: message.into(),
            request_id: None,
        };
        // The first two are Glance's words for an rbd store's refusals (glance_store's
        // InUseByStore and HasSnapshot, as glance/api/v2/images.py wraps them).
        let table = [
            (
                409,
                "Image 5f1c could not be deleted because it is in use: The image cannot be deleted because it is in use through the backend store outside of Glance.",
                true,
            ),
            (
                409,
                "The image cannot be deleted because it has snapshot(s).",
                true,
            ),
            (409, "Image with identifier abc already exists!", false),
            (400, "The image is in use", false),
            (403, "Image 5f1c is protected and cannot be deleted.", false),
        ];
        for (status, message, in_use) in table {
            let err = answer(status, message);
            assert_eq!(err.in_use().is_some(), in_use, "{status} {message}");
            assert_eq!(err.reason() == Reason::InUse, in_use, "{status} {message}");
            assert!(!err.is_transient(), "{status} {message}");
        }
    }

    #[test]
    fn the_message_quotes_the_request_id() {
        let err = GlanceError::Api {
            operation: "delete",
            status: 403,
            message: "Image is protected".into(),
            request_id: Some("req-1".into()),
        };
        assert_eq!(
            err.to_string(),
            "Glance delete failed with 403: Image is protected (request req-1)"
        );
    }
}
