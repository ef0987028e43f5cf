//! The reconcile harness: glint's real reconcile against a real Glance (the bed's, behind
//! Keystone, or the embedded cloud in this process when no bed runs), with the stateful
//! Kubernetes API double in place of an apiserver. Shared by the scenario suites.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::TryStreamExt;
use glint::controller::{Context, Settings, reconcile};
use glint::crd::Image;
use glint::glance::{GlanceApi, GlanceClient, ListQuery};
use glint::pass::observe::OWNER_PROPERTY;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use super::Testbed;
use super::kube_double::KubeDouble;

pub const NS: &str = "default";

pub struct Harness {
    pub bed: Testbed,
    pub double: KubeDouble,
    pub ctx: Arc<Context>,
}

impl Harness {
    /// The demo user's reconcile: Keystone's password on the bed, auth none on the embedded
    /// cloud ([`Testbed::demo_cloud`]).
    pub fn new(bed: Testbed) -> Self {
        let yaml = bed.demo_cloud();
        Self::with_clouds_yaml(bed, &yaml, |ctx| ctx)
    }

    /// The demo user with this Keystone password (the bed's only: a wrong one is the point).
    pub fn with_password(bed: Testbed, password: &str) -> Self {
        let yaml = crate::common::keystone::password_auth(&bed, password);
        Self::with_clouds_yaml(bed, &yaml, |ctx| ctx)
    }

    /// A harness whose Secret `cloud` holds `clouds_yaml` (its cloud must be named `bed`),
    /// with the Context adjusted by `customize` (for example a pass hook).
    pub fn with_clouds_yaml(
        bed: Testbed,
        clouds_yaml: &str,
        customize: impl FnOnce(Context) -> Context,
    ) -> Self {
        let double = KubeDouble::default();
        let ctx = Arc::new(customize(fresh_context(&double)));
        let harness = Self { bed, double, ctx };
        harness.put_clouds_yaml("cloud", clouds_yaml);
        harness
    }

    /// A harness whose controller runs with these settings (for example another source
    /// policy), which the Context's cloud handles take when it is made.
    pub fn with_settings(bed: Testbed, settings: Settings) -> Self {
        let double = KubeDouble::default();
        let ctx = Arc::new(context_with(&double, settings));
        let harness = Self { bed, double, ctx };
        let yaml = harness.bed.demo_cloud();
        harness.put_clouds_yaml("cloud", &yaml);
        harness
    }

    /// The same cluster seen by a new controller process: nothing it remembered (transfers,
    /// created ids, cloud handles) survives; the objects and Glance do.
    pub fn restarted(&self) -> Self {
        Self {
            bed: self.bed.clone(),
            double: self.double.clone(),
            ctx: Arc::new(fresh_context(&self.double)),
        }
    }

    /// Secret `name` with the demo user's clouds.yaml ([`Testbed::demo_cloud`]).
    pub fn put_demo_secret(&self, name: &str) {
        self.put_clouds_yaml(name, &self.bed.demo_cloud());
    }

