//! Which cloud a one-shot command talks to: the one clouds.yaml names, or, when none is
//! configured (no `--os-cloud`, no `OS_CLOUD`, no clouds.yaml), the embedded cloud started
//! in-process on a data folder, so that glint's main job works with nothing installed.

use std::path::{Path, PathBuf};

use crate::auth::{
    AuthError, AuthOptions, Authenticator, CloudConfig, CloudsFile, TokenStore, clouds,
};
use crate::glance::{GlanceClient, GlanceError};
use crate::glance_server::{self, CloudOptions, RunningCloud};
use crate::transfer::SourcePolicy;

/// A client, and the embedded cloud behind it when that is what it talks to (kept alive as
/// long as this is).
pub struct Target {
    pub api: GlanceClient,
    pub embedded: Option<RunningCloud>,
}

/// The embedded cloud's folder when `--data-dir` is not given: `$XDG_DATA_HOME/glint`, else
/// `~/.local/share/glint`.
pub fn default_data_dir() -> PathBuf {
    if let Some(data_home) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(data_home).join("glint");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/glint")
}

/// Whether no cloud is configured at all, so the embedded one is the user's cloud.
fn nothing_configured(cloud: Option<&str>) -> bool {
    cloud.is_none()
        && std::env::var_os("OS_CLOUD").is_none()
        && !clouds::standard_locations()
            .iter()
            .any(|path| path.is_file())
}

/// Whether the run's cloud is the embedded one: `--data-dir` given, or nothing configured.
pub fn uses_embedded(cloud: Option<&str>, data_dir: Option<&Path>) -> bool {
    data_dir.is_some() || nothing_configured(cloud)
}

/// The cloud named by `cloud` / `OS_CLOUD` / clouds.yaml; or the embedded cloud in
/// `data_dir` when that is given or nothing is configured. Says which in one line on stderr
/// when it is the embedded one.
pub async fn connect(cloud: Option<&str>, data_dir: Option<&Path>) -> Result<Target, String> {
    if !uses_embedded(cloud, data_dir) {
        let api = client_from_environment(cloud).map_err(|err| err.to_string())?;
        return Ok(Target {
            api,
            embedded: None,
        });
    }
    let data_dir = data_dir.map_or_else(default_data_dir, Path::to_path_buf);
    let running = glance_server::start(CloudOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: data_dir.clone(),
        access: glance_server::Access::Open,
        policy: SourcePolicy {
            allow_loopback: true,
            ..SourcePolicy::default()
        },
        formats: Default::default(),
    })
    .await
    .map_err(|err| {
        format!(
            "cannot start the embedded cloud in {}: {err}",
            data_dir.display()
        )
    })?;
    eprintln!(
        "glint: no cloud configured; using the embedded cloud in {} (see `glint cloud --help`)",
        data_dir.display()
    );
    let api = embedded_client(&running.endpoint()).map_err(|err| err.to_string())?;
    Ok(Target {
        api,
        embedded: Some(running),
    })
}

/// A client of an embedded cloud at `endpoint` (no auth).
pub fn embedded_client(endpoint: &str) -> Result<GlanceClient, AuthError> {
    let yaml = format!(
        "clouds:\n  embedded:\n    auth_type: none\n    image_endpoint_override: {endpoint}\n"
    );
    let file = CloudsFile::from_bytes(yaml.as_bytes())?;
    let config = file.cloud("embedded")?;
    let auth = Authenticator::from_cloud(config, AuthOptions::default())?;
    Ok(GlanceClient::new(auth))
}

/// Builds a client for the cloud named on the command line or by `OS_CLOUD`.
fn client_from_environment(cloud: Option<&str>) -> Result<GlanceClient, GlanceError> {
    let config = clouds::load_from_environment(cloud)?;
    let auth = Authenticator::from_cloud(&config, cli_auth_options(&config))?;
    Ok(GlanceClient::new(auth))
}

/// A one-shot command keeps its Keystone token for the next run when clouds.yaml says
/// `cache: {auth: true}` (see `auth::TokenStore`); the controller never does.
fn cli_auth_options(config: &CloudConfig) -> AuthOptions {
    AuthOptions {
        token_store: config.cache_auth.then(TokenStore::in_user_cache).flatten(),
        ..AuthOptions::default()
    }
}

/// Builds a client for the cloud `name` in clouds.yaml (a target's), in `region` instead of
/// the cloud's region_name when one is given.
pub fn client_for_cloud(name: &str, region: Option<&str>) -> Result<GlanceClient, GlanceError> {
    let mut config = clouds::load_from_environment(Some(name))?;
    if let Some(region) = region {
        config.region_name = Some(region.to_string());
    }
    let auth = Authenticator::from_cloud(&config, cli_auth_options(&config))?;
    Ok(GlanceClient::new(auth))
}
