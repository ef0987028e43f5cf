//! glint manages OpenStack Glance images from Kubernetes.
//!
//! Data flows one way; each arrow is a module boundary and file names follow it:
//!
//! ```text
//!                        clouds.yaml (from a Secret, or the openstack CLI's files)
//!                              │
//!                            auth ─────────────► Keystone (token, catalog)
//!                              │ Authenticator
//!  crd ─► reconcile ─► observe ─► plan ─► act ─► glance ─────► Glance v2 API
//! (Image   (finalizer,  (find the  (pure   (run    (GlanceApi; ListingCache:
//!  types)   Secret,      image)    diff)   the      one listing per resync)
//!           Events)                         plan)─► transfer (source -> hash -> upload,
//!              │                                     own tasks, never in a worker)
//!              └──────► status (pure builder) ─► one server-side apply, only on change
//! ```
//!
//! - [`crd`]: the `Image` resource, its admission rules and the generated CRD.
//! - [`reconcile`]: the controller's reconcile. [`reconcile::pass`] is the observe -> plan ->
//!   act pass without Kubernetes, for the controller and, later, the one-shot CLI.
//! - [`observe`], [`plan`], [`act`], [`status`]: one step each; `plan` and `status` are pure.
//! - [`glance`], [`auth`]: the only code that speaks HTTP to OpenStack; reqwest stays inside.
//! - [`transfer`]: copies source data into Glance in background tasks.
//! - [`controller`]: `glint run` wiring; [`cli`]: `glint image ...`.
#![forbid(unsafe_code)]

pub mod act;
pub mod auth;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod glance;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod status;
pub mod transfer;
