//! One download for several targets (`transfer::shared`): transfers of one source into
//! several images, each through its own `TransferManager` as each cloud of an object has one,
//! against the bed's Glance A (the embedded cloud when no bed runs), one project per target.
//! The source is `common::sources::SourceServer`, which counts the GETs it answered; what
//! Glance stored is checked by its sha512.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Route};
use common::sources::{Reply, SourceServer};
use glint::crd::{ImageSource, TransferPhase};
use glint::glance::{ContainerFormat, DiskFormat, GlanceApi, GlanceClient, GlanceStatus, NewImage};
use glint::transfer::convert::ScratchSpace;
use glint::transfer::{SharedDownloads, SourcePolicy, TransferManager, TransferRequest, Transfers};
use sha2::Digest;

const MIB: usize = 1 << 20;

/// One target: a project's Glance client, its transfers and its queued image.
struct Target {
    api: Arc<GlanceClient>,
    transfers: TransferManager<GlanceClient>,
    id: String,
}

impl Target {
    async fn new(api: GlanceClient, shared: &Arc<SharedDownloads>) -> Self {
        let api = Arc::new(api);
        let policy = SourcePolicy {
            allow_loopback: true,
            ..SourcePolicy::default()
        };
        let transfers = TransferManager::new(api.clone(), 2, Arc::new(policy), Default::default())
            .expect("transfer manager")
            .sharing(shared.clone());
        let image = api
            .create_image(&NewImage {
                name: Some(common::unique("shared")),
                disk_format: Some(DiskFormat::from("raw")),
                container_format: Some(ContainerFormat::from("bare")),
                ..NewImage::default()
            })
            .await
            .expect("create the target's image");
        Self {
            api,
            transfers,
            id: image.id,
        }
    }

    fn start(&self, request: &TransferRequest) {
        assert!(
            self.transfers.start(&self.id, request),
            "the transfer starts"
        );
    }

    fn phase(&self) -> Option<TransferPhase> {
        self.transfers.progress(&self.id).map(|status| status.phase)
    }

