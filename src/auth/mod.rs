//! OpenStack identity: everything between a `clouds.yaml` and an authenticated request.
//!
//! - [`clouds`] parses `clouds.yaml` (from a Secret's bytes, or from the files the `openstack`
//!   CLI reads) into a [`CloudConfig`]; pure, no I/O but file reads.
//! - [`keystone`] is the Keystone v3 wire format (token requests, catalog look-up); pure.
//! - [`session`] holds the [`Authenticator`]: it issues, caches and renews tokens and finds the
//!   image endpoint.
//! - [`token_store`] keeps tokens on disk between CLI runs when clouds.yaml asks for it.
//! - The HTTP client itself comes from [`crate::http`], shared with `glance` and `transfer`.
//!
//! Secrets live in `secrecy::SecretString`: no `Debug` output, log line or error message of
//! this module contains a password, token or application credential secret.

pub mod clouds;
mod error;
mod keystone;
pub mod session;
mod token_store;

pub use clouds::{AuthType, CloudConfig, CloudsFile, NameOrId};
pub use error::AuthError;
pub use session::{AuthOptions, Authenticator, Credential, TrustedIdentity};
pub use token_store::TokenStore;
