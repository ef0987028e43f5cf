//! Kubernetes Events about an Image: what glint did (Normal) and what went wrong (Warning).
//! An Event is a courtesy: failing to record one never fails a reconcile.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType};

use super::Context;
use super::act::Effect;
use super::pass::PassResult;
use crate::crd::{Image, TransferPhase, TransferStatus};

/// Event reasons glint uses beyond the effects' own.
pub mod reasons {
    pub const RECREATED: &str = "Recreated";
    pub const UPLOADED: &str = "Uploaded";
    pub const DETACHED: &str = "Detached";
    pub const INTERNAL_ERROR: &str = "InternalError";
}

pub async fn publish(image: &Image, ctx: &Context, kind: EventType, reason: &str, note: String) {
    let event = Event {
        type_: kind,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &image.object_ref(&())).await {
        tracing::warn!(%err, "could not record an Event");
    }
}

pub async fn publish_warning(image: &Image, ctx: &Context, reason: &str, note: String) {
    publish(image, ctx, EventType::Warning, reason, note).await;
}

pub async fn publish_all(image: &Image, ctx: &Context, effects: &[Effect]) {
    for effect in effects {
        publish(
            image,
            ctx,
            EventType::Normal,
            effect.reason(),
            effect.note(),
        )
        .await;
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
        publish_warning(image, ctx, reasons::RECREATED, note).await;
    }
    publish_all(image, ctx, &result.effects).await;
}

/// `Uploaded` once, when status is about to record a finished transfer for the first time.
pub async fn publish_transfer_end(image: &Image, ctx: &Context, transfer: Option<&TransferStatus>) {
    let Some(transfer) = transfer else { return };
    let before = image
        .status
        .as_ref()
        .and_then(|status| status.transfer.as_ref())
        .map(|t| t.phase);
    if transfer.phase == TransferPhase::Succeeded && before != Some(TransferPhase::Succeeded) {
        let url = image
            .spec
            .source
            .as_ref()
            .map_or("the source", |source| source.url.as_str());
        let note = format!(
            "copied {} bytes from {url} into Glance",
            transfer.bytes_done
        );
        publish(image, ctx, EventType::Normal, reasons::UPLOADED, note).await;
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
