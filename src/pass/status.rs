//! Builds `Image.status` from what one reconcile saw and did. Pure: the time is passed in.
//!
//! Conditions follow kstatus, so `kubectl wait --for=condition=Ready`, Flux and Argo CD read
//! them unchanged: `Ready` says whether the image matches the spec, `Reconciling` whether glint
//! is working on it, `Stalled` whether glint is stuck until someone changes something. A
//! condition keeps its lastTransitionTime while its status stays the same, and lastSyncTime
//! moves only when something else changed, so an object with nothing to do yields a status
//! equal to the one it has and costs no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{GlanceView, ImageStatus, TransferStatus};
use crate::glance::GlanceImage;
use crate::reason::Reason;

/// Condition types.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// How one reconcile ended, in the words status uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Glance matches the spec.
    Ready { reason: Reason, message: String },
    /// Work is under way; glint will come back by itself.
    Progressing { reason: Reason, message: String },
    /// glint cannot go on until the spec, the Secret or the cloud changes.
    Stalled { reason: Reason, message: String },
}

/// Everything the builder needs; nothing it would have to fetch.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    pub generation: Option<i64>,
    pub previous: Option<&'a ImageStatus>,
    /// The Glance image id, when there is one.
    pub id: Option<String>,
    /// Glance's view after this reconcile's actions, when known.
    pub image: Option<&'a GlanceImage>,
    pub transfer: Option<TransferStatus>,
    pub outcome: Outcome,
    /// The refresh annotation's value this reconcile acted on.
    pub handled_request: Option<String>,
    pub now: Time,
}

/// The new status.
pub fn build(input: StatusInput<'_>) -> ImageStatus {
    let previous = input.previous.cloned().unwrap_or_default();
    let conditions = conditions(&input, &previous.conditions);
    let mut status = ImageStatus {
        // An id, once known, is only replaced, never forgotten by a failing reconcile.
        id: input.id.or(previous.id.clone()),
        observed_generation: input.generation,
        conditions,
        glance: match input.image {
            Some(image) => Some(glance_view(image)),
            None => previous.glance.clone(),
        },
        transfer: input.transfer.or(previous.transfer.clone()),
        last_handled_reconcile_at: input
            .handled_request
            .clone()
            .or(previous.last_handled_reconcile_at.clone()),
        last_sync_time: previous.last_sync_time.clone(),
        ..ImageStatus::default()
    };
    let changed = ImageStatus {
        last_sync_time: None,
        ..status.clone()
    } != ImageStatus {
        last_sync_time: None,
        ..previous
    };
    if changed || status.last_sync_time.is_none() {
        status.last_sync_time = Some(input.now);
    }
    status
}

/// Whether `new` differs from what the object has: the only case that costs a write.
pub fn needs_write<S: PartialEq>(current: Option<&S>, new: &S) -> bool {
    current != Some(new)
}

fn conditions(input: &StatusInput<'_>, previous: &[Condition]) -> Vec<Condition> {
    kstatus_conditions(&input.outcome, input.generation, &input.now, previous)
}

/// Ready, Reconciling and Stalled for an outcome, each keeping its lastTransitionTime while
/// its status stays: shared by every kind glint writes status for.
pub fn kstatus_conditions(
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
    previous: &[Condition],
) -> Vec<Condition> {
    let idle = |message: &str| (false, Reason::Idle, message.to_string());
    let (ready, reconciling, stalled) = match outcome {
        Outcome::Ready { reason, message } => (
            (true, *reason, message.clone()),
            idle("nothing to do"),
            idle("not stalled"),
        ),
        Outcome::Progressing { reason, message } => (
            (false, *reason, message.clone()),
            (true, *reason, message.clone()),
            idle("not stalled"),
        ),
        Outcome::Stalled { reason, message } => (
            (false, *reason, message.clone()),
            idle("waiting for a change to the spec, Secret or cloud"),
            (true, *reason, message.clone()),
        ),
    };
    [
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ]
    .into_iter()
    .map(|(kind, (status, reason, message))| {
        condition(kind, status, reason, message, generation, now, previous)
    })
    .collect()
}

