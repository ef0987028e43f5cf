//! The diff: what the spec wants ([`Desired`]) against what Glance has ([`Observation`]),
//! as an ordered list of [`Step`]s and the [`Progress`] that status reports.
//!
//! Pure: no client, no clock. Each field has its own small function, and every rule is a row
//! in the table tests below. Ordering rules that Glance imposes:
//! - members are removed before visibility leaves `shared` and added after it becomes `shared`
//!   (Glance refuses member calls on images that are not shared);
//! - deactivation needs data (Glance refuses it on a queued image);
//! - a protected image is unprotected in the same step that deletes it.
//!
//! Properties: glint removes only keys it set itself, which it records in the image's
//! [`PROPERTIES_RECORD`] property in the same create or patch that sets them (one atomic
//! request, so the record and the keys cannot disagree after a crash), plus keys that
//! `spec.propertyOwnership.own` claims. Everything else on the image (keys of Glance's import
//! plugins, the operators, other tools) is left alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::{ConversionBy, ImageSource, ImageSpec, PropertyOwnership, is_reserved_property};
use crate::glance::{
    ContainerFormat, DiskFormat, GlanceImage, GlanceStatus, NewImage, PatchOp, Visibility,
};
use crate::pass::observe::{OWNER_PROPERTY, Observation};
use crate::reason::Reason;
use crate::transfer::{Conversion, QUARANTINE_PROPERTY, TransferState};

pub use crate::marks::{IN_USE_PROPERTY, PROPERTIES_RECORD};

/// The image as the spec describes it, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub name: String,
    pub visibility: Visibility,
    /// Sorted and without duplicates, like `glance::Image::tags`.
    pub tags: Vec<String>,
    pub protected: bool,
    pub hidden: bool,
    pub min_disk: u64,
    pub min_ram: u64,
    /// The spec's properties plus the ownership mark (and, from the CLI, its own mark).
    /// What is written adds [`PROPERTIES_RECORD`]: see [`Desired::properties_to_write`].
    pub properties: BTreeMap<String, String>,
    /// Which other properties glint may remove, or must leave alone.
    pub property_ownership: PropertyOwnership,
    pub container_format: ContainerFormat,
    /// What Glance is told the data is: the source's format, or with a conversion by glint,
    /// the format glint converts to.
    pub disk_format: Option<DiskFormat>,
    /// spec.source.convertTo, with who converts.
    pub conversion: Option<Conversion>,
    pub members: BTreeSet<String>,
    pub deactivated: bool,
    pub source: Option<ImageSource>,
    /// Set when this image is one of several targets of one object: their transfers read one
    /// download of the source between them (`TransferRequest::share`).
    pub share: Option<String>,
}

impl Desired {
    /// `object_name` is metadata.name (the default image name), `uid` the object's uid.
    pub fn from_spec(spec: &ImageSpec, object_name: &str, uid: &str) -> Self {
        let mut tags = spec.tags.clone();
        tags.sort();
        tags.dedup();
        let mut properties = spec.properties.clone();
        properties.insert(OWNER_PROPERTY.to_string(), uid.to_string());
        let conversion = Conversion::of(spec);
        Self {
            name: spec.name.clone().unwrap_or_else(|| object_name.to_string()),
            visibility: spec.visibility.unwrap_or_default().into(),
            tags,
            protected: spec.protected,
            hidden: spec.hidden,
            min_disk: spec.min_disk_gb.map_or(0, u64::from),
            min_ram: spec.min_ram_mb.map_or(0, u64::from),
            properties,
            property_ownership: spec.property_ownership.clone().unwrap_or_default(),
            container_format: spec.container_format.unwrap_or_default().into(),
            disk_format: match &conversion {
                Some(conversion) if conversion.by == ConversionBy::Glint => {
                    Some(conversion.to.clone())
                }
                _ => spec.disk_format.map(Into::into),
            },
            conversion,
            members: spec.members.iter().cloned().collect(),
            deactivated: spec.deactivated,
            source: spec.source.clone(),
            share: None,
        }
    }

    /// The create request: every field Glance accepts at creation, so that nothing fallible
    /// but the create itself stands between "no image" and "image with the right metadata".
    pub fn new_image(&self, id: &str) -> NewImage {
        NewImage {
            id: Some(id.to_string()),
            name: Some(self.name.clone()),
            visibility: Some(self.visibility.clone()),
            tags: self.tags.clone(),
            container_format: Some(self.container_format.clone()),
            disk_format: self.disk_format.clone(),
            min_disk: Some(self.min_disk),
            min_ram: Some(self.min_ram),
            protected: Some(self.protected),
            hidden: Some(self.hidden),
            properties: self.properties_to_write(),
        }
    }

