//! `SharedImage`: the consumer's side of sharing. A project an image is shared with must accept
//! it before Glance lists it for that project; a SharedImage, in the consumer's namespace with
//! the consumer's credentials, says so (or rejects it), and glint keeps Glance's member status
//! that way. Every field's doc comment is what `kubectl explain` shows.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cloud::CloudCredentialsRef;
use crate::vocabulary::MemberStatus;

/// An image another project shares with this namespace's project, and whether this project
/// accepts it. Deleting the object leaves the member status in Glance as it is.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "glint.dev",
    version = "v1alpha1",
    kind = "SharedImage",
    namespaced,
    doc = "An OpenStack Glance image another project shares with this namespace's project, and whether this project accepts (or rejects) it.",
    shortname = "gshared",
    category = "openstack",
    status = "SharedImageStatus",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "Member", type_ = "string", json_path = ".status.memberStatus"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
// kube's derive takes one `printcolumn(...)` per column; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[serde(rename_all = "camelCase")]
pub struct SharedImageSpec {
    /// The Secret (in this namespace) holding the consumer project's clouds.yaml, and the cloud
    /// in it: the project that accepts or rejects the image.
    pub cloud_credentials_ref: CloudCredentialsRef,

    /// Which shared image: its id, or its name (and, to tell producers apart, its owner).
    pub image: SharedImageRef,

    /// accepted (default): Glance lists the image for this project; rejected: it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<MemberDecision>,
}

/// Which image another project shares.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.id) != has(self.name)").message("spec.image needs exactly one of id and name"))]
pub struct SharedImageRef {
    /// The image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub id: Option<String>,
    /// The image's name; it must match one image shared with this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub name: Option<String>,
    /// The project id that owns the image (with name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub owner: Option<String>,
}

spec_enum!(
    /// This project's answer to a shared image.
    MemberDecision { Accepted = "accepted", Rejected = "rejected" } default Accepted
);

impl From<MemberDecision> for MemberStatus {
    fn from(decision: MemberDecision) -> Self {
        MemberStatus::from(decision.as_str())
    }
}

/// What glint found and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedImageStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (Glance has the decision), Reconciling and Stalled, as for an Image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The shared image's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its name in Glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The project that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// This project's member status in Glance: pending, accepted or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_status: Option<String>,
}
