//! Glance's metadata definitions (`/v2/metadefs/...`): a catalogue of namespaces that describe
//! the properties an image, a volume or a flavor may carry (their names, types, allowed
//! values), which dashboards read to offer them. A namespace holds its own objects, properties,
//! tags and resource-type associations, so renaming or deleting it carries them along.
//!
//! The rules are those of Glance's default policy: everyone reads public namespaces and their
//! own project's, only an administrator writes, a protected namespace (and everything in it)
//! cannot be deleted. The whole catalogue is one record in the cloud's store, changed in one
//! write transaction per request ([`super::store::Store::update_metadefs`]).
//!
//! glint cloud starts with no namespaces (Glance's deployments usually load the definitions
//! Glance ships, with `glance-manage db_load_metadefs`); it knows the resource types those
//! definitions name, so that associations have something to point at.

mod contents;
mod parts;
pub mod routes;
mod schemas;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::CloudError;
use super::caller::Caller;

/// The resource types Glance's shipped definitions associate namespaces with, in the order
/// Glance's loader records them: images first.
const KNOWN_RESOURCE_TYPES: &[&str] = &[
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Nova::Flavor",
    "OS::Nova::Aggregate",
    "OS::Nova::Server",
    "OS::Trove::Instance",
];

/// Longest namespace, object, property, tag, resource type and prefix name Glance takes.
const NAME_MAX: usize = 80;
const DESCRIPTION_MAX: usize = 500;
const OWNER_MAX: usize = 255;
/// What a namespace body may hold, and what it may not set.
const NAMESPACE_KEYS: &[&str] = &[
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "resource_type_associations",
    "properties",
    "objects",
    "tags",
];
const NAMESPACE_READ_ONLY: &[&str] = &["self", "schema", "created_at", "updated_at"];
/// Namespaces per page when the request names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;

/// The whole catalogue, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadefs {
    #[serde(default)]
    namespaces: Vec<Namespace>,
    #[serde(default)]
    resource_types: Vec<ResourceType>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResourceType {
    name: String,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Namespace {
    namespace: String,
    display_name: Option<String>,
    description: Option<String>,
    visibility: Visibility,
    protected: bool,
    owner: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    associations: Vec<parts::Association>,
    /// JSON-schema fragments by name, each with its `name`.
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    #[serde(default)]
    objects: Vec<parts::Object>,
    #[serde(default)]
    tags: Vec<parts::Tag>,
}

/// What a request needs besides its body: who asks, the time, and the owner of what an
/// administrator without a project creates.
pub struct Context<'a> {
    pub caller: &'a Caller,
    pub now: &'a str,
    pub cloud_owner: &'a str,
}

impl Context<'_> {
    fn owner(&self) -> String {
        self.caller
            .project
            .clone()
            .unwrap_or_else(|| self.cloud_owner.to_string())
    }

    fn can_see(&self, namespace: &Namespace) -> bool {
        self.caller.admin
            || namespace.visibility == Visibility::Public
            || self.caller.project.as_deref() == Some(namespace.owner.as_str())
    }

    /// Glance's metadefs policy: only an administrator changes definitions.
    fn may_write(&self) -> Result<(), CloudError> {
        if self.caller.admin {
            Ok(())
        } else {
            Err(CloudError::Forbidden(
                "Only an administrator may change metadata definitions.".into(),
            ))
        }
    }
}

impl Metadefs {
    /// Records the known resource types once, so that a new catalogue lists them.
    pub fn with_known_resource_types(&mut self, now: &str) {
        for name in KNOWN_RESOURCE_TYPES {
            self.resource_type(name, now);
        }
    }

    /// The resource type of this name, recorded on first use (as Glance does when a namespace
    /// is associated with a type it has not seen).
    fn resource_type(&mut self, name: &str, now: &str) {
        if !self.resource_types.iter().any(|known| known.name == name) {
            self.resource_types.push(ResourceType {
                name: name.to_string(),
                created_at: now.to_string(),
                updated_at: now.to_string(),
            });
        }
    }

    pub fn resource_types(&self) -> Value {
        let types: Vec<Value> = self
            .resource_types
            .iter()
            .map(|known| {
                json!({"name": known.name, "created_at": known.created_at, "updated_at": known.updated_at})
            })
            .collect();
        json!({ "resource_types": types })
    }

