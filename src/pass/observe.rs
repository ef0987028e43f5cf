//! Finds the Glance image an `Image` object stands for, without changing anything.
//!
//! A managed image is looked up by the id in status, then by the ownership mark (property
//! [`OWNER_PROPERTY`] = the object's uid). Because the id of a
//! new image is derived from the object's uid, a create whose response was lost is found again
//! instead of repeated; because every managed image carries the mark, adoption never takes an
//! image that merely has the same name. Imported (unmanaged) images are found by id or filter.

use crate::crd::{ImageImport, ImageSpec, ImportFilter, ManagementPolicy};
use crate::glance::{GlanceApi, GlanceError, GlanceImage, ListQuery, NameFilter, SortDirection};
use crate::reason::Reason;

pub use crate::crd::OWNER_PROPERTY;

/// How many derived ids to try when earlier ones are held by deleted images.
pub const MAX_DERIVED_IDS: u32 = 16;

/// UUID namespace for derived image ids (a fixed random UUID, never to change).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_3b2e_8d4a_4f0e_9a57_21c3_d0b8_e6f4);

/// The `attempt`-th id for the object with this uid: the same inputs always give the same id,
/// so a create can be retried without creating a second image.
pub fn derived_id(uid: &str, attempt: u32) -> String {
    let name = if attempt == 0 {
        uid.to_string()
    } else {
        format!("{uid}/{attempt}")
    };
    uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

/// The object being reconciled, as observation needs it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub uid: &'a str,
    pub spec: &'a ImageSpec,
    /// `status.id`: the image glint last knew.
    pub known_id: Option<&'a str>,
    /// Read Glance directly rather than through a shared listing (the user is looking).
    pub fresh: bool,
    /// The image as this reconcile read it from Glance a moment ago (a series lists its
    /// versions first): observation takes it for `known_id` instead of reading it again.
    pub seen: Option<&'a GlanceImage>,
}

/// What Glance holds for the object.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The managed image exists.
    Owned(GlanceImage),
    /// No managed image exists. `vanished` is the id glint knew, when the image was deleted
    /// outside glint (it will be recreated, with an Event).
    Absent { vanished: Option<String> },
    /// The image an unmanaged object tracks.
    Imported(GlanceImage),
    /// No image matches the import filter yet.
    ImportPending,
}

/// Failures of observation that are not plain Glance errors.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Glance(#[from] GlanceError),
    #[error(
        "the import filter matches {count} images; narrow it, or set newest: true to track the most recent"
    )]
    ImportAmbiguous { count: usize },
    #[error("no image with id {id} exists in Glance (spec.import.id)")]
    ImportNotFound { id: String },
}

impl ObserveError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Glance(err) => err.is_transient(),
            Self::ImportAmbiguous { .. } | Self::ImportNotFound { .. } => false,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Glance(err) => err.reason(),
            Self::ImportAmbiguous { .. } => Reason::ImportAmbiguous,
            Self::ImportNotFound { .. } => Reason::ImportNotFound,
        }
    }
}

/// Looks the object's image up in Glance.
pub async fn observe(
    api: &impl GlanceApi,
    subject: Subject<'_>,
) -> Result<Observation, ObserveError> {
    match (subject.spec.policy(), &subject.spec.import) {
        (ManagementPolicy::Unmanaged, Some(import)) => observe_import(api, import).await,
        // Admission refuses unmanaged objects without an import; one that slipped past (a CRD
        // installed without its rules) finds nothing rather than guessing.
        (ManagementPolicy::Unmanaged, None) => Ok(Observation::ImportPending),
        (ManagementPolicy::Managed, _) => observe_managed(api, subject).await,
    }
}

