//! `Image.status`: what glint observed and did. Written only by the controller, as one
//! server-side-apply patch built by the `status` module.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

use crate::vocabulary::{ContainerFormat, DiskFormat, GlanceStatus, Visibility};

/// The observed state of an Image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// The Glance image id. Written right after the image is created, before anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready (the image matches the spec and is usable), and the kstatus pair Reconciling (work
    /// in progress) and Stalled (glint cannot go on without a change from you; the message says
    /// what). Reasons are stable PascalCase words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The image as Glance last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glance: Option<GlanceView>,

    /// Progress of bringing the source data into Glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,

    /// The value of the annotation glint.dev/reconcile-requested-at that glint last acted
    /// on. Setting the annotation to a new value makes glint read the image from Glance at
    /// once, instead of from the listing it shares between resyncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// When glint last recorded a change in this status. Resyncs that find nothing to do
    /// leave it alone, so that they cost no write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// With spec.targets: each target's image, as its cloud reports it. The object's
    /// conditions sum them up (Ready when every target is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub targets: Vec<TargetStatus>,

    /// With spec.targets: each target's Glance image id, by target name, for consumers that
    /// need the id per cloud or region (Gardener CloudProfiles, Cluster API templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_ids: BTreeMap<String, String>,

    /// With spec.targets: how many targets are Ready, as "2/3 ready".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_ready: Option<String>,
}

/// One target's image (spec.targets), as its cloud reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The target's name in spec.targets.
    pub name: String,
    /// The Secret and cloud the image is in: kept after the target leaves spec.targets, so
    /// that glint can still reach its image to delete it (or leave it, per spec.onDelete).
    pub cloud_credentials_ref: super::cloud::CloudCredentialsRef,
    /// The region, when the target names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Glance image id in that cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Ready, Reconciling and Stalled for this target alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The image as this target's Glance last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glance: Option<GlanceView>,
    /// Progress of the transfer into this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,
}

/// Glance's view of the image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlanceView {
    /// queued, saving, uploading, importing, active, deactivated, killed, deleted or
    /// pending_delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GlanceStatus>,
    /// The image's name in Glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// private, shared, community or public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// The image's tags, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Whether Glance refuses to delete the image.
    #[serde(default)]
    pub protected: bool,
    /// Whether the image is left out of default listings (os_hidden).
    #[serde(default)]
    pub hidden: bool,
    /// Bytes stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Size of the virtual disk, in bytes, when Glance knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<u64>,
    /// MD5 of the data (Glance's legacy checksum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The algorithm of osHashValue (sha512 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_hash_algo: Option<String>,
    /// The secure hash of the data, computed by Glance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_hash_value: Option<String>,
    /// The container format Glance records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_format: Option<ContainerFormat>,
    /// The disk format Glance records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<DiskFormat>,
    /// Minimum disk, GB.
    #[serde(default)]
    pub min_disk: u64,
    /// Minimum RAM, MB.
    #[serde(default)]
    pub min_ram: u64,
    /// The owning project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The image's free-form properties, including ones set outside glint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// When Glance created the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When Glance last changed the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// Where a transfer stands.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum TransferPhase {
    /// Waiting for a transfer slot.
    #[default]
    Pending,
    /// Bytes are flowing.
    Running,
    /// The data is in Glance.
    Succeeded,
    /// The last attempt failed; see lastError. Retried with backoff unless Stalled says otherwise.
    Failed,
}

/// Progress of the source -> Glance transfer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    pub phase: TransferPhase,
    /// Bytes read from the source so far (as downloaded, before unpacking).
    #[serde(default)]
    pub bytes_done: u64,
    /// The source's size, when it announced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// bytesDone as a whole percentage of bytesTotal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Average speed of the download so far, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// How long the last finished attempt took, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<u64>,
    /// Attempts started so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Set when Glance changed the data while importing it (its image_conversion or
    /// decompression import plugins, common on Ceph-backed clouds). glint checked
    /// spec.source.hash on the data it sent; Glance's checksum and osHashValue describe the
    /// data Glance stored instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<GlanceConversion>,
}

/// The source's format and size and what Glance stored, when the data was converted: by glint
/// (spec.source.convertTo) or by Glance's import.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlanceConversion {
    /// Who converted: glint (in its scratch folder, before the upload) or glance (its
    /// image_conversion import plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Milliseconds glint's conversion took (qemu-img convert), when glint converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milliseconds: Option<u64>,
    /// The disk format of the source (spec.diskFormat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_format: Option<DiskFormat>,
    /// The disk format Glance stored (the image's disk_format now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_format: Option<DiskFormat>,
    /// Bytes of the source, after unpacking (absent for webDownload, where Glance fetched the
    /// source itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_bytes: Option<u64>,
    /// Bytes Glance stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
}