    /// Secret `name` with this clouds.yaml (created, or replaced with a new resourceVersion).
    pub fn put_clouds_yaml(&self, name: &str, yaml: &str) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(yaml);
        self.double.put(
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": {"clouds.yaml": encoded}}),
        );
    }

    pub fn apply(&self, name: &str, spec: Value) {
        let mut full = json!({"cloudCredentialsRef": {"secretName": "cloud", "cloudName": "bed"}, "diskFormat": "raw"});
        if let (Some(full), Some(spec)) = (full.as_object_mut(), spec.as_object()) {
            full.extend(spec.clone());
        }
        self.double.put(
            "images",
            json!({"apiVersion": "glint.dev/v1alpha1", "kind": "Image", "metadata": {"name": name, "namespace": NS}, "spec": full}),
        );
    }

    pub fn object(&self, name: &str) -> Option<Image> {
        self.double
            .get("images", NS, name)
            .map(|value| serde_json::from_value(value).expect("an Image"))
    }

    pub async fn reconcile_once(
        &self,
        name: &str,
    ) -> Result<kube::runtime::controller::Action, String> {
        let image = self.object(name).expect("object exists");
        reconcile(Arc::new(image), self.ctx.clone())
            .await
            .map_err(|err| err.to_string())
    }

    /// Reconciles until `done` holds (as the controller would on requeues), or fails.
    pub async fn settle(&self, name: &str, done: impl Fn(Option<&Image>) -> bool) -> Option<Image> {
        for _ in 0..150 {
            if self.object(name).is_some()
                && let Err(err) = self.reconcile_once(name).await
            {
                eprintln!("reconcile of {name}: {err}");
            }
            let object = self.object(name);
            if done(object.as_ref()) {
                return object;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{name} did not settle; status: {:?}",
            self.object(name).and_then(|o| o.status)
        );
    }

    pub fn glance(&self) -> GlanceClient {
        client_for(&self.bed.demo_cloud())
    }

    /// The Glance image an object's status names, as the demo project sees it.
    pub async fn glance_image_of(&self, object: &Image) -> glint::glance::GlanceImage {
        self.glance()
            .get_image(&status_id(object))
            .await
            .expect("the Glance image status.id names")
    }
}

/// A Glance client for the cloud `bed` of this clouds.yaml.
pub fn client_for(clouds_yaml: &str) -> GlanceClient {
    let file = glint::auth::CloudsFile::from_bytes(clouds_yaml.as_bytes()).expect("yaml");
    let auth = glint::auth::Authenticator::from_cloud(
        file.cloud("bed").expect("cloud"),
        Default::default(),
    )
    .expect("auth");
    GlanceClient::new(auth)
}

fn fresh_context(double: &KubeDouble) -> Context {
    context_with(double, settings())
}

fn context_with(double: &KubeDouble, settings: Settings) -> Context {
    let reporter = Reporter {
        controller: "glint-test".into(),
        instance: None,
    };
    Context::new(double.client(), reporter, settings, Arc::default())
}

/// The controller's settings as the test bed needs them: sources are served on 127.0.0.1,
/// and 127.0.0.2 stands for an address an operator refused.
pub fn settings() -> Settings {
    Settings {
        source_policy: Arc::new(glint::transfer::SourcePolicy {
            allow_loopback: true,
            deny: vec!["127.0.0.2/32".parse().expect("cidr")],
            ..Default::default()
        }),
        ..Settings::default()
    }
}

pub fn condition(image: Option<&Image>, kind: &str) -> Option<(String, String)> {
    let status = image?.status.as_ref()?;
    let found = status.conditions.iter().find(|c| c.type_ == kind)?;
    Some((found.status.clone(), found.reason.clone()))
}

pub fn condition_message(image: &Image, kind: &str) -> String {
    let conditions = image
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

pub fn ready(image: Option<&Image>) -> bool {
    condition(image, "Ready").is_some_and(|(status, _)| status == "True")
}

pub fn stalled_with(reason: &'static str) -> impl Fn(Option<&Image>) -> bool {
    move |image| condition(image, "Stalled") == Some(("True".to_string(), reason.to_string()))
}

pub fn status_id(image: &Image) -> String {
    image
        .status
        .as_ref()
        .and_then(|s| s.id.clone())
        .expect("status.id")
}

pub async fn images_marked(api: &GlanceClient, uid: &str) -> usize {
    let query = ListQuery {
        properties: [(OWNER_PROPERTY.to_string(), uid.to_string())].into(),
        ..ListQuery::default()
    };
    api.list_images(&query)
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .len()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Stops a server process the way its own service manager would: SIGTERM, then SIGKILL if it
/// is still there after 5 s. SIGKILL alone leaves nginx's workers running, orphaned, with the
/// port open.
pub fn stop_process(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
