//! Servers booted from an image, read from the cloud's compute API (Nova) when the catalog
//! lists one: before glint deletes an image, it asks whether servers still run from it. The one
//! call glint makes outside the image API, and only to read.

use std::sync::atomic::Ordering;

use reqwest::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;
use url::Url;

use super::{Body, GlanceClient};
use crate::glance::{GlanceError, ServersUsing};

/// The most servers one answer lists: one is enough to keep the image, the count is for
/// status, and the answer stays small.
const LIMIT: usize = 100;

#[derive(Deserialize)]
struct ServerList {
    #[serde(default)]
    servers: Vec<IgnoredAny>,
}

impl GlanceClient {
    /// The servers booted from the image: every project's when the credentials may list them
    /// (an admin's), else this project's; a refusal of every project's is remembered for
    /// these credentials. `None` when the catalog has no compute service or the credentials
    /// may not list servers at all.
    pub(super) async fn servers_booted_from_image(
        &self,
        id: &str,
    ) -> Result<Option<ServersUsing>, GlanceError> {
        let session = self.session();
        let Some(endpoint) = session.auth.compute_endpoint().await? else {
            return Ok(None);
        };
        let own_only = session.own_servers_only.load(Ordering::Relaxed);
        for every_project in [true, false] {
            if every_project && own_only {
                continue;
            }
            let url = servers_url(&endpoint, id, every_project)?;
            match self
                .send_json::<ServerList>("list servers", Method::GET, url, Body::None)
                .await
            {
                Ok(list) => {
                    return Ok(Some(ServersUsing {
                        count: list.servers.len(),
                        every_project,
                        at_least: list.servers.len() >= LIMIT,
                    }));
                }
                // Nova's policy keeps all_tenants for admins, and may keep listing from some
                // roles: ask for less, then give up knowing.
                Err(err) if err.status() == Some(403) => {
                    if every_project {
                        session.own_servers_only.store(true, Ordering::Relaxed);
                    }
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }
}

/// `GET .../servers?image=ID&limit=N[&all_tenants=True]`: Nova's index, which reads its own
/// records only (the detailed listing would ask Neutron and Cinder too).
fn servers_url(endpoint: &str, id: &str, every_project: bool) -> Result<Url, GlanceError> {
    let text = format!("{}/servers", endpoint.trim_end_matches('/'));
    let mut url = Url::parse(&text).map_err(|err| GlanceError::Discovery {
        endpoint: endpoint.to_string(),
        detail: format!("the catalog's compute endpoint is not a URL: {err}"),
    })?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("image", id)
            .append_pair("limit", &LIMIT.to_string());
        if every_project {
            query.append_pair("all_tenants", "True");
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_asks_for_one_image_and_every_project_first() {
        let url = servers_url("http://nova:8774/v2.1/", "5f1c", true).expect("url");
        assert_eq!(
            url.as_str(),
            "http://nova:8774/v2.1/servers?image=5f1c&limit=100&all_tenants=True"
        );
        let own = servers_url("http://nova:8774/v2.1", "5f1c", false).expect("url");
        assert_eq!(
            own.as_str(),
            "http://nova:8774/v2.1/servers?image=5f1c&limit=100"
        );
    }
}
