//! The `glint` binary: parses the command line and hands over to the library.

// As in the library (Cargo.toml's [lints]): start-up failures are reported and exit, never
// unwrapped.

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use glint::controller::{self, MAX_RESYNC, MIN_RESYNC, RunConfig};
use glint::crd::parse_duration;
use glint::image_command::{self, ImageCommand};
use glint::leader::LeaseConfig;
use glint::transfer::{Cidr, SourcePolicy, source_policy::parse_cidrs};

#[derive(Debug, Parser)]
#[command(name = "glint", version, about = "Manage OpenStack Glance images")]
struct Cli {
    /// Cloud from clouds.yaml (default: $OS_CLOUD, or the file's only cloud).
    #[arg(long, global = true, env = "OS_CLOUD")]
    os_cloud: Option<String>,
    /// The embedded cloud's folder: plan, apply and image use the embedded cloud there (the
    /// default when no cloud is configured: ~/.local/share/glint).
    #[arg(long, global = true, env = "GLINT_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "GLINT_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, clap::Args)]
struct CrdArgs {
    /// Which CRD to print.
    #[arg(long, value_enum, default_value = "image")]
    kind: CrdKind,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    Image,
    Series,
    Shared,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with images directly (list, show, create, upload, download, delete).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print a CustomResourceDefinition (YAML) for `kubectl apply -f -`: Image, or with
    /// `--kind series` ImageSeries, `--kind shared` SharedImage.
    Crd(CrdArgs),
    /// Run the controller: reconcile Image objects against Glance until SIGTERM.
    Run(RunArgs),
    /// Show what `apply` would change in the cloud for these Image manifests. Exit code 0:
    /// no changes, 2: changes, 1: errors.
    Plan {
        #[command(flatten)]
        files: ManifestFiles,
        /// pretty (for people) or json (for machines).
        #[arg(long, short = 'o', value_enum, default_value_t = glint::apply::Output::Pretty)]
        output: glint::apply::Output,
        /// Also list images an earlier apply created whose manifests are gone.
        #[arg(long)]
        prune: bool,
    },
    /// Make the cloud match these Image manifests: create, upload, patch, share, deactivate.
    Apply {
        #[command(flatten)]
        files: ManifestFiles,
        /// Delete images an earlier apply created whose manifests are gone (give every
        /// manifest: images applied from files not named here are pruned too).
        #[arg(long)]
        prune: bool,
        /// How long failures that may pass (Glance, Keystone or a source not answering, a
        /// transfer broken on its way) are retried before an object is given up (e.g. 10m,
        /// 30s). A transfer that moves is never cut, however long it takes.
        #[arg(long, default_value = "10m", value_parser = parse_retry_for, env = "GLINT_APPLY_RETRY_FOR")]
        retry_for: std::time::Duration,
    },
    /// Serve the embedded image cloud: the Glance v2 API over a local folder, for the openstack
    /// CLI and other Glance clients (`--os-auth-type none --os-endpoint http://LISTEN`).
    Cloud(CloudArgs),
}

#[derive(Debug, clap::Args)]
struct CloudArgs {
    /// Address to serve on; loopback unless you mean to share it.
    #[arg(long, default_value = "127.0.0.1:9292", env = "GLINT_CLOUD_LISTEN")]
    listen: std::net::SocketAddr,
    /// Require this token in X-Auth-Token on every call but the version document.
    #[arg(
        long,
        env = "GLINT_CLOUD_TOKEN",
        hide_env_values = true,
        conflicts_with = "keystone"
    )]
    token: Option<String>,
    /// Identify every caller by its Keystone token, validated with the Keystone at this URL
    /// (its auth_url, with or without /v3): projects, members and admin count as in Glance.
    #[arg(long, env = "GLINT_CLOUD_KEYSTONE", value_name = "AUTH_URL")]
    keystone: Option<String>,
    /// Disk formats to accept besides Glance's defaults (comma-separated).
    #[arg(long, value_delimiter = ',')]
    extra_disk_formats: Vec<String>,
    /// Container formats to accept besides Glance's defaults (comma-separated).
    #[arg(long, value_delimiter = ',')]
    extra_container_formats: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ManifestFiles {
    /// A manifest file, a folder of them, or - for stdin (repeatable).
    #[arg(long = "filename", short = 'f', required = true)]
    paths: Vec<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Namespace to watch (repeat for several); all namespaces when omitted.
    #[arg(long = "namespace", env = "GLINT_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Images reconciled at the same time. Match it to what Glance serves in parallel (its API
    /// workers): more only wait in Glance's queue. docs/development.md's "Benchmarks" helps choose it.
    #[arg(long, default_value_t = 8, env = "GLINT_CONCURRENCY")]
    concurrency: u16,
    /// How often a Ready image is compared with Glance (e.g. 10m, 1h), unless its spec says.
    #[arg(long, default_value = "10m", value_parser = parse_period, env = "GLINT_RESYNC_PERIOD")]
    resync_period: std::time::Duration,
    /// Transfers (source -> Glance) running at the same time, per cloud.
    #[arg(long, default_value_t = 2, env = "GLINT_TRANSFERS")]
    transfers: usize,
    /// How long Glance may leave an upload's data untaken (or its answer unsent after the last
    /// byte) before glint drops the attempt and retries it (e.g. 2m, 30s).
    #[arg(long, default_value = "2m", value_parser = parse_period, env = "GLINT_UPLOAD_STALL_TIMEOUT")]
    upload_stall_timeout: std::time::Duration,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080", env = "GLINT_METRICS_ADDR")]
    metrics_addr: std::net::SocketAddr,
    /// Address ranges sources may be fetched from even where the defaults refuse them
    /// (comma-separated, e.g. 10.20.0.0/16 for an internal mirror).
    #[arg(long, value_parser = parse_cidr_list, default_value = "", env = "GLINT_SOURCE_ALLOW_CIDRS")]
    source_allow_cidrs: CidrList,
    /// Address ranges sources may never be fetched from; beats every allow rule.
    #[arg(long, value_parser = parse_cidr_list, default_value = "", env = "GLINT_SOURCE_DENY_CIDRS")]
    source_deny_cidrs: CidrList,
    /// The cluster's service and pod ranges: refused as sources unless allowed (the Helm
    /// chart sets them from its values).
    #[arg(long, value_parser = parse_cidr_list, default_value = "", env = "GLINT_CLUSTER_CIDRS")]
    cluster_cidrs: CidrList,
    /// Allow sources on loopback addresses. For tests only: in a cluster, loopback is the
    /// controller's own pod.
    #[arg(long, env = "GLINT_SOURCE_ALLOW_LOOPBACK")]
    source_allow_loopback: bool,
    /// Folder for conversions by glint (spec.source.convertTo): each holds its downloaded
    /// source and converted image there until the upload ends (default: the system's
    /// temporary folder; the Helm chart mounts an emptyDir).
    #[arg(long, env = "GLINT_CONVERSION_SCRATCH_DIR")]
    conversion_scratch_dir: Option<std::path::PathBuf>,
    /// The most scratch space one conversion may take, source and result together (bytes,
    /// or 20Gi, 500Mi, ...); a larger one fails with reason ScratchLimitExceeded.
    #[arg(long, default_value = "20Gi", value_parser = glint::transfer::convert::parse_size, env = "GLINT_CONVERSION_SCRATCH_LIMIT")]
    conversion_scratch_limit: u64,
    /// Hold a Lease so that only one of several `glint run` processes works at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "GLINT_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else the first --namespace,
    /// else default).
    #[arg(long, env = "GLINT_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "glint", env = "GLINT_LEASE_NAME")]
    lease_name: String,
}

