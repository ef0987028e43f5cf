//! A small stateful stand-in for the Kubernetes API, behind a real `kube::Client`: enough of
//! it for glint's reconcile (Images with their status subresource and finalizers, Secrets,
//! Events), with a count of every write. Glance stays real; only the apiserver is doubled,
//! because the reconcile tests must run where no cluster does (the e2e suite covers the
//! real apiserver).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    /// (kind, namespace, name) -> object.
    objects: BTreeMap<(String, String, String), Value>,
    events: Vec<Value>,
    writes: u64,
    next_version: u64,
}

/// The double; clones share state.
#[derive(Clone, Default)]
pub struct KubeDouble {
    state: Arc<Mutex<State>>,
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

impl KubeDouble {
    pub fn client(&self) -> kube::Client {
        let double = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let double = double.clone();
            async move { Ok::<_, std::convert::Infallible>(double.handle(request).await) }
        });
        kube::Client::new(service, "default")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("double state")
    }

    /// Stores an object as `kubectl apply` would create it (uid and resourceVersion added).
    pub fn put(&self, kind: &str, mut object: Value) {
        let mut state = self.lock();
        state.next_version += 1;
        let version = state.next_version.to_string();
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.entry("uid")
            .or_insert_with(|| json!(crate::common::unique_uuid()));
        meta.entry("generation").or_insert(json!(1));
        meta.insert("resourceVersion".into(), json!(version));
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let name = meta["name"].as_str().expect("name").to_string();
        state.objects.insert((kind.into(), namespace, name), object);
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(kind.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// What `kubectl edit` does to the spec: a new spec and a new generation.
    pub fn edit_spec(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut state = self.lock();
        state.next_version += 1;
        let version = state.next_version.to_string();
        let object = state
            .objects
            .get_mut(&("images".into(), namespace.into(), name.into()))
            .expect("image");
        edit(&mut object["spec"]);
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
        object["metadata"]["resourceVersion"] = json!(version);
    }

    /// What `kubectl delete` does: an object with finalizers is marked for deletion and
    /// waits for them; one without is gone at once.
    pub fn mark_deleted(&self, namespace: &str, name: &str) {
        let mut state = self.lock();
        let key = (
            "images".to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let object = state.objects.get_mut(&key).expect("image");
        let finalized = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|finalizers| !finalizers.is_empty());
        if finalized {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        } else {
            state.objects.remove(&key);
        }
    }

    /// Removes an object outright (`kubectl delete` of an object without finalizers).
    pub fn remove(&self, kind: &str, namespace: &str, name: &str) {
        self.lock()
            .objects
            .remove(&(kind.into(), namespace.into(), name.into()));
    }

    /// `kubectl annotate`: metadata changes, the generation does not.
    pub fn annotate(&self, namespace: &str, name: &str, key: &str, value: &str) {
        let mut state = self.lock();
        state.next_version += 1;
        let version = state.next_version.to_string();
        let object = state
            .objects
            .get_mut(&("images".into(), namespace.into(), name.into()))
            .expect("image");
        object["metadata"]["annotations"][key] = json!(value);
        object["metadata"]["resourceVersion"] = json!(version);
    }

    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.lock()
            .events
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// The Events' notes (events.k8s.io/v1 `note`), oldest first.
    pub fn event_notes(&self) -> Vec<String> {
        self.lock()
            .events
            .iter()
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect()
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let bytes: Bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let payload: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (code, value) = match (parts.method.clone(), segments.as_slice()) {
            (Method::GET, ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.read("secrets", ns, name)
            }
            (
                Method::GET,
                [
                    "apis",
                    "glint.dev",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    "images",
                    name,
                ],
            ) => self.read("images", ns, name),
            (
                Method::PATCH,
                [
                    "apis",
                    "glint.dev",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    "images",
                    name,
                ],
            ) => self.patch_object(ns, name, &content_type, payload),
            (
                Method::PATCH,
                [
                    "apis",
                    "glint.dev",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    "images",
                    name,
                    "status",
                ],
            ) => self.apply_status(ns, name, payload),
            (
                Method::POST | Method::PATCH,
                ["apis", "events.k8s.io", "v1", "namespaces", _, "events", ..],
            ) => {
                let mut state = self.lock();
                state.writes += 1;
                state.events.push(payload.clone());
                (StatusCode::CREATED, payload)
            }
            _ => (
                StatusCode::NOT_FOUND,
                status_body(
                    404,
                    "NotFound",
                    &format!("the double does not serve {} {path}", parts.method),
                ),
            ),
        };
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap_or_default()))
            .expect("response")
    }

    fn read(&self, kind: &str, namespace: &str, name: &str) -> (StatusCode, Value) {
        match self.get(kind, namespace, name) {
            Some(object) => (StatusCode::OK, object),
            None => (
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", &format!("{kind} \"{name}\" not found")),
            ),
        }
    }

    /// Finalizer changes arrive as JSON patches (with `test` ops, which the double honours).
    fn patch_object(
        &self,
        namespace: &str,
        name: &str,
        content_type: &str,
        payload: Value,
    ) -> (StatusCode, Value) {
        let mut state = self.lock();
        let key = (
            "images".to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let Some(object) = state.objects.get(&key).cloned() else {
            return (
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", "image not found"),
            );
        };
        let mut patched = object;
        if content_type.contains("json-patch") {
            // The apiserver's JSON patch treats a missing path as null in `test` ops (kube's
            // finalizer helper relies on it); the json-patch crate calls it invalid.
            let ops: Vec<Value> = payload
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|op| {
                    let missing = op["path"]
                        .as_str()
                        .is_some_and(|path| patched.pointer(path).is_none());
                    !(op["op"] == "test" && op["value"].is_null() && missing)
                })
                .collect();
            let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
                Ok(patch) => patch,
                Err(err) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        status_body(400, "BadRequest", &err.to_string()),
                    );
                }
            };
            if let Err(err) = json_patch::patch(&mut patched, &patch) {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    status_body(422, "Invalid", &err.to_string()),
                );
            }
        } else {
            json_patch::merge(&mut patched, &payload);
        }
        state.writes += 1;
        state.next_version += 1;
        patched["metadata"]["resourceVersion"] = json!(state.next_version.to_string());
        let finalizers_left = patched["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if patched["metadata"].get("deletionTimestamp").is_some() && !finalizers_left {
            state.objects.remove(&key);
        } else {
            state.objects.insert(key, patched.clone());
        }
        (StatusCode::OK, patched)
    }

    /// Server-side apply of status by glint's only field manager: the status it sends is the
    /// status the object has.
    fn apply_status(&self, namespace: &str, name: &str, payload: Value) -> (StatusCode, Value) {
        let mut state = self.lock();
        let key = (
            "images".to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        state.writes += 1;
        state.next_version += 1;
        let version = state.next_version.to_string();
        match state.objects.get_mut(&key) {
            Some(object) => {
                object["status"] = payload["status"].clone();
                object["metadata"]["resourceVersion"] = json!(version);
                (StatusCode::OK, object.clone())
            }
            None => (
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", "image not found"),
            ),
        }
    }
}
