//! The `tessera` command: `serve`, `check-config`, `import-dex` and `version`, with Dex's flags.

mod check;
mod claims;
mod import_dex;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tessera_core::clock::SystemClock;
use tessera_server::config::{self, Config, Env, Loaded};
use tessera_server::{BoundServer, server};

// glibc's malloc was ~12 % of the server's CPU under load (bench/README.md); mimalloc's thread-local
// free lists make the many small, short-lived allocations of a request cheaper. Built with `no_thp`:
// with transparent huge pages its eagerly committed arena cost ~9 MB of idle RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration or start-up problem (bad file, unreachable database, busy port).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "tessera", about = "An OpenID Connect identity provider: a drop-in replacement for Dex")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server with a Dex configuration file.
    Serve(ServeArgs),
    /// Load and validate a configuration file and open its storage, then print a summary.
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
    },
    /// Copy a Dex's state (keys, clients, passwords, connectors, refresh tokens) into tessera's storage.
    ImportDex(import_dex::ImportDexArgs),
    /// Custom claims tools.
    #[command(subcommand)]
    Claims(ClaimsCommand),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum ClaimsCommand {
    /// Print the claims the custom-claims chain would add for a user, or the error that would block the token.
    Preview(claims::PreviewArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The configuration file.
    config: PathBuf,
    /// Web HTTP address (overrides web.http).
    #[arg(long)]
    web_http_addr: Option<String>,
    /// Web HTTPS address (overrides web.https).
    #[arg(long)]
    web_https_addr: Option<String>,
    /// Telemetry address (overrides telemetry.http).
    #[arg(long)]
    telemetry_addr: Option<String>,
    /// gRPC API address (overrides grpc.addr).
    #[arg(long)]
    grpc_addr: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("tessera Version: {}", env!("CARGO_PKG_VERSION"));
            println!("OS/ARCH: {}/{}", std::env::consts::OS, std::env::consts::ARCH);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => run_async(check::check_config(config)),
        Command::Serve(args) => run_async(serve(args)),
        Command::ImportDex(args) => run_async(import_dex::import_dex(args)),
        Command::Claims(ClaimsCommand::Preview(args)) => run_async(claims::preview(args)),
    }
}

fn run_async(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => {
            eprintln!("tessera: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the file, printing every warning and error; `None` after errors.
pub(crate) fn load_config(path: &std::path::Path) -> Option<Loaded> {
    match config::load(path, &Env::from_process()) {
        Ok(loaded) => Some(loaded),
        Err(failed) => {
            for warning in &failed.warnings {
                eprintln!("warning: {warning}");
            }
            for error in &failed.errors {
                eprintln!("error: {error}");
            }
            eprintln!("tessera: {} error(s) in the configuration", failed.errors.len());
            None
        }
    }
}

fn apply_overrides(config: &mut Config, args: &ServeArgs) {
    if let Some(address) = &args.web_http_addr {
        config.web.http = Some(address.clone());
    }
    if let Some(address) = &args.web_https_addr {
        config.web.https = Some(address.clone());
    }
    if let Some(address) = &args.telemetry_addr {
        config.telemetry.http = Some(address.clone());
    }
    if let Some(address) = &args.grpc_addr {
        config.grpc.addr = Some(address.clone());
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let Some(Loaded { mut config, warnings }) = load_config(&args.config) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    apply_overrides(&mut config, &args);
    logging::init(&config.logger);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let issuer = config.issuer.clone();
    let storage_kind = config.storage.type_name();
    let server = match BoundServer::start(config, Arc::new(SystemClock)).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("tessera: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(
        issuer = %issuer,
        storage = storage_kind,
        web = %listening(server.web_addr()),
        https = %listening(server.https_addr()),
        telemetry = %listening(server.telemetry_addr()),
        grpc = %listening(server.grpc_addr()),
        "tessera is serving"
    );
    match server.run(server::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// An address for the log: itself, or `none` for a listener that is not configured.
fn listening(address: Option<std::net::SocketAddr>) -> String {
    address.map_or_else(|| "none".to_owned(), |address| address.to_string())
}
