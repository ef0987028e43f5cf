//! Typed JSON-patch operations for `PATCH /v2/images/{id}`
//! (`application/openstack-images-v2.1-json-patch`).

use serde_json::{Value, json};

use super::types::{ContainerFormat, DiskFormat, Visibility};

/// The media type Glance requires for image patches; plain JSON is refused with 415.
pub const PATCH_MEDIA_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// One change to an image. Glance applies a patch's operations atomically, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    SetName(String),
    SetVisibility(Visibility),
    SetProtected(bool),
    SetHidden(bool),
    SetMinDisk(u64),
    SetMinRam(u64),
    SetContainerFormat(ContainerFormat),
    /// Allowed by Glance only while the image is queued.
    SetDiskFormat(DiskFormat),
    /// Replaces the whole tag list (Glance has no per-tag patch path).
    SetTags(Vec<String>),
    /// Adds or overwrites a free-form property.
    SetProperty {
        key: String,
        value: String,
    },
    /// Removes a property; Glance answers 409 when it is absent.
    RemoveProperty(String),
}

/// RFC 6901 escaping of a property name used as a path segment.
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

impl PatchOp {
    /// The JSON-patch object. `replace` works for every base field; `add` is used for
    /// properties because it creates or overwrites, while `replace` fails on a new key.
    pub fn to_json(&self) -> Value {
        let replace =
            |path: &str, value: Value| json!({"op": "replace", "path": path, "value": value});
        match self {
            Self::SetName(name) => replace("/name", json!(name)),
            Self::SetVisibility(visibility) => replace("/visibility", json!(visibility)),
            Self::SetProtected(protected) => replace("/protected", json!(protected)),
            Self::SetHidden(hidden) => replace("/os_hidden", json!(hidden)),
            Self::SetMinDisk(gb) => replace("/min_disk", json!(gb)),
            Self::SetMinRam(mb) => replace("/min_ram", json!(mb)),
            Self::SetContainerFormat(format) => replace("/container_format", json!(format)),
            Self::SetDiskFormat(format) => replace("/disk_format", json!(format)),
            Self::SetTags(tags) => replace("/tags", json!(tags)),
            Self::SetProperty { key, value } => {
                json!({"op": "add", "path": pointer(key), "value": value})
            }
            Self::RemoveProperty(key) => json!({"op": "remove", "path": pointer(key)}),
        }
    }
}

/// The request body for a list of operations.
pub fn patch_body(ops: &[PatchOp]) -> Value {
    Value::Array(ops.iter().map(PatchOp::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_renders_to_its_json_patch_object() {
        let table = [
            (
                PatchOp::SetName("n".into()),
                json!({"op": "replace", "path": "/name", "value": "n"}),
            ),
            (
                PatchOp::SetVisibility(Visibility::Community),
                json!({"op": "replace", "path": "/visibility", "value": "community"}),
            ),
            (
                PatchOp::SetProtected(true),
                json!({"op": "replace", "path": "/protected", "value": true}),
            ),
            (
                PatchOp::SetHidden(false),
                json!({"op": "replace", "path": "/os_hidden", "value": false}),
            ),
            (
                PatchOp::SetMinDisk(3),
                json!({"op": "replace", "path": "/min_disk", "value": 3}),
            ),
            (
                PatchOp::SetMinRam(512),
                json!({"op": "replace", "path": "/min_ram", "value": 512}),
            ),
            (
                PatchOp::SetContainerFormat(ContainerFormat::Bare),
                json!({"op": "replace", "path": "/container_format", "value": "bare"}),
            ),
            (
                PatchOp::SetDiskFormat(DiskFormat::Qcow2),
                json!({"op": "replace", "path": "/disk_format", "value": "qcow2"}),
            ),
            (
                PatchOp::SetTags(vec!["a".into()]),
                json!({"op": "replace", "path": "/tags", "value": ["a"]}),
            ),
            (
                PatchOp::SetProperty {
                    key: "os_distro".into(),
                    value: "x".into(),
                },
                json!({"op": "add", "path": "/os_distro", "value": "x"}),
            ),
            (
                PatchOp::RemoveProperty("a/b~c".into()),
                json!({"op": "remove", "path": "/a~1b~0c"}),
            ),
        ];
        for (op, expected) in table {
            assert_eq!(op.to_json(), expected, "{op:?}");
        }
    }

    #[test]
    fn a_patch_body_keeps_the_operations_in_order() {
        let body = patch_body(&[
            PatchOp::SetName("a".into()),
            PatchOp::RemoveProperty("k".into()),
        ]);
        assert_eq!(body.as_array().map(Vec::len), Some(2));
        assert_eq!(body[1]["op"], "remove");
    }
}
