//! The status of an Image with spec.targets: one entry per target, each built as a one-cloud
//! Image's status is ([`super::status::build`]), and the object's own conditions summing them
//! up, so that `kubectl wait`, Argo CD and Flux read one Ready for all clouds. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::status::{self, Outcome};
use crate::crd::{CloudCredentialsRef, ImageStatus, TargetStatus};

/// One target after its pass: where it is, its status as a one-cloud Image would have it, and
/// how its pass ended.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub name: String,
    pub cloud_credentials_ref: CloudCredentialsRef,
    pub region: Option<String>,
    pub status: ImageStatus,
    pub outcome: Outcome,
}

/// One target's outcome, as the summary reads it (an Image's targets and a series' alike).
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    pub name: &'a str,
    pub outcome: &'a Outcome,
    /// The target's image id (a series': its current version's).
    pub image_id: Option<&'a str>,
}

impl<'a> From<&'a TargetReport> for Summary<'a> {
    fn from(report: &'a TargetReport) -> Self {
        Summary {
            name: &report.name,
            outcome: &report.outcome,
            image_id: report.status.id.as_deref(),
        }
    }
}

/// The object's outcome: Ready only when every target is; Stalled when one is stalled (glint
/// cannot finish without a change), the others going on meanwhile; else Progressing. The
/// message names every target that is not Ready, with its own words.
pub fn combined_outcome(targets: &[TargetReport]) -> Outcome {
    combined(&targets.iter().map(Summary::from).collect::<Vec<_>>())
}

