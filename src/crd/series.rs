//! `ImageSeries`: one image kept current across releases. Each release becomes a Glance image
//! of its own (a derived id and glint's marks, like an Image); the newest release whose image
//! is active carries the stable name and the property glint.dev/latest, older ones are renamed
//! with their version and retired, and only the newest `keep` stay.
//!
//! Reconciled by `glint run` (checks on spec.schedule) and by `glint plan -f` / `glint apply
//! -f` (one check per run). Every field's doc comment is what `kubectl explain` shows.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cloud::CloudCredentialsRef;
use super::ownership::PropertyOwnership;
use super::source::{ImageSource, SourceHash, SourceOptions};
use super::spec::{ContainerFormat, DiskFormat, ImageSpec, Target, Visibility};
use crate::vocabulary::GlanceStatus;

/// How many versions a series keeps when spec.keep is not set.
pub const DEFAULT_KEEP: u32 = 3;

/// A series of versions of one image, kept current: each release is its own Glance image, the
/// newest active one carries the stable name, and older ones are retired and, beyond keep,
/// deleted.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "glint.dev",
    version = "v1alpha1",
    kind = "ImageSeries",
    plural = "imageseries",
    namespaced,
    doc = "A series of versions of one OpenStack Glance image, kept current by glint: each release is a Glance image of its own, the newest active one carries the stable name.",
    shortname = "gis",
    category = "openstack",
    status = "ImageSeriesStatus",
    printcolumn(name = "Current", type_ = "string", json_path = ".status.current"),
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
// kube's derive takes one `printcolumn(...)` per column; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[x_kube(
    validation = Rule::new("has(self.cloudCredentialsRef) != (has(self.targets) && size(self.targets) > 0)")
        .message("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds), one of them and not both"),
    validation = Rule::new("has(self.cloudCredentialsRef) == has(oldSelf.cloudCredentialsRef)")
        .message("spec.cloudCredentialsRef and spec.targets cannot replace each other on an existing ImageSeries (the versions made so far would be left behind): create a new ImageSeries"),
    validation = Rule::new("!has(self.targets) || self.targets.all(t, !has(t.convertTo) || self.image.diskFormat in ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi'])")
        .message("a target's convertTo needs image.diskFormat to name a format glint and Glance can convert: raw, qcow2, vmdk, vhd, vhdx or vdi"),
    validation = Rule::new("has(self.versions) != has(self.checksums)")
        .message("an ImageSeries needs exactly one of spec.versions (releases listed by hand) and spec.checksums (releases read from a checksums file)"),
    validation = Rule::new("!has(self.scsMetadata) || has(self.scsMetadata.replaceFrequency) || !has(self.schedule) || !has(self.schedule.cron)")
        .message("with spec.schedule.cron, glint cannot tell how often versions are replaced: set spec.scsMetadata.replaceFrequency"),
)]
#[serde(rename_all = "camelCase")]
pub struct ImageSeriesSpec {
    /// The Secret (in this namespace) holding a clouds.yaml, and the cloud in it to use. Set
    /// this, or spec.targets to keep the series current in several clouds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_credentials_ref: Option<CloudCredentialsRef>,

    /// The clouds (or regions) to keep the series current in, each release downloaded once for
    /// all of them: instead of spec.cloudCredentialsRef. Each names its Secret and cloud, and
    /// may set what differs between clouds (region, convertTo, visibility, members), over
    /// spec.image. Every target rotates on its own (a release becomes current in a cloud once
    /// its image there is active); status.targets has each one's versions and
    /// status.imageIds each one's current image id; Ready is True when every target is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 32))]
    pub targets: Vec<Target>,

    /// What every version's image looks like. Its name is the stable name, which only the
    /// current version carries; the others are named NAME-VERSION, so names never collide.
    pub image: SeriesImage,

    /// The releases, listed by hand, in any order: glint orders them by version (0.6.10 after
    /// 0.6.9). Exactly one of versions and checksums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 100))]
    pub versions: Vec<SeriesRelease>,