    fn position(&self, context: &Context, name: &str) -> Result<usize, CloudError> {
        self.namespaces
            .iter()
            .position(|namespace| namespace.namespace == name && context.can_see(namespace))
            .ok_or_else(|| namespace_not_found(name))
    }

    /// The namespace, when the caller can see it.
    fn visible(&self, context: &Context, name: &str) -> Result<&Namespace, CloudError> {
        Ok(&self.namespaces[self.position(context, name)?])
    }

    /// The namespace, when the caller can see it and may change it.
    fn writable(&mut self, context: &Context, name: &str) -> Result<&mut Namespace, CloudError> {
        let index = self.position(context, name)?;
        context.may_write()?;
        Ok(&mut self.namespaces[index])
    }

    /// `GET /v2/metadefs/namespaces/{namespace}`; `resource_type` shows property names with
    /// that association's prefix, as a client of that resource type uses them.
    pub fn show(
        &self,
        context: &Context,
        name: &str,
        resource_type: Option<&str>,
    ) -> Result<Value, CloudError> {
        let namespace = self.visible(context, name)?;
        let prefix = resource_type
            .and_then(|wanted| namespace.associations.iter().find(|a| a.name == wanted))
            .and_then(|association| association.prefix.clone())
            .unwrap_or_default();
        Ok(namespace.to_json(Detail::Everything { prefix: &prefix }))
    }

