//! Where users stop their clock: a watch on the objects' status, as `kubectl wait
//! --for=condition=Ready` and Argo CD's health checks see it, not glint's log nor Glance's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

/// What state of an object the clock waits for, as a key (the object's name, or its name and
/// the version that became current); `None` while it is not there.
pub type Reached = fn(&DynamicObject) -> Option<String>;

/// When each key was first seen reached.
pub struct StatusWatch {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

fn condition_true(status: &Value, kind: &str) -> bool {
    status["conditions"].as_array().is_some_and(|conditions| {
        conditions
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// An Image is done for its user when Ready is True for its current spec and its Glance
/// image is active.
pub fn image_ready(image: &DynamicObject) -> Option<String> {
    let status = &image.data["status"];
    let current = status["observedGeneration"].as_i64() == image.metadata.generation;
    (current && condition_true(status, "Ready") && status["glance"]["status"] == "active")
        .then(|| image.metadata.name.clone().unwrap_or_default())
}

/// An ImageSeries is done when a version is current and Ready is True: keyed `NAME@VERSION`.
pub fn series_current(series: &DynamicObject) -> Option<String> {
    let status = &series.data["status"];
    let current = status["current"].as_str()?;
    let fresh = status["observedGeneration"].as_i64() == series.metadata.generation;
    (fresh && condition_true(status, "Ready")).then(|| {
        format!(
            "{}@{current}",
            series.metadata.name.clone().unwrap_or_default()
        )
    })
}

impl StatusWatch {
    pub fn start(api: Api<DynamicObject>, reached: Reached) -> Self {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
            );
            while let Some(event) = events.next().await {
                let Ok(object) = event else { continue };
                if let Some(key) = reached(&object) {
                    let at = Instant::now();
                    record
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .entry(key)
                        .or_insert(at);
                }
            }
        });
        Self { seen, task }
    }

    /// Forgets `key`, before an object of the same name or version is measured again.
    pub fn forget(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }

    /// When `key` was first reached, waiting for it up to `timeout`.
    pub async fn wait(&self, key: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self
                .seen
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(key)
            {
                return Ok(*at);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{key} did not reach its state within {} s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
