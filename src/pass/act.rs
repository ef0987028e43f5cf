//! Carries out a plan against Glance and says what happened, in words for Events.
//!
//! Contracts (after ORC's actuators, made stricter):
//! - a create is the only step of its pass: the caller records the new id in status before
//!   anything else can fail, so a crash right after leaves an image that is found again;
//! - the create id is derived from the object's uid: a 409 means either "this object's
//!   earlier create did land" (the image carries the mark: adopt it) or "that id belonged to a
//!   deleted image" (Glance never frees ids: take the next derived id);
//! - an explicit spec.id gets no such fallback: its conflict is reported, not worked around.

use std::collections::BTreeSet;

use crate::crd::WhenInUse;
use crate::glance::{GlanceApi, GlanceError, GlanceImage, PatchOp};
use crate::pass::observe::{MAX_DERIVED_IDS, OWNER_PROPERTY, Subject, derived_id};
use crate::pass::plan::{Desired, IN_USE_PROPERTY, Step};
use crate::reason::Reason;
use crate::transfer::{SourceAccess, TransferRequest, Transfers};

/// Something glint did, for an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Created {
        id: String,
    },
    /// An earlier create of this object had landed; its image was adopted.
    Adopted {
        id: String,
    },
    Updated {
        fields: usize,
    },
    SharedWith {
        project: String,
    },
    UnsharedWith {
        project: String,
    },
    Deactivated,
    Reactivated,
    TransferStarted,
    Deleted {
        id: String,
    },
    /// The image is still in use (servers booted from it, or Glance refused the delete); glint hid it (and
    /// deactivated it when asked) and tries again later.
    KeptInUse {
        id: String,
        why: String,
        deactivated: bool,
    },
}

impl Effect {
    /// The Event reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Created { .. } => Reason::Created,
            Self::Adopted { .. } => Reason::Adopted,
            Self::Updated { .. } => Reason::Updated,
            Self::SharedWith { .. } => Reason::Shared,
            Self::UnsharedWith { .. } => Reason::Unshared,
            Self::Deactivated => Reason::Deactivated,
            Self::Reactivated => Reason::Reactivated,
            Self::TransferStarted => Reason::Uploading,
            Self::Deleted { .. } => Reason::Deleted,
            Self::KeptInUse { .. } => Reason::InUse,
        }
    }

    /// The Event note.
    pub fn note(&self) -> String {
        match self {
            Self::Created { id } => format!("created Glance image {id}"),
            Self::Adopted { id } => {
                format!("found Glance image {id} from an earlier create and adopted it")
            }
            Self::Updated { fields } => format!("updated {fields} field(s) in Glance"),
            Self::SharedWith { project } => format!("shared with project {project}"),
            Self::UnsharedWith { project } => format!("stopped sharing with project {project}"),
            Self::Deactivated => "deactivated the image".to_string(),
            Self::Reactivated => "reactivated the image".to_string(),
            Self::TransferStarted => "started copying the source into Glance".to_string(),
            Self::Deleted { id } => format!("deleted Glance image {id}"),
            Self::KeptInUse {
                id,
                why,
                deactivated,
            } => format!(
                "kept Glance image {id}, which is still in use ({why}): hid it{}, and will try to delete it again",
                if *deactivated {
                    " and deactivated it"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Failures of acting that are not plain Glance errors.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("Glance {call} on image {id}: {source}")]
    Glance {
        call: &'static str,
        id: String,
        #[source]
        source: GlanceError,
    },
    #[error(
        "Glance does not let these credentials {} property {key:?} of image {id} (the cloud's property protections reserve it for other roles): {}, or ask the cloud's operators for a role that may write it ({source})",
        if *removing { "remove" } else { "set" },
        if *removing { "list it in spec.propertyOwnership.ignore to leave it in place" } else { "remove it from spec.properties" }
    )]
    PropertyProtected {
        id: String,
        key: String,
        /// Whether glint was removing the key (rather than setting it).
        removing: bool,
        #[source]
        source: GlanceError,
    },
    #[error(
        "spec.id {id} is taken by another image or by a deleted one (Glance never reuses ids): remove spec.id or choose another UUID"
    )]
    IdTaken { id: String },
    #[error(
        "the first {MAX_DERIVED_IDS} image ids glint derives for this object are all held by deleted images (Glance never frees an image's id): give the object a new identity (for glint apply, another metadata.name or namespace; for the controller, delete the Image and create it again, which gives it a new uid), or ask the cloud's operators to purge deleted images (glance-manage db purge)"
    )]
    DerivedIdsExhausted,
}

