//! The OAuth 2.0 client side the `oauth` and `github` connectors share: the authorization URL, code
//! and refresh-token exchanges at the token endpoint, and authenticated JSON requests, all bounded by
//! a timeout.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::ConnectorError;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: String,
    #[serde(default)]
    pub error: String,
}

pub struct OAuth2Client {
    pub http: reqwest::Client,
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub redirect_uri: String,
}

pub fn failed(connector: &str, message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Failed(format!("{connector}: {message}"))
}

/// An HTTP client that trusts `root_cas` besides the platform's roots (or anything, for tests).
pub fn http_client(root_cas: &[String], insecure_skip_verify: bool) -> Result<reqwest::Client, ConnectorError> {
    let mut http = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none());
    for path in root_cas.iter().filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| ConnectorError::Config(format!("root CA {path}: {e}")))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ConnectorError::Config(format!("root CA {path}: {e}")))?
        {
            http = http.add_root_certificate(cert);
        }
    }
    if insecure_skip_verify {
        http = http.danger_accept_invalid_certs(true);
    }
    http.build().map_err(|e| ConnectorError::Config(e.to_string()))
}

impl OAuth2Client {
    pub fn authorize_url(&self, callback_url: &str, scopes: &[String], state: &str) -> Result<String, ConnectorError> {
        let mut url =
            url::Url::parse(&self.auth_url).map_err(|e| ConnectorError::Config(format!("authorization URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect(callback_url))
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state);
        Ok(url.into())
    }

    fn redirect<'a>(&'a self, callback_url: &'a str) -> &'a str {
        if self.redirect_uri.is_empty() { callback_url } else { &self.redirect_uri }
    }

    async fn token(&self, connector: &str, form: &[(&str, &str)]) -> Result<TokenAnswer, ConnectorError> {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(encode(&self.client_id), Some(encode(&self.client_secret)))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| failed(connector, format!("token endpoint: {e}")))?;
        let status = response.status();
        let answer: TokenAnswer =
            response.json().await.map_err(|e| failed(connector, format!("token endpoint: {e}")))?;
        if !status.is_success() || !answer.error.is_empty() || answer.access_token.is_empty() {
            return Err(failed(connector, format!("token endpoint answered {status} {}", answer.error)));
        }
        Ok(answer)
    }

    pub async fn exchange_code(
        &self,
        connector: &str,
        code: &str,
        callback_url: &str,
    ) -> Result<TokenAnswer, ConnectorError> {
        self.token(
            connector,
            &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", self.redirect(callback_url))],
        )
        .await
    }

    /// The tokens for the code a callback brought back (`login_data` is what `authorize_url`'s caller
    /// kept: the redirect URI, which the exchange must repeat).
    pub async fn exchange_callback(
        &self,
        connector: &str,
        login_data: &[u8],
        request: &crate::CallbackRequest,
    ) -> Result<TokenAnswer, ConnectorError> {
        if let Some(error) = request.query("error") {
            return Err(failed(connector, format!("the upstream refused the login: {error}")));
        }
        let code = request
            .query("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| failed(connector, "no code in the callback"))?;
        self.exchange_code(connector, code, &String::from_utf8_lossy(login_data)).await
    }

    pub async fn refresh(&self, connector: &str, refresh_token: &str) -> Result<TokenAnswer, ConnectorError> {
        self.token(connector, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    /// GET a JSON document with the user's access token.
    pub async fn get_json(&self, connector: &str, url: &str, access_token: &str) -> Result<Value, ConnectorError> {
        self.http
            .get(url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::USER_AGENT, "tessera")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(connector, format!("{url}: {e}")))?
            .json()
            .await
            .map_err(|e| failed(connector, format!("{url}: {e}")))
    }
}
