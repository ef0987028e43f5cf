//! One transfer attempt: pick the route (upload, glanceDirect, webDownload), run it, check
//! what Glance stored, and record the outcome for the reconciler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub(super) use super::failure::Failure;
use super::failure::{FIRST_BACKOFF, MAX_BACKOFF, cut};
use super::hash_from;
use super::pipeline::{self, PipelineError, PipelineOptions, Sent};
use super::source_http::{self, check_literal, refusal_in};
use super::verify;
use super::{EndHook, Entries, SourcePolicy, TransferRequest, lock};
use crate::crd::{ConversionBy, TransferMethod, TransferPhase};
use crate::glance::{GlanceApi, GlanceStatus, ImportMethod};
use crate::metrics::TransferMetrics;
use crate::reason::Reason;

/// How often an import's progress is read from Glance.
const IMPORT_POLL: Duration = Duration::from_secs(1);
/// How long glint waits for Glance to finish an import before it calls it failed.
const IMPORT_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// Chunk size of a local file source, as big as the pipeline's network chunks.
const FILE_CHUNK_BYTES: usize = 256 * 1024;

/// A source's bytes, whatever it is read from; errors in words.
pub(super) type SourceStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, String>> + Send>>;

pub(super) struct Job<G> {
    pub api: Arc<G>,
    pub policy: Arc<SourcePolicy>,
    pub entries: Entries,
    pub slots: Arc<Semaphore>,
    pub metrics: TransferMetrics,
    pub on_end: Option<EndHook>,
    pub shared: Option<Arc<super::SharedDownloads>>,
    pub image_id: String,
    pub request: TransferRequest,
    pub attempts: u32,
    /// What the last attempt sent without learning what Glance made of it.
    pub unverified: Option<super::failure::Unverified>,
}

