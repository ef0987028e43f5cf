//! Image data in the embedded cloud: upload (`PUT /file`), download, staging and the two
//! import methods, and delete. Every write lands in a `.partial` file and is renamed into place
//! only once its size and digests are recorded, so no image turns active without its data.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use http::{Request, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::access::{change_image, not_found, visible};
use super::answer::{Answer, Body, no_content};
use super::caller::Caller;
use super::image::{FORMAT_HEAD_BYTES, ImageRecord, data_matches_format};
use super::{Cloud, CloudError};
use crate::transfer::Digest;
use crate::vocabulary::GlanceStatus;

/// Size, md5 and sha512 of data written to a file, and its first bytes.
struct Written {
    size: u64,
    md5: String,
    sha512: String,
    head: Vec<u8>,
}

fn check_format(image: &ImageRecord, written: Written) -> Result<Written, CloudError> {
    if data_matches_format(image.disk_format.as_deref(), &written.head) {
        Ok(written)
    } else {
        Err(CloudError::UnsupportedMediaType(format!(
            "The data is not in disk_format {}: upload data of that format, or create the image \
             with the data's format.",
            image.disk_format.as_deref().unwrap_or_default()
        )))
    }
}

pub fn delete(cloud: &Cloud, caller: &Caller, id: &str) -> Result<(), CloudError> {
    let now = cloud.now();
    change_image(cloud, caller, id, |mut image| {
        if image.protected {
            return Err(CloudError::Forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        image.status = GlanceStatus::Deleted;
        image.updated_at = now;
        Ok(image)
    })?;
    for path in [cloud.store.data_path(id), cloud.store.staging_path(id)] {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

pub async fn upload(
    cloud: &Arc<Cloud>,
    caller: &Caller,
    id: &str,
    request: Request<Incoming>,
) -> Answer {
    require_octet_stream(&request)?;
    let image = begin(
        cloud,
        caller,
        id,
        &[GlanceStatus::Queued],
        GlanceStatus::Saving,
    )?;
    let partial = cloud.store.partial_path(id);
    let received = receive(request.into_body(), &partial)
        .await
        .and_then(|written| check_format(&image, written));
    let written = undo_on_error(cloud, id, GlanceStatus::Saving, &partial, received).await?;
    finish(cloud, id, &partial, written)?;
    Ok(no_content())
}

pub async fn stage(
    cloud: &Arc<Cloud>,
    caller: &Caller,
    id: &str,
    request: Request<Incoming>,
) -> Answer {
    require_octet_stream(&request)?;
    begin(
        cloud,
        caller,
        id,
        &[GlanceStatus::Queued],
        GlanceStatus::Uploading,
    )?;
    let partial = cloud.store.partial_staging_path(id);
    let received = receive(request.into_body(), &partial).await;
    undo_on_error(cloud, id, GlanceStatus::Uploading, &partial, received).await?;
    // Complete staged data only: a cloud stopped mid-stage finds no staged file and puts the
    // image back to queued, so an import can never take half the data.
    tokio::fs::rename(&partial, cloud.store.staging_path(id))
        .await
        .map_err(CloudError::storage)?;
    Ok(no_content())
}

/// A failed transfer of data leaves no file behind and the image back in `queued`.
async fn undo_on_error(
    cloud: &Cloud,
    id: &str,
    during: GlanceStatus,
    file: &Path,
    received: Result<Written, CloudError>,
) -> Result<Written, CloudError> {
    if received.is_err() {
        let _ = tokio::fs::remove_file(file).await;
        back_to_queued(cloud, id, during);
    }
    received
}

pub async fn download(cloud: &Arc<Cloud>, caller: &Caller, id: &str) -> Answer {
    let image = visible(cloud, caller, id)?;
    if image.status == GlanceStatus::Deactivated && !caller.admin {
        return Err(CloudError::Forbidden(format!(
            "Image {id} is deactivated: only administrators may download its data."
        )));
    }
    if !matches!(
        image.status,
        GlanceStatus::Active | GlanceStatus::Deactivated
    ) {
        return Ok(no_content());
    }
    let file = tokio::fs::File::open(cloud.store.data_path(id))
        .await
        .map_err(|err| CloudError::storage(format!("the data of image {id} is missing: {err}")))?;
    let frames = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map_ok(Frame::data);
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = image.size {
        headers.insert(header::CONTENT_LENGTH, size.into());
    }
    if let Some(md5) = image.checksum.as_deref().and_then(|md5| md5.parse().ok()) {
        headers.insert("content-md5", md5);
    }
    Ok(response)
}

/// Starts an import: `glance-direct` takes the staged data, `web-download` fetches a URL
/// through the cloud's source policy. Both run after the answer (202), as Glance's tasks do.
pub fn import(
    cloud: &Arc<Cloud>,
    caller: &Caller,
    id: &str,
    body: &Value,
    request_id: &str,
) -> Result<(), CloudError> {
    let method = body["method"]["name"].as_str().unwrap_or_default();
    let image = match method {
        "glance-direct" => {
            if !cloud.store.staging_path(id).exists() {
                return Err(CloudError::Conflict(format!(
                    "Image {id} has no staged data: PUT /v2/images/{id}/stage first"
                )));
            }
            begin(
                cloud,
                caller,
                id,
                &[GlanceStatus::Uploading],
                GlanceStatus::Importing,
            )?
        }
        "web-download" => {
            let uri = body["method"]["uri"].as_str().unwrap_or_default();
            let url = url::Url::parse(uri)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    CloudError::BadRequest(format!(
                        "web-download needs an http(s) uri, not {uri:?}"
                    ))
                })?;
            crate::transfer::source_http::check_literal(&url, &cloud.policy).map_err(
                |refusal| CloudError::BadRequest(format!("URI {uri} is not allowed: {refusal}")),
            )?;
            begin(
                cloud,
                caller,
                id,
                &[GlanceStatus::Queued],
                GlanceStatus::Importing,
            )?
        }
        other => {
            return Err(CloudError::BadRequest(format!(
                "Import method {other:?} is not available: use glance-direct or web-download"
            )));
        }
    };
    let task_id = uuid::Uuid::new_v4().to_string();
    let task = |state: &str, message: &str| {
        json!({
            "id": task_id,
            "type": "api_image_import",
            "status": state,
            "message": message,
            "input": {"image_id": id, "import_req": body},
            "result": null,
            "owner": image.owner,
            "image_id": id,
            // Who asked, as Glance records it: the import call's request and user.
            "request_id": request_id,
            "user_id": caller.user,
            "created_at": cloud.now(),
            "updated_at": cloud.now(),
        })
    };
    cloud.store.put_task(id, task("processing", ""))?;
    let (cloud, id, body) = (cloud.clone(), id.to_string(), body.clone());
    let success = task("success", "");
    let failure_template = task("failure", "");
    tokio::spawn(async move {
        let outcome = run_import(&cloud, &id, &body).await;
        let record = match outcome {
            Ok(()) => success,
            Err(err) => {
                failed_import(&cloud, &id);
                let mut failed = failure_template;
                failed["message"] = Value::String(err.to_string());
                failed
            }
        };
        if let Err(err) = cloud.store.put_task(&id, record) {
            tracing::warn!(image = %id, error = %err, "cannot record the import task's outcome");
        }
    });
    Ok(())
}

async fn run_import(cloud: &Arc<Cloud>, id: &str, body: &Value) -> Result<(), CloudError> {
    let partial = cloud.store.partial_path(id);
    let written = if body["method"]["name"] == "glance-direct" {
        let staged = cloud.store.staging_path(id);
        let file = tokio::fs::File::open(&staged)
            .await
            .map_err(CloudError::storage)?;
        let chunks = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        let written = write_stream(chunks.map_err(|err| err.to_string()), &partial).await?;
        let _ = tokio::fs::remove_file(&staged).await;
        written
    } else {
        let uri = body["method"]["uri"].as_str().unwrap_or_default();
        let client = crate::transfer::source_http::source_client(
            cloud.policy.clone(),
            &crate::transfer::source_http::SourceClientOptions::default(),
        )
        .map_err(CloudError::storage)?;
        let response = client
            .get(uri)
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .map_err(|err| {
                CloudError::BadRequest(format!("web-download of {uri} failed: {err}"))
            })?;
        let chunks = response.bytes_stream().map_err(|err| err.to_string());
        write_stream(chunks, &partial).await?
    };
    finish(cloud, id, &partial, written)
}

/// Moves an image from one of `from` to `to`, or says why it cannot.
fn begin(
    cloud: &Cloud,
    caller: &Caller,
    id: &str,
    from: &[GlanceStatus],
    to: GlanceStatus,
) -> Result<ImageRecord, CloudError> {
    let now = cloud.now();
    change_image(cloud, caller, id, |mut image| {
        if !from.contains(&image.status) {
            return Err(CloudError::Conflict(format!(
                "Image status transition from {} to {to} is not allowed",
                image.status
            )));
        }
        image.status = to.clone();
        image.updated_at = now;
        Ok(image)
    })
}

/// After a broken upload or import Glance puts the image back to queued; so does this.
fn back_to_queued(cloud: &Cloud, id: &str, from: GlanceStatus) {
    revert_to_queued(cloud, id, from, |_| {});
}

/// A failed import leaves the image queued, with its store listed in
/// `os_glance_failed_import` (what Glance's clients poll for), as Glance does.
fn failed_import(cloud: &Cloud, id: &str) {
    revert_to_queued(cloud, id, GlanceStatus::Importing, |image| {
        image
            .properties
            .insert("os_glance_failed_import".into(), super::STORE_ID.into());
    });
}

/// Puts an image still in `from` back to queued and applies `also`, in one write.
fn revert_to_queued(
    cloud: &Cloud,
    id: &str,
    from: GlanceStatus,
    also: impl FnOnce(&mut ImageRecord),
) {
    let now = cloud.now();
    let reverted = cloud.store.update(id, |current| {
        Ok(current
            .filter(|image| image.status == from)
            .map(|mut image| {
                image.status = GlanceStatus::Queued;
                image.updated_at = now;
                also(&mut image);
                image
            }))
    });
    if let Err(err) = reverted {
        tracing::warn!(image = %id, error = %err, "cannot put the image back to queued");
    }
}

/// Records the data's size and digests, then renames the partial file into place. An image
/// deleted meanwhile keeps its tombstone and loses the data.
fn finish(cloud: &Cloud, id: &str, partial: &Path, written: Written) -> Result<(), CloudError> {
    let now = cloud.now();
    let stored = cloud.store.update(id, |current| {
        Ok(current
            .filter(|image| matches!(image.status, GlanceStatus::Saving | GlanceStatus::Importing))
            .map(|mut image| {
                image.status = GlanceStatus::Active;
                // An earlier failed import to the store is over once the data is in.
                image.properties.remove("os_glance_failed_import");
                image.size = Some(written.size);
                image.virtual_size =
                    (image.disk_format.as_deref() == Some("raw")).then_some(written.size);
                image.checksum = Some(written.md5.clone());
                image.os_hash_value = Some(written.sha512.clone());
                image.updated_at = now;
                image
            }))
    })?;
    if stored.is_none() {
        let _ = std::fs::remove_file(partial);
        return Err(not_found(id));
    }
    std::fs::rename(partial, cloud.store.data_path(id)).map_err(CloudError::storage)
}

fn require_octet_stream(request: &Request<Incoming>) -> Result<(), CloudError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream");
    if content_type.starts_with("application/octet-stream") {
        Ok(())
    } else {
        Err(CloudError::UnsupportedMediaType(format!(
            "Image data needs Content-Type application/octet-stream, not {content_type:?}"
        )))
    }
}

async fn receive(body: Incoming, path: &Path) -> Result<Written, CloudError> {
    let chunks = body
        .into_data_stream()
        .map_err(|err| format!("the upload broke off: {err}"));
    write_stream(chunks, path).await
}

async fn write_stream(
    mut chunks: impl futures::Stream<Item = Result<Bytes, String>> + Unpin,
    path: &Path,
) -> Result<Written, CloudError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|err| CloudError::storage(format!("cannot create {}: {err}", path.display())))?;
    let (mut md5, mut sha512) = Digest::glance_pair();
    let mut size: u64 = 0;
    let mut head = Vec::new();
    while let Some(chunk) = chunks.try_next().await.map_err(CloudError::BadRequest)? {
        if head.len() < FORMAT_HEAD_BYTES {
            let wanted = (FORMAT_HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
        }
        md5.update(&chunk);
        sha512.update(&chunk);
        size = size.saturating_add(chunk.len() as u64);
        file.write_all(&chunk).await.map_err(CloudError::storage)?;
    }
    file.sync_all().await.map_err(CloudError::storage)?;
    Ok(Written {
        size,
        md5: md5.hex().map_err(CloudError::storage)?,
        sha512: sha512.hex().map_err(CloudError::storage)?,
        head,
    })
}
