//! Kubernetes Events about an Image: what glint did (Normal) and what went wrong (Warning).
//! An Event is a courtesy: failing to record one never fails a reconcile.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType, Recorder};

use super::Context;
use crate::crd::{Image, TransferPhase, TransferStatus};
use crate::pass::PassResult;
use crate::pass::act::Effect;
use crate::reason::Reason;

pub async fn publish(image: &Image, ctx: &Context, kind: EventType, reason: Reason, note: String) {
    publish_about(&image.object_ref(&()), ctx, kind, reason, note).await;
}

/// An Event about any object (an ImageSeries, say).
pub async fn publish_about(
    object: &k8s_openapi::api::core::v1::ObjectReference,
    ctx: &Context,
    kind: EventType,
    reason: Reason,
    note: String,
) {
    let event = Event {
        type_: kind,
        reason: reason.as_str().to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorded = match kind {
        EventType::Warning => ctx.recorder.publish(&event, object).await,
        EventType::Normal => {
            Recorder::new(ctx.client.clone(), ctx.reporter.clone())
                .publish(&event, object)
                .await
        }
    };
    if let Err(err) = recorded {
        tracing::warn!(%err, "could not record an Event");
    }
}

pub async fn publish_warning(image: &Image, ctx: &Context, reason: Reason, note: String) {
    publish(image, ctx, EventType::Warning, reason, note).await;
}

pub async fn publish_all(image: &Image, ctx: &Context, effects: &[Effect]) {
    for effect in effects {
        let kind = match effect {
            Effect::KeptInUse { .. } => EventType::Warning,
            _ => EventType::Normal,
        };
        publish(image, ctx, kind, effect.reason(), effect.note()).await;
    }
}

/// The pass's effects, with `Recreated` first when the image had vanished from Glance.
pub async fn publish_effects(image: &Image, ctx: &Context, result: &PassResult) {
    if let Some(old) = &result.vanished
        && result
            .effects
            .iter()
            .any(|effect| matches!(effect, Effect::Created { .. }))
    {
        let note = format!("Glance image {old} was deleted outside glint; created it again");
        publish_warning(image, ctx, Reason::Recreated, note).await;
    }
    publish_all(image, ctx, &result.effects).await;
}

/// At the end of every transfer attempt, once: `Uploaded` with size, time and speed, or a
/// Warning with the failure's reason.
pub async fn publish_transfer_end(
    image: &Image,
    ctx: &Context,
    transfer: Option<&TransferStatus>,
    failure_reason: Option<Reason>,
) {
    let Some(transfer) = transfer else { return };
    let before = image
        .status
        .as_ref()
        .and_then(|status| status.transfer.as_ref())
        .map(|t| (t.phase, t.attempts));
    if before == Some((transfer.phase, transfer.attempts)) {
        return;
    }
    let url = image
        .spec
        .source
        .as_ref()
        .map_or("the source", |source| source.url.as_str());
    match (transfer.phase, failure_reason) {
        (TransferPhase::Succeeded, _) => {
            let converted = transfer
                .conversion
                .as_ref()
                .map_or(String::new(), |conversion| {
                    format!(
                        "; Glance's import converted it ({}), and the source was checked as sent",
                        crate::transfer::verify::describe(conversion)
                    )
                });
            let note = format!(
                "copied {} from {url} into Glance{}{converted}",
                size_words(transfer.bytes_done),
                speed_words(transfer)
            );
            publish(image, ctx, EventType::Normal, Reason::Uploaded, note).await;
        }
        (TransferPhase::Failed, Some(reason)) => {
            let note = format!(
                "attempt {} failed after {}{}: {}",
                transfer.attempts,
                size_words(transfer.bytes_done),
                speed_words(transfer),
                transfer.last_error.as_deref().unwrap_or("no detail")
            );
            publish_warning(image, ctx, reason, note).await;
        }
        _ => {}
    }
}

/// `1.0 GiB (1073741824 bytes)`.
fn size_words(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if unit == "bytes" {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {unit} ({bytes} bytes)")
    }
}

/// ` in 5 s at 191.2 MB/s`, when known.
fn speed_words(transfer: &TransferStatus) -> String {
    match (transfer.elapsed_seconds, transfer.bytes_per_second) {
        (Some(seconds), Some(rate)) => {
            format!(" in {seconds} s at {:.1} MB/s", rate as f64 / 1_000_000.0)
        }
        (Some(seconds), None) => format!(" in {seconds} s"),
        _ => String::new(),
    }
}

/// For log lines and messages: `namespace/name`.
pub fn object_name(image: &Image) -> String {
    format!(
        "{}/{}",
        image.namespace().unwrap_or_default(),
        image.name_any()
    )
}