    /// `GET /v2/metadefs/namespaces`.
    pub fn list(
        &self,
        context: &Context,
        query: &super::listing::Query,
    ) -> Result<Value, CloudError> {
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| bad_request(format!("limit must be a whole number, not {text:?}")))?
                .min(MAX_LIMIT),
        };
        let descending = match query.get("sort_dir").unwrap_or("desc") {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(bad_request(format!(
                    "sort_dir must be asc or desc, not {other:?}"
                )));
            }
        };
        let sort_key = query.get("sort_key").unwrap_or("created_at");
        let key_of = |namespace: &Namespace| -> String {
            match sort_key {
                "namespace" => namespace.namespace.clone(),
                "display_name" => namespace.display_name.clone().unwrap_or_default(),
                "updated_at" => namespace.updated_at.clone(),
                _ => namespace.created_at.clone(),
            }
        };
        if !["namespace", "display_name", "created_at", "updated_at"].contains(&sort_key) {
            return Err(bad_request(format!(
                "sort_key must be namespace, display_name, created_at or updated_at, not {sort_key:?}"
            )));
        }
        let visibility = match query.get("visibility") {
            None => None,
            Some("public") => Some(Visibility::Public),
            Some("private") => Some(Visibility::Private),
            Some(other) => {
                return Err(bad_request(format!(
                    "visibility must be public or private, not {other:?}"
                )));
            }
        };
        let resource_types: Vec<&str> = query
            .get("resource_types")
            .map(|names| names.split(',').map(str::trim).collect())
            .unwrap_or_default();
        // Insertion order breaks ties between namespaces made in the same second, newest
        // first when descending, as the database's row order does in Glance.
        let mut shown: Vec<(String, usize, &Namespace)> = self
            .namespaces
            .iter()
            .enumerate()
            .filter(|(_, namespace)| context.can_see(namespace))
            .filter(|(_, namespace)| visibility.is_none_or(|wanted| namespace.visibility == wanted))
            .filter(|(_, namespace)| {
                resource_types.is_empty()
                    || namespace
                        .associations
                        .iter()
                        .any(|association| resource_types.contains(&association.name.as_str()))
            })
            .map(|(index, namespace)| (key_of(namespace), index, namespace))
            .collect();
        shown.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        if descending {
            shown.reverse();
        }
        let start = match query.get("marker") {
            None => 0,
            Some(marker) => {
                shown
                    .iter()
                    .position(|(_, _, namespace)| namespace.namespace == marker)
                    .ok_or_else(|| namespace_not_found(marker))?
                    + 1
            }
        };
        let page: Vec<&Namespace> = shown
            .iter()
            .skip(start)
            .take(limit)
            .map(|(_, _, namespace)| *namespace)
            .collect();
        let rest: Vec<(String, String)> = query
            .0
            .iter()
            .filter(|(key, _)| key != "marker")
            .cloned()
            .collect();
        let first = link("/v2/metadefs/namespaces", &rest);
        let mut body = json!({
            "namespaces": page.iter().map(|namespace| namespace.to_json(Detail::Listed)).collect::<Vec<_>>(),
            "first": first,
            "schema": "/v2/schemas/metadefs/namespaces",
        });
        if limit > 0
            && page.len() == limit
            && let Some(last) = page.last()
        {
            let mut next = rest.clone();
            next.push(("marker".into(), last.namespace.clone()));
            body["next"] = json!(link("/v2/metadefs/namespaces", &next));
        }
        Ok(body)
    }

    /// `POST /v2/metadefs/namespaces`: the namespace and whatever the body nests in it.
    pub fn create(&mut self, context: &Context, body: &Value) -> Result<Value, CloudError> {
        context.may_write()?;
        let fields = parts::fields(body, "namespace", NAMESPACE_KEYS, NAMESPACE_READ_ONLY)?;
        let mut namespace = Namespace {
            namespace: String::new(),
            display_name: None,
            description: None,
            visibility: Visibility::Private,
            protected: false,
            owner: context.owner(),
            created_at: context.now.to_string(),
            updated_at: context.now.to_string(),
            associations: Vec::new(),
            properties: BTreeMap::new(),
            objects: Vec::new(),
            tags: Vec::new(),
        };
        namespace.set_fields(fields)?;
        self.refuse_taken(&namespace.namespace, None)?;
        for association in parts::list_of(fields, "resource_type_associations")? {
            let association = parts::Association::from_body(association, context.now)?;
            self.resource_type(&association.name, context.now);
            namespace.associate(association)?;
        }
        if let Some(properties) = fields.get("properties") {
            let properties = properties
                .as_object()
                .ok_or_else(|| bad_request("properties must be an object of properties by name"))?;
            for (name, property) in properties {
                namespace.add_property(parts::property(property, Some(name))?)?;
            }
        }
        for object in parts::list_of(fields, "objects")? {
            namespace.add_object(parts::Object::from_body(object, context.now)?)?;
        }
        let tags = parts::list_of(fields, "tags")?
            .iter()
            .map(parts::tag_name)
            .collect::<Result<Vec<_>, _>>()?;
        namespace.set_tags(&tags, false, context.now)?;
        let shown = namespace.to_json(Detail::Everything { prefix: "" });
        self.namespaces.push(namespace);
        Ok(shown)
    }

    /// `PUT /v2/metadefs/namespaces/{namespace}`: every field is replaced (absent ones take
    /// their defaults), the name included; nested definitions are kept.
    pub fn update(
        &mut self,
        context: &Context,
        name: &str,
        body: &Value,
    ) -> Result<Value, CloudError> {
        let fields = parts::fields(body, "namespace", NAMESPACE_KEYS, NAMESPACE_READ_ONLY)?;
        let index = self.position(context, name)?;
        context.may_write()?;
        let mut changed = self.namespaces[index].clone();
        changed.display_name = None;
        changed.description = None;
        changed.visibility = Visibility::Private;
        changed.protected = false;
        changed.owner = context.owner();
        changed.set_fields(fields)?;
        self.refuse_taken(&changed.namespace, Some(index))?;
        changed.updated_at = context.now.to_string();
        let shown = changed.to_json(Detail::Own);
        self.namespaces[index] = changed;
        Ok(shown)
    }

    /// `DELETE /v2/metadefs/namespaces/{namespace}`, with everything in it.
    pub fn delete(&mut self, context: &Context, name: &str) -> Result<(), CloudError> {
        let index = self.position(context, name)?;
        context.may_write()?;
        self.namespaces[index].refuse_if_protected()?;
        self.namespaces.remove(index);
        Ok(())
    }

    fn refuse_taken(&self, name: &str, except: Option<usize>) -> Result<(), CloudError> {
        let taken = self
            .namespaces
            .iter()
            .enumerate()
            .any(|(index, namespace)| Some(index) != except && namespace.namespace == name);
        if taken {
            Err(CloudError::Conflict(format!(
                "A metadata definition namespace named {name} already exists."
            )))
        } else {
            Ok(())
        }
    }
}

