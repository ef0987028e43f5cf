//! Glance v2: the only module that speaks to the image service.
//!
//! [`GlanceApi`] is the seam the rest of glint programs against: the reconciler, the transfer
//! tasks and the CLI take `impl GlanceApi`, so a fault-injecting double can stand in where the
//! real Glance cannot be made to fail on cue. [`GlanceClient`] is the reqwest implementation;
//! no reqwest type leaves this module (and `auth`, which shares its HTTP client).

mod client;
mod error;
mod frames;
mod listing_cache;
mod patch;
mod query;
mod stall;
mod types;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

pub use crate::vocabulary::looks_like_uuid;
pub use client::GlanceClient;
pub use error::GlanceError;
pub use listing_cache::ListingCache;
pub use patch::{PATCH_MEDIA_TYPE, PatchOp, patch_body};
pub use query::{ListQuery, MAX_PAGE_SIZE, NameFilter, SortDirection, TimeComparison};
pub use stall::DEFAULT_UPLOAD_STALL;
pub use types::{
    BASE_KEYS, ContainerFormat, DiskFormat, GlanceImage, GlanceStatus, ImportInfo, ImportMethod,
    Member, MemberStatus, NewImage, StoreInfo, Task, Visibility,
};

/// Image data in flight: chunks read lazily, never the whole image in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Images of a listing, fetched page by page as the stream is polled.
pub type ImageStream<'a> = Pin<Box<dyn Stream<Item = Result<GlanceImage>> + Send + 'a>>;

/// One page of a listing and the marker of the next page, if Glance announced one.
#[derive(Debug, Clone)]
pub struct Page {
    pub images: Vec<GlanceImage>,
    pub next_marker: Option<String>,
}

/// A download: what Glance says about the data, and the data itself.
pub struct Download {
    /// `Content-Length`, when Glance sends it.
    pub size: Option<u64>,
    /// `Content-MD5` (Glance's `checksum`), when Glance sends it.
    pub checksum: Option<String>,
    pub data: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, GlanceError>;

/// Every image call the OpenStack SDKs offer, as glint needs them.
pub trait GlanceApi: Send + Sync {
    /// One page of `GET /v2/images`; `marker` continues after that image.
    fn list_page(
        &self,
        query: &ListQuery,
        marker: Option<&str>,
    ) -> impl Future<Output = Result<Page>> + Send;

    fn get_image(&self, id: &str) -> impl Future<Output = Result<GlanceImage>> + Send;

    /// The image as Glance has it right now, bypassing any cache: for reconciles where the
    /// user is looking (after an edit, or when a refresh was requested).
    fn get_image_fresh(&self, id: &str) -> impl Future<Output = Result<GlanceImage>> + Send {
        self.get_image(id)
    }

    fn create_image(&self, image: &NewImage) -> impl Future<Output = Result<GlanceImage>> + Send;

    /// Applies the operations atomically and returns the image after them.
    fn update_image(
        &self,
        id: &str,
        ops: &[PatchOp],
    ) -> impl Future<Output = Result<GlanceImage>> + Send;

    /// `PUT /file`: streams `data` into a queued image. `size`, when known, is sent as
    /// Content-Length.
    fn upload(
        &self,
        id: &str,
        data: ByteStream,
        size: Option<u64>,
    ) -> impl Future<Output = Result<()>> + Send;

    fn download(&self, id: &str) -> impl Future<Output = Result<Download>> + Send;

