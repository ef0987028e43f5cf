//! The transfer engine through glint's real reconcile against the bed's Keystone + Glance (B),
//! or the embedded cloud when no bed runs:
//! every decoder and auto-detection end in an active image holding the unpacked bytes; corrupt
//! archives, short and stalled downloads, error statuses and wrong hashes fail with their own
//! reason and never turn an image active; webDownload and glanceDirect reach Glance by their
//! own routes; source credentials are sent; deleting an Image stops its transfer.
//!
//! Sources are served by `common::sources::SourceServer` on 127.0.0.1, which the harness's
//! source policy allows.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use common::harness::*;
use common::sources::{Reply, SourceServer};
use glint::crd::{Image, TransferPhase, TransferStatus};
use glint::glance::{GlanceApi, GlanceClient, GlanceStatus};
use serde_json::{Value, json};
use sha2::Digest;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `algorithm` (md5, sha1, sha256, sha512) of `data`, as lowercase hex.
fn digest(algorithm: &str, data: &[u8]) -> String {
    match algorithm {
        "md5" => hex(&md5::Md5::digest(data)),
        "sha1" => sha1_smol::Sha1::from(data).digest().to_string(),
        "sha256" => hex(&sha2::Sha256::digest(data)),
        "sha512" => hex(&sha2::Sha512::digest(data)),
        other => panic!("no such algorithm {other}"),
    }
}

/// About 1.6 MiB, several of the pipeline's chunks (512 KiB), that compresses partly:
/// random bytes, a repeated text, random bytes again. Raw, so Glance takes any bytes.
fn image_data(seed: u64) -> Vec<u8> {
    let mut data = common::pseudo_random_bytes(700 * 1024 + 123, seed);
    data.extend(b"glint streams this into Glance. ".repeat(16 * 1024));
    data.extend(common::pseudo_random_bytes(400 * 1024 + 45, seed + 1));
    data
}

/// `data` packed as `format` (gzip, xz, bzip2, zstd; plain leaves it) with the crates glint
/// unpacks with.
fn pack(format: &str, data: &[u8]) -> Vec<u8> {
    match format {
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("gzip");
            encoder.finish().expect("gzip")
        }
        "xz" => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(data).expect("xz");
            encoder.finish().expect("xz")
        }
        "bzip2" => {
            let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            encoder.write_all(data).expect("bzip2");
            encoder.finish().expect("bzip2")
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        "plain" => data.to_vec(),
        other => panic!("no such format {other}"),
    }
}

fn transfer(object: &Image) -> TransferStatus {
    object
        .status
        .as_ref()
        .and_then(|status| status.transfer.clone())
        .unwrap_or_else(|| panic!("no status.transfer in {:?}", object.status))
}

fn has_transfer(object: Option<&Image>, check: impl Fn(&TransferStatus) -> bool) -> bool {
    object
        .and_then(|o| o.status.as_ref()?.transfer.as_ref())
        .is_some_and(check)
}

/// The first attempt has failed (and no other has started yet).
fn first_attempt_failed(object: Option<&Image>) -> bool {
    has_transfer(object, |t| {
        t.attempts == 1 && t.phase == TransferPhase::Failed
    })
}

/// Ready, and the transfer has recorded its success. Glance turns the image active before the
/// transfer has checked Glance's checksums (and recorded its progress), and Ready follows
/// Glance's status, so Ready alone can come a moment before that.
fn transferred(object: Option<&Image>) -> bool {
    ready(object) && has_transfer(object, |t| t.phase == TransferPhase::Succeeded)
}

fn is_stalled(object: &Image) -> bool {
    condition(Some(object), "Stalled").is_some_and(|(status, _)| status == "True")
}

