//! `glint plan -f` and `glint apply -f`: Image manifests from files, made true in a cloud chosen
//! the way the openstack CLI chooses one (`--os-cloud`, `OS_CLOUD`, clouds.yaml).
//!
//! Both run the controller's own pass ([`crate::pass`]): observe,
//! plan, act and the transfer engine, with no Kubernetes. An Image's identity is its
//! `namespace/name`: [`identity`] turns it into the uid the controller would take from the
//! object, so the derived id and the ownership mark make a second apply find the same image,
//! and an apply killed after a create adopts the image instead of making another.
//! The manifest's `cloudCredentialsRef` is for the controller; here the cloud comes from the
//! command line.

pub mod destinations;
pub mod manifests;
mod progress;
pub mod prune;
mod report;
pub mod series;
mod standard;
pub mod target;
mod transfers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::crd::{ImageSpec, TransferStatus};
use crate::glance::{GlanceApi, GlanceClient, GlanceImage};
use crate::pass::observe::{ObserveError, Subject, derived_id};
use crate::pass::plan::{self, Desired, Progress};
use crate::pass::{self, PassError};
use crate::reason::Reason;
use crate::transfer::{NoTransfers, SourceAccess, TransferState, Transfers};
use destinations::Destinations;
pub use manifests::{Document, ManifestError, SeriesDocument};
pub use report::Output;
use transfers::cli_policy;
pub use transfers::{CliTransfers, RunTransfers};

/// UUID namespace of the uids that stand in for objects' uids (a fixed random UUID).
const IDENTITY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x3f8e_51c2_7a09_4b6d_b1e4_95d2_0c7a_f318);

/// Transfers an apply runs at once.
const TRANSFERS: usize = 4;

/// How often apply looks at an image whose data is still on its way: soon at first (a small
/// image is done in a moment), then backing off to once a second.
const FIRST_POLL: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_secs(1);

/// The stand-in for an object's uid: the same `namespace/name` always gives the same one.
pub fn identity(key: &str) -> String {
    uuid::Uuid::new_v5(&IDENTITY_NAMESPACE, key.as_bytes()).to_string()
}

/// Why plan or apply failed for one image.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("{reason}: {message}")]
    Blocked { reason: Reason, message: String },
    #[error("cannot start transfers: {0}")]
    Transfers(String),
}

/// What plan found for one document.
pub struct PlannedDocument {
    pub document: Document,
    pub outcome: Result<PlannedImage, ApplyError>,
}

/// The image as Glance has it, and the steps that would make it match the manifest.
pub struct PlannedImage {
    pub current: Option<GlanceImage>,
    pub steps: Vec<plan::Step>,
    pub progress: Progress,
}

/// What the pass is given for a document: the uid standing in for the object's, and the
/// image the manifest declares (marked with its key, which `--prune` recognises later).
///
/// A target of an Image with spec.targets is its own image, `uid/target` as the controller
/// has it, and the targets' transfers share one download of the source.
pub fn pass_inputs(document: &Document) -> (String, Desired) {
    let object = identity(&document.key());
    let uid = match &document.target {
        Some(target) => format!("{object}/{}", target.name),
        None => object.clone(),
    };
    let mut desired = Desired::from_spec(&document.image.spec, &document.name(), &uid);
    desired
        .properties
        .insert(prune::APPLIED_AS_PROPERTY.to_string(), document.key());
    if document.target.is_some() {
        desired.share = document
            .image
            .spec
            .source
            .as_ref()
            .map(|source| format!("{object} {}", source.url));
    }
    (uid, desired)
}

/// The CLI always reads Glance fresh: it has no listing to share and runs once.
pub fn subject_of<'a>(spec: &'a ImageSpec, uid: &'a str, known_id: &'a str) -> Subject<'a> {
    Subject {
        uid,
        spec,
        known_id: Some(known_id),
        fresh: true,
        seen: None,
    }
}

/// Plans every document against `api` without changing anything.
pub async fn plan_all(api: &impl GlanceApi, documents: Vec<Document>) -> Vec<PlannedDocument> {
    let mut planned = Vec::with_capacity(documents.len());
    for document in documents {
        let outcome = plan_one(api, &document).await;
        planned.push(PlannedDocument { document, outcome });
    }
    planned
}

pub(crate) async fn plan_one(
    api: &impl GlanceApi,
    document: &Document,
) -> Result<PlannedImage, ApplyError> {
    let (uid, desired) = pass_inputs(document);
    let first_id = derived_id(&uid, 0);
    // No transfer has run in this process; what Glance holds says the rest.
    let planned = pass::plan(
        api,
        &NoTransfers,
        subject_of(&document.image.spec, &uid, &first_id),
        &desired,
    )
    .await?;
    Ok(PlannedImage {
        current: planned.image().cloned(),
        steps: planned.pass_actions(&desired),
        progress: planned.plan.progress,
    })
}

