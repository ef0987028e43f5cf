//! What Glance made of the data a transfer sent: an image that must match what was sent
//! (or what Glance's import converted it to), an attempt that sent everything but never
//! learned the outcome, and bad data kept from being booted.

use std::time::Duration;

use super::failure::{Failure, cut_to};
use super::job::{Job, Route};
use super::pipeline::Sent;
use super::verify::{self, Stored};
use super::{QUARANTINE_NOTE_LIMIT, QUARANTINE_PROPERTY};
use crate::glance::{GlanceApi, GlanceError, GlanceStatus, ImportMethod};
use crate::reason::Reason;

impl<G: GlanceApi + 'static> Job<G> {
    /// Has Glance import what an earlier attempt staged (unless it already is), and waits.
    pub(super) async fn import_staged(&self) -> Result<(), Failure> {
        let image = self
            .api
            .get_image_fresh(&self.image_id)
            .await
            .map_err(|error| Failure::from_glance("get image after staging", &error))?;
        if image.status == GlanceStatus::Uploading {
            return self.import_and_wait().await;
        }
        self.wait_for_import().await.map(drop)
    }

    /// Has Glance import the staged data, and waits for the import.
    pub(super) async fn import_and_wait(&self) -> Result<(), Failure> {
        self.api
            .import(&self.image_id, &ImportMethod::GlanceDirect)
            .await
            .map_err(|error| Failure::from_glance("import", &error))?;
        self.wait_for_import().await.map(drop)
    }

    /// When the last attempt sent everything but never learned what Glance made of it: the
    /// check of Glance's image against what was sent, if Glance kept the data; `None` when
    /// it did not (the image is back to queued) and the data must go again.
    pub(super) async fn recheck(&self) -> Option<Result<(), Failure>> {
        let unverified = self.unverified.as_ref()?;
        let route = if unverified.staged {
            Route::Stage
        } else {
            Route::Upload
        };
        match self.glance_kept_the_data(route).await {
            Ok(true) => {}
            // Back to queued: the data must go again.
            Ok(false) => return None,
            // Still unknown: nothing is sent again before Glance says.
            Err(error) => {
                let failure = Failure::from_glance("get image", &error);
                return Some(Err(failure.sent_all(&unverified.sent, unverified.staged)));
            }
        }
        tracing::info!("checking the data an earlier attempt sent, which Glance kept");
        let checked = if unverified.staged {
            self.import_staged().await
        } else {
            Ok(())
        };
        Some(
            match checked {
                Ok(()) => self.verify(&unverified.sent, unverified.staged).await,
                Err(failure) => Err(failure),
            }
            .map_err(|failure| failure.sent_all(&unverified.sent, unverified.staged)),
        )
    }

    /// Whether Glance holds the data of an upload whose answer glint did not get: the image
    /// left `queued` for `active` (upload) or `uploading` (staged, waiting for the import).
    pub(super) async fn glance_kept_the_data(&self, route: Route) -> Result<bool, GlanceError> {
        let kept: &[GlanceStatus] = match route {
            Route::Upload => &[GlanceStatus::Active],
            Route::Stage => &[
                GlanceStatus::Uploading,
                GlanceStatus::Importing,
                GlanceStatus::Active,
            ],
        };
        let image = self.api.get_image_fresh(&self.image_id).await?;
        Ok(kept.contains(&image.status))
    }

    /// Glance's checksum and os_hash_value must be the digests of what glint sent, unless
    /// Glance's import converted the data (see [`verify`]): then the conversion is recorded.
    pub(super) async fn verify(&self, sent: &Sent, imported: bool) -> Result<(), Failure> {
        let image = self.image_after_upload().await?;
        let mismatches = match verify::judge(
            sent,
            self.request.disk_format.as_ref(),
            &image,
            imported,
        ) {
            Stored::AsSent if self.expects_glance_conversion() => {
                return Err(self.conversion_not_done(&image).await);
            }
            Stored::AsSent => return Ok(()),
            Stored::Converted(conversion) => {
                if self.expects_glance_conversion()
                    && conversion.stored_format.as_ref() != self.conversion_target()
                {
                    return Err(self.conversion_not_done(&image).await);
                }
                tracing::info!(
                    conversion = %verify::describe(&conversion),
                    "Glance's import converted the data; the source hash was checked on what glint sent"
                );
                self.update(|status| status.conversion = Some(conversion));
                return Ok(());
            }
            Stored::Mismatch(mismatches) => mismatches,
        };
        Err(self
            .quarantine(Failure::new(
                Reason::HashMismatch,
                format!(
                    "Glance stored other bytes than glint sent ({}); the image was deactivated",
                    mismatches.join("; ")
                ),
                false,
            ))
            .await)
    }

    /// The image as Glance holds it once the data is in. A read that fails for now is tried
    /// twice more (1 s, then 2 s later) before the attempt fails: the data is in, and only
    /// this read stands between it and Ready.
    async fn image_after_upload(&self) -> Result<crate::glance::GlanceImage, Failure> {
        let mut pause = Duration::from_secs(1);
        for _ in 0..2 {
            match self.api.get_image_fresh(&self.image_id).await {
                Ok(image) => return Ok(image),
                Err(error) if error.is_transient() => {
                    tracing::info!(%error, "reading the image after the upload failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(error) => return Err(Failure::from_glance("get image after upload", &error)),
            }
        }
        self.api
            .get_image_fresh(&self.image_id)
            .await
            .map_err(|error| Failure::from_glance("get image after upload", &error))
    }

    /// Keeps bad data from being booted: marks the image with why (so that no later pass
    /// reactivates it, whatever this process remembers), then deactivates it. Both are best
    /// effort; the failure is returned either way.
    pub(super) async fn quarantine(&self, failure: Failure) -> Failure {
        let note = cut_to(
            format!("{}: {}", failure.reason, failure.message),
            QUARANTINE_NOTE_LIMIT,
        );
        let mark = crate::glance::PatchOp::SetProperty {
            key: QUARANTINE_PROPERTY.to_string(),
            value: note,
        };
        if let Err(error) = self.api.update_image(&self.image_id, &[mark]).await {
            tracing::warn!(%error, "could not mark the image as quarantined");
        }
        if let Err(error) = self.api.deactivate(&self.image_id).await {
            tracing::warn!(%error, "could not deactivate the image");
        }
        failure
    }
}
