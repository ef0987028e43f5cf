//! The requests on what a namespace holds, `/v2/metadefs/namespaces/{namespace}/{kind}[/{name}]`:
//! list, create, show, replace (a new name in the body renames), delete one or all.

use serde_json::{Value, json};

use super::parts::{
    Association, Object, Tag, conflict, fields, list_of, not_found, property, tag_name,
};
use super::{Context, Metadefs, NAME_MAX, Namespace, bad_request};
use crate::glance_server::CloudError;

fn tag_json(tag: &Tag) -> Value {
    json!({"name": tag.name, "created_at": tag.created_at, "updated_at": tag.updated_at})
}

/// The kinds of definitions inside a namespace, as their paths name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Objects,
    Properties,
    Tags,
    ResourceTypes,
}

impl Metadefs {
    /// `GET .../{namespace}/{kind}`.
    pub fn list_in(
        &self,
        context: &Context,
        namespace: &str,
        kind: Kind,
    ) -> Result<Value, CloudError> {
        let namespace = self.visible(context, namespace)?;
        Ok(match kind {
            Kind::Objects => json!({
                "objects": namespace.objects.iter().map(|object| object.to_json(&namespace.namespace, "")).collect::<Vec<_>>(),
                // Glance 33 writes this one without its leading slash.
                "schema": "v2/schemas/metadefs/objects",
            }),
            Kind::Properties => json!({"properties": namespace.properties}),
            Kind::Tags => {
                let mut tags: Vec<&Tag> = namespace.tags.iter().collect();
                tags.reverse();
                tags.sort_by(|a, b| b.created_at.cmp(&a.created_at));
                json!({"tags": tags.iter().map(|tag| json!({"name": tag.name})).collect::<Vec<_>>()})
            }
            Kind::ResourceTypes => json!({
                "resource_type_associations": namespace.associations.iter().map(Association::to_json).collect::<Vec<_>>(),
            }),
        })
    }

    /// `POST .../{namespace}/{kind}`; `append` is the tags' `X-Openstack-Append`.
    pub fn create_in(
        &mut self,
        context: &Context,
        namespace: &str,
        kind: Kind,
        body: &Value,
        append: bool,
    ) -> Result<Value, CloudError> {
        let now = context.now;
        let mut new_resource_type = None;
        let namespace = self.writable(context, namespace)?;
        let shown = match kind {
            Kind::Objects => {
                let object = Object::from_body(body, now)?;
                let shown = object.to_json(&namespace.namespace, "");
                namespace.add_object(object)?;
                shown
            }
            Kind::Properties => {
                let property = property(body, None)?;
                namespace.add_property(property.clone())?;
                property
            }
            Kind::Tags => {
                let fields = fields(body, "tag list", &["tags"], &[])?;
                let names = list_of(fields, "tags")?
                    .iter()
                    .map(tag_name)
                    .collect::<Result<Vec<_>, _>>()?;
                namespace.set_tags(&names, append, now)?;
                let tags: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
                json!({ "tags": tags })
            }
            Kind::ResourceTypes => {
                let association = Association::from_body(body, now)?;
                let shown = association.to_json();
                new_resource_type = Some(association.name.clone());
                namespace.associate(association)?;
                shown
            }
        };
        if let Some(name) = new_resource_type {
            self.resource_type(&name, now);
        }
        Ok(shown)
    }

    /// `DELETE .../{namespace}/{kind}`: all of that kind (associations are removed one by one).
    pub fn delete_all_in(
        &mut self,
        context: &Context,
        namespace: &str,
        kind: Kind,
    ) -> Result<(), CloudError> {
        // Decided before the namespace is looked at: Glance has no such path at all.
        let clear: fn(&mut Namespace) = match kind {
            Kind::Objects => |namespace| namespace.objects.clear(),
            Kind::Properties => |namespace| namespace.properties.clear(),
            Kind::Tags => |namespace| namespace.tags.clear(),
            Kind::ResourceTypes => return Err(one_by_one()),
        };
        let namespace = self.writable(context, namespace)?;
        namespace.refuse_if_protected()?;
        clear(namespace);
        Ok(())
    }

