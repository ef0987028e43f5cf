//! [`Wakeups`]: which object waits on which transfer, so that a transfer's end reconciles its
//! object at once. Without this the object saw the end only on its next progress requeue,
//! seconds after the data was in (issue 29).
//!
//! A reconcile names the images its pass may transfer into ([`Wakeups::wait_for`]) *before*
//! the pass, so a transfer that starts and ends within the pass still finds its waiter. The
//! transfer managers call [`Wakeups::transfer_ended`]; each controller listens on
//! [`Wakeups::subscribe`] and keeps the objects of its own kind.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;

/// Transfer ends waiting to be picked up by the controllers. A controller that falls this
/// far behind misses wakeups, and then sees the end on its progress requeue as before.
const BACKLOG: usize = 256;

/// The object a transfer's end should reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Waiter {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Waiter {
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Self {
            kind: K::kind(&()).into_owned(),
            namespace: object.meta().namespace.clone(),
            name: object.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The controller's reference, when the waiter is of kind `K`.
    pub fn object_ref<K: Resource<DynamicType = ()>>(&self) -> Option<ObjectRef<K>> {
        (self.kind == K::kind(&())).then(|| {
            let reference = ObjectRef::new(&self.name);
            match &self.namespace {
                Some(namespace) => reference.within(namespace),
                None => reference,
            }
        })
    }
}

pub struct Wakeups {
    /// By Glance image id.
    waiting: Mutex<HashMap<String, Waiter>>,
    ended: broadcast::Sender<Waiter>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            ended: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Wakeups {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        // Entries are inserted and removed whole: a poisoned map is still consistent.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `waiter` is reconciled when a transfer into `image_id` ends.
    pub fn wait_for(&self, image_id: &str, waiter: Waiter) {
        self.waiting().insert(image_id.to_string(), waiter);
    }

    /// Nothing waits on `image_id` any more (its object is in sync or stalled).
    pub fn forget(&self, image_id: &str) {
        self.waiting().remove(image_id);
    }

    /// `waiter` is gone: whatever it waited on wakes nobody.
    pub fn forget_waiter(&self, waiter: &Waiter) {
        self.waiting().retain(|_, waiting| waiting != waiter);
    }

    /// Called by the transfer managers: wakes the object waiting on `image_id`, if any
    /// (and says whether one was).
    pub fn transfer_ended(&self, image_id: &str) -> bool {
        let waiter = self.waiting().remove(image_id);
        match waiter {
            // No receiver means no controller runs (a test, or shutting down): nothing to wake.
            Some(waiter) => self.ended.send(waiter).is_ok(),
            None => false,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Waiter> {
        self.ended.subscribe()
    }

    /// How many images have a waiter, for tests.
    pub fn len(&self) -> usize {
        self.waiting().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ends of transfers whose waiters are of kind `K` (in `namespace`, when the controller
/// watches one), as a stream a controller reconciles on. Wakeups missed while the stream
/// lagged are skipped: the progress requeue covers them.
pub fn objects_of<K: Resource<DynamicType = ()> + 'static>(
    ended: broadcast::Receiver<Waiter>,
    namespace: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static {
    futures::stream::unfold((ended, namespace), |(mut ended, namespace)| async move {
        loop {
            match ended.recv().await {
                Ok(waiter) => {
                    let in_scope = namespace.is_none() || waiter.namespace == namespace;
                    if in_scope && let Some(reference) = waiter.object_ref::<K>() {
                        return Some((reference, (ended, namespace)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "missed transfer-end wakeups");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Image, ImageSeries};
    use futures::StreamExt;

    fn image(namespace: &str, name: &str) -> Image {
        let mut image = Image::new(
            name,
            serde_json::from_value(serde_json::json!({
                "cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}
            }))
            .unwrap(),
        );
        image.metadata.namespace = Some(namespace.to_string());
        image
    }

    #[tokio::test]
    async fn a_transfer_end_wakes_the_object_that_waits_on_that_image_once() {
        let wakeups = Wakeups::default();
        let images = objects_of::<Image>(wakeups.subscribe(), None);
        wakeups.wait_for("id-1", Waiter::of(&image("ns", "first")));
        wakeups.wait_for("id-2", Waiter::of(&image("ns", "second")));
        assert!(wakeups.transfer_ended("id-2"));
        assert!(!wakeups.transfer_ended("id-2"), "once");
        assert!(!wakeups.transfer_ended("unknown"));
        assert!(wakeups.transfer_ended("id-1"));
        drop(wakeups);
        let woken: Vec<ObjectRef<Image>> = images.collect().await;
        assert_eq!(
            woken,
            vec![
                ObjectRef::new("second").within("ns"),
                ObjectRef::new("first").within("ns")
            ]
        );
    }

    #[tokio::test]
    async fn each_controller_hears_only_its_own_kind_in_its_own_namespace() {
        let wakeups = Wakeups::default();
        let series = objects_of::<ImageSeries>(wakeups.subscribe(), Some("ns".into()));
        wakeups.wait_for("id-1", Waiter::of(&image("ns", "an-image")));
        wakeups.wait_for(
            "id-3",
            Waiter {
                kind: "ImageSeries".into(),
                namespace: Some("elsewhere".into()),
                name: "not-watched-here".into(),
            },
        );
        wakeups.transfer_ended("id-3");
        wakeups.wait_for(
            "id-2",
            Waiter {
                kind: "ImageSeries".into(),
                namespace: Some("ns".into()),
                name: "a-series".into(),
            },
        );
        wakeups.transfer_ended("id-1");
        wakeups.transfer_ended("id-2");
        drop(wakeups);
        let woken: Vec<ObjectRef<ImageSeries>> = series.collect().await;
        assert_eq!(woken, vec![ObjectRef::new("a-series").within("ns")]);
    }

    #[test]
    fn a_forgotten_image_or_waiter_wakes_nobody_and_leaves_no_entry() {
        let wakeups = Wakeups::default();
        let mut ended = wakeups.subscribe();
        let deleted = Waiter::of(&image("ns", "deleted"));
        wakeups.wait_for("id-1", Waiter::of(&image("ns", "first")));
        wakeups.wait_for("id-2", deleted.clone());
        wakeups.wait_for("id-3", deleted.clone());
        wakeups.forget("id-1");
        wakeups.forget_waiter(&deleted);
        assert!(wakeups.is_empty());
        for id in ["id-1", "id-2", "id-3"] {
            assert!(!wakeups.transfer_ended(id));
        }
        assert!(ended.try_recv().is_err());
    }
}
