//! Keystone v3 wire format: the token request for each auth method, and the parts of the token
//! response glint uses (expiry, project, catalog). Pure functions, so they are tested without a
//! server; `session` does the HTTP.

use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AuthError;
use super::clouds::{AuthType, CloudConfig, NameOrId};

/// `auth_url` as the Keystone v3 root: openstack CLI users write it with or without `/v3`.
pub(crate) fn v3_root(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    }
}

fn reference(value: &NameOrId) -> Value {
    match value {
        NameOrId::Name(name) => json!({ "name": name }),
        NameOrId::Id(id) => json!({ "id": id }),
    }
}

fn user_reference(cloud: &CloudConfig, user: &NameOrId) -> Value {
    let mut user_json = reference(user);
    if let (NameOrId::Name(_), Some(domain)) = (user, &cloud.user_domain) {
        user_json["domain"] = reference(domain);
    }
    user_json
}

fn project_scope(cloud: &CloudConfig) -> Option<Value> {
    let project = cloud.project.as_ref()?;
    let mut project_json = reference(project);
    if let (NameOrId::Name(_), Some(domain)) = (project, &cloud.project_domain) {
        project_json["domain"] = reference(domain);
    }
    Some(json!({ "project": project_json }))
}

/// The body of `POST /v3/auth/tokens` for this cloud. It contains secrets: it is built just
/// before sending and never logged.
pub(crate) fn token_request(cloud: &CloudConfig) -> Result<Value, AuthError> {
    // `validate` in clouds.rs guarantees these fields; the error is for hand-built configs.
    let missing = |what: &str| AuthError::InvalidConfig(format!("cloud {:?}: {what}", cloud.name));
    let identity = match cloud.auth_type {
        AuthType::Password => {
            let user = cloud.user.as_ref().ok_or_else(|| missing("no user"))?;
            let password = cloud
                .password
                .as_ref()
                .ok_or_else(|| missing("no password"))?;
            let mut user_json = user_reference(cloud, user);
            user_json["password"] = Value::String(password.expose_secret().to_string());
            json!({ "methods": ["password"], "password": { "user": user_json } })
        }
        AuthType::ApplicationCredential => {
            let credential = cloud
                .application_credential
                .as_ref()
                .ok_or_else(|| missing("no application credential"))?;
            let secret = cloud
                .application_credential_secret
                .as_ref()
                .ok_or_else(|| missing("no application credential secret"))?;
            let mut credential_json = reference(credential);
            credential_json["secret"] = Value::String(secret.expose_secret().to_string());
            if let (NameOrId::Name(_), Some(user)) = (credential, &cloud.user) {
                credential_json["user"] = user_reference(cloud, user);
            }
            json!({ "methods": ["application_credential"], "application_credential": credential_json })
        }
        AuthType::Token => {
            let token = cloud.token.as_ref().ok_or_else(|| missing("no token"))?;
            json!({ "methods": ["token"], "token": { "id": token.expose_secret() } })
        }
        AuthType::None => return Err(missing("auth_type none does not talk to Keystone")),
    };
    let mut auth = json!({ "identity": identity });
    // An application credential carries its own scope; Keystone refuses a second one.
    if cloud.auth_type != AuthType::ApplicationCredential
        && let Some(scope) = project_scope(cloud)
    {
        auth["scope"] = scope;
    }
    Ok(json!({ "auth": auth }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub token: TokenBody,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenBody {
    pub expires_at: Timestamp,
    #[serde(default)]
    pub project: Option<ProjectRef>,
    #[serde(default)]
    pub catalog: Vec<CatalogService>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProjectRef {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub url: String,
}

/// Another service's endpoint (`compute`, say) for the interface and region the image
/// endpoint is taken from; `None` when the catalog has none.
pub(crate) fn service_endpoint(
    catalog: &[CatalogService],
    service_type: &str,
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    catalog
        .iter()
        .filter(|service| service.service_type == service_type)
        .flat_map(|service| service.endpoints.iter())
        .find(|endpoint| {
            endpoint.interface == interface
                && region.is_none_or(|wanted| {
                    endpoint.region_id.as_deref() == Some(wanted)
                        || endpoint.region.as_deref() == Some(wanted)
                })
        })
        .map(|endpoint| endpoint.url.clone())
}

/// The image endpoint for an interface and (optional) region, or an error that lists what the
/// catalog does offer so the user can fix `interface` / `region_name`.
pub(crate) fn image_endpoint(
    catalog: &[CatalogService],
    interface: &str,
    region: Option<&str>,
) -> Result<String, AuthError> {
    let image_endpoints: Vec<&CatalogEndpoint> = catalog
        .iter()
        .filter(|service| service.service_type == "image")
        .flat_map(|service| service.endpoints.iter())
        .collect();
    let in_region = |endpoint: &CatalogEndpoint| match region {
        None => true,
        Some(wanted) => {
            endpoint.region_id.as_deref() == Some(wanted)
                || endpoint.region.as_deref() == Some(wanted)
        }
    };
    image_endpoints
        .iter()
        .find(|endpoint| endpoint.interface == interface && in_region(endpoint))
        .map(|endpoint| endpoint.url.clone())
        .ok_or_else(|| AuthError::NoImageEndpoint {
            interface: interface.to_string(),
            region: region.map(str::to_string),
            available: if image_endpoints.is_empty() {
                "no image service at all".to_string()
            } else {
                image_endpoints
                    .iter()
                    .map(|endpoint| {
                        format!(
                            "{} in {}",
                            endpoint.interface,
                            endpoint
                                .region_id
                                .as_deref()
                                .or(endpoint.region.as_deref())
                                .unwrap_or("no region")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Keystone's error body is `{"error": {"message": ...}}`; anything else is shown trimmed.
pub(crate) fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(envelope) => envelope.error.message,
        Err(_) => body
            .chars()
            .take(300)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::clouds::CloudsFile;

    fn cloud(yaml_body: &str) -> CloudConfig {
        let yaml = format!("clouds:\n  c:\n{yaml_body}");
        CloudsFile::from_bytes(yaml.as_bytes())
            .unwrap()
            .cloud("c")
            .unwrap()
            .clone()
    }

    #[test]
    fn auth_urls_with_and_without_v3_lead_to_the_same_root() {
        for url in [
            "http://k:5000",
            "http://k:5000/",
            "http://k:5000/v3",
            "http://k:5000/v3/",
        ] {
            assert_eq!(v3_root(url), "http://k:5000/v3", "{url}");
        }
    }

    #[test]
    fn a_password_request_names_the_user_domain_and_scopes_to_the_project() {
        let body = token_request(&cloud(
            "    auth: {auth_url: x, username: alice, password: pw, user_domain_name: Default, project_name: p, project_domain_id: default}\n",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "alice", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"name": "p", "domain": {"id": "default"}}}
            }})
        );
    }

    #[test]
    fn a_user_id_and_project_id_need_no_domains() {
        let body = token_request(&cloud(
            "    auth: {auth_url: x, user_id: u1, password: pw, project_id: p1}\n",
        ))
        .unwrap();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "pw"})
        );
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));
    }

    #[test]
    fn an_application_credential_request_carries_no_scope() {
        let body = token_request(&cloud(
            "    auth_type: v3applicationcredential\n    auth: {auth_url: x, application_credential_name: ci, application_credential_secret: s, username: bob, user_domain_id: default, project_id: ignored}\n",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"name": "ci", "secret": "s",
                    "user": {"name": "bob", "domain": {"id": "default"}}}}}})
        );
    }

    #[test]
    fn a_token_request_exchanges_the_token_for_a_project_scope() {
        let body = token_request(&cloud(
            "    auth_type: v3token\n    auth: {auth_url: x, token: abc, project_id: p1}\n",
        ))
        .unwrap();
        assert_eq!(
            body["auth"]["identity"],
            json!({"methods": ["token"], "token": {"id": "abc"}})
        );
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));
    }

    fn catalog() -> Vec<CatalogService> {
        serde_json::from_value(json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region_id": "R1", "url": "http://k"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "R1", "url": "http://img-r1-public"},
                {"interface": "internal", "region_id": "R1", "url": "http://img-r1-internal"},
                {"interface": "public", "region": "R2", "url": "http://img-r2-public"}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn the_image_endpoint_is_chosen_by_interface_and_region() {
        let table = [
            ("public", Some("R1"), Ok("http://img-r1-public")),
            ("internal", Some("R1"), Ok("http://img-r1-internal")),
            ("public", Some("R2"), Ok("http://img-r2-public")),
            ("public", None, Ok("http://img-r1-public")),
            (
                "internal",
                Some("R2"),
                Err("internal image endpoint in region R2"),
            ),
            (
                "admin",
                None,
                Err("public in R1, internal in R1, public in R2"),
            ),
        ];
        for (interface, region, expected) in table {
            let got = image_endpoint(&catalog(), interface, region);
            match (got, expected) {
                (Ok(url), Ok(want)) => assert_eq!(url, want),
                (Err(err), Err(want)) => assert!(err.to_string().contains(want), "{err}"),
                (got, want) => panic!("{interface} {region:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_catalog_without_an_image_service_says_so() {
        let err = image_endpoint(&catalog()[..1], "public", None).unwrap_err();
        assert!(err.to_string().contains("no image service at all"), "{err}");
    }

    #[test]
    fn keystone_error_bodies_are_reduced_to_their_message() {
        assert_eq!(
            error_message(
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(error_message("  plain failure \n"), "plain failure");
    }
}
