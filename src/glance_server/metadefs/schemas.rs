//! `GET /v2/schemas/metadefs/...`: the JSON schemas of metadata definitions, shaped as Glance
//! publishes them (the same names, fields, types and limits), for clients that read them.

use serde_json::{Value, json};

use crate::glance_server::CloudError;

pub fn get(name: &str) -> Result<Value, CloudError> {
    match name {
        "namespace" => Ok(namespace()),
        "namespaces" => Ok(collection("namespaces", namespace())),
        "object" => Ok(object()),
        "objects" => Ok(collection("objects", object())),
        "property" => Ok(property(true)),
        "properties" => Ok(json!({
            "name": "properties",
            "properties": {
                "properties": {"type": "object", "additionalProperties": property(false)},
                "first": {"type": "string"},
                "next": {"type": "string"},
                "schema": {"type": "string"},
            },
            "links": links(),
        })),
        "tag" => Ok(tag()),
        "tags" => Ok(collection("tags", tag())),
        // Glance names the association's schema after what the path's resource_type stands for.
        "resource_type" => Ok(association()),
        "resource_types" => Ok(collection("resource_type_associations", association())),
        other => Err(CloudError::NotFound(format!(
            "No metadefs schema {other:?}: there are namespace(s), object(s), property, properties, tag(s) and resource_type(s)"
        ))),
    }
}

fn links() -> Value {
    json!([
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ])
}

/// A list of `item`s with the paging links Glance's collections carry.
fn collection(name: &str, item: Value) -> Value {
    json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": links(),
    })
}

fn text(max: Option<u64>, description: &str) -> Value {
    match max {
        Some(max) => json!({"type": "string", "maxLength": max, "description": description}),
        None => json!({"type": "string", "description": description}),
    }
}

fn timestamp(description: &str) -> Value {
    json!({"type": "string", "readOnly": true, "format": "date-time", "description": description})
}

fn namespace() -> Value {
    json!({
        "name": "namespace",
        "additionalProperties": false,
        "required": ["namespace"],
        "properties": {
            "namespace": text(Some(80), "The namespace's unique name, such as OS::Compute::Hypervisor"),
            "display_name": text(Some(80), "A name for people"),
            "description": text(Some(500), "What the namespace describes"),
            "visibility": {"type": "string", "enum": ["public", "private"], "description": "public: every project reads it; private: its owner's project only"},
            "protected": {"type": "boolean", "description": "Delete is refused while this is true"},
            "owner": text(Some(255), "The project that owns the namespace"),
            "created_at": timestamp("When the namespace was created"),
            "updated_at": timestamp("When the namespace last changed"),
            "schema": {"type": "string", "readOnly": true},
            "self": {"type": "string", "readOnly": true},
            "resource_type_associations": {"type": "array", "items": association()},
            "properties": {"type": "object", "additionalProperties": property(false)},
            "objects": {"type": "array", "items": object()},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"name": text(Some(80), "The tag")}}},
        },
    })
}

fn association() -> Value {
    json!({
        "name": "resource_type_association",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": text(Some(80), "The resource type, such as OS::Glance::Image or OS::Nova::Flavor"),
            "prefix": text(Some(80), "What the resource type puts before the namespace's property names, such as hw_"),
            "properties_target": text(Some(80), "Where in the resource the properties go, such as image or scheduler_hints"),
            "created_at": timestamp("When the association was made"),
            "updated_at": timestamp("When the association last changed"),
        },
    })
}

fn object() -> Value {
    json!({
        "name": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": text(Some(80), "The object's name, unique in its namespace"),
            "description": text(Some(500), "What the object groups"),
            "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "description": "The properties a resource must have when it has this object"},
            "properties": {"type": "object", "additionalProperties": property(false)},
            "schema": {"type": "string", "readOnly": true},
            "self": {"type": "string", "readOnly": true},
            "created_at": timestamp("When the object was created"),
            "updated_at": timestamp("When the object last changed"),
        },
    })
}

/// A property definition; `named`: on its own (its name is a field) rather than in a map.
fn property(named: bool) -> Value {
    let positive = json!({"type": "integer", "minimum": 0});
    let mut schema = json!({
        "name": "property",
        "additionalProperties": false,
        "required": ["type", "title"],
        "properties": {
            "name": text(Some(80), "The property's name, unique in its namespace"),
            "title": text(None, "A name for people"),
            "description": text(None, "What the property means"),
            "operators": {"type": "array", "items": {"type": "string"}, "description": "How a value is compared, such as <or>"},
            "type": {"type": ["string", "null"], "enum": ["array", "boolean", "integer", "number", "object", "string", null]},
            "default": {"description": "The value when none is given"},
            "readonly": {"type": "boolean", "description": "Whether users may set it"},
            "confidential": {"type": "boolean", "description": "Whether its value is a secret"},
            "minimum": {"type": "number"},
            "maximum": {"type": "number"},
            "enum": {"type": "array", "description": "The values allowed"},
            "pattern": {"type": "string", "format": "regex"},
            "minLength": positive,
            "maxLength": positive,
            "items": {"type": "object", "properties": {
                "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", null]},
                "enum": {"type": "array"},
            }},
            "uniqueItems": {"type": "boolean", "default": false},
            "minItems": positive,
            "maxItems": positive,
            "additionalItems": {"type": "boolean"},
        },
    });
    if named && let Some(required) = schema["required"].as_array_mut() {
        required.push(json!("name"));
    }
    schema
}

fn tag() -> Value {
    json!({
        "name": "tag",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": text(Some(80), "The tag, unique in its namespace"),
            "created_at": timestamp("When the tag was created"),
            "updated_at": timestamp("When the tag last changed"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metadefs_schema_carries_the_name_glance_gives_it() {
        let table = [
            ("namespace", "namespace"),
            ("namespaces", "namespaces"),
            ("object", "object"),
            ("objects", "objects"),
            ("property", "property"),
            ("properties", "properties"),
            ("tag", "tag"),
            ("tags", "tags"),
            ("resource_type", "resource_type_association"),
            ("resource_types", "resource_type_associations"),
        ];
        for (path, name) in table {
            let schema = get(path).expect(path);
            assert_eq!(schema["name"], name, "{path}");
        }
        assert_eq!(
            get("images").expect_err("not metadefs").reason(),
            "NotFound"
        );
    }

    #[test]
    fn a_property_on_its_own_needs_its_name_and_one_in_a_map_does_not() {
        assert_eq!(
            get("property").expect("property")["required"],
            json!(["type", "title", "name"])
        );
        let in_map = &get("properties").expect("properties")["properties"]["properties"]["additionalProperties"];
        assert_eq!(in_map["required"], json!(["type", "title"]));
    }
}
