//! Kubernetes Events about glint's objects: what glint did (Normal) and what went wrong
//! (Warning). An Event is a courtesy: failing to record one never fails a reconcile. An
//! object with spec.targets has one Event stream for all its clouds, so each note about one
//! target starts with `target NAME: ` ([`Herald`]).

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

/// Where one reconcile's Events go: its object, each note naming the target it is about when
/// the object has several clouds.
#[derive(Clone)]
pub struct Herald<'a> {
    object: k8s_openapi::api::core::v1::ObjectReference,
    ctx: &'a Context,
    target: Option<&'a str>,
}

impl<'a> Herald<'a> {
    /// Events about `object` as a whole (an object with one cloud).
    pub fn of<K: Resource<DynamicType = ()>>(object: &K, ctx: &'a Context) -> Self {
        Self {
            object: object.object_ref(&()),
            ctx,
            target: None,
        }
    }

    /// Events about one of the object's targets.
    pub fn about_target(self, target: &'a str) -> Self {
        Self {
            target: Some(target),
            ..self
        }
    }

    /// The note as users read it: `target eu: ...` for a target.
    pub fn words(&self, note: &str) -> String {
        match self.target {
            Some(target) => format!("target {target}: {note}"),
            None => note.to_string(),
        }
    }

    pub async fn say(&self, kind: EventType, reason: Reason, note: &str) {
        publish_about(&self.object, self.ctx, kind, reason, self.words(note)).await;
    }
}

pub async fn publish_all(herald: &Herald<'_>, effects: &[Effect]) {
    for effect in effects {
        let kind = match effect {
            Effect::KeptInUse { .. } => EventType::Warning,
            _ => EventType::Normal,
        };
        herald.say(kind, effect.reason(), &effect.note()).await;
    }
}

/// The pass's effects, with `Recreated` first when the image had vanished from Glance.
pub async fn publish_effects(herald: &Herald<'_>, result: &PassResult) {
    if let Some(old) = &result.vanished
        && result
            .effects
            .iter()
            .any(|effect| matches!(effect, Effect::Created { .. }))
    {
        let note = format!("Glance image {old} was deleted outside glint; created it again");
        herald
            .say(EventType::Warning, Reason::Recreated, &note)
            .await;
    }
    publish_all(herald, &result.effects).await;
}

/// At the end of every transfer attempt, once: `Uploaded` with size, time and speed, or a
/// Warning with the failure's reason. `before` is the transfer as status last showed it.
pub async fn publish_transfer_end(
    herald: &Herald<'_>,
    image: &Image,
    before: Option<&TransferStatus>,
    transfer: Option<&TransferStatus>,
    failure_reason: Option<Reason>,
) {
    let Some(transfer) = transfer else { return };
    let before = before.map(|t| (t.phase, t.attempts));
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
            herald.say(EventType::Normal, Reason::Uploaded, &note).await;
        }
        (TransferPhase::Failed, Some(reason)) => {
            let note = format!(
                "attempt {} failed after {}{}: {}",
                transfer.attempts,
                size_words(transfer.bytes_done),
                speed_words(transfer),
                transfer.last_error.as_deref().unwrap_or("no detail")
            );
            herald.say(EventType::Warning, reason, &note).await;
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
