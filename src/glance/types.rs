//! Typed requests and responses of the Glance v2 image API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::vocabulary::{
    BASE_KEYS, ContainerFormat, DiskFormat, GlanceStatus, MemberStatus, Visibility,
};

/// An image as Glance reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawImage")]
pub struct GlanceImage {
    pub id: String,
    pub name: Option<String>,
    pub status: GlanceStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub owner: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub min_ram: u64,
    pub min_disk: u64,
    pub container_format: Option<ContainerFormat>,
    pub disk_format: Option<DiskFormat>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Sorted: Glance keeps tags as a set and returns them in no stable order.
    pub tags: Vec<String>,
    /// Stores holding the data (comma-separated in Glance), when the deployment shows them.
    pub stores: Option<String>,
    /// Free-form string properties: every key that is not one of [`BASE_KEYS`].
    pub properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawImage {
    id: String,
    #[serde(default)]
    name: Option<String>,
    status: GlanceStatus,
    visibility: Visibility,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    os_hidden: bool,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    os_hash_algo: Option<String>,
    #[serde(default)]
    os_hash_value: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    virtual_size: Option<u64>,
    #[serde(default)]
    min_ram: Option<u64>,
    #[serde(default)]
    min_disk: Option<u64>,
    #[serde(default)]
    container_format: Option<ContainerFormat>,
    #[serde(default)]
    disk_format: Option<DiskFormat>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    stores: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

impl From<RawImage> for GlanceImage {
    fn from(raw: RawImage) -> Self {
        let properties = raw
            .rest
            .into_iter()
            .filter(|(key, _)| !BASE_KEYS.contains(&key.as_str()))
            // Custom properties are strings by Glance's rules; anything else is Glance's own.
            .filter_map(|(key, value)| match value {
                Value::String(text) => Some((key, text)),
                _ => None,
            })
            .collect();
        let mut tags = raw.tags;
        tags.sort();
        tags.dedup();
        Self {
            id: raw.id,
            name: raw.name,
            status: raw.status,
            visibility: raw.visibility,
            protected: raw.protected,
            hidden: raw.os_hidden,
            checksum: raw.checksum,
            os_hash_algo: raw.os_hash_algo,
            os_hash_value: raw.os_hash_value,
            owner: raw.owner,
            size: raw.size,
            virtual_size: raw.virtual_size,
            min_ram: raw.min_ram.unwrap_or(0),
            min_disk: raw.min_disk.unwrap_or(0),
            container_format: raw.container_format,
            disk_format: raw.disk_format,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
            tags,
            stores: raw.stores,
            properties,
        }
    }
}

/// The body of `POST /v2/images`. Unset fields take Glance's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewImage {
    /// A chosen UUID; Glance generates one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_format: Option<ContainerFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<DiskFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(rename = "os_hidden", skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// Free-form properties; Glance stores them as top-level string fields.
    #[serde(flatten)]
    pub properties: BTreeMap<String, String>,
}

/// A project an image is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    pub status: MemberStatus,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// How to bring data in with the interoperable import API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportMethod {
    /// Data staged earlier with `stage`.
    GlanceDirect,
    /// Glance downloads the data itself from this URI.
    WebDownload { uri: String },
}

impl ImportMethod {
    pub(crate) fn body(&self) -> Value {
        match self {
            Self::GlanceDirect => serde_json::json!({ "method": { "name": "glance-direct" } }),
            Self::WebDownload { uri } => {
                serde_json::json!({ "method": { "name": "web-download", "uri": uri } })
            }
        }
    }
}

/// `GET /v2/info/import`: the import methods this Glance accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    pub methods: Vec<String>,
}

/// One entry of `GET /v2/info/stores`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoreInfo {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "default", deserialize_with = "bool_or_text")]
    pub is_default: bool,
    #[serde(default, rename = "read-only", deserialize_with = "bool_or_text")]
    pub read_only: bool,
}

/// Glance 33 sends `"default": "true"` (a string) in `/v2/info/stores`; older ones a bool.
fn bool_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(deserializer)? {
        Flag::Bool(flag) => flag,
        Flag::Text(text) => text.eq_ignore_ascii_case("true"),
    })
}

/// An asynchronous Glance task (import); its `message` is the only place Glance says why an
/// import failed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Task {
    pub id: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_image_document_splits_into_fields_and_string_properties() {
        let image: GlanceImage = serde_json::from_value(json!({
            "id": "1b4b1d5e-0000-4000-8000-000000000001", "name": "cirros", "status": "active",
            "visibility": "shared", "protected": false, "os_hidden": true,
            "checksum": "abc", "os_hash_algo": "sha512", "os_hash_value": "def",
            "size": 10, "virtual_size": null, "min_ram": 0, "min_disk": 1,
            "container_format": "bare", "disk_format": "raw", "tags": ["b", "a"],
            "owner": "p1", "self": "/v2/images/x", "file": "/v2/images/x/file",
            "schema": "/v2/schemas/image", "stores": "fs",
            "locations": [], "os_distro": "cirros", "glint.dev/owner": "uid-1"
        }))
        .unwrap();
        assert_eq!(image.status, GlanceStatus::Active);
        assert!(image.hidden);
        assert_eq!(image.virtual_size, None);
        assert_eq!(image.disk_format, Some(DiskFormat::Raw));
        assert_eq!(image.tags, ["a", "b"], "tags come back sorted");
        assert_eq!(
            image.properties,
            BTreeMap::from([
                ("glint.dev/owner".to_string(), "uid-1".to_string()),
                ("os_distro".to_string(), "cirros".to_string()),
            ])
        );
    }

    #[test]
    fn a_new_image_sends_only_what_is_set_with_properties_at_top_level() {
        let body = serde_json::to_value(NewImage {
            name: Some("n".into()),
            hidden: Some(false),
            properties: BTreeMap::from([("os_distro".into(), "debian".into())]),
            ..NewImage::default()
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"name": "n", "os_hidden": false, "os_distro": "debian"})
        );
    }

    #[test]
    fn store_flags_are_read_as_bools_or_as_glance_33_strings() {
        let stores: Vec<StoreInfo> = serde_json::from_value(json!([
            {"id": "fs", "default": "true"},
            {"id": "ro", "read-only": true},
            {"id": "plain"}
        ]))
        .unwrap();
        let flags: Vec<(bool, bool)> = stores.iter().map(|s| (s.is_default, s.read_only)).collect();
        assert_eq!(flags, [(true, false), (false, true), (false, false)]);
    }

    #[test]
    fn an_image_with_words_glint_does_not_know_decodes_and_keeps_them() {
        let image: GlanceImage = serde_json::from_value(json!({
            "id": "i-1", "status": "resurrecting", "visibility": "galactic",
            "disk_format": "luks", "container_format": "tarball"
        }))
        .unwrap();
        assert_eq!(image.status, GlanceStatus::Other("resurrecting".into()));
        assert_eq!(image.visibility, Visibility::Other("galactic".into()));
        assert_eq!(image.disk_format, Some(DiskFormat::Other("luks".into())));
        assert_eq!(
            image.container_format.as_ref().map(ContainerFormat::as_str),
            Some("tarball")
        );
    }
}
