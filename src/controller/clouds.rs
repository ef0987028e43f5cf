//! [`CloudRegistry`]: one [`CloudHandle`] (Glance client, token, listing cache, transfer
//! queue) per (namespace, Secret, cloud), shared by every Image that names them.
//!
//! - Built once, even when many Images reconcile for the first time together: the first
//!   caller builds while the others wait for it, so there is one login and one queue.
//! - A changed Secret swaps the credentials inside the existing handle. Transfers already
//!   running keep going and stay visible, because the handle and its queue are the same.
//! - A handle no Image uses any more is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::error::ReconcileError;
use crate::auth::{AuthOptions, Authenticator, CloudsFile};
use crate::crd::Image;
use crate::glance::{GlanceClient, ListingCache};
use crate::metrics::TransferMetrics;
use crate::transfer::{EndHook, SharedDownloads, SourcePolicy, TransferManager};

/// How long one listing of a project's images answers lookups. Resyncs are spread over the
/// window the start spreads them over (`controller::STARTUP_SPREAD`, 20 s) and stay spread, so
/// a listing that outlives that window serves a whole round: one listing per round, yet no
/// burst that new objects would queue behind. Drift is seen at most this much later.
const LISTING_TTL: Duration = Duration::from_secs(30);

/// What identifies a handle. The Secret's version is not part of it: a new version updates
/// the handle in place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloudKey {
    pub namespace: String,
    pub secret: String,
    pub cloud: String,
    /// A target's region, instead of the clouds.yaml's region_name.
    pub region: Option<String>,
}

impl std::fmt::Display for CloudKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.namespace, self.secret, self.cloud)?;
        match &self.region {
            Some(region) => write!(f, "@{region}"),
            None => Ok(()),
        }
    }
}

/// A cloud client and its transfers.
pub struct CloudHandle {
    pub client: Arc<ListingCache<GlanceClient>>,
    pub transfers: TransferManager<ListingCache<GlanceClient>>,
    /// The Secret resourceVersion the credentials came from.
    secret_version: Mutex<String>,
}

impl CloudHandle {
    fn secret_version(&self) -> String {
        lock(&self.secret_version).clone()
    }
}

#[derive(Default)]
struct Slot {
    /// Held while the handle is built or its credentials are swapped: concurrent callers
    /// wait for that one build instead of starting their own.
    handle: tokio::sync::Mutex<Option<Arc<CloudHandle>>>,
}

/// Settings every new handle gets.
#[derive(Clone)]
pub struct HandleSettings {
    pub transfer_parallelism: usize,
    /// How long Glance may stall an upload before glint retries it.
    pub upload_stall: std::time::Duration,
    pub source_policy: Arc<SourcePolicy>,
    pub metrics: TransferMetrics,
    /// Told when a transfer ends, so its object is reconciled at once.
    pub on_end: Option<EndHook>,
    /// The downloads every cloud's transfers share: an Image's targets read its source once.
    pub shared_downloads: Option<Arc<SharedDownloads>>,
}

/// Which kind of object uses a handle: each kind's sweep forgets only its own deleted users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Image,
    Series,
    SharedImage,
}

