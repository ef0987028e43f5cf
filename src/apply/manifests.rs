//! Reading Image and ImageSeries manifests the way `kubectl apply -f` does: files, folders
//! (their `.yaml`, `.yml` and `.json` files, in name order), multi-document YAML, and `-` for
//! stdin.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use kube::ResourceExt;

use crate::crd::{ChecksumsSignature, Image, ImageSeries, Target};

/// One Image document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it was read from, or `-` for stdin.
    pub origin: String,
    /// Its position among the file's documents, from 1 (as editors count).
    pub index: usize,
    pub namespace: String,
    pub image: Image,
    /// The armoured keys spec.source.hashFrom.signature.keys names, when a ConfigMap or
    /// Secret document among the manifests holds them (the CLI reads no cluster).
    pub trusted_keys: Option<String>,
    /// For an Image with spec.targets, the target this document stands for: one document per
    /// target, its spec as that target's cloud sees it.
    pub target: Option<Target>,
}

impl Document {
    pub fn name(&self) -> String {
        self.image.name_any()
    }

    /// `namespace/name`: the identity plan and apply key the Glance image by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name())
    }

    /// How reports name it: its key, and `@target` for one of an Image's targets.
    pub fn label(&self) -> String {
        match &self.target {
            Some(target) => format!("{}@{}", self.key(), target.name),
            None => self.key(),
        }
    }

    /// One document per target of an Image with spec.targets (its spec as that target's cloud
    /// sees it); the document itself otherwise.
    fn per_target(self) -> Vec<Document> {
        if self.image.spec.targets.is_empty() {
            return vec![self];
        }
        let targets = self.image.spec.targets.clone();
        targets
            .into_iter()
            .zip(self.image.spec.per_destination())
            .map(|(target, (_, spec))| {
                let mut image = self.image.clone();
                image.spec = spec;
                Document {
                    image,
                    target: Some(target),
                    ..self.clone()
                }
            })
            .collect()
    }
}

/// One ImageSeries document and where it came from.
#[derive(Debug, Clone)]
pub struct SeriesDocument {
    pub origin: String,
    pub index: usize,
    pub namespace: String,
    pub series: ImageSeries,
    /// The armoured keys spec.checksums.signature.keys names, when a ConfigMap or Secret
    /// document among the manifests holds them (the CLI reads no cluster).
    pub trusted_keys: Option<String>,
    /// For a series with spec.targets, the target this document stands for: one document
    /// per target, its spec as that target's cloud keeps the series.
    pub target: Option<Target>,
}

impl SeriesDocument {
    pub fn name(&self) -> String {
        self.series.name_any()
    }

    /// `namespace/name`, as an Image's key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name())
    }

    /// How reports name it: its key, and `@target` for one of its targets.
    pub fn label(&self) -> String {
        match &self.target {
            Some(target) => format!("{}@{}", self.key(), target.name),
            None => self.key(),
        }
    }

    /// The uid its versions are owned by: the object's stand-in, or `uid/target` for a
    /// target, as the controller has it.
    pub fn owner(&self) -> String {
        let object = super::identity(&self.key());
        match &self.target {
            Some(target) => format!("{object}/{}", target.name),
            None => object,
        }
    }

    /// One document per target of a series with spec.targets; the document itself otherwise.
    fn per_target(self) -> Vec<SeriesDocument> {
        let targets = self.series.spec.targets.clone();
        if targets.is_empty() {
            return vec![self];
        }
        targets
            .into_iter()
            .map(|target| {
                let mut series = self.series.clone();
                series.spec = self.series.spec.for_target(&target);
                SeriesDocument {
                    series,
                    target: Some(target),
                    ..self.clone()
                }
            })
            .collect()
    }
}

/// Everything read from the paths.
#[derive(Debug, Default)]
pub struct Manifests {
    pub images: Vec<Document>,
    pub series: Vec<SeriesDocument>,
    /// Documents of other kinds, by file, index and kind.
    pub skipped: Vec<String>,
    /// The entries of ConfigMap and Secret documents, by `ConfigMap namespace/name` or
    /// `Secret namespace/name`: where a series' trusted keys come from.
    /// Each with the words it is listed under in `skipped`.
    pub entries:
        std::collections::BTreeMap<String, (String, std::collections::BTreeMap<String, String>)>,
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}, document {index}: {message}")]
    Invalid {
        origin: String,
        index: usize,
        message: String,
    },
    #[error("{first} and {second} both declare {key}: keep one")]
    Duplicate {
        key: String,
        first: String,
        second: String,
    },
    #[error("no Image or ImageSeries documents found in {0}")]
    Empty(String),
}

