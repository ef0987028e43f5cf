//! One image as the embedded cloud stores it, and Glance's rules for changing it: what a
//! create may set, what a JSON patch may touch, and which status changes are allowed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::CloudError;
use crate::vocabulary::{
    ContainerFormat, DiskFormat, GlanceStatus, RESERVED_PREFIX, SETTABLE_KEYS, Visibility,
    is_read_only_key, looks_like_uuid,
};

/// The disk and container formats a cloud accepts: Glance's defaults, plus any a deployment
/// adds (Glance's `[image_format]` options; `glint cloud --extra-disk-formats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    pub disk: Vec<String>,
    pub container: Vec<String>,
}

impl Default for Formats {
    fn default() -> Self {
        Self::with_extra(&[], &[])
    }
}

impl Formats {
    pub fn with_extra(disk: &[String], container: &[String]) -> Self {
        let join = |defaults: &[&str], extra: &[String]| {
            defaults
                .iter()
                .map(|format| format.to_string())
                .chain(extra.iter().cloned())
                .collect()
        };
        Self {
            disk: join(DiskFormat::KNOWN, disk),
            container: join(ContainerFormat::KNOWN, container),
        }
    }
}

/// A project an image is shared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An image and everything about it the cloud keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub name: Option<String>,
    pub status: GlanceStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_ram: u64,
    pub min_disk: u64,
    pub owner: String,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_value: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub properties: BTreeMap<String, String>,
    pub members: Vec<MemberRecord>,
}

impl ImageRecord {
    /// A queued image from a create request's body.
    pub fn create(
        body: &Value,
        owner: &str,
        now: &str,
        formats: &Formats,
    ) -> Result<Self, CloudError> {
        let fields = body
            .as_object()
            .ok_or_else(|| CloudError::BadRequest("The image must be a JSON object.".into()))?;
        let id = match fields.get("id") {
            None | Some(Value::Null) => uuid_v4(),
            Some(Value::String(id)) if looks_like_uuid(id) => id.to_lowercase(),
            Some(other) => {
                return Err(CloudError::BadRequest(format!(
                    "Invalid id {other}: it must be a UUID."
                )));
            }
        };
        let mut image = Self {
            id,
            name: None,
            status: GlanceStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            tags: Vec::new(),
            disk_format: None,
            container_format: None,
            min_ram: 0,
            min_disk: 0,
            owner: owner.into(),
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_value: None,
            created_at: now.into(),
            updated_at: now.into(),
            properties: BTreeMap::new(),
            members: Vec::new(),
        };
        for (key, value) in fields.iter().filter(|(key, _)| key.as_str() != "id") {
            image.set(key, value.clone(), formats)?;
        }
        Ok(image)
    }

    /// Applies a JSON patch atomically: every operation or none.
    /// `may_set_owner`: the caller is an administrator, whom Glance lets give an image to
    /// another project (`/owner` is read-only to everyone else).
    pub fn patch(
        &self,
        operations: &Value,
        now: &str,
        formats: &Formats,
        may_set_owner: bool,
    ) -> Result<Self, CloudError> {
        let operations = operations.as_array().ok_or_else(|| {
            CloudError::BadRequest("A JSON patch must be a list of operations.".into())
        })?;
        let mut patched = self.clone();
        for operation in operations {
            patched.apply(operation, formats, may_set_owner)?;
        }
        if patched != *self {
            patched.updated_at = now.into();
        }
        Ok(patched)
    }

