//! What a namespace holds: objects, properties, tags and resource-type associations, and
//! their checks (Glance's schemas refuse unknown keys with 400 and read-only ones with 403).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{DESCRIPTION_MAX, NAME_MAX, Namespace, bad_request};
use crate::glance_server::CloudError;

/// The keys a property may have: a JSON-schema fragment with Glance's own additions.
const PROPERTY_KEYS: &[&str] = &[
    "name",
    "title",
    "type",
    "description",
    "operators",
    "default",
    "readonly",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];
const PROPERTY_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const READ_ONLY: &[&str] = &["created_at", "updated_at"];
const OBJECT_READ_ONLY: &[&str] = &["self", "schema", "created_at", "updated_at"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Association {
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Object {
    pub name: String,
    pub description: Option<String>,
    pub required: Vec<String>,
    pub properties: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Tag {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Association {
    pub fn from_body(body: &Value, now: &str) -> Result<Self, CloudError> {
        let fields = fields(
            body,
            "resource type association",
            &["name", "prefix", "properties_target"],
            READ_ONLY,
        )?;
        Ok(Self {
            name: name_in(fields, "name")?,
            prefix: optional_text(fields, "prefix", NAME_MAX)?,
            properties_target: optional_text(fields, "properties_target", NAME_MAX)?,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut shown = json!({"name": self.name, "created_at": self.created_at, "updated_at": self.updated_at});
        if let Some(prefix) = &self.prefix {
            shown["prefix"] = json!(prefix);
        }
        if let Some(target) = &self.properties_target {
            shown["properties_target"] = json!(target);
        }
        shown
    }
}

impl Object {
    pub fn from_body(body: &Value, now: &str) -> Result<Self, CloudError> {
        let fields = fields(
            body,
            "object",
            &["name", "description", "required", "properties"],
            OBJECT_READ_ONLY,
        )?;
        let required = match fields.get("required") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|name| {
                    name.as_str().map(str::to_string).ok_or_else(|| {
                        bad_request(format!("required lists property names, not {name}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(bad_request(format!(
                    "required must be a list of names, not {other}"
                )));
            }
        };
        let mut properties = Map::new();
        match fields.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (name, property) in given {
                    properties.insert(
                        name.clone(),
                        without_name(&self::property(property, Some(name))?),
                    );
                }
            }
            Some(other) => {
                return Err(bad_request(format!(
                    "properties must be an object of properties by name, not {other}"
                )));
            }
        }
        Ok(Self {
            name: name_in(fields, "name")?,
            description: optional_text(fields, "description", DESCRIPTION_MAX)?,
            required,
            properties,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        })
    }

    pub fn to_json(&self, namespace: &str, prefix: &str) -> Value {
        let properties: Map<String, Value> = self
            .properties
            .iter()
            .map(|(name, property)| (format!("{prefix}{name}"), property.clone()))
            .collect();
        let required: Vec<String> = self
            .required
            .iter()
            .map(|name| format!("{prefix}{name}"))
            .collect();
        let mut shown = json!({
            "name": self.name,
            "required": required,
            "properties": properties,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "self": format!("/v2/metadefs/namespaces/{namespace}/objects/{}", self.name),
            "schema": "/v2/schemas/metadefs/object",
        });
        if let Some(description) = &self.description {
            shown["description"] = json!(description);
        }
        shown
    }
}

/// A checked property, with its `name` (from the body, or `name` when it is the key of a map).
pub(super) fn property(body: &Value, name: Option<&str>) -> Result<Value, CloudError> {
    let fields = fields(body, "property", PROPERTY_KEYS, READ_ONLY)?;
    let mut checked = fields.clone();
    if let Some(name) = name {
        checked.insert("name".into(), json!(name));
    }
    let name = name_in(&checked, "name")?;
    match checked.get("title") {
        Some(Value::String(_)) => {}
        _ => return Err(bad_request(format!("property {name} needs a title (text)"))),
    }
    match checked.get("type") {
        Some(Value::String(kind)) if PROPERTY_TYPES.contains(&kind.as_str()) => {}
        Some(Value::Null) => {}
        other => {
            return Err(bad_request(format!(
                "property {name} needs a type, one of {}, not {}",
                PROPERTY_TYPES.join(", "),
                other.map_or("nothing".to_string(), Value::to_string)
            )));
        }
    }
    Ok(Value::Object(checked))
}

/// A property as a map of properties shows it: its name is the key.
pub(super) fn without_name(property: &Value) -> Value {
    let mut shown = property.clone();
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("name");
    }
    shown
}

/// The name of one entry of a `tags` list: exactly `{"name": ...}`.
pub(super) fn tag_name(body: &Value) -> Result<String, CloudError> {
    let fields = fields(body, "tag", &["name"], READ_ONLY)?;
    name_in(fields, "name")
}

/// A body's fields, refusing what is not an object, unknown keys (400) and read-only ones (403).
pub(super) fn fields<'a>(
    body: &'a Value,
    what: &str,
    allowed: &[&str],
    read_only: &[&str],
) -> Result<&'a Map<String, Value>, CloudError> {
    let fields = body.as_object().ok_or_else(|| {
        bad_request(format!(
            "The body must be a JSON object describing a {what}."
        ))
    })?;
    if let Some(key) = fields.keys().find(|key| read_only.contains(&key.as_str())) {
        return Err(CloudError::Forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    if let Some(key) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(bad_request(format!(
            "A {what} has no attribute {key:?}; it may have {}.",
            allowed.join(", ")
        )));
    }
    Ok(fields)
}

/// A required name of at most [`NAME_MAX`] characters.
pub(super) fn name_in(fields: &Map<String, Value>, key: &str) -> Result<String, CloudError> {
    match fields.get(key) {
        Some(Value::String(name)) if !name.is_empty() && name.chars().count() <= NAME_MAX => {
            Ok(name.clone())
        }
        Some(Value::String(name)) if !name.is_empty() => Err(bad_request(format!(
            "{key} may have at most {NAME_MAX} characters; {name:?} has {}",
            name.chars().count()
        ))),
        _ => Err(bad_request(format!("{key} is required (text)"))),
    }
}

pub(super) fn optional_text(
    fields: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, CloudError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(bad_request(format!(
            "{key} may have at most {max} characters"
        ))),
        Some(other) => Err(bad_request(format!("{key} must be text, not {other}"))),
    }
}

/// A list in a body (absent: empty).
pub(super) fn list_of<'a>(
    fields: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a [Value], CloudError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad_request(format!("{key} must be a list, not {other}"))),
    }
}

