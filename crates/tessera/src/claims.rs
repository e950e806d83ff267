//! `tessera claims preview`: what the custom-claims chain and the CEL policies would add to a token
//! for a given user, and where each claim came from (an enricher or a policy rule), or the error or
//! the policy that would block the login or the token, without starting the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tessera_claims::ChainError;
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
    /// The scopes asked for, comma-separated (`request.scopes`).
    #[arg(long, value_delimiter = ',', default_value = "openid")]
    scopes: Vec<String>,
    /// The grant minting the token (`request.grant_type`).
    #[arg(long, default_value = "authorization_code")]
    grant_type: String,
    /// The client's redirect URI (`request.redirect_uri`).
    #[arg(long, default_value = "")]
    redirect_uri: String,
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
    let context = context(&claims, &args.connector, &args.client, &args.scopes, &args.grant_type, &args.redirect_uri);
    // The auth policy as at the login, then the token as minted.
    let mut sources = Vec::new();
    let outcome = match chain.authorize(&context).await {
        Ok(()) => chain.run_traced(&context, Some(&mut sources)).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(enriched) => {
            // Later sources win, as later claims do.
            let from: serde_json::Map<String, serde_json::Value> =
                sources.into_iter().map(|s| (s.claim, s.origin.into())).collect();
            let shown =
                json!({ "id_token": enriched.id_token, "access_token": enriched.access_token, "sources": from });
            println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(ChainError::Denied { origin, message }) => {
            eprintln!("denied: {origin} refuses this login or token: {message}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: the token would not be issued: {err}");
            ExitCode::FAILURE
        }
    }
}