/// The handles of all clouds in use.
pub struct CloudRegistry {
    settings: HandleSettings,
    slots: Mutex<HashMap<CloudKey, Arc<Slot>>>,
    /// Which objects (by uid) use which key.
    users: Mutex<HashMap<String, (CloudKey, UserKind)>>,
    built: AtomicU64,
    rotated: AtomicU64,
    logins: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here replaces values whole, so a poisoned map is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CloudRegistry {
    pub fn new(settings: HandleSettings) -> Self {
        Self {
            settings,
            slots: Mutex::default(),
            users: Mutex::default(),
            built: AtomicU64::new(0),
            rotated: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        }
    }

    /// Handles built so far (for tests and metrics).
    pub fn handles_built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Credential swaps after a Secret changed (for tests and metrics).
    pub fn credentials_rotated(&self) -> u64 {
        self.rotated.load(Ordering::Relaxed)
    }

    /// Logins (clouds.yaml read, token issued) so far: one per handle built or rotated.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Handles alive now.
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The handle for the Image's Secret and cloud, built or refreshed as needed.
    pub async fn resolve(
        &self,
        kube: &Client,
        image: &Image,
    ) -> Result<Arc<CloudHandle>, ReconcileError> {
        let namespace = image.namespace().unwrap_or_default();
        let reference = image
            .spec
            .cloud_credentials_ref
            .as_ref()
            .ok_or(ReconcileError::Incomplete("spec.cloudCredentialsRef"))?;
        self.resolve_for(
            kube,
            &namespace,
            reference,
            None,
            image.uid().map(|uid| (uid, UserKind::Image)),
        )
        .await
    }

    /// The handle for one of an object's targets (or a target it had: its status keeps where
    /// it was). The object (an Image or a series, `kind`) counts as a user of it under
    /// `uid/target`.
    pub async fn resolve_target(
        &self,
        kube: &Client,
        object: &impl ResourceExt,
        kind: UserKind,
        (target, reference, region): crate::crd::TargetPlace<'_>,
    ) -> Result<Arc<CloudHandle>, ReconcileError> {
        let namespace = object.namespace().unwrap_or_default();
        self.resolve_for(
            kube,
            &namespace,
            reference,
            region,
            object.uid().map(|uid| (target_user(&uid, target), kind)),
        )
        .await
    }

    /// The handle for a Secret and cloud in `namespace`, for the object `user` (its uid and
    /// kind), which then counts as a user of the handle.
    pub async fn resolve_for(
        &self,
        kube: &Client,
        namespace: &str,
        reference: &crate::crd::CloudCredentialsRef,
        region: Option<&str>,
        user: Option<(String, UserKind)>,
    ) -> Result<Arc<CloudHandle>, ReconcileError> {
        let namespace = namespace.to_string();
        let key = CloudKey {
            namespace: namespace.clone(),
            secret: reference.secret_name.clone(),
            cloud: reference.cloud_name.clone(),
            region: region.map(str::to_string),
        };
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
        let secret = secrets
            .get_opt(&reference.secret_name)
            .await?
            .ok_or_else(|| ReconcileError::SecretNotFound {
                namespace: namespace.clone(),
                name: reference.secret_name.clone(),
            })?;
        let version = secret.resource_version().unwrap_or_default();
        if let Some((uid, kind)) = user {
            self.use_key(uid, key.clone(), kind);
        }
        let slot = lock(&self.slots).entry(key.clone()).or_default().clone();
        let mut current = slot.handle.lock().await;
        if let Some(handle) = current.as_ref() {
            if handle.secret_version() != version {
                let (auth, project) = self.login(&secret, &key).await?;
                handle.client.inner().replace_authenticator(auth);
                handle.client.set_owner(project).await;
                *lock(&handle.secret_version) = version;
                self.rotated.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cloud = %key, "the credentials Secret changed; using its new credentials");
            }
            return Ok(handle.clone());
        }
        let (auth, project) = self.login(&secret, &key).await?;
        let client = Arc::new(ListingCache::new(
            GlanceClient::new(auth).with_upload_stall(self.settings.upload_stall),
            project,
            LISTING_TTL,
        ));
        let handle = Arc::new(CloudHandle {
            transfers: TransferManager::new(
                client.clone(),
                self.settings.transfer_parallelism,
                self.settings.source_policy.clone(),
                self.settings
                    .metrics
                    .into_cloud(&key.cloud, key.region.as_deref()),
            )
            .map(|manager| match &self.settings.on_end {
                Some(hook) => manager.on_end(hook.clone()),
                None => manager,
            })
            .map(|manager| match &self.settings.shared_downloads {
                Some(downloads) => manager.sharing(downloads.clone()),
                None => manager,
            })?,
            client,
            secret_version: Mutex::new(version),
        });
        self.built.fetch_add(1, Ordering::Relaxed);
        *current = Some(handle.clone());
        Ok(handle)
    }

