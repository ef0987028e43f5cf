//! glint manages OpenStack Glance images from Kubernetes.
//!
//! Data flows one way; each arrow is a module boundary and the folders follow it
//! (`scripts/look --check` fails on an arrow against it):
//!
//! ```text
//!             crd (the three kinds: types, admission rules, generated CRDs)
//!              │
//!      ┌───────┴─────────────────────┐
//!      ▼                             ▼
//!  controller/ (glint run)        apply/ (glint plan|apply -f)
//!  one driver per kind;           manifests, settle, report
//!  status, finalizer, Events           │
//!      │                               │
//!      └────────────► pass/ ◄──────────┘     series/: the rotation (pure),
//!            observe ─► plan ─► act          checksums files, mirrors' folders
//!            status (pure; no kube)│
//!                     │            └──► transfer ──► source URL
//!                     ▼                 (own tasks: download, hash, upload)
//!                   glance ◄────────────────┘
//!           (GlanceApi, GlanceImage) ──► Glance v2 API (or glance_server: glint cloud)
//!                     │
//!                   auth ──► Keystone (clouds.yaml: a Secret or the openstack CLI's files)
//! ```
//!
//! - [`crd`]: the three kinds (`Image`, `ImageSeries`, `SharedImage`), their admission rules
//!   and the generated CRDs.
//! - [`pass`]: one image's observe -> plan -> act without Kubernetes, for both drivers;
//!   [`pass::plan`] and [`pass::status`] are pure (no client, no clock).
//! - [`controller`]: `glint run`, the Kubernetes side: the wiring ([`controller::run`]), one
//!   driver per kind, status and finalizer writes, Events.
//! - [`apply`]: `glint plan -f` / `glint apply -f`, the same pass driven from manifest files
//!   instead of the watch; it starts [`glance_server`] when no cloud is configured.
//! - [`series`]: ImageSeries' domain: mirrors' folders, version order and the rotation plan
//!   (pure); both drivers run it, each version through the pass.
//! - [`checksums`]: checksums files and their OpenPGP signatures (pure), read by a series'
//!   check and by a transfer whose hash a checksums file publishes (`spec.source.hashFrom`).
//! - [`glance`], [`auth`]: the only code that speaks HTTP to OpenStack; reqwest stays inside
//!   them and the shared `http` helpers. Glance's records are `GlanceImage` and
//!   `GlanceStatus`, never to be confused with the CRD's `Image` and `ImageStatus`.
//! - [`scs`]: Sovereign Cloud Stack's image metadata standard (SCS-0102): what a series
//!   stamps on its versions and the rules `glint plan` reports (pure).
//! - [`transfer`]: copies source data into Glance in background tasks, fetching only what
//!   the source policy allows.
//! - [`glance_server`]: `glint cloud`, an embedded Glance v2 server (the other side of the
//!   arrow into Glance).
//! - [`image_command`]: `glint image ...`; [`leader`]: the leader Lease; [`metrics`]:
//!   /metrics and health.
//! - [`vocabulary`]: Glance's words (statuses, visibilities, formats, its own keys), which
//!   the client, the CRD's checks and the embedded server share; it depends on nothing.
//! - [`reason`]: the catalogue of every Condition and Event reason word glint writes; the
//!   others pass [`reason::Reason`] and turn it into a word only at their edges.
//! - [`marks`]: every `glint.dev/` property, annotation and finalizer glint writes, spelt
//!   once; it depends on nothing.
// deny, not forbid: audited exceptions, each with its SAFETY reasons: the digest thread's
// priority (transfer::hash), GnuTLS's digests (transfer/gnutls.rs), qemu-img's rlimits (convert).
#![deny(unsafe_code)]
// A panic in a reconcile is a failed object, in the CLI a lost apply: outside tests nothing
// unwraps or expects. The rule is `[lints.clippy]` in Cargo.toml (clippy.toml allows both in
// #[cfg(test)] code), so it holds for every target, not by habit.

pub mod apply;
pub mod auth;
pub mod checksums;
pub mod controller;
pub mod crd;
pub mod glance;
pub mod glance_server;
mod http;
pub use http::read_system_roots_early;
pub mod image_command;
pub mod leader;
pub mod marks;
pub mod metrics;
pub mod pass;
pub mod reason;
pub mod scs;
pub mod series;
pub mod transfer;
pub mod vocabulary;