    /// The releases, as a distribution publishes them: a checksums file whose file names
    /// match a pattern. Exactly one of versions and checksums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksums: Option<ChecksumsSource>,

    /// How many versions Glance keeps, the current one included: 1 to 100, default 3. Older
    /// versions are deleted (unprotected first). The current version is never deleted, even
    /// when newer releases failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("keep must be 1 to 100: how many versions Glance keeps, the current one included"))]
    pub keep: Option<u32>,

    /// When glint run checks for new releases (glint apply checks once per run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<SeriesSchedule>,

    /// What a kept version becomes once a newer one is current: hidden (default; os_hidden,
    /// still bootable by id, for servers that use it), deactivated (non-admins can no longer
    /// boot or download it), or listed (only renamed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,

    /// Stamp Sovereign Cloud Stack's image metadata (SCS-0102) on every version: see its
    /// fields. Unset: glint adds none of these properties (spec.image.properties still can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scs_metadata: Option<super::scs::ScsMetadata>,
}

/// The Image fields every version shares. Every field of an Image either is here, under the
/// same name (top-level, or a field of the Image's spec.source), or is the series' to set per
/// version; a test holds the two lists together.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.convertTo) || self.diskFormat in ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi']")
        .message("with convertTo, diskFormat names the release files' format and must be one glint and Glance can convert: raw, qcow2, vmdk, vhd, vhdx or vdi"),
    validation = Rule::new("!has(self.conversion) || has(self.convertTo)")
        .message("conversion says who converts: set convertTo too"),
    validation = Rule::new("!has(self.conversion) || self.conversion != 'glance' || (has(self.method) && self.method == 'glanceDirect')")
        .message("conversion glance runs Glance's image_conversion import plugin, which only imports run: set method glanceDirect"),
    validation = Rule::new("!has(self.members) || size(self.members) == 0 || (has(self.visibility) && self.visibility == 'shared')")
        .message("image.members needs image.visibility: shared (Glance shares only shared images)"),
    validation = Rule::new("!has(self.method) || self.method != 'webDownload'")
        .message("a series checks every release against its checksum while it streams: use upload or glanceDirect, not webDownload"),
)]
pub struct SeriesImage {
    /// The stable name the current version carries in Glance. Defaults to metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 200").message("a series' name is at most 200 characters, so NAME-VERSION fits Glance's 255"))]
    pub name: Option<String>,
    /// Who can see the images: private (default), shared, community or public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Tags on every version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 128))]
    #[x_kube(validation = Rule::new("self.all(t, size(t) > 0 && size(t) <= 255)").message("each tag is 1 to 255 characters"))]
    pub tags: Vec<String>,
    /// Whether the versions are protected from deletion in Glance; glint unprotects a version
    /// itself before it deletes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Minimum disk size, in GB, a server needs to boot the image.
    #[serde(default, rename = "minDiskGB", skip_serializing_if = "Option::is_none")]
    pub min_disk_gb: Option<u32>,
    /// Minimum RAM, in MB, a server needs to boot the image.
    #[serde(default, rename = "minRamMB", skip_serializing_if = "Option::is_none")]
    pub min_ram_mb: Option<u32>,
    /// Free-form string properties of every version (glint adds glint.dev/series,
    /// glint.dev/version, glint.dev/release-digest and, on the current one,
    /// glint.dev/latest). Glance's own keys and glint.dev/ keys are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 120))]
    #[x_kube(validation = Rule::new(super::spec::reserved_keys_rule()).message(
        "image.properties must not set Glance's own keys (os_glance_*, os_hash_*, stores, direct_url, id, name, status, visibility, protected, os_hidden, checksum, owner, size, min_disk, min_ram, container_format, disk_format, tags, ...): use the dedicated image fields"
    ))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('glint.dev/'))").message(
        "image.properties must not set glint.dev/ keys: glint marks each version itself (glint.dev/series, glint.dev/version, glint.dev/latest)"
    ))]
    pub properties: BTreeMap<String, String>,
    /// Which other properties glint may remove, as in an Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_ownership: Option<PropertyOwnership>,
    /// The container format: bare (default), ovf, ova, ami, ari, aki, docker or compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_format: Option<ContainerFormat>,
    /// The disk format of the releases: raw, qcow2, vmdk, vhd, vhdx, vdi, iso, ploop, ami, ari
    /// or aki.
    pub disk_format: DiskFormat,
    /// Project ids every version is shared with (needs visibility: shared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 128))]
    pub members: Vec<String>,
    /// What glint does when a version it is to delete (beyond keep, or with the series) is
    /// still in use: the compute service lists servers booted from it, or Glance refuses the
    /// delete (an rbd store refuses while volumes, ephemeral disks or snapshots cloned from it
    /// exist). keep (default): glint hides the version (os_hidden) and tries again at each
    /// check and every few minutes; status.versions says so. deactivate: the same, and glint
    /// also deactivates it, so no new server boots from it (running servers are not
    /// affected). Servers of projects the credentials may not list, and volumes copied from
    /// the version, are not seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_in_use: Option<super::spec::WhenInUse>,
    /// How each release's file is fetched, unpacked, checked and converted: the same options
    /// (decompress, method, convertTo, conversion, caBundle, connectTimeout, idleTimeout,
    /// maxRedirects) as an Image's spec.source, from one definition.
    #[serde(flatten)]
    pub source: SourceOptions,
}

