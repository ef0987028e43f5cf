//! What Glance holds for a series: its versions' images, found by the series mark and checked
//! against the uid mark each version's image carries, so an image that merely claims to
//! belong to the series is never taken for one of its versions.

use futures::TryStreamExt;

use super::plan::{
    Held, IN_USE_PROPERTY, LATEST_PROPERTY, RELEASE_DIGEST_PROPERTY, SERIES_PROPERTY,
    VERSION_PROPERTY,
};
use crate::crd::OWNER_PROPERTY;
use crate::glance::{GlanceApi, GlanceError, GlanceImage, GlanceStatus, ListQuery};
use crate::transfer::QUARANTINE_PROPERTY;

/// UUID namespace of versions' uids (a fixed random UUID, never to change).
const VERSION_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x9d2e_7c41_5b3a_4e8f_a1c6_0f4b_8e27_d913);

/// The uid a version's image is created under (its derived id and ownership mark): the same
/// series and version always give the same one.
pub fn version_uid(series_uid: &str, version: &str) -> String {
    uuid::Uuid::new_v5(
        &VERSION_NAMESPACE,
        format!("{series_uid}@{version}").as_bytes(),
    )
    .to_string()
}

/// The versions of the series `series_key` (its `namespace/name`) whose uid is `series_uid`,
/// hidden ones included, each with its image.
pub async fn held(
    api: &impl GlanceApi,
    series_key: &str,
    series_uid: &str,
) -> Result<Vec<(Held, GlanceImage)>, GlanceError> {
    // Glance leaves hidden images out unless asked for them alone: retired and pending
    // versions are hidden, so both listings are read, at once (a pass waits for both).
    let listing = |hidden: bool| {
        let query = ListQuery {
            properties: [
                (SERIES_PROPERTY.to_string(), series_key.to_string()),
                ("os_hidden".to_string(), hidden.to_string()),
            ]
            .into(),
            ..ListQuery::default()
        };
        async move {
            api.list_images(&query)
                .try_collect::<Vec<GlanceImage>>()
                .await
        }
    };
    let (shown, hidden) = futures::try_join!(listing(false), listing(true))?;
    let found = shown
        .into_iter()
        .chain(hidden)
        .filter_map(|image| {
            let version = image.properties.get(VERSION_PROPERTY)?.clone();
            let ours = image.properties.get(OWNER_PROPERTY).map(String::as_str)
                == Some(version_uid(series_uid, &version).as_str());
            ours.then(|| (held_of(&image, version), image))
        })
        .collect();
    Ok(found)
}

fn held_of(image: &GlanceImage, version: String) -> Held {
    let quarantined = image.properties.contains_key(QUARANTINE_PROPERTY);
    Held {
        usable: image.status == GlanceStatus::Active && !quarantined,
        quarantined,
        latest: image.properties.get(LATEST_PROPERTY).map(String::as_str) == Some("true"),
        protected: image.protected,
        digest: image.properties.get(RELEASE_DIGEST_PROPERTY).cloned(),
        in_use: image.properties.get(IN_USE_PROPERTY).cloned(),
        image_source: image.properties.get(crate::scs::IMAGE_SOURCE).cloned(),
        id: image.id.clone(),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versions_uid_depends_on_its_series_and_version_only() {
        assert_eq!(version_uid("s", "1.0"), version_uid("s", "1.0"));
        assert_ne!(version_uid("s", "1.0"), version_uid("s", "1.1"));
        assert_ne!(version_uid("s", "1.0"), version_uid("t", "1.0"));
    }

    #[test]
    fn only_an_active_unquarantined_image_is_fit_to_be_current() {
        let image = |status: &str, extra: serde_json::Value| -> GlanceImage {
            let mut doc = serde_json::json!({"id": "i", "status": status, "visibility": "private"});
            if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
                doc.extend(extra.clone());
            }
            serde_json::from_value(doc).unwrap()
        };
        let none = serde_json::json!({});
        assert!(held_of(&image("active", none.clone()), "1".into()).usable);
        assert!(!held_of(&image("queued", none.clone()), "1".into()).usable);
        let marked = serde_json::json!({QUARANTINE_PROPERTY: "HashMismatch: x"});
        let bad = held_of(&image("active", marked), "1".into());
        assert!(!bad.usable && bad.quarantined);
        let recorded = serde_json::json!({RELEASE_DIGEST_PROPERTY: "sha256:ab"});
        assert_eq!(
            held_of(&image("active", recorded), "1".into())
                .digest
                .as_deref(),
            Some("sha256:ab")
        );
        let latest = serde_json::json!({LATEST_PROPERTY: "true"});
        assert!(held_of(&image("active", latest), "1".into()).latest);
    }
}