/// Glance holds exactly `data`: active, its size, md5 and sha512.
fn assert_holds(image: &glint::glance::GlanceImage, data: &[u8], what: &str) {
    assert_eq!(image.status, GlanceStatus::Active, "{what}");
    assert_eq!(image.size, Some(data.len() as u64), "{what}: size");
    assert_eq!(
        image.checksum.as_deref(),
        Some(digest("md5", data).as_str()),
        "{what}: Glance's md5 is the unpacked data's"
    );
    assert_eq!(image.os_hash_algo.as_deref(), Some("sha512"), "{what}");
    assert_eq!(
        image.os_hash_value.as_deref(),
        Some(digest("sha512", data).as_str()),
        "{what}: Glance's sha512 is the unpacked data's"
    );
}

/// The image is (back to) queued; it must never be seen active on the way.
async fn assert_stays_queued(api: &GlanceClient, id: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let image = api.get_image(id).await.expect("get image");
        assert_ne!(
            image.status,
            GlanceStatus::Active,
            "{what}: bad data turned the image active"
        );
        if image.status == GlanceStatus::Queued {
            assert_eq!(image.checksum, None, "{what}: no data was kept");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: image stayed {} instead of going back to queued",
            image.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn clean_up(api: &GlanceClient, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        api.delete_if_exists(&id).await.expect("clean up");
    }
}

/// Applies an Image whose source is `source`, and returns its name.
fn apply_source(h: &Harness, prefix: &str, source: Value) -> String {
    let name = common::unique(prefix);
    h.apply(&name, json!({ "source": source }));
    name
}

// ---------------------------------------------------------------------------------------------
// Unpacking

/// `format` served packed, unpacked as `decompress` says (None: the default, auto), with the
/// packed file's `algorithm` hash in the spec: Glance ends up with the unpacked bytes.
async fn unpacked_into_glance(format: &str, decompress: Option<&str>, algorithm: &str, seed: u64) {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let data = image_data(seed);
    let packed = pack(format, &data);
    assert_ne!(packed.len(), data.len(), "{format} packs");
    let server = SourceServer::serving(Reply::ok(packed.clone())).await;
    let mut source = json!({
        "url": server.url(&format!("/image.raw.{format}")),
        "hash": {"algorithm": algorithm, "value": digest(algorithm, &packed)},
    });
    if let Some(decompress) = decompress {
        source["decompress"] = json!(decompress);
    }
    let name = apply_source(&h, format, source);
    let done = h.settle(&name, transferred).await.expect("object");
    let api = h.glance();
    let id = status_id(&done);
    let image = api.get_image(&id).await.expect("image");
    assert_holds(&image, &data, format);
    let progress = transfer(&done);
    assert_eq!(progress.phase, TransferPhase::Succeeded);
    assert_eq!(
        progress.bytes_done,
        packed.len() as u64,
        "{format}: bytesDone counts the bytes as downloaded"
    );
    assert_eq!(progress.attempts, 1);
    assert_eq!(server.gets(), 1, "{format}: downloaded once");
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_source_becomes_an_active_image_of_the_uncompressed_bytes() {
    unpacked_into_glance("gzip", Some("gzip"), "md5", 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xz_source_becomes_an_active_image_of_the_uncompressed_bytes() {
    unpacked_into_glance("xz", Some("xz"), "sha1", 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bzip2_source_becomes_an_active_image_of_the_uncompressed_bytes() {
    unpacked_into_glance("bzip2", Some("bzip2"), "sha256", 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_source_becomes_an_active_image_of_the_uncompressed_bytes() {
    unpacked_into_glance("zstd", Some("zstd"), "sha512", 14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_detection_unpacks_every_format_by_its_magic_bytes_and_passes_plain_data_through() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let api = h.glance();
    let mut cases = Vec::new();
    for (seed, format) in (21..).zip(["gzip", "xz", "bzip2", "zstd", "plain"]) {
        let data = image_data(seed);
        let server = SourceServer::serving(Reply::ok(pack(format, &data))).await;
        // A name without a hint: only the bytes tell the format.
        let name = apply_source(&h, "auto", json!({"url": server.url("/image")}));
        cases.push((format, data, server, name));
    }
    let mut ids = Vec::new();
    for (format, data, _server, name) in &cases {
        let done = h.settle(name, transferred).await.expect("object");
        let id = status_id(&done);
        let image = api.get_image(&id).await.expect("image");
        assert_holds(&image, data, &format!("{format} by auto-detection"));
        ids.push(id);
    }
    clean_up(&api, ids).await;
}

// ---------------------------------------------------------------------------------------------
// Bad archives

/// A broken archive stalls with CorruptArchive, its message leading with the cause, and the
/// image stays queued although Glance had received data.
async fn broken_archive_stalls(format: &str, packed: Vec<u8>) {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let server = SourceServer::serving(Reply::ok(packed)).await;
    let name = apply_source(&h, format, json!({"url": server.url("/image.raw")}));
    let stalled = h
        .settle(&name, stalled_with("CorruptArchive"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    eprintln!("{format}: Stalled CorruptArchive: {message}");
    let cause = format!(
        "the transfer cannot succeed as specified: the {format} archive is corrupt or truncated: "
    );
    assert!(message.starts_with(&cause), "{message}");
    assert!(message.len() > cause.len(), "the decoder's detail follows");
    let progress = transfer(&stalled);
    assert_eq!(progress.phase, TransferPhase::Failed);
    assert_eq!(progress.attempts, 1, "bad data is not retried");
    let api = h.glance();
    let id = status_id(&stalled);
    assert_stays_queued(&api, &id, format).await;
    assert_eq!(server.gets(), 1, "not downloaded again");
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_gzip_stalls_with_corrupt_archive_and_the_image_stays_queued() {
    let mut packed = pack("gzip", &image_data(31));
    // Past the first MiB of unpacked data, so Glance has received some before the damage.
    let at = packed.len() * 4 / 5;
    for byte in &mut packed[at..at + 64] {
        *byte ^= 0x5a;
    }
    broken_archive_stalls("gzip", packed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_xz_stalls_with_corrupt_archive_and_the_image_stays_queued() {
    let mut packed = pack("xz", &image_data(32));
    packed.truncate(packed.len() * 4 / 5);
    broken_archive_stalls("xz", packed).await;
}

// ---------------------------------------------------------------------------------------------
// Sources that fail

/// Reconciles until the first attempt failed, checks it was SourceUnavailable and is being
/// retried, then waits for the second attempt. Returns the first attempt's error.
async fn retried_as_source_unavailable(h: &Harness, name: &str, server: &SourceServer) -> String {
    let failed = h.settle(name, first_attempt_failed).await.expect("object");
    let error = transfer(&failed).last_error.expect("lastError");
    assert!(
        h.double
            .event_reasons()
            .contains(&"SourceUnavailable".to_string()),
        "a Warning with the reason: {:?}",
        h.double.event_reasons()
    );
    assert!(!is_stalled(&failed), "retried, not stalled: {error}");
    assert_eq!(
        condition(Some(&failed), "Reconciling").map(|(status, _)| status),
        Some("True".to_string()),
        "still working on it"
    );
    let again = h
        .settle(name, |object| has_transfer(object, |t| t.attempts >= 2))
        .await
        .expect("object");
    assert!(!is_stalled(&again));
    // The attempt counts from its start; the request follows a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.gets() < 2 {
        assert!(Instant::now() < deadline, "the source was not asked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_sends_less_than_its_content_length_is_retried_and_never_activates_the_image()
{
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let data = image_data(41);
    let server =
        SourceServer::serving(Reply::ok(data.clone()).announcing(data.len() as u64 + 65536)).await;
    let name = apply_source(&h, "short", json!({"url": server.url("/image.raw")}));
    let error = retried_as_source_unavailable(&h, &name, &server).await;
    eprintln!("short source: lastError: {error}");
    assert!(error.starts_with("the download broke off: "), "{error}");
    assert!(
        error.contains("end of file before message length reached"),
        "the message says the source closed early: {error}"
    );
    let api = h.glance();
    let id = status_id(&h.object(&name).expect("object"));
    assert_stays_queued(&api, &id, "short").await;
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_answering_404_stalls_as_source_unavailable_and_is_not_asked_again() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let server = SourceServer::serving(Reply::status(404)).await;
    let url = server.url("/gone.raw");
    let name = apply_source(&h, "notfound", json!({"url": url}));
    let stalled = h
        .settle(&name, stalled_with("SourceUnavailable"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    eprintln!("404: Stalled SourceUnavailable: {message}");
    assert!(
        message.contains(&format!("{url} answered 404 Not Found (will not retry)")),
        "{message}"
    );
    // Past the first retry's backoff (5 s), nothing asks the source again.
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        h.reconcile_once(&name).await.expect("reconcile");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(server.gets(), 1, "a 404 is final");
    let after = h.object(&name).expect("object");
    assert_eq!(transfer(&after).attempts, 1);
    assert!(stalled_with("SourceUnavailable")(Some(&after)));
    let api = h.glance();
    let id = status_id(&after);
    assert_stays_queued(&api, &id, "404").await;
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_answering_500_is_retried_as_source_unavailable() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let server = SourceServer::serving(Reply::status(500)).await;
    let url = server.url("/flaky.raw");
    let name = apply_source(&h, "flaky", json!({"url": url}));
    let error = retried_as_source_unavailable(&h, &name, &server).await;
    eprintln!("500: lastError: {error}");
    assert_eq!(
        error,
        format!("{url} answered 500 Internal Server Error (will retry)")
    );
    let api = h.glance();
    let id = status_id(&h.object(&name).expect("object"));
    assert_stays_queued(&api, &id, "500").await;
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stalls_past_the_idle_timeout_fails_as_source_unavailable() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let data = image_data(43);
    // Headers and 4 KiB, then silence far longer than the Image's idle timeout.
    let server = SourceServer::serving(
        Reply::ok(data)
            .sending_only(4096)
            .then_hanging(Duration::from_secs(60)),
    )
    .await;
    let started = Instant::now();
    let name = apply_source(
        &h,
        "stalling",
        json!({"url": server.url("/stuck.raw"), "idleTimeout": "2s"}),
    );
    let failed = h.settle(&name, first_attempt_failed).await.expect("object");
    let waited = started.elapsed();
    let progress = transfer(&failed);
    let error = progress.last_error.clone().expect("lastError");
    eprintln!("idle timeout: lastError after {waited:?}: {error}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(20),
        "spec.source.idleTimeout (2s) applies, not the 5 min default: {waited:?}"
    );
    assert!(error.starts_with("the download broke off: "), "{error}");
    assert!(
        error.contains("timed out"),
        "the message says the source went silent: {error}"
    );
    assert_eq!(progress.bytes_done, 4096, "what arrived before the silence");
    assert!(
        h.double
            .event_reasons()
            .contains(&"SourceUnavailable".to_string())
    );
    assert!(!is_stalled(&failed), "a stall may pass: retried");
    assert!(server.cut_off() >= 1, "glint hung up on the silent source");
    let api = h.glance();
    let id = status_id(&failed);
    assert_stays_queued(&api, &id, "idle").await;
    clean_up(&api, [id]).await;
}

// ---------------------------------------------------------------------------------------------
// Hashes

/// A wrong `algorithm` hash stalls with HashMismatch naming the algorithm, the expected and the
/// actual value; the image stays queued.
async fn hash_mismatch_stalls(algorithm: &str, seed: u64) {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let data = image_data(seed);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let expected = digest(algorithm, b"some other image");
    let actual = digest(algorithm, &data);
    let name = apply_source(
        &h,
        algorithm,
        json!({"url": server.url("/image.raw"), "hash": {"algorithm": algorithm, "value": expected}}),
    );
    let stalled = h
        .settle(&name, stalled_with("HashMismatch"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    eprintln!("{algorithm}: Stalled HashMismatch: {message}");
    assert_eq!(
        message,
        format!(
            "the transfer cannot succeed as specified: the source's {algorithm} is {actual}, but spec.source.hash says {expected}"
        )
    );
    assert_eq!(
        transfer(&stalled).attempts,
        1,
        "a wrong hash is not retried"
    );
    let api = h.glance();
    let id = status_id(&stalled);
    assert_stays_queued(&api, &id, algorithm).await;
    clean_up(&api, [id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_md5_stalls_with_hash_mismatch_and_the_image_stays_queued() {
    hash_mismatch_stalls("md5", 51).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha1_stalls_with_hash_mismatch_and_the_image_stays_queued() {
    hash_mismatch_stalls("sha1", 52).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha256_stalls_with_hash_mismatch_and_the_image_stays_queued() {
    hash_mismatch_stalls("sha256", 53).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha512_stalls_with_hash_mismatch_and_the_image_stays_queued() {
    hash_mismatch_stalls("sha512", 54).await;
}

// ---------------------------------------------------------------------------------------------
// Routes into Glance

/// All web-download cases in one test: only one server at a time can hold the port Glance's
/// web-download may fetch from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_download_makes_glance_fetch_the_file_and_a_failed_import_stalls_with_glances_words() {
    let bed = glance_under_test!();
    let port = bed.webdl_port;
    let h = Harness::new(bed);
    let api = h.glance();
    let data = common::pseudo_random_bytes(300 * 1024 + 7, 61);
    let served = data.clone();
    let server = SourceServer::start_on(port, move |request| {
        if request.path == "/image.raw" {
            Reply::ok(served.clone())
        } else {
            Reply::status(404)
        }
    })
    .await;
    let mut ids = Vec::new();

    // Glance fetches the file itself and computes the sha512 glint then checks.
    let name = apply_source(
        &h,
        "webdl",
        json!({"url": server.url("/image.raw"), "method": "webDownload",
               "hash": {"algorithm": "sha512", "value": digest("sha512", &data)}}),
    );
    let done = h.settle(&name, transferred).await.expect("object");
    let id = status_id(&done);
    assert_holds(
        &api.get_image(&id).await.expect("image"),
        &data,
        "web-download",
    );
    assert_eq!(transfer(&done).bytes_done, data.len() as u64);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/image.raw"),
        "Glance fetched the file: {:?}",
        server.requests()
    );
    ids.push(id);

    // A file that is not there: Glance's import task fails and says why.
    let name = apply_source(
        &h,
        "webdl404",
        json!({"url": server.url("/missing.raw"), "method": "webDownload"}),
    );
    let stalled = h
        .settle(&name, stalled_with("ImportFailed"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    eprintln!("web-download of a missing file: Stalled ImportFailed: {message}");
    let id = status_id(&stalled);
    let tasks = api.image_tasks(&id).await.expect("tasks");
    let task = tasks
        .iter()
        .find(|task| task.status == "failure")
        .unwrap_or_else(|| panic!("a failed task: {tasks:?}"));
    assert!(!task.message.trim().is_empty(), "{tasks:?}");
    assert_eq!(
        message,
        format!(
            "the transfer cannot succeed as specified: Glance's import failed: {}",
            task.message.trim()
        )
    );
    assert_stays_queued(&api, &id, "web-download of a missing file").await;
    ids.push(id);

    // The right file with a wrong sha512: Glance stores it, glint deactivates it.
    let wrong = digest("sha512", b"some other image");
    let name = apply_source(
        &h,
        "webdlhash",
        json!({"url": server.url("/image.raw"), "method": "webDownload",
               "hash": {"algorithm": "sha512", "value": wrong}}),
    );
    let stalled = h
        .settle(&name, stalled_with("HashMismatch"))
        .await
        .expect("object");
    let message = condition_message(&stalled, "Stalled");
    eprintln!("web-download with a wrong sha512: Stalled HashMismatch: {message}");
    assert!(
        message.contains(&format!(
            "the source's sha512 is {}, but spec.source.hash says {wrong}",
            digest("sha512", &data)
        )),
        "{message}"
    );
    let id = status_id(&stalled);
    assert_eq!(
        api.get_image(&id).await.expect("image").status,
        GlanceStatus::Deactivated,
        "the wrong bytes cannot be booted"
    );
    ids.push(id);
    clean_up(&api, ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glance_direct_stages_the_unpacked_data_and_glances_import_makes_it_active() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let data = image_data(71);
    let server = SourceServer::serving(Reply::ok(pack("gzip", &data))).await;
    let name = apply_source(
        &h,
        "direct",
        json!({"url": server.url("/image.raw.gz"), "method": "glanceDirect"}),
    );
    let done = h.settle(&name, transferred).await.expect("object");
    let api = h.glance();
    let id = status_id(&done);
    assert_holds(
        &api.get_image(&id).await.expect("image"),
        &data,
        "glance-direct",
    );
    let tasks = api.image_tasks(&id).await.expect("tasks");
    assert!(
        tasks
            .iter()
            .any(|task| task.task_type == "api_image_import" && task.status == "success"),
        "the data went through Glance's import, not an upload: {tasks:?}"
    );
    clean_up(&api, [id]).await;
}

// ---------------------------------------------------------------------------------------------
// Source credentials

fn put_source_secret(h: &Harness, name: &str, data: &[(&str, &str)]) {
    let encoded: serde_json::Map<String, Value> = data
        .iter()
        .map(|(key, value)| {
            (
                key.to_string(),
                json!(base64::engine::general_purpose::STANDARD.encode(value)),
            )
        })
        .collect();
    h.double.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": encoded}),
    );
}

/// A source that answers 401 unless the request carries `expected` as its Authorization.
async fn guarded_source(expected: String, body: Vec<u8>) -> SourceServer {
    SourceServer::start(move |request| {
        if request.authorization.as_deref() == Some(expected.as_str()) {
            Reply::ok(body.clone())
        } else {
            Reply::status(401)
        }
    })
    .await
}

/// `rejected` stalls with SourceUnavailable on the 401, never showing `secret`.
fn assert_refused_with_401(object: &Image, url: &str, secret: &str) {
    assert!(stalled_with("SourceUnavailable")(Some(object)));
    let message = condition_message(object, "Stalled");
    eprintln!("401: Stalled SourceUnavailable: {message}");
    assert!(
        message.contains(&format!("{url} answered 401 Unauthorized (will not retry)")),
        "{message}"
    );
    assert!(!message.contains(secret), "no credential in status");
    assert_eq!(transfer(object).attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_header_from_the_source_secret_is_sent_and_a_wrong_one_stalls_on_401() {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let token = "Bearer glint-test-7f3a9c";
    let data = image_data(81);
    let server = guarded_source(token.to_string(), data.clone()).await;
    let url = server.url("/private.raw");
    put_source_secret(&h, "token-right", &[("authorization", token)]);
    put_source_secret(
        &h,
        "token-wrong",
        &[("authorization", "Bearer expired-0000")],
    );
    let right = apply_source(
        &h,
        "bearer",
        json!({"url": url, "secretRef": {"name": "token-right"}}),
    );
    let wrong = apply_source(
        &h,
        "bearer-wrong",
        json!({"url": url, "secretRef": {"name": "token-wrong"}}),
    );
    let api = h.glance();
    let done = h.settle(&right, transferred).await.expect("object");
    let ok_id = status_id(&done);
    assert_holds(
        &api.get_image(&ok_id).await.expect("image"),
        &data,
        "bearer",
    );
    let refused = h
        .settle(&wrong, stalled_with("SourceUnavailable"))
        .await
        .expect("object");
    assert_refused_with_401(&refused, &url, "expired-0000");
    let seen: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert!(seen.contains(&Some(token.to_string())), "{seen:?}");
    assert!(seen.contains(&Some("Bearer expired-0000".to_string())));
    let wrong_id = status_id(&refused);
    assert_stays_queued(&api, &wrong_id, "wrong token").await;
    clean_up(&api, [ok_id, wrong_id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_from_the_source_secret_are_sent_and_wrong_or_missing_ones_stall_on_401()
{
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let (user, password) = ("mirror-reader", "pa55:w0rd");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let data = image_data(82);
    let server = guarded_source(expected.clone(), data.clone()).await;
    let url = server.url("/private.raw");
    put_source_secret(
        &h,
        "basic-right",
        &[("username", user), ("password", password)],
    );
    put_source_secret(
        &h,
        "basic-wrong",
        &[("username", user), ("password", "guessed-pw")],
    );
    let right = apply_source(
        &h,
        "basic",
        json!({"url": url, "secretRef": {"name": "basic-right"}}),
    );
    let wrong = apply_source(
        &h,
        "basic-wrong",
        json!({"url": url, "secretRef": {"name": "basic-wrong"}}),
    );
    let missing = apply_source(&h, "basic-missing", json!({"url": url}));
    let api = h.glance();
    let done = h.settle(&right, transferred).await.expect("object");
    let ok_id = status_id(&done);
    assert_holds(&api.get_image(&ok_id).await.expect("image"), &data, "basic");
    let mut ids = vec![ok_id];
    for (name, secret) in [(&wrong, "guessed-pw"), (&missing, password)] {
        let refused = h
            .settle(name, stalled_with("SourceUnavailable"))
            .await
            .expect("object");
        assert_refused_with_401(&refused, &url, secret);
        let id = status_id(&refused);
        assert_stays_queued(&api, &id, name).await;
        ids.push(id);
    }
    let seen: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert!(seen.contains(&Some(expected)), "{seen:?}");
    assert!(
        seen.contains(&None),
        "the Image without a secretRef sent none"
    );
    clean_up(&api, ids).await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation

/// Deletes the Image while its transfer runs (at least 1 MiB in) and checks that the Glance
/// image is gone, no transfer is counted as running, and the source sees glint hang up soon
/// after and gets no new request.
async fn cancelled_mid_transfer(prefix: &str, reply: Reply) {
    let bed = glance_under_test!();
    let h = Harness::new(bed);
    let full = reply.body.len() as u64;
    let server = SourceServer::serving(reply).await;
    let name = apply_source(&h, prefix, json!({"url": server.url("/slow.raw")}));
    let running = h
        .settle(&name, |object| {
            has_transfer(object, |t| {
                t.phase == TransferPhase::Running && t.bytes_done > 1 << 20
            })
        })
        .await
        .expect("object");
    let id = status_id(&running);
    assert_eq!(h.ctx.metrics.transfers.active.get(), 1);
    h.double.mark_deleted(NS, &name);
    h.settle(&name, |object| object.is_none()).await;
    // The transfer was cancelled by now: the source must see the connection end at once.
    let gone_at = Instant::now();
    let deadline = gone_at + Duration::from_secs(2);
    while server.cut_off() == 0 {
        assert!(
            Instant::now() < deadline,
            "{prefix}: the source's connection is still open {:?} after the transfer was cancelled ({} of {full} bytes out)",
            gone_at.elapsed(),
            server.body_bytes_sent(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{prefix}: the source saw the connection closed {:?} after the cancel",
        gone_at.elapsed()
    );
    let api = h.glance();
    let gone = api.get_image(&id).await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(h.ctx.metrics.transfers.active.get(), 0, "no transfer runs");
    assert_eq!(h.ctx.metrics.transfers.queued.get(), 0);
    let sent = server.body_bytes_sent();
    assert!(
        sent < full,
        "{prefix}: {sent} of {full} bytes: not all of it"
    );
    assert_eq!(server.completed(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.body_bytes_sent(), sent, "nothing flows any more");
    assert_eq!(server.gets(), 1, "and nothing started again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_image_mid_transfer_stops_a_slow_download_and_removes_the_glance_image() {
    // 8 MiB at 640 KiB/s: about 13 s, far longer than the test takes.
    let data = common::pseudo_random_bytes(8 << 20, 91);
    cancelled_mid_transfer(
        "cancel",
        Reply::ok(data).slowly(64 * 1024, Duration::from_millis(100)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_image_whose_source_went_silent_hangs_up_on_the_source_at_once() {
    // 1.25 MiB, then silence for far longer than the test (the idle timeout is 5 minutes).
    let data = common::pseudo_random_bytes(4 << 20, 92);
    cancelled_mid_transfer(
        "cancelsilent",
        Reply::ok(data)
            .sending_only(5 << 18)
            .then_hanging(Duration::from_secs(120)),
    )
    .await;
}