    fn apply(
        &mut self,
        operation: &Value,
        formats: &Formats,
        may_set_owner: bool,
    ) -> Result<(), CloudError> {
        let op = operation["op"].as_str().unwrap_or_default();
        let path = operation["path"]
            .as_str()
            .ok_or_else(|| CloudError::BadRequest(format!("Operation {operation} has no path.")))?;
        let key = path
            .strip_prefix('/')
            .filter(|key| !key.is_empty() && !key.contains('/'))
            .ok_or_else(|| CloudError::BadRequest(format!("Invalid JSON pointer {path:?}.")))?
            .replace("~1", "/")
            .replace("~0", "~");
        match op {
            "add" | "replace" if key == "owner" && may_set_owner => {
                let owner = operation["value"].as_str().ok_or_else(|| {
                    CloudError::BadRequest("Invalid value for owner: a project id".into())
                })?;
                self.owner = owner.to_string();
                Ok(())
            }
            "add" | "replace" => {
                let value = operation
                    .get("value")
                    .cloned()
                    .ok_or_else(|| CloudError::BadRequest(format!("{op} {path} needs a value.")))?;
                let exists =
                    SETTABLE_KEYS.contains(&key.as_str()) || self.properties.contains_key(&key);
                if op == "replace" && !exists && !is_read_only_key(&key) {
                    return Err(CloudError::Conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
                if matches!(key.as_str(), "disk_format" | "container_format")
                    && self.status != GlanceStatus::Queued
                {
                    return Err(CloudError::Forbidden(format!(
                        "Attribute {key} can be only replaced for a queued image."
                    )));
                }
                self.set(&key, value, formats)
            }
            "remove" => {
                if is_read_only_key(&key) || SETTABLE_KEYS.contains(&key.as_str()) {
                    return Err(CloudError::Forbidden(format!(
                        "Attribute {key} cannot be removed."
                    )));
                }
                match self.properties.remove(&key) {
                    Some(_) => Ok(()),
                    None => Err(CloudError::Conflict(format!(
                        "Property {key} does not exist."
                    ))),
                }
            }
            other => Err(CloudError::BadRequest(format!(
                "Unsupported patch operation {other:?}: use add, remove or replace."
            ))),
        }
    }

    /// Sets one attribute as a create or an add/replace would, with Glance's checks.
    fn set(&mut self, key: &str, value: Value, formats: &Formats) -> Result<(), CloudError> {
        if is_read_only_key(key) {
            return Err(CloudError::Forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
        if key.starts_with(RESERVED_PREFIX) {
            return Err(CloudError::Forbidden(format!(
                "Attribute '{key}' is reserved."
            )));
        }
        let bad = |what: &str| CloudError::BadRequest(format!("Invalid value for {key}: {what}"));
        match key {
            "name" => {
                self.name = match value {
                    Value::Null => None,
                    Value::String(name) if name.chars().count() <= 255 => Some(name),
                    _ => return Err(bad("a string of at most 255 characters")),
                }
            }
            "visibility" => {
                self.visibility = value
                    .as_str()
                    .map(Visibility::from)
                    .filter(Visibility::is_known)
                    .ok_or_else(|| bad("public, private, shared or community"))?
            }
            "disk_format" => {
                self.disk_format = optional_one_of(&value, &formats.disk)
                    .ok_or_else(|| bad(&formats.disk.join(", ")))?
            }
            "container_format" => {
                self.container_format = optional_one_of(&value, &formats.container)
                    .ok_or_else(|| bad(&formats.container.join(", ")))?
            }
            "protected" => self.protected = value.as_bool().ok_or_else(|| bad("true or false"))?,
            "os_hidden" => self.os_hidden = value.as_bool().ok_or_else(|| bad("true or false"))?,
            "min_ram" => {
                self.min_ram = value.as_u64().ok_or_else(|| bad("a whole number of MiB"))?
            }
            "min_disk" => {
                self.min_disk = value.as_u64().ok_or_else(|| bad("a whole number of GiB"))?
            }
            "tags" => {
                let tags = value.as_array().ok_or_else(|| bad("a list of strings"))?;
                let mut unique = Vec::new();
                for tag in tags {
                    let tag = tag
                        .as_str()
                        .filter(|tag| tag.chars().count() <= 255)
                        .ok_or_else(|| bad("strings of at most 255 characters"))?;
                    if !unique.iter().any(|known| known == tag) {
                        unique.push(tag.to_string());
                    }
                }
                self.tags = unique;
            }
            _ => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad("property values are strings"))?;
                if key.chars().count() > 255 || text.chars().count() > 65535 {
                    return Err(bad(
                        "property keys are at most 255 characters, values 65535",
                    ));
                }
                self.properties.insert(key.to_string(), text.to_string());
            }
        }
        Ok(())
    }

    /// The image as Glance renders it.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        for (key, value) in &self.properties {
            fields.insert(key.clone(), Value::String(value.clone()));
        }
        let has_data = self.checksum.is_some();
        let base = json!({
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "visibility": self.visibility,
            "protected": self.protected,
            "os_hidden": self.os_hidden,
            "tags": self.tags,
            "disk_format": self.disk_format,
            "container_format": self.container_format,
            "min_ram": self.min_ram,
            "min_disk": self.min_disk,
            "owner": self.owner,
            "size": self.size,
            "virtual_size": self.virtual_size,
            "checksum": self.checksum,
            "os_hash_algo": has_data.then_some("sha512"),
            "os_hash_value": self.os_hash_value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "self": format!("/v2/images/{}", self.id),
            "file": format!("/v2/images/{}/file", self.id),
            "schema": "/v2/schemas/image",
        });
        if let Value::Object(base) = base {
            fields.extend(base);
        }
        if has_data {
            fields.insert("stores".into(), Value::String("fs".into()));
        }
        Value::Object(fields)
    }

