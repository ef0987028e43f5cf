//! The conversion steps of a transfer (`spec.source.convertTo`): by glint, in a scratch folder
//! before the upload ([`Job::convert_then_send`]), or by Glance's import, which glint then
//! holds to what was asked ([`Job::conversion_not_done`]).

use std::time::Instant;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::convert::{self, ConvertError};
use super::job::{Failure, Job, Route};
use super::pipeline::{self, PipelineError, PipelineOptions};
use super::request::Conversion;
use crate::crd::{ConversionBy, Decompression, GlanceConversion};
use crate::glance::{DiskFormat, GlanceApi, GlanceImage};
use crate::reason::Reason;

impl Failure {
    fn from_conversion(error: ConvertError) -> Self {
        let retry = error.is_transient();
        Self::new(error.reason(), error.to_string(), retry)
    }
}

fn scratch_failure(err: std::io::Error) -> Failure {
    Failure::from_conversion(ConvertError::Scratch(err.to_string()))
}

impl<G: GlanceApi + 'static> Job<G> {
    /// spec.source.conversion is glance: Glance's import must store convertTo.
    pub(super) fn expects_glance_conversion(&self) -> bool {
        self.request
            .conversion
            .as_ref()
            .is_some_and(|conversion| conversion.by == ConversionBy::Glance)
    }

    pub(super) fn conversion_target(&self) -> Option<&DiskFormat> {
        self.request
            .conversion
            .as_ref()
            .map(|conversion| &conversion.to)
    }

    /// Glance's import did not store convertTo: the image holds the unconverted data, which
    /// the user said the cloud cannot use, so it is deactivated and marked like bad data.
    pub(super) async fn conversion_not_done(&self, image: &GlanceImage) -> Failure {
        let stored = image
            .disk_format
            .as_ref()
            .map_or("an unknown format", DiskFormat::as_str);
        let wanted = self.conversion_target().map_or("?", DiskFormat::as_str);
        self.quarantine(Failure::new(
            Reason::ConversionNotDone,
            format!(
                "Glance's import stored the image as {stored}, not {wanted}: this cloud's Glance does not run the image_conversion plugin with output_format {wanted}; the image was deactivated. Set spec.source.conversion: glint (or leave it out) to convert in glint"
            ),
            false,
        ))
        .await
    }

    /// Download (unpacked, hash-checked) into scratch, check, convert, upload the result.
    pub(super) async fn convert_then_send(
        &self,
        url: &url::Url,
        conversion: &Conversion,
        route: Route,
        started: Instant,
    ) -> Result<(), Failure> {
        let (Some(from), Some(to)) = (
            convert::qemu_format(&conversion.from),
            convert::qemu_format(&conversion.to),
        ) else {
            return Err(Failure::new(
                Reason::ConversionFailed,
                format!(
                    "glint cannot convert {} to {}",
                    conversion.from.as_str(),
                    conversion.to.as_str()
                ),
                false,
            ));
        };
        let claimed = glance_word(from);
        let limit = self.policy.scratch.limit_bytes;
        let scratch = self
            .policy
            .scratch
            .folder_for(&self.image_id)
            .map_err(scratch_failure)?;
        let source_path = scratch.path.join("source");
        let source_bytes = self.download_to(url, &source_path, limit).await?;

        let (head, tail) = convert::head_and_tail(&source_path).map_err(scratch_failure)?;
        let found = convert::sniff(&head, &tail);
        if found != claimed {
            return Err(Failure::from_conversion(ConvertError::FormatMismatch {
                claimed,
                found,
            }));
        }
        let info = convert::info(&source_path, from)
            .await
            .map_err(Failure::from_conversion)?;
        convert::check_info(&info, claimed, source_bytes, limit)
            .map_err(Failure::from_conversion)?;

        let converted_path = scratch.path.join("converted");
        let converting = Instant::now();
        convert::convert(&source_path, from, &converted_path, to)
            .await
            .map_err(Failure::from_conversion)?;
        let milliseconds = u64::try_from(converting.elapsed().as_millis()).unwrap_or(u64::MAX);
        let _ = tokio::fs::remove_file(&source_path).await;
        let (head, tail) = convert::head_and_tail(&converted_path).map_err(scratch_failure)?;
        convert::check_output(glance_word(to), &head, &tail).map_err(Failure::from_conversion)?;
        let converted_bytes = tokio::fs::metadata(&converted_path)
            .await
            .map_err(scratch_failure)?
            .len();
        tracing::info!(
            from = claimed,
            to = glance_word(to),
            source_bytes,
            converted_bytes,
            milliseconds,
            "converted the source; uploading the result"
        );
        self.update(|status| {
            status.conversion = Some(GlanceConversion {
                by: Some("glint".to_string()),
                milliseconds: Some(milliseconds),
                sent_format: Some(conversion.from.clone()),
                stored_format: Some(conversion.to.clone()),
                sent_bytes: Some(source_bytes),
                stored_bytes: Some(converted_bytes),
            });
        });

        let file_url = url::Url::from_file_path(&converted_path).map_err(|()| {
            scratch_failure(std::io::Error::other("the scratch path is not absolute"))
        })?;
        let (data, announced) = self.open_file(&file_url).await?;
        let options = PipelineOptions {
            decompression: Decompression::None,
            // The source's hash was checked on the way into scratch.
            hash: None,
            announced_len: announced,
            hash_said_by: None,
        };
        let result = self.send(data, options, route, started).await;
        drop(scratch);
        result
    }

    /// The source through the pipeline (unpacked, its hash checked) into `path`; fails as
    /// soon as more than `limit` bytes arrive, and only returns once every check passed.
    async fn download_to(
        &self,
        url: &url::Url,
        path: &std::path::Path,
        limit: u64,
    ) -> Result<u64, Failure> {
        let (download, announced) = self.open(url).await?;
        let options = PipelineOptions {
            decompression: self.request.source.options.decompress.unwrap_or_default(),
            hash: self.request.source.hash.clone(),
            announced_len: announced,
            hash_said_by: self.request.hash_said_by(),
        };
        self.update(|status| status.bytes_total = announced);
        let entries = self.entries.clone();
        let image_id = self.image_id.clone();
        let progress = std::sync::Arc::new(move |done: u64| {
            if let Some(entry) = super::lock(&entries).get_mut(&image_id) {
                entry.status.bytes_done = done;
            }
        });
        let mut pipeline = pipeline::start(download, options, progress);
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(scratch_failure)?;
        let mut written: u64 = 0;
        while let Some(chunk) = pipeline.data.next().await {
            let Ok(chunk) = chunk else {
                // The verdict below says why.
                break;
            };
            written = written.saturating_add(chunk.len() as u64);
            if written > limit {
                // Dropping the pipeline's data stream stops the download.
                return Err(Failure::from_conversion(ConvertError::ScratchLimit {
                    needed: written,
                    source_bytes: written,
                    converted_bytes: 0,
                    limit,
                }));
            }
            file.write_all(&chunk).await.map_err(scratch_failure)?;
        }
        file.flush().await.map_err(scratch_failure)?;
        drop(pipeline.data);
        match pipeline.done.await.unwrap_or(Err(PipelineError::Abandoned)) {
            Ok(sent) => Ok(sent.bytes_out),
            Err(error) => Err(Failure::from_pipeline(error)),
        }
    }
}

/// Glance's word for a qemu-img format name.
fn glance_word(qemu: &'static str) -> &'static str {
    if qemu == "vpc" { "vhd" } else { qemu }
}