impl RunArgs {
    fn lease(&self) -> Option<LeaseConfig> {
        if !self.leader_election {
            return None;
        }
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| self.namespaces.first().cloned())
            .unwrap_or_else(|| "default".to_string());
        // The pod name in a cluster; elsewhere the host and process, unique enough for two
        // processes on one machine.
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|name| name.trim().to_string())
                .unwrap_or_else(|_| "glint".to_string());
            format!("{host}-{}", std::process::id())
        });
        Some(LeaseConfig {
            namespace,
            name: self.lease_name.clone(),
            identity,
        })
    }
}

#[derive(Debug, Clone, Default)]
struct CidrList(Vec<Cidr>);

fn parse_cidr_list(text: &str) -> Result<CidrList, String> {
    parse_cidrs(text).map(CidrList)
}

fn parse_retry_for(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration like 30s, 10m or 1h"))
}

fn parse_period(text: &str) -> Result<std::time::Duration, String> {
    let period = parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 10m or 1h30m"))?;
    if !(MIN_RESYNC..=MAX_RESYNC).contains(&period) {
        return Err(format!("{text:?} is outside 10s..168h"));
    }
    Ok(period)
}

/// The cluster ranges, plus the apiserver's own service address when glint runs in a pod
/// (Kubernetes tells every pod where it is), even if the operator named no range.
fn in_cluster_service(mut ranges: Vec<Cidr>) -> Vec<Cidr> {
    if let Some(cidr) = std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .and_then(|host| host.parse::<Cidr>().ok())
    {
        ranges.push(cidr);
    }
    ranges
}

