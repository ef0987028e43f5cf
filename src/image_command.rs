//! `glint image …`: one-shot image commands on a cloud from clouds.yaml, for people and
//! scripts. They call the same [`GlanceApi`] the controller will use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::glance::{
    ByteStream, ContainerFormat, DiskFormat, GlanceApi, GlanceError, GlanceImage, GlanceStatus,
    ListQuery, NameFilter, NewImage, Visibility,
};

/// Chunk size for reading local files: large enough that syscalls do not bound throughput,
/// small enough that memory stays flat.
pub const FILE_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images, following pages as needed.
    List {
        #[arg(long)]
        name: Option<String>,
        /// Only images with this tag (repeat: all of them).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        visibility: Option<Visibility>,
        #[arg(long)]
        status: Option<GlanceStatus>,
    },
    /// Show one image as JSON-like lines.
    Show { name_or_id: String },
    /// Create an image, and upload a local file into it when --file is given.
    Create(CreateArgs),
    /// Upload a local file into a queued image.
    Upload { id: String, file: PathBuf },
    /// Download an image's data to a local file.
    Download { id: String, file: PathBuf },
    /// Delete an image by name or id.
    Delete { name_or_id: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    #[arg(long)]
    disk_format: DiskFormat,
    #[arg(long, default_value = "bare")]
    container_format: ContainerFormat,
    #[arg(long, default_value = "private")]
    visibility: Visibility,
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// A free-form property as key=value (repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    #[arg(long)]
    file: Option<PathBuf>,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

/// A local file as an upload stream, read in [`FILE_CHUNK_BYTES`] chunks.
pub async fn file_stream(path: &Path) -> std::io::Result<(ByteStream, u64)> {
    let file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, FILE_CHUNK_BYTES);
    Ok((Box::pin(stream), size))
}

fn not_found(what: &str) -> GlanceError {
    GlanceError::Api {
        operation: "find image",
        status: 404,
        message: format!("no image with name or id {what:?}"),
        request_id: None,
    }
}

/// Runs one image command and prints its result on stdout.
pub async fn run(api: &impl GlanceApi, command: ImageCommand) -> Result<(), CliError> {
    match command {
        ImageCommand::List {
            name,
            tags,
            visibility,
            status,
        } => {
            let query = ListQuery {
                name: name.map(NameFilter::Exactly),
                tags,
                visibility,
                status,
                ..ListQuery::default()
            };
            let mut images = api.list_images(&query);
            println!("{:<36}  {:<12}  {:<10}  NAME", "ID", "STATUS", "VISIBILITY");
            while let Some(image) = images.next().await {
                let image = image?;
                println!(
                    "{:<36}  {:<12}  {:<10}  {}",
                    image.id,
                    image.status,
                    image.visibility,
                    image.name.as_deref().unwrap_or("")
                );
            }
        }
        ImageCommand::Show { name_or_id } => {
            let image = api
                .find_image(&name_or_id)
                .await?
                .ok_or_else(|| not_found(&name_or_id))?;
            print!("{}", describe(&image));
        }
        ImageCommand::Create(args) => {
            let image = api
                .create_image(&NewImage {
                    name: Some(args.name),
                    disk_format: Some(args.disk_format),
                    container_format: Some(args.container_format),
                    visibility: Some(args.visibility),
                    tags: args.tags,
                    properties: args.properties.into_iter().collect::<BTreeMap<_, _>>(),
                    ..NewImage::default()
                })
                .await?;
            println!("created {}", image.id);
            if let Some(file) = args.file {
                upload_file(api, &image.id, &file).await?;
            }
        }
        ImageCommand::Upload { id, file } => upload_file(api, &id, &file).await?,
        ImageCommand::Download { id, file } => {
            let download = api.download(&id).await?;
            let mut out = tokio::fs::File::create(&file).await?;
            let mut data = download.data;
            let mut written: u64 = 0;
            while let Some(chunk) = TryStreamExt::try_next(&mut data).await? {
                out.write_all(&chunk).await?;
                written += chunk.len() as u64;
            }
            out.flush().await?;
            println!("wrote {written} bytes to {}", file.display());
        }
        ImageCommand::Delete { name_or_id } => {
            let image = api
                .find_image(&name_or_id)
                .await?
                .ok_or_else(|| not_found(&name_or_id))?;
            api.delete(&image.id).await?;
            println!("deleted {}", image.id);
        }
    }
    Ok(())
}

/// `field  value` lines, like `openstack image show`.
fn describe(image: &GlanceImage) -> String {
    let optional = |value: Option<String>| value.unwrap_or_default();
    let mut rows: Vec<(String, String)> = vec![
        ("id".into(), image.id.clone()),
        ("name".into(), optional(image.name.clone())),
        ("status".into(), image.status.to_string()),
        ("visibility".into(), image.visibility.to_string()),
        ("protected".into(), image.protected.to_string()),
        ("hidden".into(), image.hidden.to_string()),
        (
            "disk_format".into(),
            optional(image.disk_format.as_ref().map(|f| f.to_string())),
        ),
        (
            "container_format".into(),
            optional(image.container_format.as_ref().map(|f| f.to_string())),
        ),
        ("size".into(), optional(image.size.map(|n| n.to_string()))),
        (
            "virtual_size".into(),
            optional(image.virtual_size.map(|n| n.to_string())),
        ),
        ("min_disk".into(), image.min_disk.to_string()),
        ("min_ram".into(), image.min_ram.to_string()),
        ("checksum".into(), optional(image.checksum.clone())),
        ("os_hash_algo".into(), optional(image.os_hash_algo.clone())),
        (
            "os_hash_value".into(),
            optional(image.os_hash_value.clone()),
        ),
        ("owner".into(), optional(image.owner.clone())),
        ("tags".into(), image.tags.join(", ")),
        ("created_at".into(), optional(image.created_at.clone())),
        ("updated_at".into(), optional(image.updated_at.clone())),
    ];
    rows.extend(
        image
            .properties
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

async fn upload_file(api: &impl GlanceApi, id: &str, file: &Path) -> Result<(), CliError> {
    let (data, size) = file_stream(file).await?;
    api.upload(id, data, Some(size)).await?;
    println!("uploaded {size} bytes into {id}");
    Ok(())
}

/// What a CLI command can fail with, printed as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Glance(#[from] GlanceError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_described_as_aligned_fields_with_its_properties_last() {
        let image: GlanceImage = serde_json::from_value(serde_json::json!({
            "id": "i-1", "name": "cirros", "status": "active", "visibility": "private",
            "tags": ["b", "a"], "size": 5, "os_distro": "cirros"
        }))
        .unwrap();
        let text = describe(&image);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id                i-1");
        assert!(lines.contains(&"tags              a, b"), "{text}");
        assert_eq!(lines.last(), Some(&"os_distro         cirros"));
    }
}