/// What apply did for one document.
pub struct AppliedDocument {
    pub document: Document,
    pub outcome: Result<AppliedImage, ApplyError>,
}

pub struct AppliedImage {
    pub image: Option<GlanceImage>,
    /// Whether apply changed anything in Glance.
    pub changed: bool,
}

/// Applies every document, one object after the other, each until Glance matches it (its
/// data uploaded) or it cannot go on; the targets of one Image at once, from one download.
/// `progress` hears about running transfers.
pub async fn apply_all(
    destinations: &Destinations,
    transfers: &RunTransfers,
    documents: Vec<Document>,
    progress: &mut dyn FnMut(&Document, Option<&TransferStatus>),
) -> Vec<AppliedDocument> {
    let progress = std::cell::RefCell::new(progress);
    let mut applied = Vec::with_capacity(documents.len());
    let targets_of = |document: &Document| document.target.is_some().then(|| document.key());
    for object in by_object(documents, targets_of) {
        let runs = object.iter().map(|document| {
            let place = destinations::place_of(document.target.as_ref());
            let api = destinations.api_at(&place);
            let transfers = transfers.at(&place);
            let progress = &progress;
            async move {
                let (Some(api), Some(transfers)) = (api, transfers) else {
                    return Err(ApplyError::Transfers(format!(
                        "no cloud to apply {} to",
                        document.label()
                    )));
                };
                let mut report = |document: &Document, status: Option<&TransferStatus>| {
                    (*progress.borrow_mut())(document, status)
                };
                apply_one(api.as_ref(), transfers, document, &mut report).await
            }
        });
        let outcomes = futures::future::join_all(runs).await;
        applied.extend(
            object
                .into_iter()
                .zip(outcomes)
                .map(|(document, outcome)| AppliedDocument { document, outcome }),
        );
    }
    applied
}

/// The documents grouped by object: the documents of one object's targets (those `target_of`
/// gives the object's key) together, in their order; every other document alone.
pub(crate) fn by_object<D>(
    documents: Vec<D>,
    target_of: impl Fn(&D) -> Option<String>,
) -> Vec<Vec<D>> {
    let mut objects: Vec<Vec<D>> = Vec::new();
    for document in documents {
        let key = target_of(&document);
        match objects.last_mut() {
            Some(last) if key.is_some() && last.first().and_then(&target_of) == key => {
                last.push(document)
            }
            _ => objects.push(vec![document]),
        }
    }
    objects
}

async fn apply_one(
    api: &GlanceClient,
    transfers: &CliTransfers,
    document: &Document,
    progress: &mut dyn FnMut(&Document, Option<&TransferStatus>),
) -> Result<AppliedImage, ApplyError> {
    let (uid, desired) = pass_inputs(document);
    let access = image_access(document)
        .map_err(|(reason, message)| ApplyError::Blocked { reason, message })?;
    settle(
        api,
        transfers,
        &uid,
        &document.image.spec,
        &desired,
        &access,
        &mut |status| progress(document, status),
    )
    .await
}

/// What an Image's transfer needs beyond its spec: the keys spec.source.hashFrom.signature
/// trusts. (Source credentials come from Secrets in a cluster; the CLI sends none.)
fn image_access(document: &Document) -> Result<SourceAccess, (crate::reason::Reason, String)> {
    let source = document.image.spec.source.as_ref();
    let Some(signature) = source.and_then(crate::crd::ImageSource::hash_signature) else {
        return Ok(SourceAccess::default());
    };
    let keys = series::cli_trusted_keys(
        &document.namespace,
        document.trusted_keys.as_deref(),
        &signature.keys,
        ("spec.source.hashFrom.signature.keys", "Image"),
    )?;
    Ok(SourceAccess {
        trusted_keys: Some(Arc::new(keys)),
        ..SourceAccess::default()
    })
}

