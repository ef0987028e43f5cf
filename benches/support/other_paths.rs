//! The other two ways data reaches Glance through glint, measured like the controller's Image:
//! `glint apply -f` (until the CLI exits) and an ImageSeries picking up a new release (until
//! its status names the release current).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use super::data::{write_file, xorshift};
use super::ready::{StatusWatch, series_current};
use super::{Bench, CpuSnapshot, MIB, Measured, Result, TAG, err, upload_timeout};

/// The ImageSeries of the series case, and the mirror folder it follows.
pub struct SeriesPath {
    name: String,
    /// The source server's folder (it serves one flat folder): the checksums file and one
    /// file per release.
    mirror: PathBuf,
    /// How many releases were published; the next version's minute.
    published: u32,
    watch: StatusWatch,
    /// The Glance image of the release the last run made current.
    current_id: Option<String>,
}

/// Debian-like dated names, listed in one checksums file at a fixed URL (as AlmaLinux
/// publishes them).
const SERIES_PATTERN: &str = r"debian-12-generic-amd64-(?P<version>[0-9]{8}-[0-9]{4})\.raw";

const SUMS: &str = "SHA512SUMS";

fn release_name(version: &str) -> String {
    format!("debian-12-generic-amd64-{version}.raw")
}

impl Bench {
    /// `glint apply -f` of an Image manifest with this source: start -> exit, and when
    /// Glance had the data. With `keep_token`, clouds.yaml says `cache: {auth: true}` and
    /// the token an earlier run kept is there (the bench's own `glint image list` before the
    /// first run, as a user's previous command); without, the run asks Keystone.
    pub async fn cli_run(
        &mut self,
        name: &str,
        url: &str,
        size: u64,
        keep_token: bool,
    ) -> Result<Measured> {
        let dir = std::env::temp_dir().join(format!("{}-cli", self.namespace));
        std::fs::create_dir_all(&dir).map_err(err)?;
        let clouds = dir.join("clouds.yaml");
        let cloud = super::common::keystone::password_auth(&self.bed, &self.bed.demo_password);
        let cloud = if keep_token {
            format!("cache:\n  auth: true\n{cloud}")
        } else {
            cloud
        };
        std::fs::write(&clouds, cloud).map_err(err)?;
        // Outlives the run's folder: the token kept by one run is the next one's.
        let token_cache = std::env::temp_dir().join(format!("{}-tokens", self.namespace));
        if keep_token && !token_cache.join("glint/tokens").is_dir() {
            let listed = Command::new(&self.binary)
                .args(["image", "list"])
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env("OS_CLOUD", "bed")
                .env("XDG_CACHE_HOME", &token_cache)
                .output()
                .map_err(err)?;
            if !listed.status.success() {
                return Err(format!(
                    "glint image list failed: {}",
                    String::from_utf8_lossy(&listed.stderr)
                ));
            }
        }
        let manifest = dir.join(format!("{name}.yaml"));
        let document = self.image_manifest(name, &[TAG], Some(url));
        std::fs::write(&manifest, serde_json::to_string(&document).map_err(err)?).map_err(err)?;
        let cpu_before = CpuSnapshot::take(None);
        let started = Instant::now();
        let mut child = Command::new(&self.binary)
            .args(["apply", "-f"])
            .arg(&manifest)
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("OS_CLOUD", "bed")
            .env("XDG_CACHE_HOME", &token_cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let rss = super::RssSampler::start(child.id());
        let names = [name.to_string()];
        let uploaded = self.wait_uploaded(&names, size, upload_timeout(size)).await;
        let exited = loop {
            if let Some(status) = child.try_wait().map_err(err)? {
                break (Instant::now(), status);
            }
            if started.elapsed() > upload_timeout(size) {
                let _ = child.kill();
                return Err(format!("glint apply of {name} did not exit"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let cpu = CpuSnapshot::take(None).since(&cpu_before);
        self.cli_peak_mib = rss.peak_mib();
        drop(rss);
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        for id in self.glance.ids_named(name).await? {
            self.glance.delete(&id).await?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        if !exited.1.success() {
            return Err(format!("glint apply of {name} failed: {stderr}"));
        }
        let done = uploaded?;
        Ok(Measured {
            whole: (exited.0 - started).as_secs_f64(),
            data_in: (done[name].seen - started).as_secs_f64(),
            put: done[name].put,
            cpu,
        })
    }

    /// The body of `POST /v3/auth/tokens` for the demo user and project: what the curl
    /// baseline sends when it starts from scratch, as `glint apply -f` does.
    pub fn demo_login(&self) -> String {
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.bed.demo_user, "domain": {"name": "Default"},
                "password": self.bed.demo_password}}},
            "scope": {"project": {"name": self.bed.demo_project, "domain": {"name": "Default"}}}}})
        .to_string()
    }