    /// `PUT /stage`: the first half of a glance-direct import.
    fn stage(
        &self,
        id: &str,
        data: ByteStream,
        size: Option<u64>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `POST /import`; Glance works asynchronously: watch the image's status and tasks.
    fn import(&self, id: &str, method: &ImportMethod) -> impl Future<Output = Result<()>> + Send;

    fn import_info(&self) -> impl Future<Output = Result<ImportInfo>> + Send;

    fn stores_info(&self) -> impl Future<Output = Result<Vec<StoreInfo>>> + Send;

    /// The image's tasks, newest first as Glance lists them.
    fn image_tasks(&self, id: &str) -> impl Future<Output = Result<Vec<Task>>> + Send;

    fn deactivate(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    fn reactivate(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    fn delete(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Servers booted from the image, from the cloud's compute service; `None` when glint
    /// cannot tell (no compute service, or the credentials may not list servers).
    fn servers_booted_from(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<ServersUsing>>> + Send {
        async { Ok(None) }
    }

    /// `PUT /tags/{tag}`. A tag containing `/` cannot travel this path (the WSGI server
    /// decodes `%2F` before Glance routes it: 404); set such tags with [`PatchOp::SetTags`].
    fn add_tag(&self, id: &str, tag: &str) -> impl Future<Output = Result<()>> + Send;

    fn remove_tag(&self, id: &str, tag: &str) -> impl Future<Output = Result<()>> + Send;

    fn add_member(&self, id: &str, project: &str) -> impl Future<Output = Result<Member>> + Send;

    fn list_members(&self, id: &str) -> impl Future<Output = Result<Vec<Member>>> + Send;

    fn get_member(&self, id: &str, project: &str) -> impl Future<Output = Result<Member>> + Send;

    /// Accept or reject a shared image; only the member project itself may do this.
    fn set_member_status(
        &self,
        id: &str,
        project: &str,
        status: MemberStatus,
    ) -> impl Future<Output = Result<Member>> + Send;

    fn remove_member(&self, id: &str, project: &str) -> impl Future<Output = Result<()>> + Send;

    /// Every matching image, following `next` only as the stream is read.
    fn list_images<'a>(&'a self, query: &'a ListQuery) -> ImageStream<'a> {
        enum Cursor {
            Start,
            After(String),
            Done,
        }
        let pages = futures::stream::try_unfold(Cursor::Start, move |cursor| async move {
            let marker = match &cursor {
                Cursor::Done => return Ok::<_, GlanceError>(None),
                Cursor::Start => None,
                Cursor::After(marker) => Some(marker.as_str()),
            };
            let page = self.list_page(query, marker).await?;
            let next = page.next_marker.map_or(Cursor::Done, Cursor::After);
            Ok(Some((
                futures::stream::iter(page.images.into_iter().map(Ok::<_, GlanceError>)),
                next,
            )))
        });
        Box::pin(futures::TryStreamExt::try_flatten(pages))
    }

    /// Deletes the image; `Ok(false)` when it was already gone.
    ///
    /// A refused delete is checked against a fresh read: when two deletes of one image overlap
    /// (another client's, or a resent request whose first copy landed), Glance answers the
    /// loser 400 "status transition from deleted to deleted". The image is gone all the same,
    /// and reporting that refusal would hold the Kubernetes object forever.
    fn delete_if_exists(&self, id: &str) -> impl Future<Output = Result<bool>> + Send {
        async move {
            let refusal = match self.delete(id).await {
                Ok(()) => return Ok(true),
                Err(err) if err.is_not_found() => return Ok(false),
                Err(err) if err.is_transient() || err.status().is_none() => return Err(err),
                Err(refusal) => refusal,
            };
            match self.get_image(id).await {
                Err(err) if err.is_not_found() => Ok(false),
                Ok(image)
                    if matches!(
                        image.status,
                        GlanceStatus::Deleted | GlanceStatus::PendingDelete
                    ) =>
                {
                    Ok(false)
                }
                _ => Err(refusal),
            }
        }
    }

    /// The image with this id, else the one image with this name; `None` when neither exists,
    /// an error when the name is ambiguous.
    fn find_image(
        &self,
        name_or_id: &str,
    ) -> impl Future<Output = Result<Option<GlanceImage>>> + Send {
        async move {
            if looks_like_uuid(name_or_id) {
                match self.get_image(name_or_id).await {
                    Ok(image) => return Ok(Some(image)),
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err),
                }
            }
            let query = ListQuery {
                name: Some(NameFilter::Exactly(name_or_id.to_string())),
                page_size: Some(2),
                ..ListQuery::default()
            };
            let mut page = self.list_page(&query, None).await?;
            match page.images.len() {
                0 => Ok(None),
                1 => Ok(page.images.pop()),
                _ => Err(GlanceError::AmbiguousName {
                    name: name_or_id.to_string(),
                }),
            }
        }
    }
}

/// Servers the compute service lists as booted from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServersUsing {
    pub count: usize,
    /// Every project's servers were counted (the credentials may list them), not only the
    /// credentials' own project's.
    pub every_project: bool,
    /// The listing was cut at its limit: there may be more.
    pub at_least: bool,
}

impl ServersUsing {
    /// In words, for a reason's message.
    pub fn describe(&self) -> String {
        let count = format!(
            "{}{}",
            if self.at_least { "at least " } else { "" },
            self.count
        );
        let servers = if self.count == 1 {
            "server was"
        } else {
            "servers were"
        };
        let scope = if self.every_project {
            ""
        } else {
            " (counted in this project only: these credentials may not list other projects' servers)"
        };
        format!("{count} {servers} booted from it{scope}")
    }
}
