//! `glint image …`: one-shot image commands on a cloud from clouds.yaml, for people and
//! scripts. They call the same [`GlanceApi`] the controller will use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::auth::{AuthOptions, Authenticator, clouds};
use crate::glance::{
    ByteStream, ContainerFormat, DiskFormat, GlanceApi, GlanceClient, GlanceError, ImageStatus,
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
        status: Option<ImageStatus>,
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

/// Builds a client for the cloud named on the command line or by `OS_CLOUD`.
pub fn client_from_environment(cloud: Option<&str>) -> Result<GlanceClient, GlanceError> {
    let config = clouds::load_from_environment(cloud)?;
    let auth = Authenticator::from_cloud(&config, AuthOptions::default())?;
    Ok(GlanceClient::new(auth))
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
            println!("{image:#?}");
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
