//! `--prune`: the images an earlier `glint apply` created whose manifests are gone.
//!
//! Every image apply creates carries [`APPLIED_AS_PROPERTY`] = its manifest's `namespace/name`
//! beside the ownership mark (`glint.dev/uid`, derived from the same key). Prune considers an
//! image only when the two agree, so images the controller manages (their uid is a Kubernetes
//! object's) and images someone merely copied a property onto are never touched. It considers
//! every such image the caller can list, so run it with the complete set of manifests.

use std::collections::BTreeSet;

use futures::TryStreamExt;

use super::{Document, identity};
use crate::crd::{OWNER_PROPERTY, WhenInUse};
use crate::glance::{GlanceApi, GlanceError, GlanceImage, ListQuery};
use crate::pass::act::{self, ActError};

pub use crate::marks::APPLIED_AS_PROPERTY;

/// An image apply created from a manifest that is no longer among those given.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The manifest's `namespace/name`.
    pub key: String,
    pub image: GlanceImage,
}

/// Whether `image` was applied from a manifest, and which: both marks must agree.
pub fn applied_as(image: &GlanceImage) -> Option<&str> {
    let key = image.properties.get(APPLIED_AS_PROPERTY)?;
    let uid = image.properties.get(OWNER_PROPERTY)?;
    (*uid == identity(key)).then_some(key.as_str())
}

/// The images apply created whose manifests are not in `documents`, oldest key first.
pub async fn orphans(
    api: &impl GlanceApi,
    documents: &[Document],
) -> Result<Vec<Orphan>, GlanceError> {
    let current: BTreeSet<String> = documents.iter().map(Document::key).collect();
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    // Glance leaves hidden images out unless asked, so list both kinds.
    for hidden in ["false", "true"] {
        let query = ListQuery {
            properties: [
                ("visibility".to_string(), "all".to_string()),
                ("os_hidden".to_string(), hidden.to_string()),
            ]
            .into(),
            ..ListQuery::default()
        };
        let mut images = api.list_images(&query);
        while let Some(image) = images.try_next().await? {
            let Some(key) = applied_as(&image) else {
                continue;
            };
            if !current.contains(key) && seen.insert(image.id.clone()) {
                found.push(Orphan {
                    key: key.to_string(),
                    image,
                });
            }
        }
    }
    found.sort_by(|a, b| a.key.cmp(&b.key).then(a.image.id.cmp(&b.image.id)));
    Ok(found)
}

/// Deletes an orphan (unprotecting it first, as the controller does on delete). One still in
/// use is kept and hidden ([`act::Effect::KeptInUse`]); its manifest is gone, so the default
/// of spec.whenInUse applies.
pub async fn delete(api: &impl GlanceApi, orphan: &Orphan) -> Result<act::Effect, ActError> {
    act::delete(
        api,
        &orphan.image.id,
        orphan.image.protected,
        WhenInUse::Keep,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(properties: &[(&str, &str)]) -> GlanceImage {
        let mut image: GlanceImage = serde_json::from_value(serde_json::json!({
            "id": "5d1b1c3e-6a43-4a9a-9f5e-0c1f7a1c2b3d",
            "status": "active",
            "visibility": "private",
            "protected": false,
            "os_hidden": false,
            "tags": [],
            "min_disk": 0,
            "min_ram": 0,
        }))
        .expect("image");
        image.properties = properties
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        image
    }

    #[test]
    fn only_an_image_whose_two_marks_agree_counts_as_applied() {
        let uid = identity("default/hello");
        let table = [
            (
                vec![
                    (APPLIED_AS_PROPERTY, "default/hello"),
                    (OWNER_PROPERTY, uid.as_str()),
                ],
                Some("default/hello"),
            ),
            (
                vec![
                    (APPLIED_AS_PROPERTY, "default/hello"),
                    (OWNER_PROPERTY, "a-kubernetes-uid"),
                ],
                None,
            ),
            (vec![(APPLIED_AS_PROPERTY, "default/hello")], None),
            (vec![(OWNER_PROPERTY, uid.as_str())], None),
            (vec![], None),
        ];
        for (properties, expected) in table {
            assert_eq!(
                applied_as(&image_with(&properties)),
                expected,
                "{properties:?}"
            );
        }
    }
}
