//! Reading and changing one image on a caller's behalf: what the caller may see and change,
//! in one store transaction. Every route that touches an image goes through here.

use super::caller::Caller;
use super::image::ImageRecord;
use super::{Cloud, CloudError};
use crate::vocabulary::GlanceStatus;

/// The image, unless it does not exist, was deleted, or the caller may not see it.
pub fn visible(cloud: &Cloud, caller: &Caller, id: &str) -> Result<ImageRecord, CloudError> {
    cloud
        .store
        .get(id)?
        .filter(|image| image.status != GlanceStatus::Deleted && caller.can_see(image))
        .ok_or_else(|| not_found(id))
}

/// Glance's answer for an image that is not there (or not for this caller to see).
pub fn not_found(id: &str) -> CloudError {
    CloudError::NotFound(format!("No image found with ID {id}"))
}

/// Changes an image the caller owns in one transaction; `change` returns the image to store.
pub fn change_image(
    cloud: &Cloud,
    caller: &Caller,
    id: &str,
    change: impl FnOnce(ImageRecord) -> Result<ImageRecord, CloudError>,
) -> Result<ImageRecord, CloudError> {
    change_visible(cloud, caller, id, |image| {
        caller.require_owner(&image)?;
        change(image)
    })
}

/// Changes an image the caller can see (the owner check is `change`'s to make).
pub fn change_visible(
    cloud: &Cloud,
    caller: &Caller,
    id: &str,
    change: impl FnOnce(ImageRecord) -> Result<ImageRecord, CloudError>,
) -> Result<ImageRecord, CloudError> {
    cloud
        .store
        .update(id, |current| {
            let image = current
                .filter(|image| image.status != GlanceStatus::Deleted && caller.can_see(image))
                .ok_or_else(|| not_found(id))?;
            change(image).map(Some)
        })?
        .ok_or_else(|| not_found(id))
}
