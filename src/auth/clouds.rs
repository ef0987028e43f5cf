//! `clouds.yaml`: the file the `openstack` CLI reads, parsed into a typed [`CloudConfig`].
//!
//! The operator gets the bytes from a Kubernetes Secret; the CLI finds the file where the
//! OpenStack tools look for it. Parsing never touches the network, and secrets are held in
//! [`SecretString`] so that `Debug` and error messages cannot print them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::AuthError;

/// How a cloud authenticates, from the cloud's `auth_type` (default: password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthType {
    /// `password` / `v3password`: user + password, scoped to a project.
    Password,
    /// `v3applicationcredential`: an application credential id (or name + user) and secret.
    ApplicationCredential,
    /// `token` / `v3token`: an existing token exchanged for a project-scoped one; with an
    /// image endpoint and no `auth_url`, sent to that endpoint as it is.
    Token,
    /// `none` / `noauth`: no Keystone; the image endpoint must be given.
    None,
}

impl AuthType {
    fn parse(raw: Option<&str>) -> Result<Self, AuthError> {
        match raw.unwrap_or("password") {
            "password" | "v3password" => Ok(Self::Password),
            "v3applicationcredential" | "applicationcredential" => Ok(Self::ApplicationCredential),
            "token" | "v3token" => Ok(Self::Token),
            "none" | "noauth" => Ok(Self::None),
            other => Err(AuthError::InvalidConfig(format!(
                "auth_type {other:?} is not supported: use password, v3password, \
                 v3applicationcredential, token, v3token or none"
            ))),
        }
    }
}

/// A name or an id: Keystone accepts either for users, projects and domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

/// Everything glint needs to reach one cloud's image service.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// The key under `clouds:` this came from.
    pub name: String,
    pub auth_type: AuthType,
    /// Keystone URL; `None` only with [`AuthType::None`].
    pub auth_url: Option<String>,
    pub user: Option<NameOrId>,
    pub user_domain: Option<NameOrId>,
    pub password: Option<SecretString>,
    pub project: Option<NameOrId>,
    pub project_domain: Option<NameOrId>,
    pub application_credential: Option<NameOrId>,
    pub application_credential_secret: Option<SecretString>,
    pub token: Option<SecretString>,
    pub region_name: Option<String>,
    /// Catalog interface to pick: public (default), internal or admin.
    pub interface: String,
    /// Skip the catalog and use this image endpoint (`image_endpoint_override`, or
    /// `auth.endpoint` with auth_type none).
    pub image_endpoint_override: Option<String>,
    /// Path of an extra CA bundle (`cacert`).
    pub cacert: Option<PathBuf>,
    /// `verify: false` turns certificate checks off (with a warning at use).
    pub verify: bool,
    /// The file's top-level `cache: {auth: true}` (openstacksdk's setting): keep tokens
    /// between runs. Only the CLI acts on it; the controller keeps its tokens in memory.
    pub cache_auth: bool,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    clouds: BTreeMap<String, RawCloud>,
    /// openstacksdk's cache settings; glint reads `auth` and ignores the rest (`expiration`,
    /// `class`, ...), whatever their shape.
    #[serde(default)]
    cache: Option<serde_json::Value>,
}