    /// The properties the image must carry: [`Self::properties`] and the record of their keys.
    pub fn properties_to_write(&self) -> BTreeMap<String, String> {
        let mut properties = self.properties.clone();
        properties.insert(PROPERTIES_RECORD.to_string(), record_of(&self.properties));
        properties
    }
}

/// The record's value for these properties: their keys, sorted, as a JSON list. The ownership
/// mark is left out: glint never removes it, and it would only lengthen every record.
fn record_of(properties: &BTreeMap<String, String>) -> String {
    let keys: Vec<&str> = properties
        .keys()
        .map(String::as_str)
        .filter(|key| *key != OWNER_PROPERTY && *key != PROPERTIES_RECORD)
        .collect();
    serde_json::Value::from(keys).to_string()
}

/// The keys an image's record names. No record (an image glint made before it kept one, or
/// one it did not make) or one it cannot read (edited by hand) names none: glint then removes
/// nothing it is not sure it set, and the next patch writes a record again.
pub fn recorded_keys(image: &GlanceImage) -> BTreeSet<String> {
    image
        .properties
        .get(PROPERTIES_RECORD)
        .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
        .map(|keys| keys.into_iter().collect())
        .unwrap_or_default()
}

/// One step against Glance, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the image; the executor picks the id (derived, or spec.id).
    Create,
    /// One atomic JSON patch with every field change.
    Patch(Vec<PatchOp>),
    AddMember(String),
    RemoveMember(String),
    StartTransfer,
    Deactivate,
    Reactivate,
    /// Delete the image (after unprotecting it, when it is protected).
    Delete {
        unprotect: bool,
    },
}

/// What status reports about the plan's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Glance matches the spec; nothing to do.
    InSync,
    /// Work is under way or planned; `reason` is what the conditions show.
    Working { reason: Reason, message: String },
    /// Nothing glint can do until the spec (or the world) changes.
    Blocked { reason: Reason, message: String },
}

/// Actions and the outcome they lead to.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub progress: Progress,
}

fn working(reason: Reason, message: impl Into<String>) -> Progress {
    Progress::Working {
        reason,
        message: message.into(),
    }
}

/// The plan for an object that is not being deleted. `members` are the image's current
/// member projects (only read when it matters: shared images or a spec with members).
pub fn plan(
    desired: &Desired,
    observed: &Observation,
    members: &BTreeSet<String>,
    transfer: &TransferState,
) -> Plan {
    match observed {
        Observation::Absent { vanished } => Plan {
            steps: vec![Step::Create],
            progress: match vanished {
                Some(id) => working(
                    Reason::Recreating,
                    format!("image {id} was deleted outside glint; creating it again"),
                ),
                None => working(Reason::Creating, "creating the image in Glance"),
            },
        },
        Observation::ImportPending => Plan {
            steps: Vec::new(),
            progress: working(Reason::WaitingForImport, "no image matches spec.import yet"),
        },
        Observation::Imported(_) => Plan {
            steps: Vec::new(),
            progress: Progress::InSync,
        },
        Observation::Owned(image) => plan_owned(desired, image, members, transfer),
    }
}

fn plan_owned(
    desired: &Desired,
    image: &GlanceImage,
    members: &BTreeSet<String>,
    transfer: &TransferState,
) -> Plan {
    if image.status == GlanceStatus::Killed {
        return Plan {
            steps: vec![Step::Delete {
                unprotect: image.protected,
            }],
            progress: working(
                Reason::Recreating,
                "Glance marked the image killed (its upload failed); replacing it",
            ),
        };
    }
    if let GlanceStatus::Other(word) = &image.status {
        return Plan {
            steps: Vec::new(),
            progress: Progress::Blocked {
                reason: Reason::UnknownGlanceStatus,
                message: format!(
                    "Glance reports image {} as {word:?}, a status this glint version does not know; glint changes nothing until Glance reports a known one (it looks again every resync)",
                    image.id
                ),
            },
        };
    }
    // Bad data stays bad: nothing else is done to an image whose transfer failed for good
    // (Glance may even hold it active with the wrong bytes, deactivated by the transfer).
    if let TransferState::Failed {
        reason,
        message,
        retry: false,
    } = transfer
        && desired.source.is_some()
    {
        return Plan {
            steps: Vec::new(),
            progress: Progress::Blocked {
                reason: *reason,
                message: format!("the transfer cannot succeed as specified: {message}"),
            },
        };
    }
    // And after a restart or in a new `glint apply`, where that transfer is forgotten, its
    // mark on the image keeps it deactivated and untouched until the Image is recreated.
    if let Some(note) = image.properties.get(QUARANTINE_PROPERTY) {
        return Plan {
            steps: Vec::new(),
            progress: Progress::Blocked {
                reason: Reason::Quarantined,
                message: format!(
                    "glint deactivated image {} because its data failed a check ({note}); it stays deactivated: delete this Image and create it again, or, if you have checked the data yourself, remove the property {QUARANTINE_PROPERTY} in Glance",
                    image.id
                ),
            },
        };
    }
    let mut steps = Vec::new();
    let (to_add, to_remove) = member_changes(desired, image, members);
    steps.extend(to_remove.into_iter().map(Step::RemoveMember));
    let ops = patch_ops(desired, image);
    if !ops.is_empty() {
        steps.push(Step::Patch(ops));
    }
    steps.extend(to_add.into_iter().map(Step::AddMember));
    if let Some(step) = activation(desired, image) {
        steps.push(step);
    }
    let (data_action, data_progress) = data(desired, image, transfer);
    steps.extend(data_action);
    let progress = match data_progress {
        Some(progress) => progress,
        None if steps.is_empty() => Progress::InSync,
        None => working(Reason::Updating, "bringing the image in line with the spec"),
    };
    Plan { steps, progress }
}