/// Every Image and ImageSeries document under `paths`. Documents of other kinds (a Secret
/// kept beside the Images, say) are skipped and returned by kind so the caller can say so.
pub fn read(paths: &[PathBuf]) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    for path in paths {
        for (origin, text) in sources(path)? {
            parse(&origin, &text, &mut manifests)?;
        }
    }
    let places = manifests
        .images
        .iter()
        .map(|d| (format!("Image {}", d.key()), &d.origin, d.index))
        .chain(
            manifests
                .series
                .iter()
                .map(|d| (format!("ImageSeries {}", d.key()), &d.origin, d.index)),
        );
    let mut seen = std::collections::BTreeMap::new();
    for (key, origin, index) in places {
        let at = format!("{origin}, document {index}");
        if let Some(first) = seen.insert(key.clone(), at.clone()) {
            return Err(ManifestError::Duplicate {
                key,
                first,
                second: at,
            });
        }
    }
    let mut used = BTreeSet::new();
    for document in &mut manifests.series {
        let keys = document
            .series
            .spec
            .checksums
            .as_ref()
            .and_then(|checksums| checksums.signature.as_ref());
        document.trusted_keys =
            trusted_keys_of(&document.namespace, keys, &manifests.entries, &mut used);
    }
    for document in &mut manifests.images {
        let keys = document.image.spec.source.as_ref();
        let keys = keys.and_then(crate::crd::ImageSource::hash_signature);
        document.trusted_keys =
            trusted_keys_of(&document.namespace, keys, &manifests.entries, &mut used);
    }
    manifests.series = std::mem::take(&mut manifests.series)
        .into_iter()
        .flat_map(SeriesDocument::per_target)
        .collect();
    manifests.images = std::mem::take(&mut manifests.images)
        .into_iter()
        .flat_map(Document::per_target)
        .collect();
    // A ConfigMap or Secret an object reads its keys from is not skipped: it is read.
    manifests
        .skipped
        .retain(|skipped| !used.iter().any(|label: &String| skipped == label));
    if manifests.images.is_empty() && manifests.series.is_empty() {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ManifestError::Empty(named.join(", ")));
    }
    Ok(manifests)
}

/// The texts to parse: stdin, one file, or a folder's manifest files in name order.
fn sources(path: &Path) -> Result<Vec<(String, String)>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        return Ok(vec![("-".to_string(), text)]);
    }
    if !path.is_dir() {
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        return Ok(vec![(path.display().to_string(), text)]);
    }
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry_path = entry.map_err(read_error)?.path();
        let is_manifest = entry_path
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| matches!(extension, "yaml" | "yml" | "json"));
        if is_manifest && entry_path.is_file() {
            files.insert(entry_path);
        }
    }
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.display().to_string(),
                source,
            })?;
            Ok((file.display().to_string(), text))
        })
        .collect()
}

fn parse(origin: &str, text: &str, manifests: &mut Manifests) -> Result<(), ManifestError> {
    let values: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|err| ManifestError::Syntax {
            origin: origin.to_string(),
            message: err.to_string(),
        })?;
    for (position, value) in values.into_iter().enumerate() {
        let index = position + 1;
        let invalid = |message: String| ManifestError::Invalid {
            origin: origin.to_string(),
            index,
            message,
        };
        if value.is_null() {
            continue;
        }
        let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let (api_version, kind) = (text_of("apiVersion"), text_of("kind"));
        if api_version == "v1" && matches!(kind, "ConfigMap" | "Secret") {
            keep_entries(
                kind,
                &value,
                manifests,
                format!("{origin}, document {index}: {api_version} {kind}"),
            );
        }
        let Some(schema_of) = schema_for(kind).filter(|_| api_version.starts_with("glint.dev/"))
        else {
            manifests
                .skipped
                .push(format!("{origin}, document {index}: {api_version} {kind}"));
            continue;
        };
        if api_version != "glint.dev/v1alpha1" {
            return Err(invalid(format!(
                "apiVersion {api_version} is not one this glint reads; use glint.dev/v1alpha1"
            )));
        }
        let named = value
            .pointer("/metadata/name")
            .and_then(|name| name.as_str())
            .is_some_and(|name| !name.is_empty());
        if !named {
            return Err(invalid(format!(
                "metadata.name is missing: every {kind} needs one"
            )));
        }
        let broken_rules = admission_errors(schema_of(), &value);
        if !broken_rules.is_empty() {
            return Err(invalid(broken_rules.join("; ")));
        }
        if kind == "ImageSeries" {
            let mut series: ImageSeries = serde_json::from_value(value)
                .map_err(|err| invalid(format!("not a valid ImageSeries: {err}")))?;
            for release in &mut series.spec.versions {
                release.url = resolve_file_url(&release.url, origin).map_err(invalid)?;
            }
            if let Some(checksums) = series.spec.checksums.as_mut() {
                checksums.url = resolve_file_url(&checksums.url, origin).map_err(invalid)?;
            }
            let namespace = series
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            manifests.series.push(SeriesDocument {
                origin: origin.to_string(),
                index,
                namespace,
                series,
                trusted_keys: None,
                target: None,
            });
            continue;
        }
        let mut image: Image = serde_json::from_value(value)
            .map_err(|err| invalid(format!("not a valid Image: {err}")))?;
        if let Some(source) = image.spec.source.as_mut() {
            source.url = resolve_file_url(&source.url, origin).map_err(invalid)?;
        }
        let namespace = image
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        manifests.images.push(Document {
            origin: origin.to_string(),
            index,
            namespace,
            image,
            trusted_keys: None,
            target: None,
        });
    }
    Ok(())
}