/// [`combined_outcome`] over summaries.
pub fn combined(targets: &[Summary]) -> Outcome {
    let waiting: Vec<&Summary> = targets
        .iter()
        .filter(|target| !matches!(target.outcome, Outcome::Ready { .. }))
        .collect();
    let named = |reports: &[&Summary]| {
        reports
            .iter()
            .map(|target| format!("target {}: {}", target.name, words(target.outcome)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let count = count_ready(targets);
    if let Some(stalled) = waiting
        .iter()
        .find(|target| matches!(target.outcome, Outcome::Stalled { .. }))
    {
        return Outcome::Stalled {
            reason: reason(stalled.outcome),
            message: format!("{count}: {}", named(&waiting)),
        };
    }
    match waiting.first() {
        Some(first) => Outcome::Progressing {
            reason: reason(first.outcome),
            message: format!("{count}: {}", named(&waiting)),
        },
        None => Outcome::Ready {
            reason: targets
                .first()
                .map_or(crate::reason::Reason::Synced, |target| {
                    reason(target.outcome)
                }),
            message: format!(
                "every target is ready: {}",
                targets
                    .iter()
                    .map(|target| format!(
                        "{} ({})",
                        target.name,
                        target.image_id.unwrap_or("no image")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// "2/3 ready": what `kubectl get` shows.
pub fn ready_count(targets: &[TargetReport]) -> String {
    count_ready(&targets.iter().map(Summary::from).collect::<Vec<_>>())
}

/// [`ready_count`] over summaries.
pub fn count_ready(targets: &[Summary]) -> String {
    let ready = targets
        .iter()
        .filter(|target| matches!(target.outcome, Outcome::Ready { .. }))
        .count();
    format!("{ready}/{} ready", targets.len())
}

fn words(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Ready { message, .. }
        | Outcome::Progressing { message, .. }
        | Outcome::Stalled { message, .. } => message,
    }
}

fn reason(outcome: &Outcome) -> crate::reason::Reason {
    match outcome {
        Outcome::Ready { reason, .. }
        | Outcome::Progressing { reason, .. }
        | Outcome::Stalled { reason, .. } => *reason,
    }
}

/// The object's status: its summed-up conditions, one entry per target, and the id map.
/// Like [`status::build`], lastSyncTime moves only when something else changed.
pub fn build(
    generation: Option<i64>,
    previous: Option<&ImageStatus>,
    targets: &[TargetReport],
    handled_request: Option<String>,
    now: Time,
) -> ImageStatus {
    let previous = previous.cloned().unwrap_or_default();
    let outcome = combined_outcome(targets);
    let entries: Vec<TargetStatus> = targets
        .iter()
        .map(|target| TargetStatus {
            name: target.name.clone(),
            cloud_credentials_ref: target.cloud_credentials_ref.clone(),
            region: target.region.clone(),
            id: target.status.id.clone(),
            conditions: target.status.conditions.clone(),
            glance: target.status.glance.clone(),
            transfer: target.status.transfer.clone(),
        })
        .collect();
    let image_ids: BTreeMap<String, String> = targets
        .iter()
        .filter_map(|target| Some((target.name.clone(), target.status.id.clone()?)))
        .collect();
    let mut status = ImageStatus {
        observed_generation: generation,
        conditions: status::kstatus_conditions(&outcome, generation, &now, &previous.conditions),
        last_handled_reconcile_at: handled_request.or(previous.last_handled_reconcile_at.clone()),
        last_sync_time: previous.last_sync_time.clone(),
        targets: entries,
        image_ids,
        targets_ready: Some(ready_count(targets)),
        ..ImageStatus::default()
    };
    let unsynced = |status: &ImageStatus| ImageStatus {
        last_sync_time: None,
        ..status.clone()
    };
    if unsynced(&status) != unsynced(&previous) || status.last_sync_time.is_none() {
        status.last_sync_time = Some(now);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("a time"))
    }

    fn report(name: &str, outcome: Outcome) -> TargetReport {
        TargetReport {
            name: name.to_string(),
            cloud_credentials_ref: CloudCredentialsRef {
                secret_name: "clouds".to_string(),
                cloud_name: name.to_string(),
            },
            region: None,
            status: ImageStatus {
                id: Some(format!("id-{name}")),
                ..ImageStatus::default()
            },
            outcome,
        }
    }

    fn ready(name: &str) -> TargetReport {
        report(
            name,
            Outcome::Ready {
                reason: Reason::Synced,
                message: "matches".to_string(),
            },
        )
    }

    fn working(name: &str) -> TargetReport {
        report(
            name,
            Outcome::Progressing {
                reason: Reason::Transferring,
                message: "uploading".to_string(),
            },
        )
    }

    fn stalled(name: &str) -> TargetReport {
        report(
            name,
            Outcome::Stalled {
                reason: Reason::ImageTooLarge,
                message: "too large here".to_string(),
            },
        )
    }

    #[test]
    fn the_object_is_ready_only_when_every_target_is() {
        let cases = [
            (vec![ready("a"), ready("b")], "Ready", "2/2 ready"),
            (vec![ready("a"), working("b")], "Progressing", "1/2 ready"),
            (vec![working("a"), stalled("b")], "Stalled", "0/2 ready"),
            (
                vec![ready("a"), stalled("b"), ready("c")],
                "Stalled",
                "2/3 ready",
            ),
        ];
        for (targets, expected, count) in cases {
            let outcome = combined_outcome(&targets);
            let kind = match outcome {
                Outcome::Ready { .. } => "Ready",
                Outcome::Progressing { .. } => "Progressing",
                Outcome::Stalled { .. } => "Stalled",
            };
            assert_eq!(kind, expected, "{targets:?}");
            assert_eq!(ready_count(&targets), count);
        }
    }

    #[test]
    fn a_waiting_objects_message_names_each_target_that_is_not_ready_in_its_own_words() {
        let outcome = combined_outcome(&[ready("eu"), stalled("us"), working("ap")]);
        let Outcome::Stalled { reason, message } = outcome else {
            panic!("stalled: {outcome:?}");
        };
        assert_eq!(reason, Reason::ImageTooLarge, "the stalled target's reason");
        assert_eq!(
            message,
            "1/3 ready: target us: too large here; target ap: uploading"
        );
    }

    #[test]
    fn status_lists_every_target_and_maps_each_to_its_image_id() {
        let targets = [ready("eu"), working("us")];
        let status = build(Some(4), None, &targets, None, at(100));
        assert_eq!(status.targets.len(), 2);
        assert_eq!(status.targets[1].name, "us");
        assert_eq!(
            status.image_ids.get("eu").map(String::as_str),
            Some("id-eu")
        );
        assert_eq!(status.targets_ready.as_deref(), Some("1/2 ready"));
        assert_eq!(status.id, None, "no single id for several clouds");
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("False"));
    }

    #[test]
    fn an_unchanged_status_keeps_its_last_sync_time() {
        let targets = [ready("eu"), ready("us")];
        let first = build(Some(1), None, &targets, None, at(100));
        let second = build(Some(1), Some(&first), &targets, None, at(200));
        assert_eq!(second, first, "nothing changed: no write");
    }
}