    /// A field's value for list filters and sorting, as Glance compares them.
    pub fn field(&self, key: &str) -> Option<String> {
        match key {
            "id" => Some(self.id.clone()),
            "name" => self.name.clone(),
            "status" => Some(self.status.to_string()),
            "visibility" => Some(self.visibility.to_string()),
            "owner" => Some(self.owner.clone()),
            "disk_format" => self.disk_format.clone(),
            "container_format" => self.container_format.clone(),
            "checksum" => self.checksum.clone(),
            "os_hash_value" => self.os_hash_value.clone(),
            "created_at" => Some(self.created_at.clone()),
            "updated_at" => Some(self.updated_at.clone()),
            "protected" => Some(self.protected.to_string()),
            "os_hidden" => Some(self.os_hidden.to_string()),
            "min_ram" => Some(self.min_ram.to_string()),
            "min_disk" => Some(self.min_disk.to_string()),
            "size" => self.size.map(|size| size.to_string()),
            "virtual_size" => self.virtual_size.map(|size| size.to_string()),
            other => self.properties.get(other).cloned(),
        }
    }

    /// Whether a member list or member call makes sense: Glance shares only `shared` images.
    pub fn require_shared(&self) -> Result<(), CloudError> {
        if self.visibility == Visibility::Shared {
            Ok(())
        } else {
            Err(CloudError::Forbidden(format!(
                "Only shared images have members (image {} is {}).",
                self.id, self.visibility
            )))
        }
    }
}

fn optional_one_of(value: &Value, allowed: &[String]) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(text) if allowed.contains(text) => Some(Some(text.clone())),
        _ => None,
    }
}

/// Bytes of the data's start that [`data_matches_format`] needs (an ISO's mark is at 32 KiB).
pub const FORMAT_HEAD_BYTES: usize = 0x8001 + 5;

/// Whether data starting with `head` is what `disk_format` says, for the formats that carry a
/// mark at their start; as Glance refuses a mismatch, so does the embedded cloud.
pub fn data_matches_format(disk_format: Option<&str>, head: &[u8]) -> bool {
    let at = |offset: usize, mark: &[u8]| head.get(offset..offset + mark.len()) == Some(mark);
    match disk_format {
        Some("qcow2") => at(0, b"QFI\xfb"),
        Some("vmdk") => at(0, b"KDMV") || at(0, b"# Disk DescriptorFile"),
        Some("vhdx") => at(0, b"vhdxfile"),
        Some("vdi") => at(0x40, &[0x7f, 0x10, 0xda, 0xbe]),
        Some("iso") => at(0x8001, b"CD001"),
        _ => true,
    }
}

