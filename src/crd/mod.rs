//! The `Image` custom resource (`images.glint.dev`, v1alpha1): the types, their admission
//! rules (OpenAPI schema + CEL, enforced by the apiserver) and the CRD document built from
//! them. `glint crd` prints it; `crds/` holds the checked-in copy, which CI compares.
//! `ImageSeries` (`imageseries.glint.dev`) and `SharedImage` (`sharedimages.glint.dev`) are
//! defined here too.

/// A closed enum of manifest words, with its default. Defined before the modules that use
/// it: macro_rules are in scope textually.
macro_rules! spec_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl $name {
            /// The word in manifests (and, for the Glance fields, on Glance's wire).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }
    };
}

mod cloud;
mod ownership;
mod scs;
mod series;
mod shared;
mod source;
mod spec;
// The plan tests check every spec field is classed (pass::plan_field_tests).
#[cfg(test)]
pub(crate) use spec::MANAGED_ONLY_FIELDS;
mod status_fields;
mod targets;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

pub use cloud::CloudCredentialsRef;
pub use ownership::{PropertyOwnership, matches_key};
pub use scs::{ReplaceFrequency, ScsMetadata};
pub use series::{
    ChecksumsSignature, ChecksumsSource, DEFAULT_KEEP, ImageSeries, ImageSeriesSpec,
    ImageSeriesStatus, Retirement, SeriesImage, SeriesRelease, SeriesSchedule, SeriesTargetStatus,
    SeriesVersionStatus, TrustedKeysRef,
};
pub use shared::{MemberDecision, SharedImage, SharedImageRef, SharedImageSpec, SharedImageStatus};
pub use source::{
    ConversionBy, ConvertTo, Decompression, HashAlgorithm, HashFrom, ImageSource, SourceHash,
    SourceOptions, SourceSecretRef, TransferMethod,
};
pub use spec::{
    ContainerFormat, DiskFormat, Image, ImageImport, ImageSpec, ImportFilter, ManagementPolicy,
    OnDelete, RESERVED_PROPERTY_KEYS, RESERVED_PROPERTY_PREFIXES, Target, Visibility, WhenInUse,
    is_reserved_property,
};
pub use status_fields::{
    GlanceConversion, GlanceView, ImageStatus, TargetStatus, TransferPhase, TransferStatus,
};
pub use targets::{Destination, TargetPlace};

pub use crate::marks::OWNER_PROPERTY;

/// The CRD glint installs and expects: the derived one, with unsigned integer formats
/// (`uint32`, `uint64`, ...), which the apiserver warns about as unrecognized, turned into
/// `int64` with `minimum: 0`.
pub fn definition() -> Result<CustomResourceDefinition, String> {
    normalized(Image::crd())
}

/// The SharedImage CRD, normalized like [`definition`].
pub fn shared_definition() -> Result<CustomResourceDefinition, String> {
    normalized(SharedImage::crd())
}

/// The SharedImage CRD as YAML, exactly as `crds/sharedimages.glint.dev.yaml` must hold it.
pub fn shared_crd_yaml() -> Result<String, String> {
    generated_yaml(&shared_definition()?)
}

/// The ImageSeries CRD, normalized like [`definition`].
pub fn series_definition() -> Result<CustomResourceDefinition, String> {
    normalized(ImageSeries::crd())
}

fn normalized(crd: CustomResourceDefinition) -> Result<CustomResourceDefinition, String> {
    let mut document = serde_json::to_value(crd).map_err(|err| err.to_string())?;
    normalize_unsigned_formats(&mut document);
    serde_json::from_value(document).map_err(|err| err.to_string())
}

fn normalize_unsigned_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|format| format.starts_with("uint"));
            if unsigned {
                map.insert("format".into(), Value::String("int64".into()));
                map.entry("minimum").or_insert(Value::from(0));
            }
            map.values_mut().for_each(normalize_unsigned_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_unsigned_formats),
        _ => {}
    }
}

/// The duration fields' notation, as glint reads it.
/// `90s`, `10m`, `1h30m`, `500ms`, `1.5h`: the Kubernetes (Go) duration notation. `None` for
/// anything else, zero, or values too large to represent; never panics.
pub fn parse_duration(text: &str) -> Option<Duration> {
    // Only the Go notation the CRD admits ("1h30m"), not jiff's friendlier spellings.
    let notation = text.starts_with(|ch: char| ch.is_ascii_digit())
        && text
            .chars()
            .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | 'h' | 'm' | 's'));
    if !notation {
        return None;
    }
    let signed: jiff::SignedDuration = text.parse().ok()?;
    Duration::try_from(signed)
        .ok()
        .filter(|duration| !duration.is_zero())
}

/// The CRD as YAML, exactly as `crds/images.glint.dev.yaml` must hold it.
pub fn crd_yaml() -> Result<String, String> {
    generated_yaml(&definition()?)
}

/// The ImageSeries CRD as YAML, exactly as `crds/imageseries.glint.dev.yaml` must hold it.
pub fn series_crd_yaml() -> Result<String, String> {
    generated_yaml(&series_definition()?)
}

fn generated_yaml(crd: &CustomResourceDefinition) -> Result<String, String> {
    let body = serde_saphyr::to_string(crd).map_err(|err| err.to_string())?;
    Ok(format!(
        "# Generated by `glint crd`: edit src/crd/, then run scripts/generate.\n{body}"
    ))
}
