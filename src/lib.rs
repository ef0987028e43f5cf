//! glint manages OpenStack Glance images from Kubernetes.
//!
//! Data flows one way; each arrow is a module boundary and the folders follow it:
//!
//! ```text
//!            clouds.yaml (a Secret, or the openstack CLI's files)
//!                  │
//!                 auth ───────────────────────────────► Keystone (token, catalog)
//!                  │ Authenticator
//!  crd ──► reconcile/ ──────────────────────────────► glance ──► Glance v2 API
//! (Image    mod: finalizer dispatch, panic guard      (GlanceApi; ListingCache:
//!  types)   clouds: one handle per Secret + cloud      one listing per resync)
//!           pass: observe ─► plan ─► act ──────────┐
//!                            (pure)                └─► transfer ──► source URL
//!           status (pure builder) ─► one status        (own tasks; SourcePolicy;
//!           patch, only on change; events              hash check; upload)
//! ```
//!
//! - [`crd`]: the `Image` resource, its admission rules and the generated CRD.
//! - [`reconcile`]: the pipeline. [`reconcile::pass`] is observe -> plan -> act without
//!   Kubernetes, for the controller and the one-shot CLI; [`reconcile::plan`] and
//!   [`reconcile::status`] are pure.
//! - [`glance`], [`auth`]: the only code that speaks HTTP to OpenStack; reqwest stays inside
//!   them and the shared `http` helpers.
//! - [`transfer`]: copies source data into Glance in background tasks, fetching only what
//!   the source policy allows.
//! - [`controller`]: `glint run` wiring; [`leader`]: the leader Lease; [`metrics`]: /metrics
//!   and health; [`cli`]: `glint image ...`; [`oneshot`]: `glint plan -f` / `glint apply -f`,
//!   the same pass driven from manifest files instead of the watch.
//! - [`series`]: ImageSeries, one image across releases: checksums files, version order and
//!   the rotation plan (pure); `oneshot` drives it, each version through the Image pass.
//! - [`cloud`]: `glint cloud`, an embedded Glance v2 service (the other side of the arrow
//!   into Glance), which plan and apply start when no cloud is configured.
//! - [`vocabulary`]: Glance's words (statuses, visibilities, formats, its own keys), which
//!   the client, the CRD's checks and the embedded cloud share; it depends on nothing.
//! - [`reason`]: the catalogue of every Condition and Event reason word glint writes; the
//!   others pass [`reason::Reason`] and turn it into a word only at their edges.
//! - [`marks`]: every `glint.dev/` property, annotation and finalizer glint writes, spelt
//!   once; it depends on nothing.
// deny, not forbid: audited exceptions, each with its SAFETY reasons: the digest thread's
// priority (transfer::hash), GnuTLS's digests (transfer::gnutls), qemu-img's rlimits (convert).
#![deny(unsafe_code)]
// A panic in a reconcile is a failed object, in the CLI a lost apply: outside tests nothing
// unwraps or expects (clippy.toml allows both in #[cfg(test)] code). A rule, not a habit.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod crd;
pub mod glance;
mod http;
pub mod leader;
pub mod marks;
pub mod metrics;
pub mod oneshot;
pub mod reason;
pub mod reconcile;
pub mod series;
pub mod transfer;
pub mod vocabulary;
