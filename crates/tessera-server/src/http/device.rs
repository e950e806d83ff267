//! The device flow's browser side (RFC 8628): `/device/code` starts it for the device, `/device` is
//! where the user types the code, `/device/auth/verify_code` sends them into the normal login, and
//! `/device/callback` receives the code, redeems it for the device and shows the success page.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tessera_core::error::OAuthError;
use tessera_core::id::{new_device_code, new_user_code};
use tessera_core::model::{AuthCode, Client, DeviceRequest, DeviceToken, Pkce};
use tessera_core::scope;
use tessera_storage::{Optional, StorageError};

use super::authflow::request::DEVICE_CALLBACK_PATH;
use super::authflow::{internal_page, local_path, redirect};
use super::brute_force::{self, Blocked, Refused};
use super::client_ip::ClientIp;
use super::error::EndpointError;
use super::error::oauth_json;
use super::token::code::CodeGrant;
use super::token::pipeline::complete;
use crate::AppState;
use tessera_core::device::{COMPLETE, PENDING, POLL_INTERVAL_SECONDS};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/device/code", any(start))
        .route("/device", get(code_page))
        .route("/device/auth/verify_code", post(verify_code))
        .route("/device/callback", get(callback))
        .with_state(state)
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `POST /device/code`: the device gets its codes. The client is not checked here (as in Dex): its
/// secret is kept and compared when the user finishes.
async fn start(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return oauth_json(&OAuthError::invalid_request("method not allowed"));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut scopes = scope::parse(&field("scope"));
    if scopes.is_empty() {
        scopes.push(scope::OPENID.to_owned());
    }
    let now = state.clock.now();
    let lifetime = tessera_core::lifetimes::as_time(state.config.expiry.device_requests);
    let challenge = field("code_challenge");
    let pkce = if challenge.is_empty() {
        Pkce::default()
    } else {
        let method = field("code_challenge_method");
        Pkce {
            code_challenge: challenge,
            code_challenge_method: if method.is_empty() { "plain".into() } else { method },
        }
    };
    let device_code = new_device_code();
    let mut request = DeviceRequest {
        user_code: new_user_code(),
        device_code: device_code.clone(),
        client_id: field("client_id"),
        client_secret: field("client_secret"),
        scopes,
        expiry: now + lifetime,
    };
    // A user code is short: on the rare collision with a live one, draw another.
    let mut attempts = 0;
    loop {
        match state.storage.create(&request).await {
            Ok(()) => break,
            Err(StorageError::AlreadyExists) if attempts < 5 => {
                attempts += 1;
                request.user_code = new_user_code();
            }
            Err(err) => return EndpointError::internal("creating a device request failed", err).into_json(),
        }
    }
    let token = DeviceToken {
        device_code: device_code.clone(),
        status: PENDING.into(),
        token: String::new(),
        expiry: now + lifetime,
        last_request_time: now,
        poll_interval_seconds: POLL_INTERVAL_SECONDS,
        pkce,
    };
    if let Err(err) = state.storage.create(&token).await {
        return EndpointError::internal("creating a device token failed", err).into_json();
    }
    let verification_uri = format!("{}/device", state.config.issuer.trim_end_matches('/'));
    Json(json!({
        "device_code": device_code,
        "user_code": request.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={}", urlencode(&request.user_code)),
        "expires_in": lifetime.whole_seconds(),
        "interval": POLL_INTERVAL_SECONDS,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct UserCode {
    #[serde(default)]
    user_code: String,
}

fn render_code_page(state: &AppState, status: StatusCode, user_code: &str) -> Response {
    let post_url = local_path(state, "/device/auth/verify_code");
    let invalid = status != StatusCode::OK;
    state.pages.render(status, "device.html", context! { post_url, user_code, invalid })
}

/// RFC 8628 §5.1: too many wrong codes from this address; the page says when to try again.
fn render_refused_code_page(state: &AppState, refused: Refused, user_code: &str) -> Response {
    let post_url = local_path(state, "/device/auth/verify_code");
    let wait = refused.wait();
    let page = state.pages.render(StatusCode::TOO_MANY_REQUESTS, "device.html", context! { post_url, user_code, wait });
    ([refused.header()], page).into_response()
}

async fn code_page(State(state): State<AppState>, Query(query): Query<UserCode>) -> Response {
    render_code_page(&state, StatusCode::OK, &query.user_code)
}

/// The user typed a code: into the normal login for the device's client, ending at our callback.
async fn verify_code(
    State(state): State<AppState>,
    client_ip: Option<axum::Extension<ClientIp>>,
    Form(form): Form<UserCode>,
) -> Response {
    let user_code = form.user_code.trim().to_uppercase();
    let (limits, ip) = (brute_force::limits(&state), brute_force::ip_of(client_ip));
    match limits.user_code_check(ip).await {
        Ok(()) => {}
        Err(Blocked::Refused(refused)) => return render_refused_code_page(&state, refused, &form.user_code),
        Err(Blocked::Storage(err)) => return internal_page(&state, &err),
    }
    let request = match state.storage.get::<DeviceRequest>(&user_code).await.optional() {
        Ok(Some(request)) if request.expiry >= state.clock.now() => request,
        Ok(_) => {
            limits.user_code_failed(ip).await;
            return render_code_page(&state, StatusCode::BAD_REQUEST, &form.user_code);
        }
        Err(err) => return internal_page(&state, &err),
    };
    // The secret stays on the server; only the client ID travels through the browser.
    let location = local_path(
        &state,
        &format!(
            "/auth?client_id={}&state={}&response_type=code&redirect_uri={}&scope={}",
            urlencode(&request.client_id),
            urlencode(&request.user_code),
            urlencode(&local_path(&state, DEVICE_CALLBACK_PATH)),
            urlencode(&request.scopes.join(" ")),
        ),
    );
    redirect(StatusCode::FOUND, &location)
}

#[derive(Debug, Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

/// The login finished: redeem the code for the device, store its tokens once, tell the user.
async fn callback(State(state): State<AppState>, Query(query): Query<Callback>) -> Response {
    complete_for_device(&state, &query).await.unwrap_or_else(|error| error.into_page(&state.pages))
}

async fn complete_for_device(state: &AppState, query: &Callback) -> Result<Response, EndpointError> {
    let now = state.clock.now();
    let invalid_request = || EndpointError::page(StatusCode::BAD_REQUEST, "Invalid or expired device request.");
    let request = state
        .storage
        .get::<DeviceRequest>(&query.state)
        .await
        .optional()?
        .filter(|request| request.expiry >= now)
        .ok_or_else(invalid_request)?;
    let code = state
        .storage
        .get::<AuthCode>(&query.code)
        .await
        .optional()?
        .filter(|code| {
            code.expiry >= now
                && code.client_id == request.client_id
                && code.redirect_uri.ends_with(DEVICE_CALLBACK_PATH)
        })
        .ok_or_else(|| EndpointError::page(StatusCode::BAD_REQUEST, "Invalid or expired code."))?;
    let client = state
        .storage
        .get::<Client>(&request.client_id)
        .await
        .optional()?
        .ok_or_else(|| EndpointError::page(StatusCode::BAD_REQUEST, "Invalid client."))?;
    // The device proves it is the client that started the flow with the secret it gave then.
    if !bool::from(client.secret.as_bytes().ct_eq(request.client_secret.as_bytes())) {
        return Err(EndpointError::page(StatusCode::UNAUTHORIZED, "Invalid client credentials."));
    }
    let tokens = match complete(state, &client, CodeGrant::new(&code.id, &code.redirect_uri, None)).await {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.into_oauth();
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            let message = "The login could not be completed for the device. Start again on the device.";
            return Err(EndpointError::page(status, message));
        }
    };
    let body = serde_json::to_string(&tokens)?;
    let completed = state
        .storage
        .update::<DeviceToken, _, StorageError>(&request.device_code, |mut token| {
            if token.status == COMPLETE {
                return Err(StorageError::AlreadyExists);
            }
            token.status = COMPLETE.into();
            token.token = body.clone();
            Ok(token)
        })
        .await;
    match completed {
        Ok(_) => {
            let name = if client.name.is_empty() { client.id } else { client.name };
            Ok(state.pages.render(StatusCode::OK, "device_success.html", context! { client => name }))
        }
        Err(StorageError::AlreadyExists) => {
            Err(EndpointError::page(StatusCode::BAD_REQUEST, "This device has already been logged in."))
        }
        Err(StorageError::NotFound) => Err(invalid_request()),
        Err(err) => Err(err.into()),
    }
}
