//! `Image.spec`: what the user declares. Every field's doc comment is what `kubectl explain`
//! shows, so it is written for the person editing a manifest.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cloud::CloudCredentialsRef;
use super::ownership::PropertyOwnership;
use super::source::{ConvertTo, ImageSource};
use super::status_fields::ImageStatus;
use crate::vocabulary;

/// Keys that `spec.properties` may not set: Glance's own fields, which are read-only or have
/// their own spec field. The same list `glance::Image` uses to tell fields from properties.
pub const RESERVED_PROPERTY_KEYS: &[&str] = vocabulary::BASE_KEYS;

/// Key prefixes `spec.properties` may not use: Glance's reserved one, and `os_hash_`, where
/// Glance keeps the data's digest beside keys it may add.
pub const RESERVED_PROPERTY_PREFIXES: &[&str] = &[vocabulary::RESERVED_PREFIX, "os_hash_"];

/// An OpenStack Glance image that glint creates, keeps in the declared state and deletes, or
/// (with managementPolicy unmanaged) only observes.
// kube's derive takes one `printcolumn(...)` per column; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "glint.dev",
    version = "v1alpha1",
    kind = "Image",
    namespaced,
    doc = "An OpenStack Glance image managed (or observed) by glint. spec says what the image should be; status says what Glance has and what glint is doing about it.",
    status = "ImageStatus",
    shortname = "gimg",
    category = "openstack",
    printcolumn(
        name = "Glance Name",
        type_ = "string",
        json_path = ".status.glance.name"
    ),
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.glance.status"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Targets", type_ = "string", json_path = ".status.targetsReady"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// `import` is a CEL keyword: Kubernetes exposes the field to rules as `__import__`.
#[x_kube(
    validation = Rule::new("has(self.cloudCredentialsRef) != (has(self.targets) && size(self.targets) > 0)")
        .message("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds), one of them and not both"),
    validation = Rule::new("has(self.cloudCredentialsRef) == has(oldSelf.cloudCredentialsRef)")
        .message("spec.cloudCredentialsRef and spec.targets cannot replace each other on an existing Image (the images made so far would be left behind): create a new Image"),
    validation = Rule::new("!has(self.targets) || self.targets.all(t, !has(t.convertTo) || (has(self.diskFormat) && self.diskFormat in ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi']))")
        .message("a target's convertTo needs spec.diskFormat to name the source file's format, one glint and Glance can convert: raw, qcow2, vmdk, vhd, vhdx or vdi"),
    validation = Rule::new("!has(self.managementPolicy) || self.managementPolicy != 'unmanaged' || has(self.__import__)")
        .message("managementPolicy unmanaged needs spec.import (an id or a filter) to say which image to observe"),
    validation = Rule::new("!has(self.__import__) || (has(self.managementPolicy) && self.managementPolicy == 'unmanaged')")
        .message("spec.import only works with managementPolicy: unmanaged; glint never modifies an imported image"),
    validation = Rule::new("(has(self.managementPolicy) && self.managementPolicy == 'unmanaged') || has(self.diskFormat)")
        .message("a managed image needs spec.diskFormat (for example qcow2 or raw)"),
    validation = Rule::new("!has(self.source) || !has(self.source.convertTo) || (has(self.diskFormat) && self.diskFormat in ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi'])")
        .message("with source.convertTo, spec.diskFormat names the source file's format and must be one glint and Glance can convert: raw, qcow2, vmdk, vhd, vhdx or vdi"),
    validation = Rule::new("!has(self.members) || size(self.members) == 0 || (has(self.visibility) && self.visibility == 'shared')")
        .message("spec.members needs spec.visibility: shared (Glance shares only shared images)"),
    validation = Rule::new("!has(oldSelf.source) || (has(self.source) && self.source == oldSelf.source)")
        .message("spec.source is immutable once set: create a new Image for new data"),
    validation = Rule::new("has(self.id) == has(oldSelf.id) && (!has(self.id) || self.id == oldSelf.id)")
        .message("spec.id is immutable"),
    validation = Rule::new("has(self.diskFormat) == has(oldSelf.diskFormat) && (!has(self.diskFormat) || self.diskFormat == oldSelf.diskFormat)")
        .message("spec.diskFormat is immutable: Glance fixes it once data is uploaded"),
    validation = Rule::new("(has(self.containerFormat) ? self.containerFormat : 'bare') == (has(oldSelf.containerFormat) ? oldSelf.containerFormat : 'bare')")
        .message("spec.containerFormat is immutable: Glance fixes it once data is uploaded"),
    // Compared as effective values: an absent policy means managed.
    validation = Rule::new("(has(self.managementPolicy) ? self.managementPolicy : 'managed') == (has(oldSelf.managementPolicy) ? oldSelf.managementPolicy : 'managed')")
        .message("spec.managementPolicy is immutable"),
    validation = Rule::new("has(self.__import__) == has(oldSelf.__import__) && (!has(self.__import__) || self.__import__ == oldSelf.__import__)")
        .message("spec.import is immutable"),
    // glint would silently ignore these on an image it only observes: refuse them instead.
    validation = Rule::new(unmanaged_fields_rule())
        .message(kube::core::Message::Expression(unmanaged_fields_message())),
)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// The Secret (in this namespace) holding a clouds.yaml, and the cloud in it to use. Set
    /// this, or spec.targets to publish the image to several clouds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_credentials_ref: Option<CloudCredentialsRef>,

    /// The clouds (or regions) to publish the same image to, from one download of the source:
    /// instead of spec.cloudCredentialsRef. Each names its Secret and cloud, and may set what
    /// differs between clouds (region, convertTo, visibility, members). status.targets has one
    /// entry per target and status.imageIds each one's image id; Ready is True when every
    /// target's image is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 32))]
    pub targets: Vec<Target>,

    /// The image's name in Glance. Defaults to metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 255").message("Glance names are at most 255 characters"))]
    pub name: Option<String>,

    /// Who can see the image: private (default; only the owning project), shared (the owner
    /// and spec.members), community (anyone can use it, not listed by default) or public
    /// (everyone; usually needs an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,

    /// Tags on the image, as a set: order does not matter and duplicates are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Glance's default image_tag_quota; the bound also keeps the CEL rule within the
    // apiserver's cost budget.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 128))]
    #[x_kube(validation = Rule::new("self.all(t, size(t) > 0 && size(t) <= 255)").message("each tag is 1 to 255 characters"))]
    pub tags: Vec<String>,

    /// Protected images cannot be deleted in Glance. glint unprotects the image itself before
    /// it deletes it (onDelete: delete).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,

    /// Hidden images (Glance's os_hidden) are left out of default image listings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,

    /// Minimum disk size, in GB, a server needs to boot this image.
    #[serde(default, rename = "minDiskGB", skip_serializing_if = "Option::is_none")]
    pub min_disk_gb: Option<u32>,

    /// Minimum RAM, in MB, a server needs to boot this image.
    #[serde(default, rename = "minRamMB", skip_serializing_if = "Option::is_none")]
    pub min_ram_mb: Option<u32>,

    /// Free-form string properties (for example os_distro, hw_disk_bus). glint sets these and
    /// restores them when they are changed or removed in Glance. A key glint set earlier and
    /// that is no longer listed here is removed; properties glint never set (added by Glance's
    /// import plugins, the cloud's operators or other tools) are left alone unless
    /// spec.propertyOwnership.own claims them. Glance's own keys (os_glance_*, os_hash_*,
    /// stores, direct_url and the fields above) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // Glance's default image_property_quota; without a bound the apiserver refuses the CEL
    // rule below as too costly.
    #[schemars(extend("maxProperties" = 128))]
    #[x_kube(validation = Rule::new(reserved_keys_rule()).message(
        "spec.properties must not set Glance's own keys (os_glance_*, os_hash_*, stores, direct_url, id, name, status, visibility, protected, os_hidden, checksum, owner, size, min_disk, min_ram, container_format, disk_format, tags, ...): use the dedicated spec fields"
    ))]
    pub properties: BTreeMap<String, String>,

    /// Which properties besides spec.properties glint may remove (own) or must leave alone
    /// even though it set them earlier (ignore). Without it, glint removes only keys it set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_ownership: Option<PropertyOwnership>,

    /// The container format of the data: bare (default; no container), ovf, ova, ami, ari,
    /// aki, docker or compressed. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_format: Option<ContainerFormat>,

    /// The disk format of the data: raw, qcow2, vmdk, vhd, vhdx, vdi, iso, ploop, ami, ari or
    /// aki. Required for managed images; immutable. With source.convertTo it is the format of
    /// the source file, and Glance stores convertTo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<DiskFormat>,

    /// A UUID to create the image with. Normally left empty: glint derives a stable id from
    /// this object, which is what makes a retried create safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub id: Option<String>,

    /// Where the image data comes from. Without a source the image stays queued (no data).
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ImageSource>,

    /// Deactivated images cannot be downloaded or booted by non-admins. Set back to false to
    /// reactivate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deactivated: bool,

    /// Project ids the image is shared with (needs visibility: shared). Each project still has
    /// to accept the image in Glance before it is listed for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Glance's default image_member_quota.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 128))]
    pub members: Vec<String>,

    /// Observe an image glint did not create, by id or by filter. Needs managementPolicy:
    /// unmanaged; glint never modifies or deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImageImport>,

    /// managed (default): glint creates, updates and deletes the image. unmanaged: glint only
    /// reports on the image selected by spec.import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,

    /// What happens to the Glance image when this object is deleted: delete (default) removes
    /// it from Glance; detach leaves it there. Also honoured while a deletion waits
    /// (DeletionBlocked): setting detach then lets the object go and keeps the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,

    /// What glint does when it is to delete the Glance image (onDelete: delete) and the
    /// image is still in use: the cloud's compute service lists servers booted from it (every
    /// project's when the credentials may list them, else their own project's), or Glance
    /// refuses the delete (an rbd store refuses while volumes, ephemeral disks or snapshots
    /// cloned from the image exist). keep (default): glint hides the image (os_hidden) and
    /// tries again every few minutes; the object stays until the delete succeeds (reason
    /// InUse). deactivate: the same, and glint also deactivates the image, so no new server
    /// boots from it and no one downloads it (running servers are not affected). glint cannot
    /// see servers other projects run when its credentials may not list them, nor volumes
    /// copied (not cloned) from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_in_use: Option<WhenInUse>,

    /// How often to compare the image in Glance with this spec and correct drift, as a
    /// duration such as 10m or 1h. Defaults to the controller's --resync-period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Between 10s and 168h (7 days).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('168h')")
        .message("resyncPeriod must be between 10s and 168h (7 days), for example 10m or 1h"))]
    pub resync_period: Option<String>,
}

