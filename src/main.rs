//! The `glint` binary: parses the command line and hands over to the library.

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use glint::cli::{self, ImageCommand};

#[derive(Debug, Parser)]
#[command(name = "glint", version, about = "Manage OpenStack Glance images")]
struct Cli {
    /// Cloud from clouds.yaml (default: $OS_CLOUD, or the file's only cloud).
    #[arg(long, global = true, env = "OS_CLOUD")]
    os_cloud: Option<String>,
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with images directly (list, show, create, upload, download, delete).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print the Image CustomResourceDefinition (YAML) for `kubectl apply -f -`.
    Crd,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("GLINT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let outcome = match cli.command {
        Command::Crd => match glint::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                Ok(())
            }
            Err(err) => {
                eprintln!("glint: cannot render the CRD: {err}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Command::Image(command) => match cli::client_from_environment(cli.os_cloud.as_deref()) {
            Ok(client) => cli::run(&client, command).await,
            Err(err) => Err(err.into()),
        },
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("glint: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