impl<G: GlanceApi + 'static> Job<G> {
    pub(super) async fn run(mut self) {
        let _slot = self.slots.clone().acquire_owned().await;
        let started = Instant::now();
        {
            let mut entries = lock(&self.entries);
            match entries.get_mut(&self.image_id) {
                Some(entry) => entry.status.phase = TransferPhase::Running,
                // Cancelled while it waited.
                None => return,
            }
            self.metrics.queued.dec();
            self.metrics.active.inc();
        }
        let outcome = match self.recheck().await {
            Some(outcome) => outcome,
            None => match hash_from::resolve(&mut self.request, self.policy.clone()).await {
                Ok(()) => self.transfer(started).await,
                Err(refusal) => Err(Failure::new(refusal.reason, refusal.message, refusal.retry)),
            },
        };
        let elapsed = started.elapsed();
        self.metrics.finished(
            elapsed,
            outcome.as_ref().err().map(|failure| failure.reason),
        );
        if self.record(outcome, elapsed)
            && let Some(hook) = &self.on_end
        {
            hook(&self.image_id);
        }
    }

    /// Writes the outcome where [`Transfers::state`](super::Transfers::state) reads it;
    /// false when the transfer was cancelled meanwhile (nobody waits on it any more).
    fn record(&self, outcome: Result<(), Failure>, elapsed: Duration) -> bool {
        let mut entries = lock(&self.entries);
        self.metrics.active.dec();
        let Some(entry) = entries.get_mut(&self.image_id) else {
            return false;
        };
        entry.status.elapsed_seconds = Some(elapsed.as_secs());
        match outcome {
            Ok(()) => {
                tracing::info!(
                    bytes = entry.status.bytes_done,
                    seconds = elapsed.as_secs_f64(),
                    "transfer done"
                );
                entry.status.phase = TransferPhase::Succeeded;
                entry.status.last_error = None;
                entry.status.percent = Some(100);
            }
            Err(failure) => {
                tracing::warn!(reason = failure.reason.as_str(), error = %failure.message, retry = failure.retry, "transfer failed");
                entry.status.phase = TransferPhase::Failed;
                entry.status.last_error = Some(cut(failure.message));
                entry.reason = failure.reason;
                entry.retry = failure.retry;
                entry.unverified = failure.unverified;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << self.attempts.saturating_sub(1).min(10))
                    .max(failure.min_backoff)
                    .min(MAX_BACKOFF);
                entry.not_before = Some(Instant::now() + backoff);
            }
        }
        true
    }

    async fn transfer(&self, started: Instant) -> Result<(), Failure> {
        let url = url::Url::parse(&self.request.source.url).map_err(|err| {
            Failure::new(
                Reason::SourceUnavailable,
                format!("spec.source.url is not a URL: {err}"),
                false,
            )
        })?;
        if url.scheme() == "file" && !self.policy.allow_files {
            return Err(Failure::new(
                Reason::SourceNotAllowed,
                format!(
                    "source {url} is a local file, which only `glint apply` on the same machine \
                     can read; serve it over http(s) for the controller"
                ),
                false,
            ));
        }
        check_literal(&url, &self.policy).map_err(|refusal| {
            Failure::new(
                Reason::SourceNotAllowed,
                format!("source {url} is not allowed: {refusal}"),
                false,
            )
        })?;
        if let Some(conversion) = &self.request.conversion
            && conversion.by == ConversionBy::Glint
        {
            let route = match self.request.source.options.method.unwrap_or_default() {
                TransferMethod::GlanceDirect => Route::Stage,
                _ => Route::Upload,
            };
            return self
                .convert_then_send(&url, conversion, route, started)
                .await;
        }
        match self.request.source.options.method.unwrap_or_default() {
            TransferMethod::WebDownload if url.scheme() == "file" => Err(Failure::new(
                Reason::SourceNotAllowed,
                format!("Glance cannot fetch {url} itself: use method upload for a local file"),
                false,
            )),
            TransferMethod::WebDownload => self.web_download(&url).await,
            TransferMethod::GlanceDirect => self.stream(&url, Route::Stage, started).await,
            TransferMethod::Upload => self.stream(&url, Route::Upload, started).await,
            TransferMethod::Auto => match self.stream(&url, Route::Upload, started).await {
                // A deployment whose policy forbids uploads but offers glance-direct.
                Err(failure)
                    if failure.glance_status == Some(403) && self.offers_glance_direct().await =>
                {
                    tracing::info!("Glance refused the upload; staging and importing instead");
                    self.stream(&url, Route::Stage, started).await
                }
                other => other,
            },
        }
    }

    async fn offers_glance_direct(&self) -> bool {
        self.api
            .import_info()
            .await
            .is_ok_and(|info| info.methods.iter().any(|method| method == "glance-direct"))
    }

    /// Downloads the source through the pipeline into Glance's file or staging area.
    async fn stream(&self, url: &url::Url, route: Route, started: Instant) -> Result<(), Failure> {
        let (download, announced) = self.open(url).await?;
        let options = PipelineOptions {
            decompression: self.request.source.options.decompress.unwrap_or_default(),
            hash: self.request.source.hash.clone(),
            announced_len: announced,
            hash_said_by: self.request.hash_said_by(),
        };
        self.send(download, options, route, started).await
    }

    /// The source's bytes, and the length it announced.
    pub(super) async fn open(
        &self,
        url: &url::Url,
    ) -> Result<(SourceStream, Option<u64>), Failure> {
        if url.scheme() == "file" {
            return self.open_file(url).await;
        }
        match (&self.shared, &self.request.share) {
            (Some(shared), Some(key)) => shared.open(key, || self.open_http(url)).await,
            _ => self.open_http(url).await,
        }
    }

    /// A local file, for the CLI: the controller's policy refuses `file://` before this.
    pub(super) async fn open_file(
        &self,
        url: &url::Url,
    ) -> Result<(SourceStream, Option<u64>), Failure> {
        let path = url.to_file_path().map_err(|()| {
            Failure::new(
                Reason::SourceUnavailable,
                format!("{url} does not name a local file"),
                false,
            )
        })?;
        let unreadable = |err: std::io::Error| {
            Failure::new(
                Reason::SourceUnavailable,
                format!("cannot read {}: {err} (will not retry)", path.display()),
                false,
            )
        };
        let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, FILE_CHUNK_BYTES);
        let download = futures::TryStreamExt::map_err(chunks, |err| err.to_string());
        Ok((Box::pin(download), Some(size)))
    }

    async fn open_http(&self, url: &url::Url) -> Result<(SourceStream, Option<u64>), Failure> {
        let client =
            source_http::source_client(self.policy.clone(), &self.request.client_options())
                .map_err(|message| Failure::new(Reason::TransferFailed, message, false))?;
        let mut get = client.get(url.clone());
        if let Some(value) = &self.request.access.authorization {
            get = get.header(
                reqwest::header::AUTHORIZATION,
                secrecy::ExposeSecret::expose_secret(value),
            );
        } else if let Some((user, password)) = &self.request.access.basic {
            get = get.basic_auth(user, Some(secrecy::ExposeSecret::expose_secret(password)));
        }
        let response = get.send().await.map_err(|err| match refusal_in(&err) {
            Some(words) => Failure::new(
                Reason::SourceNotAllowed,
                format!("source {url} is not allowed: {words}"),
                false,
            ),
            None if let Some(detail) = crate::http::untrusted_certificate(&err) => Failure::new(
                Reason::CertificateUntrusted,
                format!(
                    "source {url}: the server's TLS certificate is not trusted ({detail}); add its CA to the system's store (SSL_CERT_FILE) or use another URL (will not retry)"
                ),
                false,
            ),
            None => Failure::new(
                Reason::SourceUnavailable,
                format!(
                    "cannot reach {url}: {} (will retry)",
                    crate::http::describe_http_error(err)
                ),
                true,
            ),
        })?;
        let status = response.status();
        if !status.is_success() {
            // 4xx will not change by asking again (but 408 and 429 may, and a mirror's 404 for a
            // file its checksums file already lists); 5xx may.
            let retry = status.is_server_error()
                || matches!(status.as_u16(), 408 | 429)
                || (self.request.access.missing_may_appear && matches!(status.as_u16(), 404 | 410));
            let will = if retry {
                "will retry"
            } else {
                "will not retry"
            };
            return Err(Failure::new(
                Reason::SourceUnavailable,
                format!("{url} answered {status} ({will})"),
                retry,
            ));
        }
        let announced = response.content_length();
        // With the error's causes: reqwest's own words ("error decoding response body") do not
        // say whether the source went silent or closed the connection early.
        let download = futures::TryStreamExt::map_err(
            response.bytes_stream(),
            crate::http::describe_http_error,
        );
        Ok((Box::pin(download), announced))
    }

    /// Streams `download` through the pipeline into Glance's file or staging area, then
    /// checks what Glance stored.
    pub(super) async fn send(
        &self,
        download: SourceStream,
        options: PipelineOptions,
        route: Route,
        started: Instant,
    ) -> Result<(), Failure> {
        let announced = options.announced_len;
        self.update(|status| status.bytes_total = announced);
        let entries = self.entries.clone();
        let image_id = self.image_id.clone();
        let bytes = self.metrics.bytes.clone();
        let counted = std::sync::atomic::AtomicU64::new(0);
        let progress = Arc::new(move |done: u64| {
            let before = counted.swap(done, std::sync::atomic::Ordering::Relaxed);
            bytes.inc_by(done.saturating_sub(before));
            if let Some(entry) = lock(&entries).get_mut(&image_id) {
                let status = &mut entry.status;
                status.bytes_done = done;
                status.percent = status.bytes_total.filter(|total| *total > 0).map(|total| {
                    u8::try_from((done.saturating_mul(100) / total).min(100)).unwrap_or(100)
                });
                let seconds = started.elapsed().as_secs_f64();
                if seconds > 0.0 {
                    status.bytes_per_second = Some((done as f64 / seconds) as u64);
                }
            }
        });
        let mut pipeline = pipeline::start(download, options, progress);
        // Glance is told the length only when it is known to be the length it will get: the
        // source's, when its bytes go out as they came in (decompress: auto and a raw image
        // included). Waiting for the first bytes to tell costs nothing, and a body of known
        // length needs no de-chunking by Glance's WSGI server.
        let size = match announced {
            Some(len) if (&mut pipeline.passes_through).await.unwrap_or(false) => Some(len),
            _ => None,
        };
        let sent = match route {
            Route::Upload => self.api.upload(&self.image_id, pipeline.data, size).await,
            Route::Stage => self.api.stage(&self.image_id, pipeline.data, size).await,
        };
        let verdict = pipeline.done.await.unwrap_or(Err(PipelineError::Abandoned));
        let sent: Sent = match (sent, verdict) {
            // The data's own failure is the cause; Glance's error is its echo.
            (_, Err(error)) if !matches!(error, PipelineError::Abandoned) => {
                return Err(Failure::from_pipeline(error));
            }
            // Every byte went out but no good answer came back (lost on the way, or a load
            // balancer's 5xx after Glance took it all): Glance's image says what happened. If
            // Glance kept the data, it is checked like any upload's, never taken on trust and
            // never sent twice; otherwise the attempt failed.
            (Err(error), Ok(sent)) if error.is_transient() => {
                if !matches!(self.glance_kept_the_data(route).await, Ok(true)) {
                    let failure = Failure::from_glance(route.what(), &error);
                    return Err(failure.sent_all(&sent, route == Route::Stage));
                }
                tracing::info!(%error, "the upload's answer was lost, but Glance kept the data; checking it");
                sent
            }
            (Err(error), _) => return Err(Failure::from_glance(route.what(), &error)),
            (Ok(()), Ok(sent)) => sent,
            (Ok(()), Err(error)) => return Err(Failure::from_pipeline(error)),
        };
        let staged = route == Route::Stage;
        // The image is `uploading` once staged: no need to ask Glance before the import.
        let checked = if staged {
            self.import_and_wait().await
        } else {
            Ok(())
        };
        match checked {
            Ok(()) => self.verify(&sent, staged).await,
            Err(failure) => Err(failure),
        }
        .map_err(|failure| failure.sent_all(&sent, staged))
    }

    /// Glance fetches the URL itself: glint checks the address first, then follows the import.
    async fn web_download(&self, url: &url::Url) -> Result<(), Failure> {
        if let Some(host) = url.host_str()
            && url
                .host()
                .is_some_and(|h| matches!(h, url::Host::Domain(_)))
        {
            let port = url.port_or_known_default().unwrap_or(443);
            let addresses: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|err| {
                    Failure::new(
                        Reason::SourceUnavailable,
                        format!("cannot resolve {host}: {err} (will retry)"),
                        true,
                    )
                })?
                .map(|address| address.ip())
                .collect();
            self.policy.check_all(&addresses).map_err(|refusal| {
                Failure::new(
                    Reason::SourceNotAllowed,
                    format!("source {url} is not allowed: {host} resolves to {refusal}"),
                    false,
                )
            })?;
        }
        self.api
            .import(
                &self.image_id,
                &ImportMethod::WebDownload {
                    uri: url.to_string(),
                },
            )
            .await
            .map_err(|error| Failure::from_glance("web-download import", &error))?;
        let image = self.wait_for_import().await?;
        self.update(|status| {
            status.bytes_done = image.size.unwrap_or(0);
            status.bytes_total = image.size;
        });
        let converted = verify::conversion(self.request.disk_format.as_ref(), None, &image);
        if self.expects_glance_conversion()
            && converted.as_ref().and_then(|c| c.stored_format.as_ref()) != self.conversion_target()
        {
            return Err(self.conversion_not_done(&image).await);
        }
        if let Some(conversion) = converted {
            let described = verify::describe(&conversion);
            self.update(|status| status.conversion = Some(conversion));
            // Glance's digests are of the converted data, and glint never saw the source's:
            // an image that should have been checked must not turn usable unchecked.
            if let Some(expected) = &self.request.source.hash {
                return Err(self
                    .quarantine(Failure::new(
                        Reason::HashUnverifiable,
                        format!(
                            "Glance converted the image during its web-download ({described}), so its {} is of the converted data and spec.source.hash cannot be checked; the image was deactivated. Use method glanceDirect or upload, where glint checks the hash while it streams, or remove spec.source.hash",
                            expected.algorithm.as_str()
                        ),
                        false,
                    ))
                    .await);
            }
            return Ok(());
        }
        if let Some(expected) = &self.request.source.hash
            && image.os_hash_algo.as_deref() == Some(expected.algorithm.as_str())
            && image.os_hash_value.as_deref() != Some(expected.value.as_str())
        {
            return Err(self
                .quarantine(Failure::new(
                    Reason::HashMismatch,
                    format!(
                        "the source's {} is {}, but spec.source.hash says {}; the image was deactivated",
                        expected.algorithm.as_str(),
                        image.os_hash_value.as_deref().unwrap_or("unknown"),
                        expected.value
                    ),
                    false,
                ))
                .await);
        }
        Ok(())
    }

    /// Follows an import until the image is active, or Glance's task says it failed.
    pub(super) async fn wait_for_import(&self) -> Result<crate::glance::GlanceImage, Failure> {
        let deadline = Instant::now() + IMPORT_DEADLINE;
        loop {
            let image = self
                .api
                .get_image_fresh(&self.image_id)
                .await
                .map_err(|error| Failure::from_glance("get image during import", &error))?;
            // Glance lists the newest task first: the one this attempt's import made.
            let tasks = self
                .api
                .image_tasks(&self.image_id)
                .await
                .unwrap_or_default();
            // Active is not the end: the task saves the image once more as it finishes, and a
            // deactivation sent before that (a hash mismatch) was seen undone by that save.
            let task_done = tasks
                .first()
                .is_none_or(|task| !matches!(task.status.as_str(), "pending" | "processing"));
            if image.status == GlanceStatus::Active && task_done {
                return Ok(image);
            }
            if let Some(failed) = tasks.first().filter(|task| task.status == "failure") {
                return Err(Failure::new(
                    Reason::ImportFailed,
                    format!("Glance's import failed: {}", failed.message.trim()),
                    false,
                ));
            }
            if Instant::now() > deadline {
                return Err(Failure::new(
                    Reason::ImportFailed,
                    format!(
                        "Glance's import did not finish within {} hours",
                        IMPORT_DEADLINE.as_secs() / 3600
                    ),
                    true,
                ));
            }
            tokio::time::sleep(IMPORT_POLL).await;
        }
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut crate::crd::TransferStatus)) {
        if let Some(entry) = lock(&self.entries).get_mut(&self.image_id) {
            change(&mut entry.status);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Upload,
    Stage,
}

impl Route {
    fn what(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Stage => "stage",
        }
    }
}