/// `default` applies unless GLINT_LOG says otherwise: the controller narrates at info, the
/// one-shot commands stay quiet.
fn init_logging(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("GLINT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    glint::read_system_roots_early();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(Cli::parse())),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc's malloc keeps what a burst freed (a restart's listings, a creation wave): one arena
/// per thread, and a threshold for mmap'd blocks that rises after each large free until big
/// buffers land in the heap and fragment it. Two arenas and a fixed 128 KiB threshold (large
/// buffers go back to the system when freed) took glint's RSS after a restart with 1,000
/// Images from 32.2 to 28.5 MiB. (mimalloc was tried too: 64.9 MiB.)
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before the runtime starts any thread, so no allocation races the change.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let default_level = match cli.command {
        Command::Run(_) => "info,kube=warn",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let outcome = match cli.command {
        Command::Crd(args) => match match args.kind {
            CrdKind::Image => glint::crd::crd_yaml(),
            CrdKind::Series => glint::crd::series_crd_yaml(),
            CrdKind::Shared => glint::crd::shared_crd_yaml(),
        } {
            Ok(yaml) => {
                print!("{yaml}");
                Ok(())
            }
            Err(err) => {
                eprintln!("glint: cannot render the CRD: {err}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Command::Run(args) => {
            let config = RunConfig {
                lease: args.lease(),
                namespaces: args.namespaces,
                concurrency: args.concurrency.max(1),
                default_resync: args.resync_period,
                transfer_parallelism: args.transfers.max(1),
                upload_stall: args.upload_stall_timeout,
                metrics_addr: args.metrics_addr,
                source_policy: SourcePolicy {
                    allow: args.source_allow_cidrs.0,
                    deny: args.source_deny_cidrs.0,
                    cluster: in_cluster_service(args.cluster_cidrs.0),
                    allow_loopback: args.source_allow_loopback,
                    allow_files: false,
                    scratch: glint::transfer::convert::ScratchSpace {
                        dir: args.conversion_scratch_dir,
                        limit_bytes: args.conversion_scratch_limit,
                    },
                },
            };
            if let Err(err) = controller::run(config).await {
                eprintln!("glint: {err}");
                return std::process::ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::Plan {
            files,
            output,
            prune,
        } => {
            let code = glint::apply::plan_command(
                cli.os_cloud.as_deref(),
                cli.data_dir.as_deref(),
                &files.paths,
                output,
                prune,
            )
            .await;
            return std::process::ExitCode::from(code);
        }
        Command::Apply {
            files,
            prune,
            retry_for,
        } => {
            let code = glint::apply::apply_command(
                cli.os_cloud.as_deref(),
                cli.data_dir.as_deref(),
                &files.paths,
                prune,
                retry_for,
            )
            .await;
            return std::process::ExitCode::from(code);
        }
        Command::Image(command) => {
            match glint::apply::target::connect(cli.os_cloud.as_deref(), cli.data_dir.as_deref())
                .await
            {
                Ok(target) => image_command::run(&target.api, command).await,
                Err(err) => {
                    eprintln!("glint: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        Command::Cloud(args) => {
            let data_dir = cli
                .data_dir
                .unwrap_or_else(glint::apply::target::default_data_dir);
            let options = glint::glance_server::CloudOptions {
                listen: args.listen,
                data_dir: data_dir.clone(),
                access: match (args.token, args.keystone) {
                    (_, Some(auth_url)) => glint::glance_server::Access::Keystone(auth_url),
                    (Some(token), None) => glint::glance_server::Access::Token(token),
                    (None, None) => glint::glance_server::Access::Open,
                },
                policy: SourcePolicy {
                    allow_loopback: args.listen.ip().is_loopback(),
                    ..SourcePolicy::default()
                },
                formats: glint::glance_server::image::Formats::with_extra(
                    &args.extra_disk_formats,
                    &args.extra_container_formats,
                ),
            };
            match glint::glance_server::start(options).await {
                Ok(running) => {
                    eprintln!(
                        "glint cloud: Glance v2 API on {} with data in {} (Ctrl-C or SIGTERM stops)",
                        running.endpoint(),
                        data_dir.display()
                    );
                    controller::shutdown_signal().await;
                    Ok(())
                }
                Err(err) => {
                    eprintln!("glint cloud: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("glint: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
