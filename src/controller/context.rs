//! [`Context`]: what every reconcile worker shares: the Kubernetes client, the Event recorder,
//! the cloud handles, settings, counters and per-object backoff.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::clouds::{CloudRegistry, HandleSettings};
use super::wakeups::Wakeups;
use crate::crd::Image;
use crate::metrics::Metrics;
use crate::transfer::SourcePolicy;

/// Settings of the reconciler, from `glint run`'s flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often a Ready object is compared with Glance unless its spec says otherwise.
    pub default_resync: Duration,
    /// Transfers running at once per cloud.
    pub transfer_parallelism: usize,
    /// How long Glance may stall an upload before glint retries it.
    pub upload_stall: Duration,
    /// Where sources may be fetched from.
    pub source_policy: Arc<SourcePolicy>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_resync: super::DEFAULT_RESYNC,
            transfer_parallelism: 2,
            upload_stall: crate::glance::DEFAULT_UPLOAD_STALL,
            source_policy: Arc::default(),
        }
    }
}

/// Called at the start of every reconcile pass: the seam tests use to make a pass fail in
/// ways the real parts cannot (a panic).
pub type PassHook = Arc<dyn Fn(&Image) + Send + Sync>;

/// Everything reconcile needs, shared by all workers.
pub struct Context {
    pub client: Client,
    /// Records Warnings, which repeat while a problem lasts: kube's recorder folds a repeat
    /// within 6 minutes into the first Event's series count.
    pub recorder: Recorder,
    /// Who glint is in Events. One-off Normal Events are recorded without the shared
    /// recorder: it keeps every Event it records until a later one prunes it, which after
    /// creating 5,000 Images is 5,000 Events held in memory and scanned on each publish.
    pub reporter: Reporter,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub clouds: CloudRegistry,
    /// Which object waits on which transfer: a transfer's end reconciles it at once.
    pub wakeups: Arc<Wakeups>,
    failures: Mutex<HashMap<String, u32>>,
    /// Ids of images this process created, by object uid, until the object's status shows
    /// them: a pass that runs before the watch delivers that status must not create again.
    created: Mutex<HashMap<String, String>>,
    /// Objects this process has reconciled at least once (the Image driver spreads their first look, `controller::image`).
    seen: Mutex<std::collections::HashSet<String>>,
    jitter: std::collections::hash_map::RandomState,
    pub(super) before_pass: Option<PassHook>,
}

/// Where an Image's targets share their source's download: the conversions' scratch folder
/// and limit (a spill that cannot be written there leaves its target to download alone).
fn shared_downloads(settings: &Settings) -> Option<Arc<crate::transfer::SharedDownloads>> {
    Some(Arc::new(crate::transfer::SharedDownloads::new(
        &settings.source_policy.scratch,
        crate::transfer::shared::LINGER,
    )))
}

/// The longest wait between two attempts after errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Context {
    /// `metrics` is where reconciles and transfers are counted; the controller shares it with
    /// the layer that counts the client's writes.
    pub fn new(
        client: Client,
        reporter: Reporter,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let wakeups = Arc::new(Wakeups::default());
        let ended = wakeups.clone();
        let woke = metrics.transfers.wakeups.clone();
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            reporter,
            clouds: CloudRegistry::new(HandleSettings {
                transfer_parallelism: settings.transfer_parallelism,
                upload_stall: settings.upload_stall,
                source_policy: settings.source_policy.clone(),
                metrics: metrics.transfers.clone(),
                on_end: Some(Arc::new(move |image_id: &str| {
                    if ended.transfer_ended(image_id) {
                        woke.inc();
                    }
                })),
                shared_downloads: shared_downloads(&settings),
            }),
            wakeups,
            settings,
            metrics,
            failures: Mutex::default(),
            created: Mutex::default(),
            seen: Mutex::default(),
            jitter: std::collections::hash_map::RandomState::new(),
            before_pass: None,
        }
    }

    /// Runs `hook` at the start of every pass (tests only: see [`PassHook`]).
    pub fn with_pass_hook(mut self, hook: PassHook) -> Self {
        self.before_pass = Some(hook);
        self
    }

    /// The next backoff for this object, growing with each consecutive failure, with
    /// jitter so that objects failing together do not retry together.
    pub fn backoff(&self, uid: &str) -> Duration {
        let failures = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = failures.entry(uid.to_string()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        let mut hasher = self.jitter.build_hasher();
        hasher.write(uid.as_bytes());
        hasher.write_u32(failures);
        backoff_delay(failures, hasher.finish())
    }

    /// The id this process created for `uid`, while its status may not show it yet.
    pub(super) fn created_id(&self, uid: &str, status_id: Option<&str>) -> Option<String> {
        let mut created = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (created.get(uid), status_id) {
            // Status caught up: forget it.
            (Some(known), Some(shown)) if known == shown => {
                created.remove(uid);
                None
            }
            (known, _) => known.cloned(),
        }
    }

    pub(super) fn remember_created(&self, uid: &str, id: &str) {
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uid.to_string(), id.to_string());
    }

    pub(super) fn forget_object(&self, uid: &str) {
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(uid);
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(uid);
    }

    /// Whether this is the first time this process reconciles `uid` (and marks it seen).
    pub(super) fn first_sight(&self, uid: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uid.to_string())
    }

    /// A random fraction in [0, 1) for `uid`, for spreading work over time.
    pub(super) fn spread(&self, uid: &str) -> f64 {
        let mut hasher = self.jitter.build_hasher();
        hasher.write(uid.as_bytes());
        (hasher.finish() % 10_000) as f64 / 10_000.0
    }

    pub(super) fn succeeded(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(uid);
    }
}

/// The wait after the `failures`-th consecutive failure: 1 s doubling up to [`MAX_BACKOFF`],
/// then scaled into its upper half by `random` (any u64), so waits spread out but never
/// shrink below half the nominal delay.
pub fn backoff_delay(failures: u32, random: u64) -> Duration {
    let exponent = failures.saturating_sub(1).min(9);
    let nominal = Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF);
    // 0..=1000 thousandths of the second half.
    let thousandths = u32::try_from(random % 1001).unwrap_or(1000);
    nominal / 2 + (nominal / 2) * thousandths / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes_with_jitter_in_the_upper_half() {
        let rows = [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (5, 16_000),
            (9, 256_000),
            (10, 300_000),
            (u32::MAX, 300_000),
        ];
        for (failures, nominal_ms) in rows {
            let lowest = backoff_delay(failures, 0).as_millis();
            let highest = backoff_delay(failures, 1000).as_millis();
            assert_eq!(lowest, nominal_ms / 2, "failures={failures}");
            assert_eq!(highest, nominal_ms, "failures={failures}");
            let middle = backoff_delay(failures, 500).as_millis();
            assert!(lowest < middle && middle < highest, "failures={failures}");
        }
    }

    #[test]
    fn objects_failing_together_get_different_waits() {
        let waits: std::collections::BTreeSet<u128> = (0..32)
            .map(|n| {
                let random = std::collections::hash_map::RandomState::new().hash_one(n);
                backoff_delay(6, random).as_millis()
            })
            .collect();
        assert!(waits.len() > 16, "jitter spreads retries: {waits:?}");
    }
}