    /// The peak RSS of the last `glint apply` run, in MiB.
    pub fn cli_peak_mib(&self) -> f64 {
        self.cli_peak_mib
    }

    /// Publishes a new release of `size` bytes in the series' mirror and asks for a check:
    /// request -> the release current and Ready, and when Glance had its data.
    pub async fn series_run(&mut self, size: u64) -> Result<Measured> {
        if self.series.is_none() {
            self.series = Some(self.start_series().await?);
        }
        let version = self.publish_release(size)?;
        // The release was just written (a mirror's disk is not this cloud's): its dirty pages
        // go out now, not during the run, whose uploads and renames meet no other writeback
        // than the baseline's do.
        super::settle_writeback();
        let series = self.series.as_ref().ok_or("no series")?;
        let name = series.name.clone();
        // The previous source server's series had the same name and versions.
        series.watch.forget(&format!("{name}@{version}"));
        let objects = self.series_api();
        self.rss.reset();
        let cpu_before = CpuSnapshot::take(Some(self.rss.pid));
        let started = Instant::now();
        let asked = json!({"metadata": {"annotations": {
            "glint.dev/reconcile-requested-at": format!("{version}-{}", std::process::id())
        }}});
        objects
            .patch(&name, &PatchParams::default(), &Patch::Merge(&asked))
            .await
            .map_err(|e| format!("annotate ImageSeries {name}: {e}"))?;
        let done = self
            .wait_upload_where(size, upload_timeout(size), |image| {
                image["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|tag| tag == "glint-bench-series"))
                    && image["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(name.as_str()))
            })
            .await?;
        let series = self.series.as_ref().ok_or("no series")?;
        let current = series
            .watch
            .wait(
                &format!("{name}@{version}"),
                Duration::from_secs(120 + size / 10_000_000),
            )
            .await?;
        let cpu = CpuSnapshot::take(Some(self.rss.pid)).since(&cpu_before);
        // glint deletes the version before this one (keep: 1) once status names the new one;
        // the next run, glint's or the baseline's, starts when Glance has done so.
        let before = self
            .series
            .as_mut()
            .and_then(|series| series.current_id.replace(done.id.clone()));
        if let Some(old) = before {
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.glance.image(&old).await?.is_some() {
                if Instant::now() > deadline {
                    return Err(format!("glint did not delete the retired version {old}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // The file of the release before this one is no longer needed (keep: 1).
        self.drop_old_releases()?;
        Ok(Measured {
            whole: (current - started).as_secs_f64(),
            data_in: (done.seen - started).as_secs_f64(),
            put: done.put,
            cpu,
        })
    }

    fn series_api(&self) -> Api<DynamicObject> {
        // Not the naive plural ("imageserieses").
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("glint.dev", "v1alpha1", "ImageSeries"),
            "imageseries",
        );
        Api::namespaced_with(
            self.images.clone().into_client(),
            &self.namespace,
            &resource,
        )
    }

    /// The series, following a mirror folder with one release of 16 MiB already in it.
    async fn start_series(&mut self) -> Result<SeriesPath> {
        let mirror = self.data.clone();
        let _ = std::fs::remove_file(mirror.join(SUMS));
        let objects = self.series_api();
        let name = format!("{}-series", self.prefix);
        let mut series = SeriesPath {
            name: name.clone(),
            mirror,
            published: 0,
            watch: StatusWatch::start(objects.clone(), series_current),
            current_id: None,
        };
        let checksums = self.server.url(&series.mirror.join(SUMS));
        let first = Self::publish_into(&mut series, super::SMALL)?;
        let manifest = json!({
            "apiVersion": "glint.dev/v1alpha1",
            "kind": "ImageSeries",
            "metadata": {"name": name},
            "spec": {
                "cloudCredentialsRef": {"secretName": "cloud", "cloudName": "bed"},
                "image": {"diskFormat": "raw", "tags": [TAG, "glint-bench-series"]},
                "keep": 1,
                "schedule": {"every": "168h"},
                "checksums": {"url": checksums, "pattern": SERIES_PATTERN},
            },
        });
        objects
            .patch(
                &name,
                &PatchParams::apply("glint-bench"),
                &Patch::Apply(&manifest),
            )
            .await
            .map_err(|e| format!("apply ImageSeries {name}: {e}"))?;
        series
            .watch
            .wait(&format!("{name}@{first}"), Duration::from_secs(120))
            .await?;
        // Its upload is in the log; the runs must not take it for theirs.
        let _ = self.log.take_uploads();
        Ok(series)
    }

    fn publish_release(&mut self, size: u64) -> Result<String> {
        let series = self.series.as_mut().ok_or("no series")?;
        Self::publish_into(series, size)
    }

    /// Writes the next release (its own bytes: the same bytes under two versions would be
    /// one release) and lists it in SHA512SUMS beside the earlier ones.
    fn publish_into(series: &mut SeriesPath, size: u64) -> Result<String> {
        use sha2::Digest;
        series.published += 1;
        let version = format!("20270101-{:04}", series.published);
        let file = series.mirror.join(release_name(&version));
        let mut state = 0x51ed_27a3_9d1f_0b4d_u64 ^ u64::from(series.published) << 32;
        let mut digest = sha2::Sha512::new();
        write_file(&file, size, |block| {
            for word in block.chunks_exact_mut(8) {
                word.copy_from_slice(&xorshift(&mut state).to_le_bytes());
            }
        })?;
        // Hashed from the page cache the write just filled.
        let mut source = std::fs::File::open(&file).map_err(err)?;
        let mut buffer = vec![0u8; MIB as usize];
        loop {
            let read = source.read(&mut buffer).map_err(err)?;
            if read == 0 {
                break;
            }
            digest.update(&buffer[..read]);
        }
        let line = format!("{:x}  {}\n", digest.finalize(), release_name(&version));
        let sums = series.mirror.join(SUMS);
        let mut listed = std::fs::read_to_string(&sums).unwrap_or_default();
        listed.push_str(&line);
        let tmp = series.mirror.join(format!("{SUMS}.tmp"));
        std::fs::write(&tmp, listed).map_err(err)?;
        std::fs::rename(&tmp, &sums).map_err(err)?;
        Ok(version)
    }

    /// Removes release files older than the newest (the checksums file keeps naming them, as
    /// mirrors' files outlive their images: glint keeps one version and does not fetch them).
    fn drop_old_releases(&self) -> Result<()> {
        let Some(series) = &self.series else {
            return Ok(());
        };
        for n in 1..series.published {
            let version = format!("20270101-{n:04}");
            let _ = std::fs::remove_file(series.mirror.join(release_name(&version)));
        }
        Ok(())
    }

    /// Deletes the series (glint deletes its versions) and its mirror's files: the next
    /// source server starts another.
    pub fn end_series(&mut self) {
        if let Some(series) = self.series.take() {
            let _ = self.kubectl(&[
                "delete",
                "imageseries",
                &series.name,
                "--wait=true",
                "--timeout=300s",
            ]);
            for n in 1..=series.published {
                let version = format!("20270101-{n:04}");
                let _ = std::fs::remove_file(series.mirror.join(release_name(&version)));
            }
            let _ = std::fs::remove_file(series.mirror.join(SUMS));
        }
    }
}
