//! One image as the embedded cloud stores it, and Glance's rules for changing it: what a
//! create may set, what a JSON patch may touch, and which status changes are allowed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::CloudError;

pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
pub const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

/// Attributes Glance computes; a create or patch that names one is refused with 403.
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "stores",
    "owner",
    "locations",
];

/// Attributes with a type of their own; everything else is a free-form string property.
const BASE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "tags",
    "disk_format",
    "container_format",
    "min_ram",
    "min_disk",
];

/// Glance's status names.
pub mod status {
    pub const QUEUED: &str = "queued";
    pub const SAVING: &str = "saving";
    pub const ACTIVE: &str = "active";
    pub const DEACTIVATED: &str = "deactivated";
    pub const KILLED: &str = "killed";
    pub const DELETED: &str = "deleted";
    pub const UPLOADING: &str = "uploading";
    pub const IMPORTING: &str = "importing";
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
    pub status: String,
    pub visibility: String,
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
    pub fn create(body: &Value, owner: &str, now: &str) -> Result<Self, CloudError> {
        let fields = body
            .as_object()
            .ok_or_else(|| CloudError::BadRequest("The image must be a JSON object.".into()))?;
        let id = match fields.get("id") {
            None | Some(Value::Null) => uuid_v4(),
            Some(Value::String(id)) if crate::glance::looks_like_uuid(id) => id.to_lowercase(),
            Some(other) => {
                return Err(CloudError::BadRequest(format!(
                    "Invalid id {other}: it must be a UUID."
                )));
            }
        };
        let mut image = Self {
            id,
            name: None,
            status: status::QUEUED.into(),
            visibility: "shared".into(),
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
            image.set(key, value.clone())?;
        }
        Ok(image)
    }

    /// Applies a JSON patch atomically: every operation or none.
    pub fn patch(&self, operations: &Value, now: &str) -> Result<Self, CloudError> {
        let operations = operations.as_array().ok_or_else(|| {
            CloudError::BadRequest("A JSON patch must be a list of operations.".into())
        })?;
        let mut patched = self.clone();
        for operation in operations {
            patched.apply(operation)?;
        }
        if patched != *self {
            patched.updated_at = now.into();
        }
        Ok(patched)
    }

    fn apply(&mut self, operation: &Value) -> Result<(), CloudError> {
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
            "add" | "replace" => {
                let value = operation
                    .get("value")
                    .cloned()
                    .ok_or_else(|| CloudError::BadRequest(format!("{op} {path} needs a value.")))?;
                let exists = BASE.contains(&key.as_str()) || self.properties.contains_key(&key);
                if op == "replace" && !exists && !READ_ONLY.contains(&key.as_str()) {
                    return Err(CloudError::Conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
                if matches!(key.as_str(), "disk_format" | "container_format")
                    && self.status != status::QUEUED
                {
                    return Err(CloudError::Forbidden(format!(
                        "Attribute {key} can be only replaced for a queued image."
                    )));
                }
                self.set(&key, value)
            }
            "remove" => {
                if READ_ONLY.contains(&key.as_str()) || BASE.contains(&key.as_str()) {
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
    fn set(&mut self, key: &str, value: Value) -> Result<(), CloudError> {
        if READ_ONLY.contains(&key) {
            return Err(CloudError::Forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
        if key.starts_with("os_glance") {
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
                self.visibility = one_of(&value, VISIBILITIES)
                    .ok_or_else(|| bad("public, private, shared or community"))?
            }
            "disk_format" => {
                self.disk_format = optional_one_of(&value, DISK_FORMATS)
                    .ok_or_else(|| bad(&DISK_FORMATS.join(", ")))?
            }
            "container_format" => {
                self.container_format = optional_one_of(&value, CONTAINER_FORMATS)
                    .ok_or_else(|| bad(&CONTAINER_FORMATS.join(", ")))?
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
            fields.insert("stores".into(), Value::String("local".into()));
        }
        Value::Object(fields)
    }

    /// A field's value for list filters and sorting, as Glance compares them.
    pub fn field(&self, key: &str) -> Option<String> {
        match key {
            "id" => Some(self.id.clone()),
            "name" => self.name.clone(),
            "status" => Some(self.status.clone()),
            "visibility" => Some(self.visibility.clone()),
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
        if self.visibility == "shared" {
            Ok(())
        } else {
            Err(CloudError::Forbidden(format!(
                "Only shared images have members (image {} is {}).",
                self.id, self.visibility
            )))
        }
    }
}

fn one_of(value: &Value, allowed: &[&str]) -> Option<String> {
    value
        .as_str()
        .filter(|text| allowed.contains(text))
        .map(str::to_string)
}

fn optional_one_of(value: &Value, allowed: &[&str]) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        other => one_of(other, allowed).map(Some),
    }
}

/// A random UUID for an image created without one.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}