    /// `GET .../{namespace}/{kind}/{name}`.
    pub fn show_in(
        &self,
        context: &Context,
        namespace: &str,
        kind: Kind,
        name: &str,
    ) -> Result<Value, CloudError> {
        let namespace = self.visible(context, namespace)?;
        match kind {
            Kind::Objects => {
                Ok(namespace.objects[namespace.object_index(name)?]
                    .to_json(&namespace.namespace, ""))
            }
            Kind::Properties => namespace
                .properties
                .get(name)
                .cloned()
                .ok_or_else(|| not_found("property", name, &namespace.namespace)),
            Kind::Tags => Ok(tag_json(&namespace.tags[namespace.tag_index(name)?])),
            Kind::ResourceTypes => Err(one_by_one()),
        }
    }

    /// `PUT .../{namespace}/{kind}/{name}`: replaces it, a new name in the body renames it.
    pub fn replace_in(
        &mut self,
        context: &Context,
        namespace: &str,
        kind: Kind,
        name: &str,
        body: &Value,
    ) -> Result<Value, CloudError> {
        let now = context.now;
        let namespace = self.writable(context, namespace)?;
        let ns = namespace.namespace.clone();
        match kind {
            Kind::Objects => {
                let index = namespace.object_index(name)?;
                let mut object = Object::from_body(body, now)?;
                if object.name != name
                    && namespace
                        .objects
                        .iter()
                        .any(|known| known.name == object.name)
                {
                    return Err(conflict("object", &object.name, &ns));
                }
                object.created_at = namespace.objects[index].created_at.clone();
                let shown = object.to_json(&ns, "");
                namespace.objects[index] = object;
                Ok(shown)
            }
            Kind::Properties => {
                if !namespace.properties.contains_key(name) {
                    return Err(not_found("property", name, &ns));
                }
                let property = property(body, None)?;
                let new_name = property["name"].as_str().unwrap_or_default().to_string();
                if new_name != name && namespace.properties.contains_key(&new_name) {
                    return Err(conflict("property", &new_name, &ns));
                }
                namespace.properties.remove(name);
                namespace.properties.insert(new_name, property.clone());
                Ok(property)
            }
            Kind::Tags => {
                let index = namespace.tag_index(name)?;
                let new_name = tag_name(body)?;
                if new_name != name && namespace.tags.iter().any(|tag| tag.name == new_name) {
                    return Err(conflict("tag", &new_name, &ns));
                }
                let tag = &mut namespace.tags[index];
                tag.name = new_name;
                tag.updated_at = now.to_string();
                Ok(tag_json(tag))
            }
            Kind::ResourceTypes => Err(one_by_one()),
        }
    }

    /// `POST .../{namespace}/tags/{name}`: one more tag.
    pub fn add_tag(
        &mut self,
        context: &Context,
        namespace: &str,
        name: &str,
    ) -> Result<Value, CloudError> {
        if name.chars().count() > NAME_MAX {
            return Err(bad_request(format!(
                "A tag may have at most {NAME_MAX} characters."
            )));
        }
        let namespace = self.writable(context, namespace)?;
        namespace.set_tags(&[name.to_string()], true, context.now)?;
        Ok(namespace.tags.last().map(tag_json).unwrap_or_default())
    }

    /// `DELETE .../{namespace}/{kind}/{name}`.
    pub fn delete_in(
        &mut self,
        context: &Context,
        namespace: &str,
        kind: Kind,
        name: &str,
    ) -> Result<(), CloudError> {
        let namespace = self.writable(context, namespace)?;
        namespace.refuse_if_protected()?;
        let ns = namespace.namespace.clone();
        match kind {
            Kind::Objects => {
                let index = namespace.object_index(name)?;
                namespace.objects.remove(index);
            }
            Kind::Properties => {
                namespace
                    .properties
                    .remove(name)
                    .ok_or_else(|| not_found("property", name, &ns))?;
            }
            Kind::Tags => {
                let index = namespace.tag_index(name)?;
                namespace.tags.remove(index);
            }
            Kind::ResourceTypes => {
                let index = namespace
                    .associations
                    .iter()
                    .position(|association| association.name == name)
                    .ok_or_else(|| not_found("resource type association", name, &ns))?;
                namespace.associations.remove(index);
            }
        }
        Ok(())
    }
}

/// Glance lists, associates and dissociates resource types; it does not show, replace or
/// clear them one path further down.
fn one_by_one() -> CloudError {
    CloudError::MethodNotAllowed(
        "A resource type association is listed, associated (POST) and dissociated (DELETE); delete it and associate again to change it.".into(),
    )
}
