//! `GET /v2/schemas/...`: the JSON schemas Glance publishes for images and members, which
//! clients such as python-glanceclient read to learn the attributes.

use serde_json::{Value, json};

use super::CloudError;
use crate::vocabulary::{ContainerFormat, DiskFormat, Visibility};

pub fn get(name: &str) -> Result<Value, CloudError> {
    match name {
        "image" => Ok(image()),
        "images" => Ok(json!({
            "name": "images",
            "properties": {
                "images": {"type": "array", "items": image()},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        })),
        "member" => Ok(member()),
        "members" => Ok(json!({
            "name": "members",
            "properties": {
                "members": {"type": "array", "items": member()},
                "schema": {"type": "string"},
            },
            "links": [{"rel": "describedby", "href": "{schema}"}],
        })),
        "task" => Ok(task()),
        "tasks" => Ok(json!({
            "name": "tasks",
            "properties": {
                "tasks": {"type": "array", "items": task()},
                "schema": {"type": "string"},
            },
            "links": [{"rel": "describedby", "href": "{schema}"}],
        })),
        other => Err(CloudError::NotFound(format!(
            "No schema {other:?}: there are image, images, member, members, task and tasks"
        ))),
    }
}

fn image() -> Value {
    let text = |description: &str| json!({"type": ["null", "string"], "description": description});
    let read_only = |kind: Value, description: &str| json!({"type": kind, "readOnly": true, "description": description});
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {"type": "string", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$", "description": "The image's UUID"},
            "name": {"type": ["null", "string"], "maxLength": 255, "description": "A name for people; need not be unique"},
            "status": read_only(json!("string"), "Where the image is in its life: queued, saving, active, ..."),
            "visibility": {"type": "string", "enum": Visibility::KNOWN, "description": "Who can see the image"},
            "protected": {"type": "boolean", "description": "Delete is refused while this is true"},
            "os_hidden": {"type": "boolean", "description": "Left out of listings unless os_hidden=true is asked for"},
            "checksum": read_only(json!(["null", "string"]), "md5 of the data"),
            "os_hash_algo": read_only(json!(["null", "string"]), "The algorithm of os_hash_value (sha512)"),
            "os_hash_value": read_only(json!(["null", "string"]), "Digest of the data, in hex"),
            "owner": read_only(json!(["null", "string"]), "The project that owns the image"),
            "size": read_only(json!(["null", "integer"]), "Bytes of data stored"),
            "virtual_size": read_only(json!(["null", "integer"]), "Bytes of the disk the data describes"),
            "container_format": {"type": ["null", "string"], "enum": nullable(ContainerFormat::KNOWN), "description": "How the disk is wrapped"},
            "disk_format": {"type": ["null", "string"], "enum": nullable(DiskFormat::KNOWN), "description": "How the disk is encoded"},
            "created_at": read_only(json!("string"), "When the image was created"),
            "updated_at": read_only(json!("string"), "When the image last changed"),
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}, "description": "Labels"},
            "min_ram": {"type": "integer", "description": "MiB of RAM a server needs to boot it"},
            "min_disk": {"type": "integer", "description": "GiB of disk a server needs to boot it"},
            "self": read_only(json!("string"), "This image's path"),
            "file": read_only(json!("string"), "The path of its data"),
            "stores": read_only(json!("string"), "Where the data is kept"),
            "schema": read_only(json!("string"), "The path of this schema"),
            "kernel_id": text("Kernel image of an AMI-style image"),
            "ramdisk_id": text("Ramdisk image of an AMI-style image"),
            "os_distro": {"type": "string", "description": "Operating system distribution, lowercase (for example ubuntu)"},
            "os_version": {"type": "string", "description": "Distribution version"},
            "architecture": {"type": "string", "description": "CPU architecture (for example x86_64)"},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

fn task() -> Value {
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "name": "task",
        "properties": {
            "id": text("The task's UUID"),
            "type": {"type": "string", "enum": ["api_image_import"], "description": "What the task does"},
            "status": {"type": "string", "enum": ["pending", "processing", "success", "failure"], "description": "Where the task is"},
            "message": text("Why it failed, when it did"),
            "owner": text("The project of the image"),
            "image_id": text("The image the task imports into"),
            "input": {"type": "object", "description": "The import request"},
            "result": {"type": ["null", "object"], "description": "What the task produced"},
            "created_at": text("When the task began"),
            "updated_at": text("When the task last changed"),
        },
    })
}

/// The allowed values and null, as Glance lists them for formats not yet set.
fn nullable(values: &[&str]) -> Vec<Option<String>> {
    std::iter::once(None)
        .chain(values.iter().map(|value| Some(value.to_string())))
        .collect()
}

fn member() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": {"type": "string", "description": "When the member was added"},
            "image_id": {"type": "string", "description": "The image's UUID"},
            "member_id": {"type": "string", "description": "The member project's id"},
            "schema": {"type": "string", "readOnly": true},
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected"], "description": "Whether the member took the image"},
            "updated_at": {"type": "string", "description": "When the member last changed"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_the_answers_name_is_served_and_others_are_404s() {
        for name in ["image", "images", "member", "members", "task", "tasks"] {
            let schema = get(name).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(schema["name"], name);
            assert!(schema["properties"].is_object(), "{name}");
        }
        assert_eq!(get("flavors").unwrap_err().reason(), "NotFound");
        let formats = &get("image").expect("image")["properties"]["disk_format"]["enum"];
        assert!(
            formats
                .as_array()
                .is_some_and(|all| all.contains(&json!("qcow2")))
        );
    }
}
