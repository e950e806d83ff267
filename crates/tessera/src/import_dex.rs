//! `tessera import-dex CONFIG [--from DEX_CONFIG] [--dry-run] [--overwrite]`: copies a Dex's state into
//! tessera's storage and prints one line per kind of object with its counts.
//!
//! Exit status: 0 when everything found was imported or already there; 1 when some rows were left out
//! (each is named) or the import failed; 2 for a configuration problem or a source that cannot be
//! reached, in which case nothing is written.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tessera_core::clock::{Clock, SystemClock};
use tessera_server::config::Loaded;
use tessera_server::dex_import::{ImportOptions, import};
use tessera_server::server::open_storage;

use crate::{EXIT_CONFIG, load_config};

#[derive(Args)]
pub struct ImportDexArgs {
    /// tessera's configuration file: its storage receives the import, and by default Dex's tables are
    /// read from the same database.
    config: PathBuf,
    /// A Dex configuration file whose `storage` section names where Dex's state is instead.
    #[arg(long, value_name = "DEX_CONFIG")]
    from: Option<PathBuf>,
    /// Report what would be imported; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace tessera's objects that differ from Dex's (by default they are kept and listed).
    #[arg(long)]
    overwrite: bool,
}

pub async fn import_dex(args: ImportDexArgs) -> ExitCode {
    let Some(Loaded { config, warnings }) = load_config(&args.config) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let source = match &args.from {
        Some(path) => match load_config(path) {
            Some(Loaded { config, .. }) => config.storage,
            None => return ExitCode::from(EXIT_CONFIG),
        },
        None => config.storage.clone(),
    };
    // Dex's state is read whole before tessera's storage is touched, so a source that cannot be read
    // leaves everything as it was.
    let state = match tessera_storage::dex::read(&source).await {
        Ok(state) => state,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(if err.is_unreachable() { EXIT_CONFIG } else { 1 });
        }
    };
    let storage = match open_storage(&config).await {
        Ok(storage) => storage,
        Err(err) => {
            eprintln!("error: {}: {err}", args.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let options = ImportOptions { dry_run: args.dry_run, overwrite: args.overwrite };
    // The real clock: which of Dex's browser sessions are still alive is decided now.
    let now = SystemClock.now();
    match import(&storage, state, options, now).await {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            if report.left_out() > 0 {
                eprintln!("tessera: {} of Dex's objects were not imported (listed above)", report.left_out());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: importing into {}: {err}", args.config.display());
            ExitCode::FAILURE
        }
    }
}
