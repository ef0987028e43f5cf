//! [`ListingCache`]: one image listing per project serves many `get_image` calls.
//!
//! A resync reconciles every Image of a cloud at about the same time; without this each would
//! GET its image. With it, the first reconcile lists the project's images (pages of up to
//! 1000) and the others read that snapshot while it is fresh. A create or patch puts Glance's
//! answer (the image as it now is) into the snapshot; other writes drop the entry they touch,
//! so a reconcile never reads back its own stale image. Ids the snapshot lacks (images of
//! other projects) fall through to a GET, and so does [`GlanceApi::get_image_fresh`], which
//! also refreshes the snapshot's copy.
//!
//! Keeping a new image's create answer matters while its upload runs: the Image is requeued
//! every few seconds for progress, and each of those passes would otherwise GET it from a
//! Glance busy receiving data (0.3 to 4.5 s per GET during four uploads on 2 cores, each
//! holding one of its threads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tokio::sync::Mutex;

use super::{
    ByteStream, Download, GlanceApi, GlanceError, GlanceImage, ImportInfo, ImportMethod, ListQuery,
    MAX_PAGE_SIZE, Member, MemberStatus, NewImage, Page, PatchOp, SortDirection, StoreInfo, Task,
};

type Result<T> = std::result::Result<T, GlanceError>;

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    images: HashMap<String, GlanceImage>,
}

/// A [`GlanceApi`] that answers `get_image` from a recent listing of one project's images.
pub struct ListingCache<G> {
    inner: G,
    /// Without a project (a cloud without Keystone) there is nothing to list by: every
    /// `get_image` goes to Glance.
    owner: std::sync::Mutex<Option<String>>,
    ttl: Duration,
    snapshot: Mutex<Snapshot>,
    listings: AtomicU64,
}

impl<G: GlanceApi> ListingCache<G> {
    /// Caches the images owned by `owner` (a project id) for `ttl` at a time.
    pub fn new(inner: G, owner: Option<String>, ttl: Duration) -> Self {
        Self {
            inner,
            owner: std::sync::Mutex::new(owner),
            ttl,
            snapshot: Mutex::default(),
            listings: AtomicU64::new(0),
        }
    }

    /// How many listings were taken, for tests and metrics.
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    pub fn inner(&self) -> &G {
        &self.inner
    }

    /// New credentials may act in another project: list that one from now on.
    pub async fn set_owner(&self, owner: Option<String>) {
        let mut snapshot = self.snapshot.lock().await;
        let mut current = self
            .owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current != owner {
            *current = owner;
            *snapshot = Snapshot::default();
        }
    }

    /// The project the credentials are scoped to, when the login said.
    pub fn project(&self) -> Option<String> {
        self.owner()
    }

    fn owner(&self) -> Option<String> {
        self.owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn refresh(&self, owner: &str, snapshot: &mut Snapshot) -> Result<()> {
        let query = ListQuery {
            owner: Some(owner.to_string()),
            sort: vec![("created_at".to_string(), SortDirection::Asc)],
            page_size: Some(MAX_PAGE_SIZE),
            ..ListQuery::default()
        };
        let images: Vec<GlanceImage> = self.inner.list_images(&query).try_collect().await?;
        self.listings.fetch_add(1, Ordering::Relaxed);
        snapshot.images = images
            .into_iter()
            .map(|image| (image.id.clone(), image))
            .collect();
        snapshot.taken = Some(Instant::now());
        Ok(())
    }

    async fn forget(&self, id: &str) {
        self.snapshot.lock().await.images.remove(id);
    }

    /// Keeps Glance's answer to a write that returns the image, or forgets the image when
    /// the write failed (its outcome is unknown).
    async fn remember(&self, id: &str, outcome: Result<GlanceImage>) -> Result<GlanceImage> {
        let owner = self.owner();
        let mut snapshot = self.snapshot.lock().await;
        match &outcome {
            // Only images of the listed project: without one nothing is ever read back.
            Ok(image) if owner.is_some() && image.owner == owner => {
                snapshot.images.insert(image.id.clone(), image.clone());
            }
            Ok(_) => {
                snapshot.images.remove(id);
            }
            Err(_) => {
                snapshot.images.remove(id);
            }
        }
        outcome
    }

    /// Runs a write and drops the cached copy of the image it touched, whatever the outcome.
    async fn write<T>(&self, id: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let outcome = call.await;
        self.forget(id).await;
        outcome
    }
}

impl<G: GlanceApi> GlanceApi for ListingCache<G> {
    async fn get_image(&self, id: &str) -> Result<GlanceImage> {
        if let Some(owner) = self.owner() {
            // Holding the lock while listing makes the other reconciles of a resync wait for
            // this one listing instead of each taking their own.
            let mut snapshot = self.snapshot.lock().await;
            let stale = snapshot
                .taken
                .is_none_or(|taken| taken.elapsed() > self.ttl);
            let fresh = !stale || self.refresh(&owner, &mut snapshot).await.is_ok();
            if fresh && let Some(image) = snapshot.images.get(id) {
                return Ok(image.clone());
            }
        }
        self.inner.get_image(id).await
    }