/// `cache.auth` as openstacksdk reads it: `true`, or the text "true" in any case.
fn cache_auth(cache: Option<&serde_json::Value>) -> bool {
    match cache.and_then(|cache| cache.get("auth")) {
        Some(serde_json::Value::Bool(on)) => *on,
        Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[derive(Deserialize, Default)]
struct RawCloud {
    auth_type: Option<String>,
    #[serde(default)]
    auth: RawAuth,
    region_name: Option<String>,
    interface: Option<String>,
    image_endpoint_override: Option<String>,
    cacert: Option<PathBuf>,
    verify: Option<bool>,
    identity_api_version: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    auth_url: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    // Keystone's v2-era aliases that clouds.yaml files still carry.
    tenant_name: Option<String>,
    tenant_id: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    // A shared default for both domains, as openstacksdk allows.
    domain_name: Option<String>,
    domain_id: Option<String>,
    application_credential_id: Option<String>,
    application_credential_name: Option<String>,
    application_credential_secret: Option<String>,
    token: Option<String>,
    endpoint: Option<String>,
}

/// All clouds of one `clouds.yaml`.
#[derive(Debug, Clone)]
pub struct CloudsFile {
    clouds: BTreeMap<String, CloudConfig>,
}

impl CloudsFile {
    /// Parses `clouds.yaml` content. Every cloud is validated, so a broken entry is reported
    /// even when another one is used.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuthError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| AuthError::InvalidConfig("clouds.yaml is not UTF-8 text".into()))?;
        // The YAML error text can quote the offending line, which may hold a password: keep
        // only the position.
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|err| {
            AuthError::InvalidConfig(format!(
                "clouds.yaml is not valid YAML or has a field of the wrong type ({})",
                yaml_error_position(&err.to_string())
            ))
        })?;
        let cache_auth = cache_auth(raw.cache.as_ref());
        let clouds = raw
            .clouds
            .into_iter()
            .map(|(name, cloud)| {
                let mut config = CloudConfig::from_raw(name.clone(), cloud)?;
                config.cache_auth = cache_auth;
                Ok((name, config))
            })
            .collect::<Result<_, AuthError>>()?;
        Ok(Self { clouds })
    }

    /// Reads and parses a file.
    pub fn from_path(path: &Path) -> Result<Self, AuthError> {
        let bytes = std::fs::read(path).map_err(|err| {
            AuthError::InvalidConfig(format!("cannot read {}: {err}", path.display()))
        })?;
        Self::from_bytes(&bytes)
    }

    /// The cloud called `name`; the error lists the names that exist.
    pub fn cloud(&self, name: &str) -> Result<&CloudConfig, AuthError> {
        self.clouds
            .get(name)
            .ok_or_else(|| AuthError::CloudNotFound {
                name: name.to_string(),
                available: self.clouds.keys().cloned().collect(),
            })
    }

    /// Names of all clouds, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clouds.keys().map(String::as_str)
    }
}