impl ActError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Glance { source, .. } => source.is_transient(),
            Self::PropertyProtected { .. } | Self::IdTaken { .. } | Self::DerivedIdsExhausted => {
                false
            }
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Glance { source, .. } => source.reason(),
            Self::PropertyProtected { .. } => Reason::PropertyProtected,
            Self::IdTaken { .. } => Reason::ImageIdTaken,
            Self::DerivedIdsExhausted => Reason::ImageIdsExhausted,
        }
    }
}

fn glance(call: &'static str, id: &str) -> impl FnOnce(GlanceError) -> ActError {
    let id = id.to_string();
    move |source| ActError::Glance { call, id, source }
}

impl ActError {
    /// A Glance call on an image that failed, for callers outside this module.
    pub fn glance_call(call: &'static str, id: &str, source: GlanceError) -> Self {
        glance(call, id)(source)
    }
}

/// A refused create or patch, told apart when Glance refused one property: that needs a change
/// of spec or role, and names the key.
fn writing(call: &'static str, id: &str, ops: &[PatchOp]) -> impl FnOnce(GlanceError) -> ActError {
    let removing = |key: &str| {
        ops.iter()
            .any(|op| matches!(op, PatchOp::RemoveProperty(removed) if removed == key))
    };
    let id = id.to_string();
    move |source| match source.reserved_property().map(str::to_string) {
        Some(key) => ActError::PropertyProtected {
            removing: removing(&key),
            id,
            key,
            source,
        },
        None => ActError::Glance { call, id, source },
    }
}

/// What a pass did: its effects, and the created image when it created one.
#[derive(Debug, Default)]
pub struct Applied {
    pub effects: Vec<Effect>,
    pub created: Option<GlanceImage>,
    /// The image as the last patch returned it: Glance answers a patch with the whole image.
    pub patched: Option<GlanceImage>,
}

/// Runs `steps` in order against the image `image_id` (None before it exists). Stops at the
/// first failure: effects of earlier steps stay done and are reported by the next pass.
pub async fn apply(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    desired: &Desired,
    access: &SourceAccess,
    image_id: Option<&str>,
    steps: &[Step],
) -> Result<Applied, ActError> {
    let mut applied = Applied::default();
    if steps.contains(&Step::Create) {
        let (image, adopted) = create(api, subject, desired).await?;
        let id = image.id.clone();
        applied.effects.push(if adopted {
            Effect::Adopted { id }
        } else {
            Effect::Created { id }
        });
        applied.created = Some(image);
        return Ok(applied);
    }
    let Some(id) = image_id else {
        return Ok(applied);
    };
    for step in steps {
        let effect = match step {
            // Handled above: a create is the whole pass.
            Step::Create => continue,
            Step::Patch(ops) => {
                let image = api
                    .update_image(id, ops)
                    .await
                    .map_err(writing("update", id, ops))?;
                applied.patched = Some(image);
                Effect::Updated { fields: ops.len() }
            }
            Step::AddMember(project) => {
                match api.add_member(id, project).await {
                    // Already a member (a pass that failed after adding): nothing to do.
                    Err(err) if err.is_conflict() => {}
                    other => {
                        other.map_err(glance("add member", id))?;
                    }
                }
                Effect::SharedWith {
                    project: project.clone(),
                }
            }
            Step::RemoveMember(project) => {
                match api.remove_member(id, project).await {
                    Err(err) if err.is_not_found() => {}
                    other => other.map_err(glance("remove member", id))?,
                }
                Effect::UnsharedWith {
                    project: project.clone(),
                }
            }
            Step::Deactivate => {
                api.deactivate(id).await.map_err(glance("deactivate", id))?;
                Effect::Deactivated
            }
            Step::Reactivate => {
                api.reactivate(id).await.map_err(glance("reactivate", id))?;
                Effect::Reactivated
            }
            Step::StartTransfer => match &desired.source {
                Some(source) => {
                    let request = TransferRequest {
                        source: source.clone(),
                        access: access.clone(),
                        disk_format: desired.disk_format.clone(),
                        conversion: desired.conversion.clone(),
                        share: desired.share.clone(),
                    };
                    if !transfers.start(id, &request) {
                        continue;
                    }
                    Effect::TransferStarted
                }
                None => continue,
            },
            Step::Delete { unprotect } => {
                transfers.cancel(id);
                // Only a killed image is deleted here, and no one can use one.
                delete(api, id, *unprotect, WhenInUse::Keep).await?
            }
        };
        applied.effects.push(effect);
    }
    Ok(applied)
}