/// Runs the pass for one object until Glance matches `desired` (its data uploaded) or it
/// cannot go on: `glint apply` for an Image, and for each version of an ImageSeries.
async fn settle(
    api: &GlanceClient,
    transfers: &CliTransfers,
    uid: &str,
    spec: &ImageSpec,
    desired: &Desired,
    access: &SourceAccess,
    progress: &mut dyn FnMut(Option<&TransferStatus>),
) -> Result<AppliedImage, ApplyError> {
    let mut known_id = derived_id(uid, 0);
    let mut changed = false;
    let mut wait = FIRST_POLL;
    let mut failing = Failing::new(transfers.retry_for);
    loop {
        let subject = subject_of(spec, uid, &known_id);
        let result = match pass::sync(api, &transfers.manager, subject, desired, access).await {
            Ok(result) => result,
            Err(err) if err.is_transient() => {
                let message = err.to_string();
                if let Some(message) = failing.again(&message) {
                    let reason = err.reason();
                    return Err(ApplyError::Blocked { reason, message });
                }
                tracing::info!(error = %message, "retrying after a failure that may pass");
                failing.pause().await;
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        changed |= !result.effects.is_empty();
        if let Some(image) = &result.image {
            known_id = image.id.clone();
        }
        match result.progress {
            Progress::InSync => {
                // The pass's image is Glance's view after everything: read after the
                // transfer's end (the pass that finds it in sync runs after that end), or the
                // answer to this pass's own create or patch. Another read would only cost time.
                return Ok(AppliedImage {
                    image: result.image,
                    changed,
                });
            }
            Progress::Blocked { reason, message } => {
                return Err(ApplyError::Blocked { reason, message });
            }
            Progress::Working { .. }
                if transfers.manager.state(&known_id) == TransferState::Running =>
            {
                failing.passed();
                // Glance has nothing new to say about an image whose data is still on its way
                // from this process, and every look costs the Glance that is busy taking it:
                // the progress comes from the transfer, and its end brings the next pass.
                await_transfer_end(transfers, &known_id, progress).await;
                wait = FIRST_POLL;
            }
            Progress::Working { reason, message } => {
                // A transfer that failed and will be retried: not for longer than retry_for.
                if matches!(
                    transfers.manager.state(&known_id),
                    TransferState::Failed { retry: true, .. }
                ) {
                    if let Some(message) = failing.again(&message) {
                        return Err(ApplyError::Blocked { reason, message });
                    }
                    // Nothing changes before the next attempt may start: no pass till then.
                    if let Some(at) = transfers.manager.retry_at(&known_id) {
                        tokio::time::sleep_until(at.into()).await;
                        continue;
                    }
                }
                // Work that is not a transfer of glint's (such as Glance's import): polled,
                // soon at first; a transfer's end cuts the wait short.
                tokio::select! {
                    () = transfers.ended.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(POLL);
            }
        }
    }
}

/// A streak of failures that may pass, and the point where apply stops waiting for it to.
struct Failing {
    retry_for: Duration,
    since: Option<std::time::Instant>,
    backoff: Duration,
}

impl Failing {
    fn new(retry_for: Duration) -> Self {
        Self {
            retry_for,
            since: None,
            backoff: FIRST_POLL,
        }
    }

    /// Records another failure of the streak; past `retry_for`, the words to give up with.
    fn again(&mut self, message: &str) -> Option<String> {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        (since.elapsed() >= self.retry_for).then(|| {
            format!(
                "{message} (gave up after retrying for {} s; --retry-for sets how long)",
                self.retry_for.as_secs()
            )
        })
    }

    /// The streak ended: the next failure starts a new one.
    fn passed(&mut self) {
        self.since = None;
        self.backoff = FIRST_POLL;
    }

    /// Waits before the next try: doubling from 100 ms to 30 s.
    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
    }
}

/// Shows the progress of the transfer into `id` once a second until it is no longer running.
async fn await_transfer_end(
    transfers: &CliTransfers,
    id: &str,
    progress: &mut dyn FnMut(Option<&TransferStatus>),
) {
    let manager = &transfers.manager;
    while manager.state(id) == TransferState::Running {
        progress(manager.progress(id).as_ref());
        // The end's permit outlives a wait that started late; another transfer's end only
        // brings the state check forward.
        tokio::select! {
            () = transfers.ended.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Exit codes of `glint plan`: nothing to change, an error, changes to make.
pub const EXIT_NO_CHANGES: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;

/// The manifests and the clouds they go to, or `None` once the reason is printed.
async fn prepare(
    cloud: Option<&str>,
    data_dir: Option<&Path>,
    paths: &[PathBuf],
    prune: bool,
) -> Option<(manifests::Manifests, Destinations)> {
    let manifests = manifests::read(paths)
        .map_err(|err| eprintln!("glint: {err}"))
        .ok()?;
    for other in &manifests.skipped {
        eprintln!("glint: skipping {other} (not an Image or ImageSeries)");
    }
    let need_main = prune
        || manifests.series.iter().any(|doc| doc.target.is_none())
        || manifests.images.iter().any(|doc| doc.target.is_none());
    let places = manifests
        .images
        .iter()
        .map(|doc| doc.target.as_ref())
        .chain(manifests.series.iter().map(|doc| doc.target.as_ref()))
        .filter_map(destinations::place_of)
        .collect();
    let destinations = Destinations::connect(cloud, data_dir, places, need_main)
        .await
        .map_err(|err| eprintln!("glint: {err}"))
        .ok()?;
    Some((manifests, destinations))
}

/// The images `--prune` would delete (none without it), or `None` once the error is printed.
async fn orphans_if(
    prune: bool,
    api: Option<&Arc<GlanceClient>>,
    documents: &[Document],
) -> Option<Vec<prune::Orphan>> {
    let Some(api) = api.filter(|_| prune) else {
        return Some(Vec::new());
    };
    prune::orphans(api.as_ref(), documents)
        .await
        .map_err(|err| eprintln!("glint: cannot list images to prune: {err}"))
        .ok()
}

/// `glint plan -f PATH...`: prints what apply would do; the exit code says whether it would.
/// With `prune`, images an earlier apply created whose manifests are gone count too.
pub async fn plan_command(
    cloud: Option<&str>,
    data_dir: Option<&Path>,
    paths: &[PathBuf],
    output: Output,
    prune: bool,
) -> u8 {
    let Some((manifests, destinations)) = prepare(cloud, data_dir, paths, prune).await else {
        return EXIT_ERROR;
    };
    let Some(orphans) = orphans_if(prune, destinations.main(), &manifests.images).await else {
        return EXIT_ERROR;
    };
    let mut planned = Vec::with_capacity(manifests.images.len());
    for document in manifests.images {
        let outcome = match destinations.api_for(&document) {
            Some(api) => plan_one(api.as_ref(), &document).await,
            None => Err(ApplyError::Transfers(format!(
                "no cloud to plan {} against",
                document.label()
            ))),
        };
        planned.push(PlannedDocument { document, outcome });
    }
    let (image_changes, image_errors) = if planned.is_empty() && orphans.is_empty() {
        (0, 0)
    } else {
        report::print_plan(&planned, &orphans, output)
    };
    let (series_changes, series_errors) =
        series::print_plan(&destinations, &cli_policy(), &manifests.series).await;
    match (image_changes + series_changes, image_errors + series_errors) {
        (_, errors) if errors > 0 => EXIT_ERROR,
        (0, _) => EXIT_NO_CHANGES,
        _ => EXIT_CHANGES,
    }
}

/// `glint apply -f PATH...`: makes the cloud match the manifests, then prints a table.
pub async fn apply_command(
    cloud: Option<&str>,
    data_dir: Option<&Path>,
    paths: &[PathBuf],
    prune: bool,
    retry_for: Duration,
) -> u8 {
    // The embedded cloud, if that is the cloud, serves while `destinations` lives.
    let Some((manifests, destinations)) = prepare(cloud, data_dir, paths, prune).await else {
        return EXIT_ERROR;
    };
    let documents = manifests.images;
    let mut display = progress::TransferDisplay::new();
    let mut progress = |document: &Document, status: Option<&crate::crd::TransferStatus>| {
        if let Some(status) = status {
            display.update(&document.label(), status);
        }
    };
    // Orphans are found before anything is created, so a failed apply prunes nothing new.
    let Some(orphans) = orphans_if(prune, destinations.main(), &documents).await else {
        return EXIT_ERROR;
    };
    let transfers = match RunTransfers::start(&destinations, retry_for) {
        Ok(transfers) => transfers,
        Err(err) => {
            eprintln!("glint: cannot start transfers: {err}");
            return EXIT_ERROR;
        }
    };
    let applied = apply_all(&destinations, &transfers, documents, &mut progress).await;
    display.finish();
    let mut pruned = Vec::with_capacity(orphans.len());
    if let Some(api) = destinations.main() {
        for orphan in orphans {
            let outcome = prune::delete(api.as_ref(), &orphan).await;
            pruned.push((orphan, outcome));
        }
    }
    let (_, image_errors) = if applied.is_empty() && pruned.is_empty() {
        (0, 0)
    } else {
        report::print_applied(&applied, &pruned)
    };
    let applied =
        series::apply_all(&destinations, &transfers, &cli_policy(), manifests.series).await;
    let series_errors = series::print_applied(&applied);
    if image_errors + series_errors > 0 {
        EXIT_ERROR
    } else {
        EXIT_NO_CHANGES
    }
}