/// One release listed by hand.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeriesRelease {
    /// The version, as it appears in the image's name (NAME-VERSION): letters, digits and
    /// . _ + ~ -, at most 48 characters.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._+~-]{1,48}$"))]
    pub version: String,
    /// Where the release's data is (http or https).
    pub url: String,
    /// The hash of the file as downloaded. Strongly recommended: without it, glint can only
    /// check that Glance stored what it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<SourceHash>,
}

/// Releases read from a mirror as the distribution publishes it: one checksums file
/// (SHA256SUMS, SHA512SUMS, MD5SUMS, or Fedora's and AlmaLinux' CHECKSUM), a folder per
/// release each with its own checksums file (CirrOS, Debian, Ubuntu), or checksums files
/// named per release (Fedora). glint reads the mirror's index pages (Apache's and nginx's
/// autoindex, plain lists) to find new releases: no edit is needed when one is published.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.folders) || has(self.file)) || self.url.endsWith('/')")
        .message("with folders or file, url is the folder whose index page lists them, and ends in /"),
    validation = Rule::new("!has(self.folders) || has(self.file)")
        .message("with folders, file names the checksums file in each folder, for example SHA256SUMS"),
)]
pub struct ChecksumsSource {
    /// The checksums file; or, with folders or file, the folder (ending in /) whose index page
    /// lists the release folders or the checksums files.
    #[schemars(length(max = 2048))]
    pub url: String,
    /// Release folders in url's index to read, newest first: a regular expression for the
    /// folder's name (without its trailing /) with a group named version, for example
    /// (?P<version>[0-9]+\.[0-9]+\.[0-9]+) for CirrOS or (?P<version>[0-9]{8}-[0-9]{4}) for
    /// Debian. Enough folders are read for keep releases; folders not complete on the mirror
    /// yet are stepped over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub folders: Option<String>,
    /// The checksums file in each folder: its name (SHA256SUMS), or a regular expression with
    /// a group named version for checksums files named per release, matched against the
    /// folder's index (Fedora-Cloud-(?P<version>41-[0-9.]+)-x86_64-CHECKSUM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub file: Option<String>,
    /// Where a listed file is fetched from, when not beside its checksums file: a URL with
    /// {file} (the name as listed) and {version} (the release's version), for example
    /// https://mirror.example/cirros/{version}/{file}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("self.contains('{file}') || self.contains('{version}')").message("urlTemplate needs {file} or {version}, for example https://mirror.example/{version}/{file}"))]
    pub url_template: Option<String>,
    /// A regular expression for the file names to take from the checksums file; it must match
    /// the whole name. A group named version (?P<version>...) becomes the release's version,
    /// for example cirros-(?P<version>[0-9.]+)-x86_64-disk\.img. Without one, the version is
    /// the folder's or the checksums file's; for a name that never changes (Ubuntu's
    /// current/, Debian's latest/) it is the file's Last-Modified time (YYYYMMDD-HHMMSS), so
    /// a new build is a new version.
    #[schemars(length(max = 512))]
    pub pattern: String,
    /// How the distribution signs its checksums files, and the OpenPGP keys glint trusts for
    /// them. With it, glint believes a checksums file only once one of those keys signed it
    /// and the signature checks out; a missing, bad or expired signature, or one by another
    /// key, keeps the current version, imports nothing, and is reported with its own reason.
    /// Without it the checksums file is believed as the mirror serves it (CirrOS and Debian's
    /// cloud images publish no signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ChecksumsSignature>,
}

