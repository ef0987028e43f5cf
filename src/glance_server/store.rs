//! Where the embedded cloud keeps things: image records, import tasks and the metadata
//! definitions in a redb database, image data in plain files beside it.
//!
//! redb rather than SQLite: it is pure Rust (no C to compile on a 2-core build), and each
//! write transaction is atomic and durable on commit, which is all the cloud needs. Queries are
//! filters over a few thousand records at most, done in memory after one read transaction.
//!
//! Data is written to `<id>.partial` and renamed into place only after its digests are
//! recorded, so a crash mid-upload leaves no active image without data; [`Store::open`] puts
//! images caught mid-upload back to `queued`, as Glance does when an upload breaks.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use super::CloudError;
use super::image::ImageRecord;
use super::metadefs::Metadefs;
use crate::vocabulary::GlanceStatus;

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// The metadata definitions catalogue, one record (it is small and changes rarely).
const METADEFS: TableDefinition<&str, &[u8]> = TableDefinition::new("metadefs");
const METADEFS_KEY: &str = "catalogue";

pub struct Store {
    database: Database,
    data: PathBuf,
    staging: PathBuf,
}

impl Store {
    /// Opens (or creates) the cloud in `dir`, and repairs what a crash left half done.
    pub fn open(dir: &Path) -> Result<Self, CloudError> {
        let data = dir.join("images");
        let staging = dir.join("staging");
        for folder in [dir, &data, &staging] {
            std::fs::create_dir_all(folder).map_err(|err| {
                CloudError::storage(format!("cannot create {}: {err}", folder.display()))
            })?;
        }
        let database = Database::create(dir.join("metadata.redb")).map_err(|err| {
            CloudError::storage(format!(
                "cannot open {}: {err}",
                dir.join("metadata.redb").display()
            ))
        })?;
        let store = Self {
            database,
            data,
            staging,
        };
        store.recover()?;
        Ok(store)
    }

    fn recover(&self) -> Result<(), CloudError> {
        for mut image in self.all()? {
            let interrupted = match image.status {
                GlanceStatus::Saving | GlanceStatus::Importing => true,
                // Staged data is renamed into place only once complete.
                GlanceStatus::Uploading => !self.staging_path(&image.id).exists(),
                _ => false,
            };
            if interrupted {
                if image.status == GlanceStatus::Importing {
                    self.fail_running_tasks(&image.id)?;
                }
                image.status = GlanceStatus::Queued;
                self.put(&image)?;
            }
        }
        for folder in [&self.data, &self.staging] {
            let entries = std::fs::read_dir(folder).map_err(CloudError::storage)?;
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|ext| ext == "partial") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// An import the cloud stopped in the middle of says so in its task.
    fn fail_running_tasks(&self, image_id: &str) -> Result<(), CloudError> {
        for mut task in self.tasks(image_id)? {
            if task["status"] == "processing" {
                task["status"] = "failure".into();
                task["message"] = "The cloud stopped during the import; import again.".into();
                self.put_task(image_id, task)?;
            }
        }
        Ok(())
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.data.join(id)
    }

    pub fn partial_path(&self, id: &str) -> PathBuf {
        self.data.join(format!("{id}.partial"))
    }

    pub fn staging_path(&self, id: &str) -> PathBuf {
        self.staging.join(id)
    }

    pub fn partial_staging_path(&self, id: &str) -> PathBuf {
        self.staging.join(format!("{id}.partial"))
    }

    /// The image with this id, tombstones of deleted images included.
    pub fn get(&self, id: &str) -> Result<Option<ImageRecord>, CloudError> {
        self.value(IMAGES, id)?.as_deref().map(decode).transpose()
    }

    /// Every image, tombstones included.
    pub fn all(&self) -> Result<Vec<ImageRecord>, CloudError> {
        self.values(IMAGES)?
            .iter()
            .map(|bytes| decode(bytes))
            .collect()
    }

    /// One stored value; none when the key (or the whole table) was never written.
    fn value(
        &self,
        definition: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, CloudError> {
        let read = self.database.begin_read().map_err(CloudError::storage)?;
        let table = match read.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(CloudError::storage(err)),
        };
        let value = table.get(key).map_err(CloudError::storage)?;
        Ok(value.map(|bytes| bytes.value().to_vec()))
    }

    /// Every stored value of a table, in key order.
    fn values(&self, definition: TableDefinition<&str, &[u8]>) -> Result<Vec<Vec<u8>>, CloudError> {
        let read = self.database.begin_read().map_err(CloudError::storage)?;
        let table = match read.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(CloudError::storage(err)),
        };
        let mut values = Vec::new();
        for entry in table.iter().map_err(CloudError::storage)? {
            let (_, bytes) = entry.map_err(CloudError::storage)?;
            values.push(bytes.value().to_vec());
        }
        Ok(values)
    }

    pub fn put(&self, image: &ImageRecord) -> Result<(), CloudError> {
        self.update(&image.id, |_| Ok(Some(image.clone())))
            .map(drop)
    }

