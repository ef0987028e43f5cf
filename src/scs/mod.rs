//! Sovereign Cloud Stack's image metadata standard, SCS-0102 (version 1, the stable one): the
//! properties a series stamps on its versions ([`stamp`]) and the standard's rules an Image or
//! a series would break ([`rules`]), which `glint plan` reports before anything is published.
//! Pure: no client, and the clock comes in as an argument.
//!
//! The rules are the standard's mandatory ones as SCS's own conformance check reads them
//! (Tests/iaas/scs_0102_image_metadata in SovereignCloudStack/standards), stricter where the
//! check is looser than the text (hw_disk_bus is mandatory in the text).

pub mod rules;
pub mod stamp;

/// The standard's name, as reports print it.
pub const STANDARD: &str = "SCS-0102";

pub const IMAGE_SOURCE: &str = "image_source";
pub const IMAGE_BUILD_DATE: &str = "image_build_date";
pub const IMAGE_ORIGINAL_USER: &str = "image_original_user";
pub const IMAGE_DESCRIPTION: &str = "image_description";
pub const REPLACE_FREQUENCY: &str = "replace_frequency";
pub const PROVIDED_UNTIL: &str = "provided_until";
pub const UUID_VALIDITY: &str = "uuid_validity";
pub const HOTFIX_HOURS: &str = "hotfix_hours";
