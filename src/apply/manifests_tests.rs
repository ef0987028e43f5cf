//! Tests of reading manifests: folders, bad documents, the CRD's own rules, duplicates,
//! series beside images, and targets.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glint-manifests-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CREDS: &str =
    "cloudCredentialsRef: {secretName: openstack, cloudName: mycloud}, diskFormat: raw";

#[test]
fn a_folder_is_read_in_name_order_with_every_document_and_other_kinds_skipped() {
    let dir = scratch("folder");
    write(
        &dir,
        "b.yaml",
        &format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: second, namespace: team}}\nspec: {{{CREDS}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: openstack}}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: third}}\nspec: {{{CREDS}}}\n"
        ),
    );
    write(
        &dir,
        "a.yml",
        &format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: first}}\nspec: {{{CREDS}}}\n"
        ),
    );
    write(&dir, "notes.txt", "not a manifest");
    let Manifests {
        images: documents,
        skipped,
        ..
    } = read(std::slice::from_ref(&dir)).unwrap();
    let keys: Vec<String> = documents.iter().map(Document::key).collect();
    assert_eq!(keys, ["default/first", "team/second", "default/third"]);
    assert_eq!(documents[2].index, 3, "the third document of b.yaml");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("v1 Secret"), "{skipped:?}");
}

#[test]
fn a_bad_document_is_named_by_file_and_index_with_what_to_fix() {
    let dir = scratch("bad");
    let file = write(
        &dir,
        "images.yaml",
        &format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: fine}}\nspec: {{{CREDS}}}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: broken}}\nspec: {{{CREDS}, visibility: everyone}}\n"
        ),
    );
    let err = read(std::slice::from_ref(&file)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}, document 2: ", file.display())),
        "{err}"
    );
    assert!(err.contains("everyone"), "{err}");

    let unnamed = write(
        &dir,
        "unnamed.yaml",
        &format!("apiVersion: glint.dev/v1alpha1\nkind: Image\nspec: {{{CREDS}}}\n"),
    );
    let err = read(&[unnamed]).unwrap_err().to_string();
    assert!(
        err.contains("document 1: metadata.name is missing"),
        "{err}"
    );
}

#[test]
fn a_manifest_the_apiserver_would_refuse_is_refused_with_the_crds_own_message() {
    let dir = scratch("cel");
    let file = write(
        &dir,
        "images.yaml",
        &format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: fine}}\nspec: {{{CREDS}}}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: pulled}}\nspec: {{{CREDS}, source: {{url: 'https://x/i.raw.gz', method: webDownload, decompress: gzip}}}}\n"
        ),
    );
    let err = read(std::slice::from_ref(&file)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}, document 2: ", file.display())),
        "{err}"
    );
    // The words of the rule in the CRD (src/crd/source.rs), evaluated, not copied here.
    assert!(
        err.contains("set decompress: none (or leave it out), or use method upload"),
        "{err}"
    );
}

#[test]
fn the_same_image_declared_twice_is_refused_naming_both_places() {
    let dir = scratch("twice");
    let doc = format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: twin}}\nspec: {{{CREDS}}}\n"
    );
    write(&dir, "one.yaml", &doc);
    write(&dir, "two.yaml", &doc);
    let err = read(std::slice::from_ref(&dir)).unwrap_err().to_string();
    assert!(err.contains("both declare Image default/twin"), "{err}");
    assert!(err.contains("one.yaml, document 1") && err.contains("two.yaml, document 1"));
}

#[test]
fn an_image_with_targets_is_one_document_per_target_with_its_overrides() {
    let dir = scratch("targets");
    let image = write(
        &dir,
        "image.yaml",
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {name: everywhere}\nspec: {diskFormat: raw, source: {url: 'https://x/disk.raw'}, targets: [{name: eu, cloudCredentialsRef: {secretName: s, cloudName: fra}}, {name: us, cloudCredentialsRef: {secretName: s, cloudName: iad}, region: East, visibility: community}]}\n",
    );
    let Manifests { images, .. } = read(std::slice::from_ref(&image)).unwrap();
    let labels: Vec<String> = images.iter().map(Document::label).collect();
    assert_eq!(labels, ["default/everywhere@eu", "default/everywhere@us"]);
    assert!(images.iter().all(|d| d.key() == "default/everywhere"));
    let us = &images[1];
    assert_eq!(
        us.image.spec.visibility,
        Some(crate::crd::Visibility::Community)
    );
    assert!(us.image.spec.targets.is_empty(), "each is one cloud's spec");
    let target = us.target.as_ref().unwrap();
    assert_eq!(
        (
            target.cloud_credentials_ref.cloud_name.as_str(),
            target.region.as_deref()
        ),
        ("iad", Some("East"))
    );
}

#[test]
fn a_series_with_targets_is_one_document_per_target_each_owning_its_versions() {
    let dir = scratch("series-targets");
    let series = write(
        &dir,
        "series.yaml",
        "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {name: everywhere}\nspec: {image: {diskFormat: raw}, versions: [{version: '1', url: 'https://x/1.raw'}], targets: [{name: eu, cloudCredentialsRef: {secretName: s, cloudName: c}}, {name: us, cloudCredentialsRef: {secretName: s, cloudName: c}, visibility: public}]}\n",
    );
    let Manifests { series, .. } = read(std::slice::from_ref(&series)).unwrap();
    let labels: Vec<String> = series.iter().map(SeriesDocument::label).collect();
    assert_eq!(labels, ["default/everywhere@eu", "default/everywhere@us"]);
    assert_ne!(series[0].owner(), series[1].owner());
    assert!(
        series[0]
            .owner()
            .starts_with(&super::super::identity("default/everywhere"))
    );
    assert_eq!(
        series[1].series.spec.image.visibility,
        Some(crate::crd::Visibility::Public)
    );
}

#[test]
fn a_folder_without_images_is_an_error_not_an_empty_plan() {
    let dir = scratch("empty");
    write(
        &dir,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
    );
    let err = read(&[dir]).unwrap_err().to_string();
    assert!(
        err.starts_with("no Image or ImageSeries documents found in "),
        "{err}"
    );
}

#[test]
fn a_series_is_read_beside_images_with_its_local_urls_made_absolute() {
    let dir = scratch("series");
    let file = write(
        &dir,
        "series.yaml",
        &format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: tiny}}\nspec: {{cloudCredentialsRef: {{secretName: s, cloudName: c}}, image: {{diskFormat: raw}}, checksums: {{url: 'file:mirror/SHA256SUMS', pattern: 'tiny-(?P<version>.*)'}}}}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: tiny}}\nspec: {{{CREDS}}}\n"
        ),
    );
    let manifests = read(&[file]).expect("both kinds");
    assert_eq!(manifests.images.len(), 1);
    let series = &manifests.series[0];
    assert_eq!(
        series.key(),
        "default/tiny",
        "an Image and a series may share a name"
    );
    let url = &series
        .series
        .spec
        .checksums
        .as_ref()
        .expect("checksums")
        .url;
    assert_eq!(
        url,
        &format!("file://{}/mirror/SHA256SUMS", dir.display()),
        "relative to the manifest's folder"
    );
}