/// Every field change as one patch, in a fixed order.
pub fn patch_ops(desired: &Desired, image: &GlanceImage) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    ops.extend(name_op(desired, image));
    ops.extend(visibility_op(desired, image));
    ops.extend(protected_op(desired, image));
    ops.extend(hidden_op(desired, image));
    ops.extend(min_disk_op(desired, image));
    ops.extend(min_ram_op(desired, image));
    ops.extend(format_ops(desired, image));
    ops.extend(tags_op(desired, image));
    ops.extend(property_ops(desired, image));
    ops
}

fn name_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.name.as_deref() != Some(desired.name.as_str()))
        .then(|| PatchOp::SetName(desired.name.clone()))
}

fn visibility_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.visibility != desired.visibility)
        .then(|| PatchOp::SetVisibility(desired.visibility.clone()))
}

fn protected_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.protected != desired.protected).then_some(PatchOp::SetProtected(desired.protected))
}

fn hidden_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.hidden != desired.hidden).then_some(PatchOp::SetHidden(desired.hidden))
}

fn min_disk_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.min_disk != desired.min_disk).then_some(PatchOp::SetMinDisk(desired.min_disk))
}

fn min_ram_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.min_ram != desired.min_ram).then_some(PatchOp::SetMinRam(desired.min_ram))
}

/// Glance accepts format changes only while the image is queued; afterwards they are fixed,
/// and the CRD makes them immutable too, so a difference can only come from outside glint.
fn format_ops(desired: &Desired, image: &GlanceImage) -> Vec<PatchOp> {
    if image.status != GlanceStatus::Queued {
        return Vec::new();
    }
    let mut ops = Vec::new();
    if image.container_format.as_ref() != Some(&desired.container_format) {
        ops.push(PatchOp::SetContainerFormat(
            desired.container_format.clone(),
        ));
    }
    if let Some(format) = &desired.disk_format
        && image.disk_format.as_ref() != Some(format)
    {
        ops.push(PatchOp::SetDiskFormat(format.clone()));
    }
    ops
}

/// Tags as a whole list: the per-tag endpoint cannot carry tags with `/`.
fn tags_op(desired: &Desired, image: &GlanceImage) -> Option<PatchOp> {
    (image.tags != desired.tags).then(|| PatchOp::SetTags(desired.tags.clone()))
}

/// Set what differs (the record included), remove the keys glint owns that the spec no longer
/// lists, and the in-use mark of a refused delete: an image a pass reconciles is wanted.
fn property_ops(desired: &Desired, image: &GlanceImage) -> Vec<PatchOp> {
    let wanted = desired.properties_to_write();
    let recorded = recorded_keys(image);
    let set = wanted
        .iter()
        .filter(|(key, value)| image.properties.get(*key) != Some(value))
        .map(|(key, value)| PatchOp::SetProperty {
            key: key.clone(),
            value: value.clone(),
        });
    let remove = image
        .properties
        .keys()
        .filter(|key| {
            !wanted.contains_key(*key)
                && (*key == IN_USE_PROPERTY
                    || may_remove(key, &recorded, &desired.property_ownership))
        })
        .map(|key| PatchOp::RemoveProperty(key.clone()));
    set.chain(remove).collect()
}

