//! Writes to glint's own objects, the same for every kind: the finalizer (JSON patches with a
//! `test`, so a concurrent change fails the write instead of being overwritten) and status
//! (one server-side-apply patch as glint's field manager, only when it changed).

use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{Context, FIELD_MANAGER, FINALIZER, ReconcileError};
use crate::pass::status::needs_write;

/// The kinds glint patches: namespaced resources of its own group.
pub(super) trait Namespaced:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

pub(super) fn has_finalizer(object: &impl Resource) -> bool {
    object.finalizers().iter().any(|f| f == FINALIZER)
}

pub(super) async fn add_finalizer<K: Namespaced>(
    object: &K,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    // The test makes the add fail rather than overwrite a finalizer someone else added
    // meanwhile; the retry then sees the current list.
    let ops = match object.meta().finalizers.as_ref() {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(current) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    patch_metadata(object, ctx, ops).await
}

/// Removes glint's finalizer, when the object has it.
pub(super) async fn remove_finalizer<K: Namespaced>(
    object: &K,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    if let Some(index) = object.finalizers().iter().position(|f| f == FINALIZER) {
        let path = format!("/metadata/finalizers/{index}");
        let ops = json!([
            {"op": "test", "path": path, "value": FINALIZER},
            {"op": "remove", "path": path},
        ]);
        patch_metadata(object, ctx, ops).await?;
    }
    Ok(())
}

/// Writes `status` on `object`, the same way for every kind: nothing when the object already
/// has it (an idle resync writes nothing), else one server-side-apply patch as glint's field
/// manager. kube's derive gives every kind with a status `HasStatus`.
pub(super) async fn write_status<K>(
    object: &K,
    ctx: &Context,
    status: &K::Status,
) -> Result<(), ReconcileError>
where
    K: Namespaced + HasStatus,
    K::Status: PartialEq + serde::Serialize,
{
    if !needs_write(object.status(), status) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn patch_metadata<K: Namespaced>(
    object: &K,
    ctx: &Context,
    ops: serde_json::Value,
) -> Result<(), ReconcileError> {
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|_| ReconcileError::Incomplete("a valid finalizer patch"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}