    async fn login(
        &self,
        secret: &Secret,
        key: &CloudKey,
    ) -> Result<(Authenticator, Option<String>), ReconcileError> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        login(secret, key).await
    }

    /// Records that the object `uid` uses `key`, dropping the handle it used before if no one
    /// else does.
    fn use_key(&self, uid: String, key: CloudKey, kind: UserKind) {
        let previous = lock(&self.users).insert(uid, (key.clone(), kind));
        if let Some((previous, _)) = previous
            && previous != key
        {
            self.evict_if_unused(&previous);
        }
    }

    /// The object `uid` is gone (or no longer needs a cloud): it and its targets.
    pub fn forget(&self, uid: &str) {
        let target_prefix = target_user(uid, "");
        let gone: Vec<(CloudKey, UserKind)> = {
            let mut users = lock(&self.users);
            let keys: Vec<String> = users
                .keys()
                .filter(|user| *user == uid || user.starts_with(&target_prefix))
                .cloned()
                .collect();
            keys.iter().filter_map(|user| users.remove(user)).collect()
        };
        for (key, _) in gone {
            self.evict_if_unused(&key);
        }
    }

    /// One target of `uid` no longer needs its cloud (it left spec.targets).
    pub fn forget_target(&self, uid: &str, target: &str) {
        let previous = lock(&self.users).remove(&target_user(uid, target));
        if let Some((key, _)) = previous {
            self.evict_if_unused(&key);
        }
    }

    /// Forgets every user of this kind in `namespace` (all namespaces for `None`) that `live`
    /// does not know: objects deleted while no reconcile saw them. Users of other kinds are
    /// not this sweep's to judge (a series is no Image, yet uses its cloud).
    pub fn retain_users(
        &self,
        namespace: Option<&str>,
        kind: UserKind,
        live: impl Fn(&str) -> bool,
    ) {
        let gone: Vec<String> = lock(&self.users)
            .iter()
            .filter(|(user, (key, of_kind))| {
                *of_kind == kind
                    && namespace.is_none_or(|namespace| key.namespace == namespace)
                    && !live(object_of(user))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.forget(&uid);
        }
    }

    fn evict_if_unused(&self, key: &CloudKey) {
        let in_use = lock(&self.users).values().any(|(used, _)| used == key);
        if !in_use && lock(&self.slots).remove(key).is_some() {
            tracing::debug!(cloud = %key, "no object uses this cloud any more; dropped its client");
        }
    }
}

/// How the registry names an object's target among its users: a uid never holds a '/'.
fn target_user(uid: &str, target: &str) -> String {
    format!("{uid}/{target}")
}

/// The object a user name belongs to.
fn object_of(user: &str) -> &str {
    user.split_once('/').map_or(user, |(uid, _)| uid)
}

/// Reads the Secret's clouds.yaml, logs in and learns the project: everything a handle needs
/// before its first Glance call.
async fn login(
    secret: &Secret,
    key: &CloudKey,
) -> Result<(Authenticator, Option<String>), ReconcileError> {
    let data = secret.data.clone().unwrap_or_default();
    let clouds_yaml =
        data.get("clouds.yaml")
            .ok_or_else(|| ReconcileError::SecretWithoutClouds {
                namespace: key.namespace.clone(),
                name: key.secret.clone(),
            })?;
    let file = CloudsFile::from_bytes(&clouds_yaml.0)?;
    let mut config = file.cloud(&key.cloud)?.clone();
    if let Some(region) = &key.region {
        config.region_name = Some(region.clone());
    }
    let options = AuthOptions {
        ca_bundle: data.get("cacert").map(|bytes| bytes.0.clone()),
        ..AuthOptions::default()
    };
    let auth = Authenticator::from_cloud(&config, options)?;
    let project = auth.project_id().await?;
    Ok((auth, project))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> CloudRegistry {
        CloudRegistry::new(HandleSettings {
            transfer_parallelism: 1,
            upload_stall: crate::glance::DEFAULT_UPLOAD_STALL,
            source_policy: Arc::new(SourcePolicy::default()),
            metrics: TransferMetrics::default(),
            on_end: None,
            shared_downloads: None,
        })
    }

    fn key(secret: &str) -> CloudKey {
        CloudKey {
            namespace: "ns".into(),
            secret: secret.into(),
            cloud: "c".into(),
            region: None,
        }
    }

    #[test]
    fn the_images_sweep_forgets_deleted_images_but_not_the_series_that_use_a_cloud() {
        let clouds = registry();
        lock(&clouds.slots).insert(key("shared"), Arc::default());
        clouds.use_key("image-1".into(), key("shared"), UserKind::Image);
        clouds.use_key("series-1".into(), key("shared"), UserKind::Series);
        // The Images' sweep sees no live Image: image-1 was deleted.
        clouds.retain_users(Some("ns"), UserKind::Image, |_| false);
        assert_eq!(
            clouds.len(),
            1,
            "the series still uses the cloud: its handle stays"
        );
        let users: Vec<String> = lock(&clouds.users).keys().cloned().collect();
        assert_eq!(users, ["series-1"]);
        clouds.forget("series-1");
        assert!(clouds.is_empty(), "the last user gone, the handle goes");
    }
}