pub(super) fn conflict(what: &str, name: &str, namespace: &str) -> CloudError {
    CloudError::Conflict(format!(
        "A {what} named {name} already exists in metadata definition namespace {namespace}."
    ))
}

pub(super) fn not_found(what: &str, name: &str, namespace: &str) -> CloudError {
    CloudError::NotFound(format!(
        "No {what} named {name} in metadata definition namespace {namespace}."
    ))
}

impl Namespace {
    pub(super) fn associate(&mut self, association: Association) -> Result<(), CloudError> {
        if self
            .associations
            .iter()
            .any(|known| known.name == association.name)
        {
            return Err(conflict(
                "resource type association",
                &association.name,
                &self.namespace,
            ));
        }
        self.associations.push(association);
        Ok(())
    }

    pub(super) fn add_property(&mut self, property: Value) -> Result<(), CloudError> {
        let name = property["name"].as_str().unwrap_or_default().to_string();
        if self.properties.contains_key(&name) {
            return Err(conflict("property", &name, &self.namespace));
        }
        self.properties.insert(name, property);
        Ok(())
    }

    pub(super) fn add_object(&mut self, object: Object) -> Result<(), CloudError> {
        if self.objects.iter().any(|known| known.name == object.name) {
            return Err(conflict("object", &object.name, &self.namespace));
        }
        self.objects.push(object);
        Ok(())
    }

    /// Sets the namespace's tags (or adds to them): a name twice, or one already there when
    /// adding, changes nothing and is a conflict.
    pub(super) fn set_tags(
        &mut self,
        names: &[String],
        append: bool,
        now: &str,
    ) -> Result<(), CloudError> {
        let mut tags = if append {
            self.tags.clone()
        } else {
            Vec::new()
        };
        for name in names {
            if tags.iter().any(|tag| tag.name == *name) {
                return Err(conflict("tag", name, &self.namespace));
            }
            tags.push(Tag {
                name: name.clone(),
                created_at: now.to_string(),
                updated_at: now.to_string(),
            });
        }
        self.tags = tags;
        Ok(())
    }

    pub(super) fn object_index(&self, name: &str) -> Result<usize, CloudError> {
        self.objects
            .iter()
            .position(|object| object.name == name)
            .ok_or_else(|| not_found("object", name, &self.namespace))
    }

    pub(super) fn tag_index(&self, name: &str) -> Result<usize, CloudError> {
        self.tags
            .iter()
            .position(|tag| tag.name == name)
            .ok_or_else(|| not_found("tag", name, &self.namespace))
    }
}