    async fn get_image_fresh(&self, id: &str) -> Result<GlanceImage> {
        let outcome = self.inner.get_image(id).await;
        let mut snapshot = self.snapshot.lock().await;
        match &outcome {
            Ok(image) if snapshot.images.contains_key(id) => {
                snapshot.images.insert(id.to_string(), image.clone());
            }
            Ok(_) => {}
            Err(_) => {
                snapshot.images.remove(id);
            }
        }
        outcome
    }

    async fn list_page(&self, query: &ListQuery, marker: Option<&str>) -> Result<Page> {
        self.inner.list_page(query, marker).await
    }

    async fn create_image(&self, image: &NewImage) -> Result<GlanceImage> {
        let id = image.id.clone().unwrap_or_default();
        let outcome = self.inner.create_image(image).await;
        self.remember(&id, outcome).await
    }

    async fn update_image(&self, id: &str, ops: &[PatchOp]) -> Result<GlanceImage> {
        let outcome = self.inner.update_image(id, ops).await;
        self.remember(id, outcome).await
    }

    async fn upload(&self, id: &str, data: ByteStream, size: Option<u64>) -> Result<()> {
        self.write(id, self.inner.upload(id, data, size)).await
    }

    async fn download(&self, id: &str) -> Result<Download> {
        self.inner.download(id).await
    }

    async fn stage(&self, id: &str, data: ByteStream, size: Option<u64>) -> Result<()> {
        self.write(id, self.inner.stage(id, data, size)).await
    }

    async fn import(&self, id: &str, method: &ImportMethod) -> Result<()> {
        self.write(id, self.inner.import(id, method)).await
    }

    async fn import_info(&self) -> Result<ImportInfo> {
        self.inner.import_info().await
    }

    async fn stores_info(&self) -> Result<Vec<StoreInfo>> {
        self.inner.stores_info().await
    }

    async fn image_tasks(&self, id: &str) -> Result<Vec<Task>> {
        self.inner.image_tasks(id).await
    }

    async fn deactivate(&self, id: &str) -> Result<()> {
        self.write(id, self.inner.deactivate(id)).await
    }

    async fn reactivate(&self, id: &str) -> Result<()> {
        self.write(id, self.inner.reactivate(id)).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.write(id, self.inner.delete(id)).await
    }

    async fn servers_booted_from(&self, id: &str) -> Result<Option<super::ServersUsing>> {
        self.inner.servers_booted_from(id).await
    }

    async fn add_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.write(id, self.inner.add_tag(id, tag)).await
    }

    async fn remove_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.write(id, self.inner.remove_tag(id, tag)).await
    }

    async fn add_member(&self, id: &str, project: &str) -> Result<Member> {
        self.inner.add_member(id, project).await
    }

    async fn list_members(&self, id: &str) -> Result<Vec<Member>> {
        self.inner.list_members(id).await
    }

    async fn get_member(&self, id: &str, project: &str) -> Result<Member> {
        self.inner.get_member(id, project).await
    }

    async fn set_member_status(
        &self,
        id: &str,
        project: &str,
        status: MemberStatus,
    ) -> Result<Member> {
        self.inner.set_member_status(id, project, status).await
    }

    async fn remove_member(&self, id: &str, project: &str) -> Result<()> {
        self.inner.remove_member(id, project).await
    }
}
