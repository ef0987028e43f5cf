//! glint manages OpenStack Glance images from Kubernetes.
//!
//! Data flows one way; each arrow is a module boundary and file names follow it:
//!
//! ```text
//!   clouds.yaml (Secret or file)
//!        │
//!      auth ──────────────► Keystone (token, catalog)
//!        │ Authenticator
//!        ▼
//!   crd ─► reconcile ─► observe ─► plan ─► glance ──────► Glance v2 API
//!  (types) (finalizer)  (find the  (pure    (GlanceApi:
//!                        image)    diff)    the only HTTP to Glance)
//!                                     │
//!                                     └─► status (pure builder + one server-side apply)
//! ```
//!
//! What exists today: [`auth`] (clouds.yaml, Keystone v3 tokens, TLS) and [`glance`] (the
//! typed Glance v2 client behind the [`glance::GlanceApi`] trait). The controller modules
//! (`crd`, `reconcile`, `observe`, `plan`, `status`) and transfers come next; they talk to
//! OpenStack only through `GlanceApi`, so the same core can serve the controller, a one-shot
//! CLI and an embedded cloud.
//!
//! `auth` and `glance` are the only modules that speak HTTP to OpenStack; reqwest types stay
//! inside them.
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