fn condition(
    kind: &str,
    status: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: &Time,
    previous: &[Condition],
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|old| old.type_ == kind && old.status == status)
        .map(|old| old.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: kind.to_string(),
        status,
        reason: reason.as_str().to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Glance's image as status shows it.
pub fn glance_view(image: &GlanceImage) -> GlanceView {
    GlanceView {
        status: Some(image.status.clone()),
        name: image.name.clone(),
        visibility: Some(image.visibility.clone()),
        tags: image.tags.clone(),
        protected: image.protected,
        hidden: image.hidden,
        size: image.size,
        virtual_size: image.virtual_size,
        checksum: image.checksum.clone(),
        os_hash_algo: image.os_hash_algo.clone(),
        os_hash_value: image.os_hash_value.clone(),
        container_format: image.container_format.clone(),
        disk_format: image.disk_format.clone(),
        min_disk: image.min_disk,
        min_ram: image.min_ram,
        owner: image.owner.clone(),
        properties: image.properties.clone(),
        created_at: image.created_at.clone(),
        updated_at: image.updated_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn image() -> GlanceImage {
        serde_json::from_value(serde_json::json!({
            "id": "i-1", "name": "n", "status": "active", "visibility": "private", "size": 7
        }))
        .unwrap()
    }

    fn input<'a>(
        outcome: Outcome,
        previous: Option<&'a ImageStatus>,
        image: Option<&'a GlanceImage>,
        now: i64,
    ) -> StatusInput<'a> {
        StatusInput {
            generation: Some(3),
            previous,
            id: image.map(|i| i.id.clone()),
            image,
            transfer: None,
            outcome,
            handled_request: None,
            now: at(now),
        }
    }

    fn ready() -> Outcome {
        Outcome::Ready {
            reason: Reason::Synced,
            message: "in sync".into(),
        }
    }

    fn get<'a>(status: &'a ImageStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn each_outcome_sets_the_kstatus_conditions() {
        let rows = [
            (ready(), ["True", "False", "False"], "Synced"),
            (
                Outcome::Progressing {
                    reason: Reason::Transferring,
                    message: "copying".into(),
                },
                ["False", "True", "False"],
                "Transferring",
            ),
            (
                Outcome::Stalled {
                    reason: Reason::AuthenticationFailed,
                    message: "check the password".into(),
                },
                ["False", "False", "True"],
                "AuthenticationFailed",
            ),
        ];
        for (outcome, [ready, reconciling, stalled], reason) in rows {
            let status = build(input(outcome, None, None, 100));
            assert_eq!(get(&status, READY).status, ready);
            assert_eq!(get(&status, RECONCILING).status, reconciling);
            assert_eq!(get(&status, STALLED).status, stalled);
            assert_eq!(get(&status, READY).reason, reason);
            assert!(
                status
                    .conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(3))
            );
            assert_eq!(status.observed_generation, Some(3));
        }
    }

    #[test]
    fn an_unchanged_reconcile_rebuilds_the_same_status_and_needs_no_write() {
        let image = image();
        let first = build(input(ready(), None, Some(&image), 100));
        let second = build(input(ready(), Some(&first), Some(&image), 200));
        assert_eq!(second, first, "times do not move when nothing changed");
        assert!(!needs_write(Some(&first), &second));
        assert!(needs_write(None, &second));
    }

    #[test]
    fn a_change_moves_last_sync_time_and_only_the_flipped_conditions() {
        let image = image();
        let first = build(input(ready(), None, Some(&image), 100));
        let stalled = Outcome::Stalled {
            reason: Reason::GlanceForbidden,
            message: "no".into(),
        };
        let second = build(input(stalled, Some(&first), Some(&image), 200));
        assert_eq!(second.last_sync_time, Some(at(200)));
        assert_eq!(
            get(&second, READY).last_transition_time,
            at(200),
            "Ready flipped"
        );
        assert_eq!(
            get(&second, STALLED).last_transition_time,
            at(200),
            "Stalled flipped"
        );
        assert_eq!(
            get(&second, RECONCILING).last_transition_time,
            at(100),
            "Reconciling stayed False"
        );
        assert!(needs_write(Some(&first), &second));
    }

    #[test]
    fn a_failed_reconcile_keeps_what_was_known() {
        let image = image();
        let first = build(input(ready(), None, Some(&image), 100));
        let failed = build(input(
            Outcome::Progressing {
                reason: Reason::GlanceUnavailable,
                message: "503".into(),
            },
            Some(&first),
            None,
            200,
        ));
        assert_eq!(failed.id.as_deref(), Some("i-1"));
        assert_eq!(failed.glance, first.glance);
    }

    #[test]
    fn the_glance_view_copies_glance_fields() {
        let view = glance_view(&image());
        assert_eq!(view.name.as_deref(), Some("n"));
        assert_eq!(view.size, Some(7));
        assert_eq!(view.status, Some(crate::glance::GlanceStatus::Active));
    }
}