    /// Reads, changes and writes one image in a single write transaction, so concurrent
    /// requests cannot interleave between the check and the write. `change` sees the current
    /// record (or `None`) and returns the new one (or `None` to leave it as it was).
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(Option<ImageRecord>) -> Result<Option<ImageRecord>, CloudError>,
    ) -> Result<Option<ImageRecord>, CloudError> {
        let write = self.database.begin_write().map_err(CloudError::storage)?;
        let outcome = {
            let mut table = write.open_table(IMAGES).map_err(CloudError::storage)?;
            let current = match table.get(id).map_err(CloudError::storage)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            let outcome = change(current)?;
            if let Some(image) = &outcome {
                let bytes = serde_json::to_vec(image).map_err(CloudError::storage)?;
                table
                    .insert(id, bytes.as_slice())
                    .map_err(CloudError::storage)?;
            }
            outcome
        };
        write.commit().map_err(CloudError::storage)?;
        Ok(outcome)
    }

    /// The import tasks of one image, oldest first.
    pub fn tasks(&self, image_id: &str) -> Result<Vec<Value>, CloudError> {
        match self.value(TASKS, image_id)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(CloudError::storage),
            None => Ok(Vec::new()),
        }
    }

    /// Every image's tasks, for `/v2/tasks`.
    pub fn all_tasks(&self) -> Result<Vec<Value>, CloudError> {
        let mut tasks = Vec::new();
        for bytes in self.values(TASKS)? {
            let of_image: Vec<Value> =
                serde_json::from_slice(&bytes).map_err(CloudError::storage)?;
            tasks.extend(of_image);
        }
        Ok(tasks)
    }

    /// Adds or replaces (by `id`) one task of an image.
    pub fn put_task(&self, image_id: &str, task: Value) -> Result<(), CloudError> {
        let write = self.database.begin_write().map_err(CloudError::storage)?;
        {
            let mut table = write.open_table(TASKS).map_err(CloudError::storage)?;
            let mut tasks: Vec<Value> = match table.get(image_id).map_err(CloudError::storage)? {
                Some(bytes) => {
                    serde_json::from_slice(bytes.value()).map_err(CloudError::storage)?
                }
                None => Vec::new(),
            };
            match tasks.iter_mut().find(|known| known["id"] == task["id"]) {
                Some(known) => *known = task,
                None => tasks.push(task),
            }
            let bytes = serde_json::to_vec(&tasks).map_err(CloudError::storage)?;
            table
                .insert(image_id, bytes.as_slice())
                .map_err(CloudError::storage)?;
        }
        write.commit().map_err(CloudError::storage)
    }

    /// The metadata definitions catalogue (empty until first written).
    pub fn metadefs(&self) -> Result<Metadefs, CloudError> {
        self.value(METADEFS, METADEFS_KEY)?
            .as_deref()
            .map_or_else(|| Ok(Metadefs::default()), decode_metadefs)
    }

    /// Reads, changes and writes the catalogue in one write transaction; nothing is written
    /// when `change` fails, so a refused request leaves no half of itself behind.
    pub fn update_metadefs<T>(
        &self,
        change: impl FnOnce(&mut Metadefs) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let write = self.database.begin_write().map_err(CloudError::storage)?;
        let outcome = {
            let mut table = write.open_table(METADEFS).map_err(CloudError::storage)?;
            let mut metadefs = match table.get(METADEFS_KEY).map_err(CloudError::storage)? {
                Some(bytes) => decode_metadefs(bytes.value())?,
                None => Metadefs::default(),
            };
            let outcome = change(&mut metadefs)?;
            let bytes = serde_json::to_vec(&metadefs).map_err(CloudError::storage)?;
            table
                .insert(METADEFS_KEY, bytes.as_slice())
                .map_err(CloudError::storage)?;
            outcome
        };
        write.commit().map_err(CloudError::storage)?;
        Ok(outcome)
    }
}

fn decode_metadefs(bytes: &[u8]) -> Result<Metadefs, CloudError> {
    serde_json::from_slice(bytes)
        .map_err(|err| CloudError::storage(format!("unreadable metadata definitions: {err}")))
}

fn decode(bytes: &[u8]) -> Result<ImageRecord, CloudError> {
    serde_json::from_slice(bytes)
        .map_err(|err| CloudError::storage(format!("unreadable image record: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glance_server::image::Formats;

    fn record(store: &Store, name: &str, state: GlanceStatus) -> String {
        let mut image = ImageRecord::create(
            &serde_json::json!({"name": name}),
            "p1",
            "2026-01-01T00:00:00Z",
            &Formats::default(),
        )
        .expect("record");
        image.status = state;
        store.put(&image).expect("put");
        image.id
    }

    #[test]
    fn reopening_after_a_crash_puts_half_done_images_back_to_queued_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("glint-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (active, saving, half_staged, staged, importing) = {
            let store = Store::open(&dir).expect("open");
            let active = record(&store, "active", GlanceStatus::Active);
            let saving = record(&store, "saving", GlanceStatus::Saving);
            std::fs::write(store.partial_path(&saving), b"half").expect("partial");
            let half_staged = record(&store, "half-staged", GlanceStatus::Uploading);
            std::fs::write(store.partial_staging_path(&half_staged), b"half").expect("partial");
            let staged = record(&store, "staged", GlanceStatus::Uploading);
            std::fs::write(store.staging_path(&staged), b"all of it").expect("staged");
            let importing = record(&store, "importing", GlanceStatus::Importing);
            store
                .put_task(
                    &importing,
                    serde_json::json!({"id": "t1", "status": "processing"}),
                )
                .expect("task");
            (active, saving, half_staged, staged, importing)
        };
        let store = Store::open(&dir).expect("reopen");
        let status_of = |id: &str| store.get(id).expect("get").expect("kept").status;
        assert_eq!(status_of(&active), GlanceStatus::Active);
        assert_eq!(status_of(&saving), GlanceStatus::Queued);
        assert_eq!(
            status_of(&half_staged),
            GlanceStatus::Queued,
            "half-staged data is not importable"
        );
        assert_eq!(
            status_of(&staged),
            GlanceStatus::Uploading,
            "complete staged data stays"
        );
        assert_eq!(status_of(&importing), GlanceStatus::Queued);
        assert_eq!(
            store.tasks(&importing).expect("tasks")[0]["status"],
            "failure"
        );
        assert!(!store.partial_path(&saving).exists());
        assert!(!store.partial_staging_path(&half_staged).exists());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