/// The spec fields that only mean something for a managed image, as manifests spell them.
/// `import` is `__import__` to CEL, but none of these is a CEL keyword.
pub const MANAGED_ONLY_FIELDS: &[&str] = &[
    "name",
    "visibility",
    "tags",
    "protected",
    "hidden",
    "minDiskGB",
    "minRamMB",
    "properties",
    "propertyOwnership",
    "containerFormat",
    "diskFormat",
    "id",
    "source",
    "deactivated",
    "members",
    "onDelete",
    "whenInUse",
    "targets",
];

const UNMANAGED: &str = "has(self.managementPolicy) && self.managementPolicy == 'unmanaged'";

fn unmanaged_fields_rule() -> String {
    let none_set = MANAGED_ONLY_FIELDS
        .iter()
        .map(|field| format!("!has(self.{field})"))
        .collect::<Vec<_>>()
        .join(" && ");
    format!("!({UNMANAGED}) || ({none_set})")
}

/// Names every offending field, so the refusal says exactly what to remove.
fn unmanaged_fields_message() -> String {
    let listed = MANAGED_ONLY_FIELDS
        .iter()
        .map(|field| format!("(has(self.{field}) ? ' spec.{field}' : '')"))
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "'managementPolicy unmanaged only observes an existing image, so these managed-only fields would be ignored; remove them:' + {listed}"
    )
}

