//! The soak's ImageSeries: a CirrOS-layout mirror that publishes a release every 25 s while the
//! faults last, and a watch on Glance itself (no proxy) for the images that carry the series'
//! stable name: never two, never one without a published release's bytes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use glint::glance::{GlanceApi, GlanceClient, GlanceImage, ListQuery, NameFilter};
use sha2::Digest;

use super::common::fault_proxy::FaultProxy;
use super::common::kubectl::Kubectl;
use super::common::layouts::Layout;
use super::common::mirror::Mirror;

const NAME: &str = "soak-series";
const RELEASE_BYTES: usize = 48 << 20;
const EVERY: Duration = Duration::from_secs(25);
const SAMPLE: Duration = Duration::from_millis(300);
const LAYOUT: Layout = Layout::CirrosFolders;

pub struct SeriesRun {
    mirror_dir: std::path::PathBuf,
    glance: GlanceClient,
    seed: u64,
    published: u32,
    last_publish: Instant,
    publish_until: Instant,
    /// sha512 of every published release.
    releases: HashSet<String>,
    samples: u64,
    bad: Vec<String>,
    /// Images seen carrying the stable name.
    holders: HashSet<String>,
    last_sample: Instant,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SeriesRun {
    /// Publishes release 1 and applies the series, whose mirror is reached through `proxy`.
    pub async fn start(
        k: &Kubectl,
        mirror: &Mirror,
        proxy: &FaultProxy,
        glance: GlanceClient,
        seed: u64,
        publish_for: Duration,
    ) -> Result<Self, String> {
        let now = Instant::now();
        let mut run = Self {
            mirror_dir: mirror.dir().to_path_buf(),
            glance,
            seed,
            published: 0,
            last_publish: now,
            publish_until: now + publish_for,
            releases: HashSet::new(),
            samples: 0,
            bad: Vec::new(),
            holders: HashSet::new(),
            last_sample: now,
        };
        run.publish();
        k.wait("crd/imageseries.glint.dev", "condition=Established");
        k.apply(&format!(
            "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: {NAME}}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw}}\n  keep: 2\n  schedule: {{every: 168h}}\n{}",
            LAYOUT.checksums_spec(&format!("{}/", proxy.url()))
        ));
        Ok(run)
    }

    fn publish(&mut self) {
        self.published += 1;
        let n = self.published;
        let data =
            super::common::pseudo_random_bytes(RELEASE_BYTES, self.seed * 1000 + u64::from(n));
        self.releases.insert(hex(&sha2::Sha512::digest(&data)));
        LAYOUT.publish(&self.mirror_dir, n, &data, true);
        self.last_publish = Instant::now();
    }

    /// Publishes the next release when it is due (asking the series to look at once, as a
    /// user's annotation would), and samples Glance.
    pub async fn tick(&mut self, k: &Kubectl) -> Result<(), String> {
        let now = Instant::now();
        if now < self.publish_until && now.duration_since(self.last_publish) >= EVERY {
            self.publish();
            let _ = k.run(
                &[
                    "annotate",
                    &format!("imageseries/{NAME}"),
                    &format!(
                        "glint.dev/reconcile-requested-at=release-{}",
                        self.published
                    ),
                    "--overwrite",
                ],
                None,
            );
        }
        if now.duration_since(self.last_sample) >= SAMPLE {
            self.last_sample = now;
            self.sample().await;
        }
        Ok(())
    }

    async fn sample(&mut self) {
        let mut holders: Vec<GlanceImage> = Vec::new();
        for hidden in ["false", "true"] {
            let query = ListQuery {
                name: Some(NameFilter::Exactly(NAME.to_string())),
                properties: [("os_hidden".to_string(), hidden.to_string())].into(),
                ..ListQuery::default()
            };
            match self
                .glance
                .list_images(&query)
                .try_collect::<Vec<_>>()
                .await
            {
                Ok(found) => holders.extend(found),
                // The check reads Glance directly; a failed read is no sample.
                Err(_) => return,
            }
        }
        self.samples += 1;
        if holders.len() > 1 {
            let ids: Vec<&str> = holders.iter().map(|i| i.id.as_str()).collect();
            self.bad.push(format!(
                "the stable name on {} images: {ids:?}",
                holders.len()
            ));
        }
        for image in &holders {
            let right = image
                .os_hash_value
                .as_ref()
                .is_some_and(|hash| self.releases.contains(hash));
            if !right {
                self.bad.push(format!(
                    "the stable name on image {} ({}), which holds no published release",
                    image.id, image.status
                ));
            }
            self.holders.insert(image.id.clone());
        }
    }

    /// Whether the series is Ready on the last release published.
    pub fn current_is_last(&self, k: &Kubectl) -> bool {
        let want = LAYOUT.version(self.published).unwrap_or_default();
        let (ok, current, _) = k.run(
            &[
                "get",
                &format!("imageseries/{NAME}"),
                "-o",
                "jsonpath={.status.current} {.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            None,
        );
        ok && current.trim() == format!("{want} True")
    }

    /// Prints the series' figures; returns the number of bad samples.
    pub fn report(&self) -> usize {
        println!(
            "| series | {} releases published, {} images carried the stable name in turn, {} samples of Glance, {} bad |",
            self.published,
            self.holders.len(),
            self.samples,
            self.bad.len()
        );
        for line in self.bad.iter().take(10) {
            println!("bad sample: {line}");
        }
        self.bad.len()
    }
}
