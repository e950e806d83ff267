//! CreatePassword, UpdatePassword, DeletePassword, ListPasswords and VerifyPassword.

use std::sync::Arc;

use tessera_core::admin::{PasswordUpdate, new_password};
use tessera_core::model::Password;
use tessera_storage::{Storage, StorageError};
use tokio::sync::Semaphore;
use tonic::Status;

use super::proto;
use super::status::{field, invalid, storage as storage_error};

pub(super) async fn create(
    storage: &Storage,
    req: proto::CreatePasswordReq,
) -> Result<proto::CreatePasswordResp, Status> {
    let Some(p) = req.password else { return Err(invalid("password", "no password supplied")) };
    let password = new_password(&p.email, &p.hash, &p.username, &p.user_id).map_err(field)?;
    storage.check_writable::<Password>(&password.email).map_err(|err| storage_error("create password", err))?;
    match storage.create(&password).await {
        Ok(()) => Ok(proto::CreatePasswordResp { already_exists: false }),
        Err(StorageError::AlreadyExists) => Ok(proto::CreatePasswordResp { already_exists: true }),
        Err(err) => Err(storage_error("create password", err)),
    }
}

pub(super) async fn update(
    storage: &Storage,
    req: proto::UpdatePasswordReq,
) -> Result<proto::UpdatePasswordResp, Status> {
    let update = PasswordUpdate::new(&req.email, &req.new_hash, &req.new_username).map_err(field)?;
    match storage.update::<Password, _, StorageError>(&req.email, |old| Ok(update.apply(old))).await {
        Ok(_) => Ok(proto::UpdatePasswordResp { not_found: false }),
        Err(StorageError::NotFound) => Ok(proto::UpdatePasswordResp { not_found: true }),
        Err(err) => Err(storage_error("update password", err)),
    }
}

pub(super) async fn delete(
    storage: &Storage,
    req: proto::DeletePasswordReq,
) -> Result<proto::DeletePasswordResp, Status> {
    if req.email.is_empty() {
        return Err(invalid("email", "no email supplied"));
    }
    match storage.delete::<Password>(&req.email).await {
        Ok(()) => Ok(proto::DeletePasswordResp { not_found: false }),
        Err(StorageError::NotFound) => Ok(proto::DeletePasswordResp { not_found: true }),
        Err(err) => Err(storage_error("delete password", err)),
    }
}

/// Every password, without its hash.
pub(super) async fn list(storage: &Storage) -> Result<proto::ListPasswordResp, Status> {
    let passwords = storage.list::<Password>().await.map_err(|err| storage_error("list passwords", err))?;
    Ok(proto::ListPasswordResp {
        passwords: passwords
            .into_iter()
            .map(|p| proto::Password { email: p.email, hash: Vec::new(), username: p.username, user_id: p.user_id })
            .collect(),
    })
}

pub(super) async fn verify(
    storage: &Storage,
    checks: &Arc<Semaphore>,
    req: proto::VerifyPasswordReq,
) -> Result<proto::VerifyPasswordResp, Status> {
    if req.email.is_empty() {
        return Err(invalid("email", "no email supplied"));
    }
    if req.password.is_empty() {
        return Err(invalid("password", "no password to verify supplied"));
    }
    let stored = match storage.get_password(&req.email).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound) => return Ok(proto::VerifyPasswordResp { verified: false, not_found: true }),
        Err(err) => return Err(storage_error("verify password", err)),
    };
    // bcrypt takes tens of milliseconds of CPU: off the executor, a bounded number at a time.
    let _permit = checks.acquire().await.map_err(|_| Status::unavailable("shutting down"))?;
    let verified = tokio::task::spawn_blocking(move || bcrypt::verify(req.password, &stored.hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    Ok(proto::VerifyPasswordResp { verified, not_found: false })
}