/// Unprotects (when needed) and deletes; an image that is already gone is not an error. An
/// image still in use (servers the compute service lists as booted from it, or Glance refusing
/// the delete: an rbd store with clones of it) is hidden (and deactivated when `when_in_use`
/// says so), so no one new picks it, and kept: the caller tries again later.
pub async fn delete(
    api: &impl GlanceApi,
    id: &str,
    unprotect: bool,
    when_in_use: WhenInUse,
) -> Result<Effect, ActError> {
    // Servers the compute service lists as booted from it keep it, before Glance is asked:
    // most stores (file, swift) let Glance delete an image servers still run from.
    let servers = api
        .servers_booted_from(id)
        .await
        .map_err(glance("list the servers booted from", id))?;
    if let Some(servers) = servers.filter(|servers| servers.count > 0) {
        return keep_in_use(api, id, servers.describe(), when_in_use).await;
    }
    if unprotect {
        match api.update_image(id, &[PatchOp::SetProtected(false)]).await {
            Err(err) if err.is_not_found() => return Ok(Effect::Deleted { id: id.to_string() }),
            other => {
                other.map_err(glance("unprotect", id))?;
            }
        }
    }
    let refusal = match api.delete_if_exists(id).await {
        Ok(_) => return Ok(Effect::Deleted { id: id.to_string() }),
        Err(err) => err,
    };
    // Glance's sentence ends with a full stop; it is quoted inside glint's own sentences.
    let Some(why) = refusal
        .in_use()
        .map(|words| words.trim_end_matches('.').to_string())
    else {
        return Err(glance("delete", id)(refusal));
    };
    keep_in_use(api, id, why, when_in_use).await
}

/// Hides (and deactivates, when asked) an image that is still in use, and marks it with why:
/// no one new picks it, and `openstack image show` says why it is still there.
async fn keep_in_use(
    api: &impl GlanceApi,
    id: &str,
    why: String,
    when_in_use: WhenInUse,
) -> Result<Effect, ActError> {
    let mark = PatchOp::SetProperty {
        key: IN_USE_PROPERTY.to_string(),
        // Glance holds at most 255 characters in a property.
        value: why.chars().take(255).collect(),
    };
    api.update_image(id, &[PatchOp::SetHidden(true), mark])
        .await
        .map_err(glance("hide", id))?;
    let deactivated = when_in_use == WhenInUse::Deactivate;
    if deactivated {
        api.deactivate(id).await.map_err(glance("deactivate", id))?;
    }
    Ok(Effect::KeptInUse {
        id: id.to_string(),
        why,
        deactivated,
    })
}

/// Creates the image; returns it and whether it was adopted from an earlier landed create.
async fn create(
    api: &impl GlanceApi,
    subject: Subject<'_>,
    desired: &Desired,
) -> Result<(GlanceImage, bool), ActError> {
    let owned_by_us = |image: &GlanceImage| {
        image.properties.get(OWNER_PROPERTY).map(String::as_str) == Some(subject.uid)
    };
    if let Some(id) = &subject.spec.id {
        return match api.create_image(&desired.new_image(id)).await {
            Ok(image) => Ok((image, false)),
            Err(err) if err.is_conflict() => match api.get_image(id).await {
                Ok(image) if owned_by_us(&image) => Ok((image, true)),
                Ok(_) => Err(ActError::IdTaken { id: id.clone() }),
                Err(err) if err.is_not_found() => Err(ActError::IdTaken { id: id.clone() }),
                Err(err) => Err(glance("get", id)(err)),
            },
            Err(err) => Err(writing("create", id, &[])(err)),
        };
    }
    for attempt in 0..MAX_DERIVED_IDS {
        let id = derived_id(subject.uid, attempt);
        match api.create_image(&desired.new_image(&id)).await {
            Ok(image) => return Ok((image, false)),
            Err(err) if err.is_conflict() => match api.get_image(&id).await {
                // A uuid5 of this object's uid can only have been created for this object, even
                // if someone removed its mark since: adopt it (the plan restores the mark).
                Ok(image) => return Ok((image, true)),
                // Held by a deleted image: Glance never frees ids, so take the next one.
                Err(err) if err.is_not_found() => continue,
                Err(err) => return Err(glance("get", &id)(err)),
            },
            Err(err) => return Err(writing("create", &id, &[])(err)),
        }
    }
    Err(ActError::DerivedIdsExhausted)
}

/// The image's member projects. Only shared images have members that count (Glance ignores
/// the others' and refuses member calls on them), so other images cost no call.
pub async fn current_members(
    api: &impl GlanceApi,
    image: &GlanceImage,
) -> Result<BTreeSet<String>, ActError> {
    if image.visibility != crate::glance::Visibility::Shared {
        return Ok(BTreeSet::new());
    }
    let members = api
        .list_members(&image.id)
        .await
        .map_err(glance("list members", &image.id))?;
    Ok(members.into_iter().map(|member| member.member_id).collect())
}
