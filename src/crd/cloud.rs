//! Which cloud an object speaks to: a Secret with a clouds.yaml, and the cloud in it. Shared by
//! every kind and by status (a target's entry keeps where its image is).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A Secret with a clouds.yaml.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudCredentialsRef {
    /// Name of a Secret in the Image's namespace. Its key clouds.yaml holds the clouds file;
    /// an optional key cacert holds a PEM CA bundle for the cloud's TLS certificates.
    #[x_kube(validation = Rule::new("size(self) > 0").message("secretName must not be empty"))]
    pub secret_name: String,
    /// The cloud's name under clouds: in that clouds.yaml.
    #[x_kube(validation = Rule::new("size(self) > 0").message("cloudName must not be empty"))]
    pub cloud_name: String,
}