/// A random UUID for an image created without one.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn queued() -> ImageRecord {
        ImageRecord::create(
            &json!({"name": "a", "disk_format": "raw", "os_distro": "debian"}),
            "p1",
            NOW,
            &Formats::default(),
        )
        .expect("create")
    }

    fn patch(image: &ImageRecord, operations: Value) -> Result<ImageRecord, CloudError> {
        image.patch(
            &operations,
            "2026-01-02T00:00:00Z",
            &Formats::default(),
            false,
        )
    }

    #[test]
    fn a_create_takes_glances_defaults_and_refuses_what_glance_refuses() {
        let image = queued();
        assert_eq!(
            (image.status.as_str(), image.visibility.as_str()),
            ("queued", "shared")
        );
        assert_eq!(image.properties["os_distro"], "debian");
        // (body, reason)
        let table = [
            (json!({"status": "active"}), "Forbidden"),
            (json!({"os_glance_import_task": "x"}), "Forbidden"),
            (json!({"disk_format": "floppy"}), "BadRequest"),
            (json!({"visibility": "everyone"}), "BadRequest"),
            (json!({"min_ram": -1}), "BadRequest"),
            (json!({"hw_cpu_cores": 4}), "BadRequest"),
            (json!({"id": "not-a-uuid"}), "BadRequest"),
            (json!(["not", "an", "object"]), "BadRequest"),
        ];
        for (body, reason) in table {
            let refused = ImageRecord::create(&body, "p1", NOW, &Formats::default())
                .expect_err(&body.to_string());
            assert_eq!(refused.reason(), reason, "{body}: {refused}");
        }
    }

    #[test]
    fn patches_follow_glances_rules_and_apply_all_or_nothing() {
        let image = queued();
        // (operations, reason of the refusal)
        let table = [
            (
                json!([{"op": "replace", "path": "/status", "value": "active"}]),
                "Forbidden",
            ),
            (json!([{"op": "remove", "path": "/missing"}]), "Conflict"),
            (
                json!([{"op": "replace", "path": "/missing", "value": "x"}]),
                "Conflict",
            ),
            (json!([{"op": "remove", "path": "/name"}]), "Forbidden"),
            (
                json!([{"op": "move", "path": "/name", "from": "/x"}]),
                "BadRequest",
            ),
            (
                json!([{"op": "add", "path": "/a/b", "value": "x"}]),
                "BadRequest",
            ),
            (
                json!([{"op": "add", "path": "/os_version", "value": "12"},
                       {"op": "remove", "path": "/missing"}]),
                "Conflict",
            ),
        ];
        for (operations, reason) in table {
            let refused = patch(&image, operations.clone()).expect_err(&operations.to_string());
            assert_eq!(refused.reason(), reason, "{operations}: {refused}");
        }
        let patched = patch(
            &image,
            json!([
                {"op": "add", "path": "/os_version", "value": "12"},
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "replace", "path": "/tags", "value": ["x", "y", "x"]},
                {"op": "remove", "path": "/os_distro"},
                {"op": "add", "path": "/glint.dev~1owner", "value": "uid"},
            ]),
        )
        .expect("patch");
        assert_eq!(patched.name.as_deref(), Some("b"));
        assert_eq!(patched.tags, ["x", "y"], "tags are a set");
        assert_eq!(
            patched.properties.get("os_version").map(String::as_str),
            Some("12")
        );
        assert_eq!(
            patched
                .properties
                .get("glint.dev/owner")
                .map(String::as_str),
            Some("uid")
        );
        assert!(!patched.properties.contains_key("os_distro"));
        assert_eq!(patched.updated_at, "2026-01-02T00:00:00Z");
    }

    #[test]
    fn formats_change_only_while_queued_and_deployments_may_add_their_own() {
        let mut image = queued();
        let to_qcow2 = json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]);
        assert!(patch(&image, to_qcow2.clone()).is_ok());
        image.status = GlanceStatus::Active;
        assert_eq!(patch(&image, to_qcow2).unwrap_err().reason(), "Forbidden");
        let custom = Formats::with_extra(&["glintfmt".into()], &[]);
        let body = json!({"disk_format": "glintfmt"});
        assert!(ImageRecord::create(&body, "p1", NOW, &custom).is_ok());
        assert!(ImageRecord::create(&body, "p1", NOW, &Formats::default()).is_err());
    }

    #[test]
    fn formats_with_a_mark_at_their_start_must_carry_it() {
        let mut qcow2 = b"QFI\xfb\x00\x00\x00\x03".to_vec();
        qcow2.resize(512, 0);
        let mut iso = vec![0u8; FORMAT_HEAD_BYTES];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        // (disk format, data, matches)
        let table: [(Option<&str>, &[u8], bool); 7] = [
            (Some("qcow2"), &qcow2, true),
            (Some("qcow2"), &[0u8; 512], false),
            (Some("iso"), &iso, true),
            (Some("iso"), &qcow2, false),
            (Some("raw"), &qcow2, true),
            (Some("vhdx"), b"vhdxfile....", true),
            (None, b"anything", true),
        ];
        for (format, data, matches) in table {
            assert_eq!(data_matches_format(format, data), matches, "{format:?}");
        }
    }
}