/// The signature of a checksums file, and who may have made it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChecksumsSignature {
    /// The detached signature published beside each checksums file, as a name in the same
    /// folder in which {file} stands for the checksums file's name: {file}.gpg for Ubuntu's
    /// SHA256SUMS.gpg, {file}.asc for AlmaLinux' CHECKSUM.asc, {file}.sign for Debian
    /// cdimage's SHA512SUMS.sign (armoured or binary: glint reads either). Leave it out when
    /// the checksums file is clear-signed itself, as Fedora's CHECKSUM is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("!self.contains('/')").message("detached names a file beside the checksums file, such as {file}.gpg, not a path or URL"))]
    pub detached: Option<String>,
    /// The OpenPGP public keys to trust: an entry of a ConfigMap or Secret in the object's
    /// namespace holding one or more ASCII-armoured public keys (gpg --armor --export KEYID
    /// writes them). A signing subkey of a trusted key counts as that key.
    pub keys: TrustedKeysRef,
}

/// Where the trusted OpenPGP keys are kept (an ImageSeries' or an Image's).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapName) != has(self.secretName)").message("keys takes configMapName or secretName (one of them)"))]
pub struct TrustedKeysRef {
    /// A ConfigMap in the object's namespace (public keys are not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: Option<String>,
    /// A Secret in the object's namespace, for clusters that keep such material in Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// The entry that holds the keys (default keys.asc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

impl TrustedKeysRef {
    pub const DEFAULT_KEY: &str = "keys.asc";

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(Self::DEFAULT_KEY)
    }
}

/// When glint run checks for new releases: every (a period) or cron (fixed times), not both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.every) && has(self.cron))").message("schedule takes every or cron, not both"))]
pub struct SeriesSchedule {
    /// How long after a check the next one is due, as a duration such as 6h or 24h (1m to
    /// 168h; default 24h). A checksums file that cannot be read keeps the current version and
    /// is tried again with a backoff. Editing the spec checks at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('168h')")
        .message("schedule.every must be between 1m and 168h (7 days), for example 6h or 24h"))]
    pub every: Option<String>,

    /// Fixed check times in the five-field cron notation, in UTC: minute hour day-of-month
    /// month day-of-week, each a number, *, a list (1,15), a range (1-5) or a step (*/15). For
    /// example 0 3 * * * checks every day at 03:00 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^ *[0-9*,/-]+( +[0-9*,/-]+){4} *$')").message("cron needs five fields (minute hour day-of-month month day-of-week), each a number, *, a list (1,15), a range (1-5) or a step (*/15); for example 0 3 * * *"))]
    pub cron: Option<String>,
}

