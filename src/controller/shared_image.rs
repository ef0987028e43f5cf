//! The SharedImage reconcile: with the consumer project's own credentials, find the image
//! shared with that project and keep this project's member status in Glance as the spec
//! decides. No finalizer: deleting the object leaves the decision in place.

use std::sync::Arc;

use futures::TryStreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::objects::write_status;
use super::{Context, ReconcileError, events, failure_outcome, resync_after};
use crate::crd::{SharedImage, SharedImageStatus};
use crate::glance::{
    GlanceApi, GlanceError, GlanceImage, ListQuery, MemberStatus, NameFilter, Visibility,
};
use crate::pass::status::{Outcome, kstatus_conditions};
use crate::reason::Reason;

/// How soon glint looks again at an image not shared yet: sharing happens outside glint,
/// and a look costs one or two Glance calls.
const NOT_SHARED_LOOK: std::time::Duration = std::time::Duration::from_secs(15);

/// Reconciles one SharedImage.
pub async fn reconcile_shared(
    shared: Arc<SharedImage>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if shared.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = shared.namespace().unwrap_or_default();
    let handle = match ctx
        .clouds
        .resolve_for(
            &ctx.client,
            &namespace,
            &shared.spec.cloud_credentials_ref,
            None,
            shared
                .uid()
                .map(|uid| (uid, super::clouds::UserKind::SharedImage)),
        )
        .await
    {
        Ok(handle) => handle,
        Err(err) => {
            write(&shared, &ctx, None, None, failure_outcome(&err)).await?;
            return if err.is_transient() {
                Err(err)
            } else {
                Ok(Action::await_change())
            };
        }
    };
    let Some(project) = handle.client.project() else {
        let outcome = Outcome::Stalled {
            reason: Reason::CredentialsWithoutProject,
            message: "the credentials are not scoped to a project, so there is no member to accept or reject for: scope them to the consumer project".into(),
        };
        write(&shared, &ctx, None, None, outcome).await?;
        return Ok(Action::await_change());
    };
    let api = handle.client.inner();
    let decision: MemberStatus = shared.spec.decision.unwrap_or_default().into();
    let glance_error =
        |err: GlanceError| ReconcileError::Pass(crate::pass::PassError::Observe(err.into()));
    let image = match find(api, &shared, &project).await.map_err(glance_error)? {
        Found::One(image) => *image,
        Found::None(message) => {
            let outcome = Outcome::Progressing {
                reason: Reason::NotShared,
                message,
            };
            write(&shared, &ctx, None, None, outcome).await?;
            return Ok(Action::requeue(resync_after(&ctx).min(NOT_SHARED_LOOK)));
        }
        Found::Many(count) => {
            let outcome = Outcome::Stalled {
                reason: Reason::AmbiguousSharedImage,
                message: format!(
                    "{count} images shared with project {project} are named that: set spec.image.owner, or use spec.image.id"
                ),
            };
            write(&shared, &ctx, None, None, outcome).await?;
            return Ok(Action::await_change());
        }
    };
    let member = match api.get_member(&image.id, &project).await {
        Ok(member) => member,
        Err(err) if err.is_not_found() => {
            let outcome = Outcome::Progressing {
                reason: Reason::NotShared,
                message: format!(
                    "image {} is not shared with project {project} (yet): its owner adds the project as a member",
                    image.id
                ),
            };
            write(&shared, &ctx, Some(&image), None, outcome).await?;
            return Ok(Action::requeue(resync_after(&ctx).min(NOT_SHARED_LOOK)));
        }
        Err(err) => return Err(glance_error(err)),
    };
    let member = if member.status == decision {
        member
    } else {
        let changed = api
            .set_member_status(&image.id, &project, decision.clone())
            .await
            .map_err(glance_error)?;
        let note = format!(
            "set project {project}'s member status of image {} from {} to {decision}",
            image.id, member.status
        );
        let reason = if decision == MemberStatus::Accepted {
            Reason::Accepted
        } else {
            Reason::Rejected
        };
        events::publish_about(
            &shared.object_ref(&()),
            &ctx,
            EventType::Normal,
            reason,
            note,
        )
        .await;
        changed
    };
    let outcome = Outcome::Ready {
        reason: Reason::Decided,
        message: format!(
            "image {} ({}) of project {} is {} by project {project}",
            image.id,
            image.name.as_deref().unwrap_or("unnamed"),
            image.owner.as_deref().unwrap_or("unknown"),
            member.status
        ),
    };
    write(
        &shared,
        &ctx,
        Some(&image),
        Some(member.status.to_string()),
        outcome,
    )
    .await?;
    Ok(Action::requeue(resync_after(&ctx)))
}

enum Found {
    One(Box<GlanceImage>),
    None(String),
    Many(usize),
}

/// The image the spec names, as this project sees it: by id, or the one shared image with
/// that name (and owner), whatever this project's member status of it is.
async fn find(
    api: &impl GlanceApi,
    shared: &SharedImage,
    project: &str,
) -> Result<Found, GlanceError> {
    let wanted = &shared.spec.image;
    if let Some(id) = &wanted.id {
        return match api.get_image_fresh(id).await {
            Ok(image) => Ok(Found::One(Box::new(image))),
            Err(err) if err.is_not_found() => Ok(Found::None(format!(
                "no image {id} is visible to project {project}: it is not shared with it (yet), or does not exist"
            ))),
            Err(err) => Err(err),
        };
    }
    let name = wanted.name.clone().unwrap_or_default();
    let query = ListQuery {
        name: Some(NameFilter::Exactly(name.clone())),
        visibility: Some(Visibility::Shared),
        member_status: Some(MemberStatus::All),
        owner: wanted.owner.clone(),
        ..ListQuery::default()
    };
    let mut images: Vec<GlanceImage> = api.list_images(&query).try_collect().await?;
    // Images the project owns itself are not shared with it.
    images.retain(|image| image.owner.as_deref() != Some(project));
    Ok(match images.len() {
        0 => Found::None(format!(
            "no image named {name:?} is shared with project {project} (yet)"
        )),
        1 => Found::One(Box::new(images.remove(0))),
        count => Found::Many(count),
    })
}

async fn write(
    shared: &SharedImage,
    ctx: &Context,
    image: Option<&GlanceImage>,
    member_status: Option<String>,
    outcome: Outcome,
) -> Result<(), ReconcileError> {
    let previous = shared.status.clone().unwrap_or_default();
    let status = SharedImageStatus {
        observed_generation: shared.meta().generation,
        conditions: kstatus_conditions(
            &outcome,
            shared.meta().generation,
            &Time(jiff::Timestamp::now()),
            &previous.conditions,
        ),
        id: image.map(|image| image.id.clone()).or(previous.id.clone()),
        name: image
            .and_then(|image| image.name.clone())
            .or(previous.name.clone()),
        owner: image
            .and_then(|image| image.owner.clone())
            .or(previous.owner.clone()),
        member_status: member_status.or(previous.member_status.clone()),
    };
    write_status(shared, ctx, &status).await
}