/// A property the spec does not list is glint's to remove when glint set it (the record says
/// so) or the spec claims it, unless the spec hands it over (`ignore`) or it is Glance's own.
fn may_remove(key: &str, recorded: &BTreeSet<String>, ownership: &PropertyOwnership) -> bool {
    !is_reserved_property(key)
        && !ownership.ignores(key)
        && (recorded.contains(key) || ownership.owns(key))
}

/// Members to add and to remove. Glance only takes member calls on shared images, so
/// additions wait for the visibility patch and removals happen only while still shared.
fn member_changes(
    desired: &Desired,
    image: &GlanceImage,
    current: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let will_be_shared = desired.visibility == Visibility::Shared;
    let is_shared = image.visibility == Visibility::Shared;
    let wanted: BTreeSet<String> = if will_be_shared {
        desired.members.clone()
    } else {
        BTreeSet::new()
    };
    let add = if will_be_shared {
        wanted.difference(current).cloned().collect()
    } else {
        Vec::new()
    };
    let remove = if is_shared {
        current.difference(&wanted).cloned().collect()
    } else {
        Vec::new()
    };
    (add, remove)
}

fn activation(desired: &Desired, image: &GlanceImage) -> Option<Step> {
    match (desired.deactivated, &image.status) {
        (true, GlanceStatus::Active) => Some(Step::Deactivate),
        (false, GlanceStatus::Deactivated) => Some(Step::Reactivate),
        _ => None,
    }
}

/// Getting the data in: start a transfer for a queued image with a source, report the
/// transfer or Glance's own processing while they run.
fn data(
    desired: &Desired,
    image: &GlanceImage,
    transfer: &TransferState,
) -> (Option<Step>, Option<Progress>) {
    match image.status {
        GlanceStatus::Queued => match (&desired.source, transfer) {
            (None, _) => (None, None),
            (Some(_), TransferState::Running) => (
                None,
                Some(working(
                    Reason::Transferring,
                    "the source is being copied into Glance",
                )),
            ),
            (
                Some(_),
                TransferState::Failed {
                    reason,
                    message,
                    retry: false,
                },
            ) => (
                None,
                Some(Progress::Blocked {
                    reason: *reason,
                    message: format!("the transfer cannot succeed as specified: {message}"),
                }),
            ),
            // Under the failure's own reason (SourceUnavailable, SignatureMissing): what the
            // user reads is why it is not there yet, not merely that glint is at it.
            (
                Some(_),
                TransferState::Failed {
                    reason, message, ..
                },
            ) => (
                Some(Step::StartTransfer),
                Some(working(
                    *reason,
                    format!("retrying the transfer, which failed: {message}"),
                )),
            ),
            (Some(_), TransferState::Idle) => (
                Some(Step::StartTransfer),
                Some(working(
                    Reason::Transferring,
                    "starting to copy the source into Glance",
                )),
            ),
        },
        // Glance took the data, but the attempt could not learn what Glance made of it: the
        // next attempt checks the image against what was sent (and sends nothing again when
        // it matches). Never Ready before that check.
        GlanceStatus::Active
            if let TransferState::Failed {
                reason,
                message,
                retry: true,
            } = transfer
                && desired.source.is_some() =>
        {
            (
                Some(Step::StartTransfer),
                Some(working(
                    *reason,
                    format!(
                        "Glance holds the data, but glint could not check it yet: {message}; checking again"
                    ),
                )),
            )
        }
        // Glance has the data, but the transfer is still checking what Glance stored (or
        // following its import): not Ready until that check is done.
        _ if desired.source.is_some() && *transfer == TransferState::Running => (
            None,
            Some(working(
                Reason::Transferring,
                "checking that Glance stored exactly the data glint sent",
            )),
        ),
        // An attempt glint gave up (Glance stalled) can leave the image `saving` until Glance
        // notices the connection is gone: the user reads why, not that Glance is at work.
        GlanceStatus::Saving | GlanceStatus::Uploading
            if let TransferState::Failed {
                reason, message, ..
            } = transfer =>
        {
            (
                None,
                Some(working(
                    *reason,
                    format!(
                        "retrying the transfer, which failed: {message}; Glance still shows the image {} from that attempt, and glint starts again once Glance puts it back to queued",
                        image.status
                    ),
                )),
            )
        }
        GlanceStatus::Saving | GlanceStatus::Uploading | GlanceStatus::Importing => (
            None,
            Some(working(
                Reason::GlanceProcessing,
                format!("Glance is {} the data", image.status),
            )),
        ),
        _ => (None, None),
    }
}

/// The plan for an object being deleted.
pub fn plan_delete(observed: &Observation, detach: bool) -> Vec<Step> {
    match observed {
        Observation::Owned(image) if !detach => vec![Step::Delete {
            unprotect: image.protected,
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