/// What glint holds and did for a series.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSeriesStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (a current version serves the stable name and nothing is under way), Reconciling
    /// and Stalled, as for an Image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The version that carries the stable name and glint.dev/latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every version glint holds in Glance, the current one included, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<SeriesVersionStatus>,
    /// The releases the last check found: what glint keeps current until the next check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<SeriesRelease>,
    /// When glint last read the releases successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<Time>,
    /// When glint reads them next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<Time>,
    /// The value of the glint.dev/retry annotation glint last acted on: setting the
    /// annotation to a new value tries every failed (quarantined) version again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry: Option<String>,
    /// The value of the annotation glint.dev/reconcile-requested-at that glint last acted
    /// on. Setting the annotation to a new value makes glint read the mirror at once, as an
    /// edit does, instead of waiting for spec.schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// With spec.targets: each target's versions, as its cloud holds them. status.current
    /// names the version current in every target (none while they differ); the object's
    /// conditions sum the targets up (Ready when every target is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub targets: Vec<SeriesTargetStatus>,

    /// With spec.targets: the Glance image id of each target's current version, by target
    /// name, for consumers that need the id per cloud or region (Gardener CloudProfiles,
    /// Cluster API templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_ids: BTreeMap<String, String>,

    /// With spec.targets: how many targets are Ready, as "2/3 ready".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_ready: Option<String>,
}

/// One target of a series (spec.targets), as its cloud holds the series.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesTargetStatus {
    /// The target's name in spec.targets.
    pub name: String,
    /// The Secret and cloud the versions are in: kept after the target leaves spec.targets,
    /// so that glint can still reach its versions to delete them.
    pub cloud_credentials_ref: CloudCredentialsRef,
    /// The region, when the target names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The version that carries the stable name in this target's cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every version glint holds in this target's cloud, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<SeriesVersionStatus>,
    /// Ready, Reconciling and Stalled for this target alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One version in Glance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesVersionStatus {
    /// The release's version.
    pub version: String,
    /// Its Glance image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its Glance status (queued, active, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GlanceStatus>,
    /// current, retired (older than the current version, or no longer listed by the mirror),
    /// pending (newer than the current version, on its way or failed), or deleting (to be
    /// deleted, but Glance refused because it is still in use: problem says more).
    pub role: String,
    /// When Glance created its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Why it is not where it should be (its upload failed, say), and how to try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

spec_enum!(
    /// What a kept, no longer current version becomes.
    Retirement { Hidden = "hidden", Deactivated = "deactivated", Listed = "listed" } default Hidden
);

impl ImageSeriesSpec {
    /// How long after a check the next one is due (default 24h).
    pub fn check_every(&self) -> std::time::Duration {
        self.schedule
            .as_ref()
            .and_then(|schedule| schedule.every.as_deref())
            .and_then(super::parse_duration)
            .unwrap_or(std::time::Duration::from_secs(24 * 3600))
            .clamp(
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(168 * 3600),
            )
    }

    /// How many versions to keep, with its default and within its bounds.
    pub fn keep(&self) -> usize {
        self.keep.unwrap_or(DEFAULT_KEEP).clamp(1, 100) as usize
    }

    /// The Image spec one version's image has: the shared fields, the release's source (none
    /// for a version glint holds that is no longer listed: its data is in), and `name` as its
    /// Glance name.
    pub fn version_spec(&self, name: &str, source: Option<ImageSource>) -> ImageSpec {
        let image = &self.image;
        ImageSpec {
            cloud_credentials_ref: self.cloud_credentials_ref.clone(),
            name: Some(name.to_string()),
            visibility: image.visibility,
            tags: image.tags.clone(),
            protected: image.protected,
            min_disk_gb: image.min_disk_gb,
            min_ram_mb: image.min_ram_mb,
            properties: image.properties.clone(),
            property_ownership: image.property_ownership.clone(),
            container_format: image.container_format,
            disk_format: Some(image.disk_format),
            members: image.members.clone(),
            when_in_use: image.when_in_use,
            source: source.map(|source| ImageSource {
                options: image.source.clone(),
                ..source
            }),
            ..ImageSpec::default()
        }
    }
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;