pub(super) fn reserved_keys_rule() -> String {
    let keys = RESERVED_PROPERTY_KEYS
        .iter()
        .map(|key| format!("'{key}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let prefixes = RESERVED_PROPERTY_PREFIXES
        .iter()
        .map(|prefix| format!("!k.startsWith('{prefix}')"))
        .collect::<Vec<_>>()
        .join(" && ");
    format!("self.all(k, {prefixes} && !(k in [{keys}]))")
}

/// One cloud, or one region of a cloud, the image is published to. What may differ between
/// clouds is set here; everything else comes from the rest of the spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.members) || size(self.members) == 0 || (has(self.visibility) && self.visibility == 'shared')")
    .message("a target's members need that target's visibility: shared (Glance shares only shared images)"))]
pub struct Target {
    /// A short name for this target, unique in spec.targets: the key of its entry in
    /// status.targets and status.imageIds (for example the region's name). Lowercase letters,
    /// digits and '-'.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,

    /// The Secret (in this namespace) holding a clouds.yaml, and the cloud in it to use.
    pub cloud_credentials_ref: CloudCredentialsRef,

    /// The region to publish to, instead of the cloud's region_name in clouds.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub region: Option<String>,

    /// Convert the image for this target (raw for a Ceph-backed region, qcow2 elsewhere),
    /// instead of spec.source.convertTo. spec.diskFormat still names the source file's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_to: Option<ConvertTo>,

