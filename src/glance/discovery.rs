//! Version discovery: where the image API's v2 root is, from what the catalog or the override
//! names.

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::{ApiRoot, Result, api_error, transport};
use crate::auth::Authenticator;
use crate::glance::GlanceError;

/// Finds the v2 root: catalogs list either the service root (which answers 300 with its
/// versions) or a versioned URL.
pub(super) async fn discover(auth: &Authenticator) -> Result<ApiRoot> {
    let endpoint = auth.image_endpoint().await?;
    let discovery = |detail: String| GlanceError::Discovery {
        endpoint: endpoint.clone(),
        detail,
    };
    let mut url = Url::parse(&endpoint).map_err(|err| discovery(err.to_string()))?;
    let trimmed = url.path().trim_end_matches('/').to_string();
    if trimmed.ends_with("/v2")
        || trimmed
            .rsplit('/')
            .next()
            .is_some_and(|last| last.starts_with("v2."))
    {
        let base = trimmed.rsplit_once('/').map(|(head, _)| head).unwrap_or("");
        url.set_path(&format!("{base}/v2/"));
        return Ok(ApiRoot {
            v2: url,
            version: None,
        });
    }
    #[derive(Deserialize)]
    struct Versions {
        versions: Vec<VersionEntry>,
    }
    #[derive(Deserialize)]
    struct VersionEntry {
        id: String,
        status: String,
    }
    let response = auth
        .http()
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        // No answer, or a 5xx, is a Glance that is down or restarting: retried like any other
        // call, not reported as an endpoint without the v2 API (which would wait for an edit).
        .map_err(|err| transport("discover", err))?;
    let status = response.status();
    if status != StatusCode::MULTIPLE_CHOICES && !status.is_success() {
        let err = api_error("discover", response).await;
        if err.is_transient() {
            return Err(err);
        }
        return Err(discovery(format!("the version document answered {status}")));
    }
    let versions: Versions = response
        .json()
        .await
        .map_err(|err| discovery(format!("unreadable version document: {err}")))?;
    let version = versions
        .versions
        .iter()
        .filter(|entry| matches!(entry.status.as_str(), "CURRENT" | "SUPPORTED"))
        .filter_map(|entry| entry.id.strip_prefix("v2."))
        .filter_map(|minor| minor.parse::<u32>().ok())
        .max()
        .ok_or_else(|| discovery("the endpoint announces no v2 API".to_string()))?;
    url.set_path(&format!("{trimmed}/v2/"));
    tracing::debug!(endpoint = %url, version = %format!("2.{version}"), "discovered Glance");
    Ok(ApiRoot {
        v2: url,
        version: Some(format!("2.{version}")),
    })
}
