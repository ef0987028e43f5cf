//! One reconcile pass without Kubernetes: observe -> plan -> act, on any [`GlanceApi`]. The
//! controller wraps it with finalizers, Secrets, status writes and Events; the CLI will call it
//! directly.

use crate::glance::{GlanceApi, Image};
use crate::reason::Reason;
use crate::reconcile::act::{self, ActError, Applied, Effect};
use crate::reconcile::observe::{self, Observation, ObserveError, Subject};
use crate::reconcile::plan::{self, Desired, Progress};
use crate::transfer::{TransferState, Transfers};

/// What a pass found and did.
#[derive(Debug)]
pub struct PassResult {
    /// The image as last seen (after this pass's changes when it made any).
    pub image: Option<Image>,
    pub progress: Progress,
    pub effects: Vec<Effect>,
    /// The id status knew, when that image was deleted outside glint.
    pub vanished: Option<String>,
    /// Whether the object tracks an imported image (reported, never changed).
    pub imported: bool,
}

/// A pass that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Act(#[from] ActError),
}

impl PassError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Observe(err) => err.is_transient(),
            Self::Act(err) => err.is_transient(),
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Observe(err) => err.reason(),
            Self::Act(err) => err.reason(),
        }
    }
}

/// Brings Glance in line with `desired` as far as one pass can.
pub async fn sync(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    desired: &Desired,
) -> Result<PassResult, PassError> {
    let observed = observe::observe(api, subject).await?;
    let (image, members, imported, vanished) = match &observed {
        Observation::Owned(image) => (
            Some(image.clone()),
            act::current_members(api, image).await?,
            false,
            None,
        ),
        Observation::Imported(image) => (Some(image.clone()), Default::default(), true, None),
        Observation::ImportPending => (None, Default::default(), true, None),
        Observation::Absent { vanished } => (None, Default::default(), false, vanished.clone()),
    };
    let transfer = image
        .as_ref()
        .map_or(TransferState::Idle, |image| transfers.state(&image.id));
    let plan = plan::plan(desired, &observed, &members, &transfer);
    let image_id = image.as_ref().map(|image| image.id.clone());
    let Applied {
        effects,
        created,
        patched,
    } = act::apply(
        api,
        transfers,
        subject,
        desired,
        image_id.as_deref(),
        &plan.actions,
    )
    .await?;
    if let Some(created) = created {
        // A create carries every field, so the new image usually needs nothing more: then it
        // is Ready in this same pass, with no read and no second pass.
        let follow_up = plan::plan(
            desired,
            &Observation::Owned(created.clone()),
            &Default::default(),
            &TransferState::Idle,
        );
        let progress = match follow_up.progress {
            Progress::InSync => Progress::InSync,
            Progress::Working { reason, message } | Progress::Blocked { reason, message } => {
                Progress::Working { reason, message }
            }
        };
        let mut effects = effects;
        // Starting a transfer cannot fail (it queues a task), so it need not wait a pass.
        if follow_up.actions.contains(&plan::Action::StartTransfer) {
            let started = act::apply(
                api,
                transfers,
                subject,
                desired,
                Some(&created.id),
                &[plan::Action::StartTransfer],
            )
            .await?;
            effects.extend(started.effects);
        }
        return Ok(PassResult {
            image: Some(created),
            progress,
            effects,
            vanished,
            imported,
        });
    }
    // Status shows Glance's view after the changes. A patch's answer is that view; only a
    // change of status (deactivate, reactivate) needs a read.
    let status_changed = effects
        .iter()
        .any(|effect| matches!(effect, Effect::Deactivated | Effect::Reactivated));
    let image = match (image_id, patched) {
        (Some(id), _) if status_changed => Some(api.get_image_fresh(&id).await.map_err(
            |source| ActError::Glance {
                call: "get",
                id,
                source,
            },
        )?),
        (_, Some(patched)) => Some(patched),
        (_, None) => image,
    };
    // What the pass did may be all there was to do: then the object is Ready now, not after
    // another pass. Members are what they were, with this pass's changes applied.
    let progress = match (&image, plan.actions.is_empty(), observed) {
        (Some(after), false, Observation::Owned(_)) => {
            let mut members_after = members;
            for effect in &effects {
                match effect {
                    Effect::SharedWith { project } => {
                        members_after.insert(project.clone());
                    }
                    Effect::UnsharedWith { project } => {
                        members_after.remove(project);
                    }
                    _ => {}
                }
            }
            let follow_up = plan::plan(
                desired,
                &Observation::Owned(after.clone()),
                &members_after,
                &transfers.state(&after.id),
            );
            if follow_up.actions.is_empty() {
                follow_up.progress
            } else {
                plan.progress
            }
        }
        _ => plan.progress,
    };
    Ok(PassResult {
        image,
        progress,
        effects,
        vanished,
        imported,
    })
}

/// Removes what deleting the object should remove: the image, unless `detach` or imported.
/// A transfer still running into the image is stopped first.
pub async fn remove(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    detach: bool,
) -> Result<Vec<Effect>, PassError> {
    let observed = observe::observe(api, subject).await?;
    let mut effects = Vec::new();
    for action in plan::plan_delete(&observed, detach) {
        if let (plan::Action::Delete { unprotect }, Observation::Owned(image)) = (action, &observed)
        {
            transfers.cancel(&image.id);
            act::delete(api, &image.id, unprotect).await?;
            effects.push(Effect::Deleted {
                id: image.id.clone(),
            });
        }
    }
    Ok(effects)
}
