//! The OpenPGP keys an ImageSeries trusts for its checksums files, read from the ConfigMap or
//! Secret its spec.checksums.signature.keys names, in the series' namespace. They are read at
//! every check, so an edited ConfigMap counts from the next check on.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use crate::checksums::signature::TrustedKeys;
use crate::crd::TrustedKeysRef;
use crate::reason::Reason;

/// The keys, or the reason and words for the series' status.
pub(super) async fn load(
    client: &Client,
    namespace: &str,
    reference: &TrustedKeysRef,
) -> Result<TrustedKeys, (Reason, String)> {
    let entry = reference.key();
    let (kind, name, text) = match (&reference.config_map_name, &reference.secret_name) {
        (Some(name), _) => {
            let found = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|err| unreadable("ConfigMap", namespace, name, &err))?;
            let text = found.and_then(|map| {
                map.data
                    .as_ref()
                    .and_then(|data| data.get(entry).cloned())
                    .or_else(|| {
                        map.binary_data
                            .as_ref()
                            .and_then(|data| data.get(entry))
                            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
                    })
            });
            ("ConfigMap", name, text)
        }
        (None, Some(name)) => {
            let found = Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|err| unreadable("Secret", namespace, name, &err))?;
            let text = found.and_then(|secret| {
                secret
                    .data
                    .as_ref()
                    .and_then(|data| data.get(entry))
                    .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
            });
            ("Secret", name, text)
        }
        (None, None) => {
            return Err((
                Reason::TrustedKeysNotFound,
                "spec.checksums.signature.keys names no configMapName or secretName".into(),
            ));
        }
    };
    let text = text.ok_or_else(|| {
        (
            Reason::TrustedKeysNotFound,
            format!(
                "{kind} {namespace}/{name} does not exist or has no entry {entry}; it must hold the ASCII-armoured public keys to trust (kubectl create configmap {name} --from-file={entry}=KEYS.asc)"
            ),
        )
    })?;
    TrustedKeys::parse(&text).map_err(|err| {
        (
            err.reason(),
            format!("{kind} {namespace}/{name} entry {entry}: {err}"),
        )
    })
}

fn unreadable(kind: &str, namespace: &str, name: &str, err: &kube::Error) -> (Reason, String) {
    (
        Reason::TrustedKeysNotFound,
        format!("cannot read {kind} {namespace}/{name}: {err}"),
    )
}