/// How much of a namespace an answer shows.
enum Detail<'a> {
    /// Its own fields (what an update answers).
    Own,
    /// Its own fields and its resource-type associations (a listing's entry).
    Listed,
    /// Everything in it, property names with this prefix.
    Everything { prefix: &'a str },
}

impl Namespace {
    fn to_json(&self, detail: Detail) -> Value {
        let mut shown = Map::new();
        shown.insert("namespace".into(), json!(self.namespace));
        if let Some(display_name) = &self.display_name {
            shown.insert("display_name".into(), json!(display_name));
        }
        if let Some(description) = &self.description {
            shown.insert("description".into(), json!(description));
        }
        shown.insert("visibility".into(), json!(self.visibility));
        shown.insert("protected".into(), json!(self.protected));
        shown.insert("owner".into(), json!(self.owner));
        shown.insert("created_at".into(), json!(self.created_at));
        shown.insert("updated_at".into(), json!(self.updated_at));
        shown.insert(
            "self".into(),
            json!(format!("/v2/metadefs/namespaces/{}", self.namespace)),
        );
        shown.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
        let prefix = match detail {
            Detail::Own => return Value::Object(shown),
            Detail::Listed => None,
            Detail::Everything { prefix } => Some(prefix),
        };
        if !self.associations.is_empty() {
            let associations: Vec<Value> = self
                .associations
                .iter()
                .map(parts::Association::to_json)
                .collect();
            shown.insert("resource_type_associations".into(), json!(associations));
        }
        let Some(prefix) = prefix else {
            return Value::Object(shown);
        };
        if !self.properties.is_empty() {
            let properties: Map<String, Value> = self
                .properties
                .iter()
                .map(|(name, property)| (format!("{prefix}{name}"), parts::without_name(property)))
                .collect();
            shown.insert("properties".into(), Value::Object(properties));
        }
        if !self.objects.is_empty() {
            let objects: Vec<Value> = self
                .objects
                .iter()
                .map(|object| object.to_json(&self.namespace, prefix))
                .collect();
            shown.insert("objects".into(), json!(objects));
        }
        if !self.tags.is_empty() {
            let tags: Vec<Value> = self
                .tags
                .iter()
                .map(|tag| json!({"name": tag.name}))
                .collect();
            shown.insert("tags".into(), json!(tags));
        }
        Value::Object(shown)
    }

    /// The namespace's own fields from a create or update body.
    fn set_fields(&mut self, fields: &Map<String, Value>) -> Result<(), CloudError> {
        self.namespace = parts::name_in(fields, "namespace")?;
        self.display_name = parts::optional_text(fields, "display_name", NAME_MAX)?;
        self.description = parts::optional_text(fields, "description", DESCRIPTION_MAX)?;
        if let Some(visibility) = fields.get("visibility") {
            self.visibility = serde_json::from_value(visibility.clone()).map_err(|_| {
                bad_request(format!(
                    "visibility must be public or private, not {visibility}"
                ))
            })?;
        }
        if let Some(protected) = fields.get("protected") {
            self.protected = protected.as_bool().ok_or_else(|| {
                bad_request(format!("protected must be true or false, not {protected}"))
            })?;
        }
        if let Some(owner) = parts::optional_text(fields, "owner", OWNER_MAX)? {
            self.owner = owner;
        }
        Ok(())
    }

    /// Glance refuses to delete a protected namespace or anything in it.
    fn refuse_if_protected(&self) -> Result<(), CloudError> {
        if self.protected {
            Err(CloudError::Forbidden(format!(
                "Metadata definition namespace {} is protected and cannot be deleted; set protected to false first.",
                self.namespace
            )))
        } else {
            Ok(())
        }
    }
}

fn namespace_not_found(name: &str) -> CloudError {
    CloudError::NotFound(format!(
        "Metadata definition namespace={name} was not found."
    ))
}

fn bad_request(message: impl Into<String>) -> CloudError {
    CloudError::BadRequest(message.into())
}

/// A path with its query string.
fn link(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in query {
        serializer.append_pair(key, value);
    }
    format!("{path}?{}", serializer.finish())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