/// Records a ConfigMap's or Secret's entries (a Secret's `data` decoded, its `stringData`
/// as written); a document that is not a valid one is left for kubectl to judge.
fn keep_entries(kind: &str, value: &serde_json::Value, manifests: &mut Manifests, label: String) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let (namespace, name, entries) = if kind == "ConfigMap" {
        let Ok(map) = serde_json::from_value::<ConfigMap>(value.clone()) else {
            return;
        };
        let mut entries = map.data.clone().unwrap_or_default();
        for (key, bytes) in map.binary_data.unwrap_or_default() {
            entries.insert(key, String::from_utf8_lossy(&bytes.0).into_owned());
        }
        (map.metadata.namespace, map.metadata.name, entries)
    } else {
        let Ok(secret) = serde_json::from_value::<Secret>(value.clone()) else {
            return;
        };
        let mut entries: std::collections::BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, bytes)| (key, String::from_utf8_lossy(&bytes.0).into_owned()))
            .collect();
        entries.extend(secret.string_data.unwrap_or_default());
        (secret.metadata.namespace, secret.metadata.name, entries)
    };
    let namespace = namespace.unwrap_or_else(|| "default".to_string());
    if let Some(name) = name {
        manifests
            .entries
            .insert(format!("{kind} {namespace}/{name}"), (label, entries));
    }
}

/// The trusted keys a signature names, from the manifests' ConfigMaps and Secrets.
fn trusted_keys_of(
    namespace: &str,
    signature: Option<&ChecksumsSignature>,
    entries: &std::collections::BTreeMap<
        String,
        (String, std::collections::BTreeMap<String, String>),
    >,
    used: &mut BTreeSet<String>,
) -> Option<String> {
    let keys = &signature?.keys;
    let (kind, name) = match (&keys.config_map_name, &keys.secret_name) {
        (Some(name), _) => ("ConfigMap", name),
        (None, Some(name)) => ("Secret", name),
        (None, None) => return None,
    };
    let (label, found) = entries.get(&format!("{kind} {namespace}/{name}"))?;
    used.insert(label.clone());
    found.get(keys.key()).cloned()
}

/// The schema of a kind glint reads, if it is one.
type SchemaOf = fn() -> Option<&'static serde_json::Value>;

fn schema_for(kind: &str) -> Option<SchemaOf> {
    match kind {
        "Image" => Some(image_schema),
        "ImageSeries" => Some(series_schema),
        _ => None,
    }
}

/// The CRDs' own schemas, whose CEL rules a manifest must pass (each built once).
fn image_schema() -> Option<&'static serde_json::Value> {
    static SCHEMA: std::sync::OnceLock<Option<serde_json::Value>> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| schema_of(crate::crd::definition().ok()?))
        .as_ref()
}

fn series_schema() -> Option<&'static serde_json::Value> {
    static SCHEMA: std::sync::OnceLock<Option<serde_json::Value>> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| schema_of(crate::crd::series_definition().ok()?))
        .as_ref()
}

fn schema_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Option<serde_json::Value> {
    let version = crd.spec.versions.first()?;
    let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    serde_json::to_value(schema).ok()
}

/// What the apiserver would refuse in `document`: each broken CEL rule of the CRD, with the
/// field it is about and its message (which says what to fix). The rules are evaluated, not
/// restated here, so the CLI and the cluster can never disagree.
fn admission_errors(
    schema: Option<&'static serde_json::Value>,
    document: &serde_json::Value,
) -> Vec<String> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    match kube::core::cel::Validator::new().validate(schema, document, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|error| match error.field_path.as_str() {
                "" => error.message.clone(),
                path => format!("{path}: {}", error.message),
            })
            .collect(),
    }
}

/// A `file:` source relative to the manifest's folder (stdin: the working folder) as an
/// absolute `file://` URL; other URLs unchanged. Relative paths keep a folder of manifests
/// and its images movable, as the shipped examples are.
fn resolve_file_url(url: &str, origin: &str) -> Result<String, String> {
    let Some(path) = url.strip_prefix("file:") else {
        return Ok(url.to_string());
    };
    if path.starts_with("//") {
        return Ok(url.to_string());
    }
    let base = match Path::new(origin).parent() {
        Some(folder) if origin != "-" => folder.to_path_buf(),
        _ => PathBuf::new(),
    };
    let joined = std::path::absolute(base.join(path))
        .map_err(|err| format!("cannot resolve source.url {url}: {err}"))?;
    url::Url::from_file_path(&joined)
        .map(String::from)
        .map_err(|()| format!("source.url {url} does not name a file path"))
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