async fn get_if_exists(
    api: &impl GlanceApi,
    id: &str,
    fresh: bool,
) -> Result<Option<GlanceImage>, GlanceError> {
    let found = if fresh {
        api.get_image_fresh(id).await
    } else {
        api.get_image(id).await
    };
    match found {
        Ok(image) => Ok(Some(image)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

async fn observe_managed(
    api: &impl GlanceApi,
    subject: Subject<'_>,
) -> Result<Observation, ObserveError> {
    let Some(id) = subject.known_id else {
        // Nothing known yet: no read at all. The create that follows uses the id derived
        // from the uid, so if an earlier create did land (its answer lost), Glance answers
        // 409 and the image is adopted (see `act`).
        return Ok(Observation::Absent { vanished: None });
    };
    if let Some(image) = subject.seen.filter(|image| image.id == id) {
        return Ok(Observation::Owned(image.clone()));
    }
    if let Some(image) = get_if_exists(api, id, subject.fresh).await? {
        return Ok(Observation::Owned(image));
    }
    // Gone under the id glint knew: the image may live on under another derived id.
    if let Some(image) = find_by_mark(api, subject.uid).await? {
        return Ok(Observation::Owned(image));
    }
    Ok(Observation::Absent {
        vanished: subject.known_id.map(str::to_owned),
    })
}

/// The oldest image carrying this object's mark. More than one can exist only if someone
/// copied the mark; the oldest is the one glint created first.
async fn find_by_mark(api: &impl GlanceApi, uid: &str) -> Result<Option<GlanceImage>, GlanceError> {
    let query = ListQuery {
        properties: [(OWNER_PROPERTY.to_string(), uid.to_string())].into(),
        sort: vec![("created_at".to_string(), SortDirection::Asc)],
        page_size: Some(1),
        ..ListQuery::default()
    };
    let page = api.list_page(&query, None).await?;
    Ok(page.images.into_iter().next())
}

async fn observe_import(
    api: &impl GlanceApi,
    import: &ImageImport,
) -> Result<Observation, ObserveError> {
    if let Some(id) = &import.id {
        return match get_if_exists(api, id, false).await? {
            Some(image) => Ok(Observation::Imported(image)),
            None => Err(ObserveError::ImportNotFound { id: id.clone() }),
        };
    }
    let Some(filter) = &import.filter else {
        return Ok(Observation::ImportPending);
    };
    let query = import_query(filter);
    let mut page = api.list_page(&query, None).await?;
    match page.images.len() {
        0 => Ok(Observation::ImportPending),
        1 => Ok(Observation::Imported(page.images.remove(0))),
        // Sorted newest first, so the first match is the most recent one.
        _ if filter.newest => Ok(Observation::Imported(page.images.remove(0))),
        _ => {
            // Count them all, so the message says how far off the filter is.
            let mut count = page.images.len();
            let mut marker = page.next_marker;
            while let Some(next) = marker {
                let more = api.list_page(&query, Some(&next)).await?;
                count += more.images.len();
                marker = more.next_marker;
            }
            Err(ObserveError::ImportAmbiguous { count })
        }
    }
}

/// The listing that selects an import filter's candidates, newest first.
pub fn import_query(filter: &ImportFilter) -> ListQuery {
    ListQuery {
        name: filter.name.clone().map(NameFilter::Exactly),
        tags: filter.tags.clone(),
        visibility: filter.visibility.map(Into::into),
        owner: filter.owner.clone(),
        properties: filter.properties.clone(),
        sort: vec![("created_at".to_string(), SortDirection::Desc)],
        // Two are enough to tell "one" from "several" on the first page.
        page_size: Some(if filter.newest { 1 } else { 2 }),
        ..ListQuery::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_uuids() {
        let first = derived_id("3f1c-uid", 0);
        assert_eq!(first, derived_id("3f1c-uid", 0), "same inputs, same id");
        assert_ne!(
            first,
            derived_id("3f1c-uid", 1),
            "each attempt has its own id"
        );
        assert_ne!(first, derived_id("other-uid", 0));
        assert!(crate::glance::looks_like_uuid(&first), "{first}");
    }

    #[test]
    fn an_import_filter_lists_newest_first_with_all_its_criteria() {
        let filter = ImportFilter {
            name: Some("cirros".into()),
            tags: vec!["t".into()],
            visibility: Some(crate::crd::Visibility::Public),
            owner: Some("p1".into()),
            properties: [("os_distro".to_string(), "cirros".to_string())].into(),
            newest: true,
        };
        let pairs = import_query(&filter).to_pairs();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("name"), Some("cirros"));
        assert_eq!(get("tag"), Some("t"));
        assert_eq!(get("visibility"), Some("public"));
        assert_eq!(get("owner"), Some("p1"));
        assert_eq!(get("os_distro"), Some("cirros"));
        assert_eq!(get("sort"), Some("created_at:desc"));
        assert_eq!(get("limit"), Some("1"));
        let strict = ImportFilter {
            newest: false,
            ..filter
        };
        assert_eq!(
            import_query(&strict)
                .to_pairs()
                .last()
                .map(|(_, v)| v.as_str()),
            Some("2")
        );
    }
}