    /// Who can see the image in this cloud, instead of spec.visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,

    /// Project ids in this cloud to share the image with, instead of spec.members (project
    /// ids differ between clouds). Needs visibility: shared on this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 128))]
    pub members: Option<Vec<String>>,
}

/// Which image to observe without managing it: exactly one of id or filter.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.id) != has(self.filter)").message("spec.import needs exactly one of id or filter"))]
pub struct ImageImport {
    /// The Glance image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub id: Option<String>,
    /// Select the image by its attributes. It must match one image, unless newest is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ImportFilter>,
}

/// Attributes an imported image must have. At least one is required.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) || has(self.tags) || has(self.visibility) || has(self.owner) || has(self.properties)")
    .message("an import filter needs at least one of name, tags, visibility, owner or properties"))]
pub struct ImportFilter {
    /// The image name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tags the image must all have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub tags: Vec<String>,
    /// The image's visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// The owning project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Properties the image must have, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// When several images match, track the most recently created one instead of failing;
    /// glint follows a newer match as soon as it appears.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newest: bool,
}

/// Spec enums that are Glance words convert to Glance's (open) enums by their word.
macro_rules! to_glance {
    ($($name:ident),+) => {
        $(impl From<$name> for vocabulary::$name {
            fn from(value: $name) -> Self {
                vocabulary::$name::from(value.as_str())
            }
        })+
    };
}

vocabulary::visibilities!(spec_enum!(
    /// Who can see an image.
    Visibility
) default Private);

vocabulary::disk_formats!(spec_enum!(
    /// The format of the image's bits (Glance's default disk_formats).
    DiskFormat
) default Raw);

vocabulary::container_formats!(spec_enum!(
    /// The wrapper around the image's bits (Glance's default container_formats).
    ContainerFormat
) default Bare);

to_glance!(Visibility, DiskFormat, ContainerFormat);

spec_enum!(
    /// Whether glint manages the image or only observes it.
    ManagementPolicy { Managed = "managed", Unmanaged = "unmanaged" } default Managed
);

spec_enum!(
    /// What deleting the object does to the Glance image.
    OnDelete { Delete = "delete", Detach = "detach" } default Delete
);

spec_enum!(
    /// What glint does with an image it is to delete while the image is still in use.
    WhenInUse { Keep = "keep", Deactivate = "deactivate" } default Keep
);

impl ImageSpec {
    /// The management policy with its default applied.
    pub fn policy(&self) -> ManagementPolicy {
        self.management_policy.unwrap_or_default()
    }

    /// What deletion does, with its default applied.
    pub fn on_delete(&self) -> OnDelete {
        self.on_delete.unwrap_or_default()
    }

    /// What deleting does to an image still in use, with its default applied.
    pub fn when_in_use(&self) -> WhenInUse {
        self.when_in_use.unwrap_or_default()
    }
}

/// Whether `key` may be set in spec.properties: the same rule the CRD's CEL check applies,
/// for code paths that do not pass through the apiserver (the CLI's `glint apply`).
pub fn is_reserved_property(key: &str) -> bool {
    RESERVED_PROPERTY_KEYS.contains(&key)
        || RESERVED_PROPERTY_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
}
