//! The pass: one reconcile of one image without Kubernetes, observe -> plan -> act on any
//! [`GlanceApi`]. The controller (`glint run`) wraps it with finalizers, Secrets, status
//! writes and Events; `glint apply` runs [`sync`] in a loop; `glint plan` runs only its first
//! half, [`plan()`], so what plan prints is what the other two do.
//!
//! - [`observe`]: find the image the object stands for (its id, derived or recorded).
//! - [`plan`](mod@plan): the pure diff, one small function per field; no client, no clock.
//! - [`act`]: carry the plan's steps out against Glance, and start transfers.
//! - [`status`]: the pure status builder (Glance's view, progress, kstatus conditions).

pub mod act;
pub mod observe;
pub mod plan;
pub mod status;
pub mod targets_status;

use std::collections::BTreeSet;

use crate::glance::{GlanceApi, GlanceImage};
use crate::reason::Reason;
use crate::transfer::{SourceAccess, TransferState, Transfers};
use act::{ActError, Applied, Effect};
use observe::{Observation, ObserveError, Subject};
use plan::{Desired, Plan, Progress, Step};

/// The first half of a pass: what Glance has, and the plan for it.
#[derive(Debug)]
pub struct Planned {
    pub observed: Observation,
    /// The image's member projects; read only for an owned shared image, the one case the
    /// plan looks at them.
    pub members: BTreeSet<String>,
    pub plan: Plan,
}

impl Planned {
    /// The image as observed, owned or imported.
    pub fn image(&self) -> Option<&GlanceImage> {
        match &self.observed {
            Observation::Owned(image) | Observation::Imported(image) => Some(image),
            Observation::ImportPending | Observation::Absent { .. } => None,
        }
    }

    /// The steps [`sync`] takes for this plan in one pass: the plan's, and for a create
    /// whose spec has a source, the start of its upload (see [`sync`]).
    pub fn pass_actions(&self, desired: &Desired) -> Vec<Step> {
        let mut steps = self.plan.steps.clone();
        if steps == [Step::Create] && desired.source.is_some() {
            steps.push(Step::StartTransfer);
        }
        steps
    }
}

/// What a pass found and did.
#[derive(Debug)]
pub struct PassResult {
    /// The image as last seen (after this pass's changes when it made any).
    pub image: Option<GlanceImage>,
    pub progress: Progress,
    pub effects: Vec<Effect>,
    /// The id status knew, when that image was deleted outside glint.
    pub vanished: Option<String>,
    /// Whether the object tracks an imported image (reported, never changed).
    pub imported: bool,
    /// The steps the pass took, in order.
    pub steps: Vec<Step>,
}

impl PassResult {
    /// Whether this pass created an image and left what follows (its import, its settling)
    /// to the next pass. A create whose transfer started in the same pass is not one: that
    /// transfer's end brings the next pass.
    pub fn created_and_stopped(&self) -> bool {
        self.effects
            .iter()
            .any(|effect| matches!(effect, Effect::Created { .. }))
            && !self.steps.contains(&Step::StartTransfer)
    }
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

/// Observes the image and plans, changing nothing: the first half of [`sync`], and all of
/// `glint plan`.
pub async fn plan(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    desired: &Desired,
) -> Result<Planned, PassError> {
    let observed = observe::observe(api, subject).await?;
    let members = match &observed {
        Observation::Owned(image) => act::current_members(api, image).await?,
        _ => BTreeSet::new(),
    };
    let transfer = match &observed {
        Observation::Owned(image) | Observation::Imported(image) => transfers.state(&image.id),
        Observation::ImportPending | Observation::Absent { .. } => TransferState::Idle,
    };
    let plan = plan::plan(desired, &observed, &members, &transfer);
    Ok(Planned {
        observed,
        members,
        plan,
    })
}

/// Brings Glance in line with `desired` as far as one pass can. `access` holds the source's
/// credentials (from spec.source.secretRef), which only a transfer sees: the plan is made
/// without them.
pub async fn sync(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    desired: &Desired,
    access: &SourceAccess,
) -> Result<PassResult, PassError> {
    let planned = plan(api, transfers, subject, desired).await?;
    let image = planned.image().cloned();
    let Planned {
        observed,
        members,
        plan,
    } = planned;
    let (imported, vanished) = match &observed {
        Observation::Owned(_) => (false, None),
        Observation::Imported(_) | Observation::ImportPending => (true, None),
        Observation::Absent { vanished } => (false, vanished.clone()),
    };
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
        access,
        image_id.as_deref(),
        &plan.steps,
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
        let mut steps = plan.steps;
        // Starting a transfer cannot fail (it queues a task), so it need not wait a pass.
        if follow_up.steps.contains(&plan::Step::StartTransfer) {
            steps.push(plan::Step::StartTransfer);
            let started = act::apply(
                api,
                transfers,
                subject,
                desired,
                access,
                Some(&created.id),
                &[plan::Step::StartTransfer],
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
            steps,
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
    let progress = match (&image, plan.steps.is_empty(), observed) {
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
            if follow_up.steps.is_empty() {
                follow_up.progress
            } else {
                plan.progress.clone()
            }
        }
        _ => plan.progress.clone(),
    };
    Ok(PassResult {
        image,
        progress,
        effects,
        vanished,
        imported,
        steps: plan.steps,
    })
}

/// Removes what deleting the object should remove: the image, unless `detach` or imported.
/// A transfer still running into the image is stopped first. An image still in use stays
/// ([`Effect::KeptInUse`]): the caller keeps the object and tries again later.
pub async fn remove(
    api: &impl GlanceApi,
    transfers: &impl Transfers,
    subject: Subject<'_>,
    detach: bool,
) -> Result<Vec<Effect>, PassError> {
    let when_in_use = subject.spec.when_in_use();
    let observed = observe::observe(api, subject).await?;
    let mut effects = Vec::new();
    for step in plan::plan_delete(&observed, detach) {
        if let (plan::Step::Delete { unprotect }, Observation::Owned(image)) = (step, &observed) {
            transfers.cancel(&image.id);
            effects.push(act::delete(api, &image.id, unprotect, when_in_use).await?);
        }
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(effects: Vec<Effect>, steps: Vec<Step>) -> PassResult {
        PassResult {
            image: None,
            progress: Progress::InSync,
            effects,
            vanished: None,
            imported: false,
            steps,
        }
    }

    #[test]
    fn only_a_create_that_left_the_rest_to_the_next_pass_asks_for_one_at_once() {
        let created = || vec![Effect::Created { id: "i".into() }];
        let cases = [
            (created(), vec![Step::Create], true),
            (created(), vec![Step::Create, Step::StartTransfer], false),
            (vec![], vec![Step::StartTransfer], false),
            (vec![Effect::Adopted { id: "i".into() }], vec![], false),
        ];
        for (effects, steps, expected) in cases {
            let row = format!("{effects:?} {steps:?}");
            assert_eq!(
                result(effects, steps).created_and_stopped(),
                expected,
                "{row}"
            );
        }
    }
}