/// Where the OpenStack tools look for `clouds.yaml`, in their order:
/// `$OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`, `~/.config/openstack/clouds.yaml`,
/// `/etc/openstack/clouds.yaml`.
pub fn standard_locations() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(explicit) = std::env::var_os("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(explicit));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".config/openstack/clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

/// Loads the first `clouds.yaml` found in [`standard_locations`] and picks the cloud named by
/// `cloud`, else `$OS_CLOUD`, else the only cloud in the file.
pub fn load_from_environment(cloud: Option<&str>) -> Result<CloudConfig, AuthError> {
    let searched = standard_locations();
    let path =
        searched
            .iter()
            .find(|path| path.is_file())
            .ok_or_else(|| AuthError::NoCloudsFile {
                searched: searched.clone(),
            })?;
    let file = CloudsFile::from_path(path)?;
    let wanted = cloud
        .map(str::to_owned)
        .or_else(|| std::env::var("OS_CLOUD").ok());
    match wanted {
        Some(name) => file.cloud(&name).cloned(),
        None => {
            let names: Vec<&str> = file.names().collect();
            match names.as_slice() {
                [only] => file.cloud(only).cloned(),
                _ => Err(AuthError::InvalidConfig(format!(
                    "{} defines {} clouds ({}): choose one with --os-cloud or OS_CLOUD",
                    path.display(),
                    names.len(),
                    names.join(", ")
                ))),
            }
        }
    }
}

fn yaml_error_position(message: &str) -> String {
    // serde-saphyr ends its messages with "at line L column C"; keep that, drop the rest.
    match message.rfind("line ") {
        Some(at) => message[at..].lines().next().unwrap_or_default().to_string(),
        None => "no position given".to_string(),
    }
}

fn name_or_id(name: Option<String>, id: Option<String>) -> Option<NameOrId> {
    // An id is exact, so it wins when a file carries both.
    id.map(NameOrId::Id).or(name.map(NameOrId::Name))
}

impl CloudConfig {
    fn from_raw(name: String, raw: RawCloud) -> Result<Self, AuthError> {
        let auth_type = AuthType::parse(raw.auth_type.as_deref())?;
        if let Some(version) = &raw.identity_api_version {
            let as_text = match version {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if !as_text.starts_with('3') {
                return Err(AuthError::InvalidConfig(format!(
                    "cloud {name:?}: identity_api_version {as_text} is not supported; glint speaks Keystone v3"
                )));
            }
        }
        let auth = raw.auth;
        let shared_domain = name_or_id(auth.domain_name, auth.domain_id);
        let config = CloudConfig {
            auth_type,
            auth_url: auth.auth_url,
            user: name_or_id(auth.username, auth.user_id),
            user_domain: name_or_id(auth.user_domain_name, auth.user_domain_id)
                .or_else(|| shared_domain.clone()),
            password: auth.password.map(SecretString::from),
            project: name_or_id(
                auth.project_name.or(auth.tenant_name),
                auth.project_id.or(auth.tenant_id),
            ),
            project_domain: name_or_id(auth.project_domain_name, auth.project_domain_id)
                .or(shared_domain),
            application_credential: name_or_id(
                auth.application_credential_name,
                auth.application_credential_id,
            ),
            application_credential_secret: auth
                .application_credential_secret
                .map(SecretString::from),
            token: auth.token.map(SecretString::from),
            region_name: raw.region_name,
            interface: raw.interface.unwrap_or_else(|| "public".to_string()),
            image_endpoint_override: raw.image_endpoint_override.or(auth.endpoint),
            cacert: raw.cacert,
            verify: raw.verify.unwrap_or(true),
            cache_auth: false,
            name,
        };
        config.validate()?;
        Ok(config)
    }

    /// Says, in the words of clouds.yaml, what a cloud entry lacks for its auth_type.
    fn validate(&self) -> Result<(), AuthError> {
        let missing = |what: &str| {
            Err(AuthError::InvalidConfig(format!(
                "cloud {:?}: {what}",
                self.name
            )))
        };
        if !matches!(self.interface.as_str(), "public" | "internal" | "admin") {
            return missing("interface must be public, internal or admin");
        }
        // A token with an image endpoint and no Keystone is sent as it is (`glint cloud
        // --token`, or a Glance that takes pre-issued tokens).
        let static_token =
            self.auth_type == AuthType::Token && self.image_endpoint_override.is_some();
        if self.auth_type != AuthType::None && self.auth_url.is_none() && !static_token {
            return missing("auth.auth_url is required");
        }
        match self.auth_type {
            AuthType::Password => {
                if self.user.is_none() {
                    return missing("auth.username or auth.user_id is required for password auth");
                }
                if self.password.is_none() {
                    return missing("auth.password is required for password auth");
                }
                if matches!(self.user, Some(NameOrId::Name(_))) && self.user_domain.is_none() {
                    return missing(
                        "auth.user_domain_name or auth.user_domain_id is required with a username",
                    );
                }
            }
            AuthType::ApplicationCredential => {
                if self.application_credential_secret.is_none() {
                    return missing("auth.application_credential_secret is required");
                }
                match (&self.application_credential, &self.user) {
                    (None, _) => {
                        return missing(
                            "auth.application_credential_id (or _name with a user) is required",
                        );
                    }
                    (Some(NameOrId::Name(_)), None) => {
                        return missing(
                            "auth.application_credential_name needs auth.username or auth.user_id",
                        );
                    }
                    _ => {}
                }
            }
            AuthType::Token => {
                if self.token.is_none() {
                    return missing("auth.token is required for token auth");
                }
            }
            AuthType::None => {
                if self.image_endpoint_override.is_none() {
                    return missing(
                        "auth_type none needs the image endpoint: set auth.endpoint or image_endpoint_override",
                    );
                }
            }
        }
        if matches!(self.project, Some(NameOrId::Name(_))) && self.project_domain.is_none() {
            return missing(
                "auth.project_domain_name or auth.project_domain_id is required with a project_name",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(yaml: &str) -> Result<CloudsFile, AuthError> {
        CloudsFile::from_bytes(yaml.as_bytes())
    }

    const PASSWORD_CLOUD: &str = r#"
clouds:
  prod:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: alice
      password: s3cr3t-pw
      project_name: images
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionTwo
    interface: internal
    cacert: /etc/ssl/cloud.pem
"#;

    #[test]
    fn a_password_cloud_is_parsed_with_names_ids_and_defaults() {
        let file = parse(PASSWORD_CLOUD).unwrap();
        let cloud = file.cloud("prod").unwrap();
        assert_eq!(cloud.auth_type, AuthType::Password);
        assert_eq!(cloud.user, Some(NameOrId::Name("alice".into())));
        assert_eq!(cloud.project, Some(NameOrId::Name("images".into())));
        assert_eq!(cloud.project_domain, Some(NameOrId::Id("default".into())));
        assert_eq!(
            cloud.password.as_ref().unwrap().expose_secret(),
            "s3cr3t-pw"
        );
        assert_eq!(cloud.region_name.as_deref(), Some("RegionTwo"));
        assert_eq!(cloud.interface, "internal");
        assert_eq!(cloud.cacert, Some(PathBuf::from("/etc/ssl/cloud.pem")));
        assert!(cloud.verify);
        assert!(!cloud.cache_auth, "tokens are kept only when the file asks");
    }

    #[test]
    fn the_files_cache_auth_setting_reaches_every_cloud_as_openstacksdk_reads_it() {
        for (cache, expected) in [
            ("cache:\n  auth: true\n", true),
            ("cache:\n  auth: \"True\"\n", true),
            ("cache:\n  auth: false\n", false),
            ("cache:\n  expiration_time: 3600\n", false),
            ("cache:\n  auth: yes-please\n", false),
            ("cache: 5\n", false),
        ] {
            let file = parse(&format!("{cache}{PASSWORD_CLOUD}")).unwrap();
            assert_eq!(
                file.cloud("prod").unwrap().cache_auth,
                expected,
                "{cache:?}"
            );
        }
    }

    #[test]
    fn every_auth_type_spelling_is_recognised() {
        for (spelling, expected) in [
            ("password", AuthType::Password),
            ("v3password", AuthType::Password),
            ("v3applicationcredential", AuthType::ApplicationCredential),
            ("token", AuthType::Token),
            ("v3token", AuthType::Token),
            ("none", AuthType::None),
            ("noauth", AuthType::None),
        ] {
            assert_eq!(
                AuthType::parse(Some(spelling)).unwrap(),
                expected,
                "{spelling}"
            );
        }
        assert!(AuthType::parse(Some("v2password")).is_err());
    }

    #[test]
    fn an_application_credential_cloud_needs_no_project() {
        let file = parse(
            r#"
clouds:
  ci:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://127.0.0.1:5000
      application_credential_id: 0123abc
      application_credential_secret: app-secret
"#,
        )
        .unwrap();
        let cloud = file.cloud("ci").unwrap();
        assert_eq!(
            cloud.application_credential,
            Some(NameOrId::Id("0123abc".into()))
        );
        assert!(cloud.project.is_none());
    }

    #[test]
    fn a_noauth_cloud_takes_its_endpoint_from_auth_endpoint() {
        let file = parse(
            r#"
clouds:
  local:
    auth_type: none
    auth:
      endpoint: http://127.0.0.1:9292
    verify: false
"#,
        )
        .unwrap();
        let cloud = file.cloud("local").unwrap();
        assert_eq!(
            cloud.image_endpoint_override.as_deref(),
            Some("http://127.0.0.1:9292")
        );
        assert!(!cloud.verify);
    }

    #[test]
    fn incomplete_clouds_are_refused_with_what_to_add() {
        let cases = [
            (
                "auth_type: password\n    auth: {auth_url: x, username: a, user_domain_name: D}",
                "auth.password is required",
            ),
            (
                "auth: {username: a, password: p}",
                "auth.auth_url is required",
            ),
            (
                "auth: {auth_url: x, username: a, password: p}",
                "user_domain_name",
            ),
            (
                "auth: {auth_url: x, user_id: u, password: p, project_name: pr}",
                "project_domain_name",
            ),
            (
                "auth_type: v3applicationcredential\n    auth: {auth_url: x, application_credential_secret: s}",
                "application_credential_id",
            ),
            (
                "auth_type: v3applicationcredential\n    auth: {auth_url: x, application_credential_name: n, application_credential_secret: s}",
                "needs auth.username",
            ),
            (
                "auth_type: token\n    auth: {auth_url: x}",
                "auth.token is required",
            ),
            (
                "auth_type: token\n    auth: {token: t}",
                "auth.auth_url is required",
            ),
            ("auth_type: none", "image endpoint"),
            ("auth_type: kerberos", "not supported"),
            (
                "identity_api_version: 2\n    auth: {auth_url: x, user_id: u, password: p}",
                "Keystone v3",
            ),
            (
                "interface: private\n    auth: {auth_url: x, user_id: u, password: p}",
                "interface must be",
            ),
        ];
        for (body, expected) in cases {
            let yaml = format!("clouds:\n  broken:\n    {body}\n");
            let err = parse(&yaml).unwrap_err().to_string();
            assert!(err.contains(expected), "{body:?} gave {err:?}");
            assert!(
                err.contains("broken") || expected == "not supported",
                "{err}"
            );
        }
    }

    #[test]
    fn an_unknown_cloud_name_lists_the_known_ones() {
        let file = parse(PASSWORD_CLOUD).unwrap();
        let err = file.cloud("staging").unwrap_err().to_string();
        assert!(err.contains("staging") && err.contains("prod"), "{err}");
    }

    #[test]
    fn a_yaml_error_reports_the_position_but_not_the_line_content() {
        let err = parse("clouds:\n  x:\n    auth: {password: \"hunter2\", username: [\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("clouds.yaml"), "{err}");
    }
}
