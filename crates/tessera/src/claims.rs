//! `tessera claims preview`: what the custom-claims chain would add to a token for a given user, or
//! the error that would block the token, without starting the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tessera_core::model::Claims;
use tessera_server::config::Loaded;
use tessera_server::custom_claims::{build_chain, context};

use crate::{EXIT_CONFIG, load_config};

#[derive(Args)]
pub struct PreviewArgs {
    /// The configuration file.
    config: PathBuf,
    /// The user's ID as the connector reports it (`{{.UserID}}`).
    #[arg(long)]
    user_id: String,
    #[arg(long, default_value = "")]
    email: String,
    #[arg(long, default_value = "")]
    username: String,
    #[arg(long, default_value = "")]
    preferred_username: String,
    /// Whether the email is verified (`{{.EmailVerified}}`).
    #[arg(long)]
    email_verified: bool,
    /// The user's groups, comma-separated (`{{.Groups}}`).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    #[arg(long, default_value = "local")]
    connector: String,
    #[arg(long, default_value = "")]
    client: String,
}

pub async fn preview(args: PreviewArgs) -> ExitCode {
    let Some(Loaded { config, warnings }) = load_config(&args.config) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let chain = match build_chain(&config).await {
        Ok(chain) => chain,
        Err(err) => {
            eprintln!("error: {}: {err}", args.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let claims = Claims {
        user_id: args.user_id,
        username: args.username,
        preferred_username: args.preferred_username,
        email: args.email,
        email_verified: args.email_verified,
        groups: args.groups,
    };
    let scopes = ["openid".to_owned()];
    match chain.run(&context(&claims, &args.connector, &args.client, &scopes, "authorization_code", "")).await {
        Ok(enriched) => {
            let shown = json!({ "id_token": enriched.id_token, "access_token": enriched.access_token });
            println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: the token would not be issued: {err}");
            ExitCode::FAILURE
        }
    }
}