    /// Waits for the transfer to succeed, starting it again after a failure (as the
    /// reconcile does once the backoff passed).
    async fn finish(&self, request: &TransferRequest, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.phase() {
                Some(TransferPhase::Succeeded) => return,
                Some(TransferPhase::Failed) => {
                    self.transfers.start(&self.id, request);
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the transfer into {} did not finish: {:?}",
                self.id,
                self.transfers.progress(&self.id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn assert_holds(&self, data: &[u8]) {
        let image = self.api.get_image(&self.id).await.expect("read the image");
        assert_eq!(image.status, GlanceStatus::Active, "{}", self.id);
        assert_eq!(image.size, Some(data.len() as u64), "{}: size", self.id);
        assert_eq!(
            image.os_hash_value.as_deref(),
            Some(hex(&sha2::Sha512::digest(data)).as_str()),
            "{}: Glance's sha512 is the source's",
            self.id
        );
    }

    async fn remove(&self) {
        self.transfers.cancel(&self.id);
        let _ = self.api.delete(&self.id).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn shared_downloads(limit_bytes: u64, linger: Duration) -> Arc<SharedDownloads> {
    let scratch = ScratchSpace {
        dir: Some(std::env::temp_dir()),
        limit_bytes,
    };
    Arc::new(SharedDownloads::new(&scratch, linger))
}

fn request(url: &str, key: &str) -> TransferRequest {
    let source: ImageSource =
        serde_json::from_value(serde_json::json!({ "url": url })).expect("a source");
    TransferRequest {
        share: Some(key.to_string()),
        ..TransferRequest::new(source)
    }
}

fn start_all(targets: &[Target], request: &TransferRequest) {
    for target in targets {
        target.start(request);
    }
}

/// Every target's transfer through (retried as the reconcile would), and its bytes in Glance.
async fn finish_all(targets: &[Target], request: &TransferRequest, data: &[u8]) {
    for target in targets {
        target.finish(request, Duration::from_secs(60)).await;
        target.assert_holds(data).await;
    }
}

async fn remove_all(targets: &[Target]) {
    for target in targets {
        target.remove().await;
    }
}

async fn targets(count: usize, shared: &Arc<SharedDownloads>) -> Vec<Target> {
    let bed = glance_under_test!();
    let mut targets = Vec::new();
    for _ in 0..count {
        targets.push(Target::new(bed.admin_of(&common::unique_project()), shared).await);
    }
    targets
}

#[tokio::test]
async fn three_targets_of_one_source_read_one_download_and_each_glance_holds_its_bytes() {
    let shared = shared_downloads(1 << 30, Duration::from_secs(600));
    let data = common::pseudo_random_bytes(6 * MIB + 123, 34);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let request = request(&server.url("/disk.raw"), &common::unique("key"));
    let targets = targets(3, &shared).await;

    start_all(&targets, &request);
    finish_all(&targets, &request, &data).await;

    assert_eq!(server.gets(), 1, "one download for the three targets");
    assert_eq!(shared.downloads_started(), 1);
    assert_eq!(
        shared.bytes_on_disk(),
        data.len() as u64,
        "the finished download is kept for a retry"
    );
    remove_all(&targets).await;
}

#[tokio::test]
async fn a_target_whose_glance_stops_reading_holds_no_other_back_and_its_retry_reads_the_same_download()
 {
    let bed = glance_under_test!();
    let shared = shared_downloads(1 << 30, Duration::from_secs(600));
    let data = common::pseudo_random_bytes(8 * MIB, 35);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let request = request(&server.url("/disk.raw"), &common::unique("key"));
    // The middle target's Glance takes 1 MiB, then nothing; glint gives the upload up after
    // 2 s of that, and the proxy breaks Glance's side at 4 s, before the retry.
    let proxy = FaultProxy::start(&bed.glance_url).await;
    proxy.inject(
        Route::new("PUT", "/v2/images/*/file"),
        Fault::StallBodyAfter(MIB as u64, Duration::from_secs(4)),
        1,
    );
    let stalled = bed
        .admin_of_via(&common::unique_project(), proxy.url())
        .with_upload_stall(Duration::from_secs(2));
    let targets = vec![
        Target::new(bed.admin_of(&common::unique_project()), &shared).await,
        Target::new(stalled, &shared).await,
        Target::new(bed.admin_of(&common::unique_project()), &shared).await,
    ];

    start_all(&targets, &request);
    targets[0].finish(&request, Duration::from_secs(30)).await;
    targets[2].finish(&request, Duration::from_secs(30)).await;
    assert_eq!(
        targets[1].phase(),
        Some(TransferPhase::Running),
        "the others finished while the stalled target's first attempt still waited on its Glance"
    );
    targets[1].finish(&request, Duration::from_secs(60)).await;
    let attempts = targets[1]
        .transfers
        .progress(&targets[1].id)
        .unwrap()
        .attempts;
    assert_eq!(
        attempts, 2,
        "the stalled upload failed once, then went through"
    );

    for target in &targets {
        target.assert_holds(&data).await;
    }
    assert_eq!(
        server.gets(),
        1,
        "the retry read the download the others had finished"
    );
    remove_all(&targets).await;
}

#[tokio::test]
async fn a_download_that_breaks_fails_every_target_and_their_retries_download_once_again() {
    let shared = shared_downloads(1 << 30, Duration::from_secs(600));
    let data = common::pseudo_random_bytes(4 * MIB, 36);
    let answered = Arc::new(AtomicUsize::new(0));
    let server = {
        let (data, answered) = (data.clone(), answered.clone());
        SourceServer::start(move |_| match answered.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::ok(data.clone()).sending_only(MIB),
            _ => Reply::ok(data.clone()),
        })
        .await
    };
    let request = request(&server.url("/disk.raw"), &common::unique("key"));
    let targets = targets(3, &shared).await;

    start_all(&targets, &request);
    for target in &targets {
        target.finish(&request, Duration::from_secs(60)).await;
        let status = target.transfers.progress(&target.id).unwrap();
        assert_eq!(
            status.attempts, 2,
            "every target saw the broken download: {status:?}"
        );
        target.assert_holds(&data).await;
    }
    assert_eq!(server.gets(), 2, "one broken download, one good one");
    remove_all(&targets).await;
}

#[tokio::test]
async fn a_source_larger_than_the_scratch_space_is_downloaded_by_each_target_itself() {
    let data = common::pseudo_random_bytes(3 * MIB, 37);
    let shared = shared_downloads(MIB as u64, Duration::from_secs(600));
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let request = request(&server.url("/disk.raw"), &common::unique("key"));
    let targets = targets(2, &shared).await;

    start_all(&targets, &request);
    finish_all(&targets, &request, &data).await;
    assert_eq!(server.gets(), 2, "no room to share: a download per target");
    assert_eq!(shared.downloads_started(), 0);
    assert_eq!(shared.bytes_on_disk(), 0);
    remove_all(&targets).await;
}

#[tokio::test]
async fn a_cancelled_target_leaves_the_download_to_the_others_and_the_last_reader_lets_it_go() {
    let shared = shared_downloads(1 << 30, Duration::from_millis(200));
    let data = common::pseudo_random_bytes(4 * MIB, 38);
    // 64 KiB every 10 ms: about 0.7 s in all, time to cancel one target on the way.
    let server =
        SourceServer::serving(Reply::ok(data.clone()).slowly(64 * 1024, Duration::from_millis(10)))
            .await;
    let request = request(&server.url("/disk.raw"), &common::unique("key"));
    let targets = targets(2, &shared).await;

    start_all(&targets, &request);
    tokio::time::sleep(Duration::from_millis(150)).await;
    targets[0].transfers.cancel(&targets[0].id);
    targets[1].finish(&request, Duration::from_secs(60)).await;
    targets[1].assert_holds(&data).await;
    // Had the cancel stopped the download, the other target's attempt would have failed and
    // its retry downloaded again.
    assert_eq!(
        server.gets(),
        1,
        "the cancelled target did not stop the download"
    );
    assert_eq!(
        targets[1]
            .transfers
            .progress(&targets[1].id)
            .unwrap()
            .attempts,
        1
    );
    assert_eq!(server.body_bytes_sent(), data.len() as u64);

    // Kept while a retry may want it, then let go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.bytes_on_disk() > 0 {
        assert!(Instant::now() < deadline, "the spill outlived its linger");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    remove_all(&targets).await;
}
