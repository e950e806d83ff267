//! How the API's failures reach the caller: bad input as `InvalidArgument` naming the field, a write to
//! an object of the configuration file as `FailedPrecondition` (Dex refuses those with an error too),
//! anything else as `Internal`, logged here once and never detailed to the caller.

use tessera_core::admin::FieldError;
use tessera_storage::StorageError;
use tonic::Status;

pub(super) fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

pub(super) fn field(err: FieldError) -> Status {
    Status::invalid_argument(err.to_string())
}

/// `what` names the operation (`create client`), as Dex prefixes its errors.
pub(super) fn storage(what: &str, err: StorageError) -> Status {
    match err {
        StorageError::ReadOnly { .. } => Status::failed_precondition(format!("{what}: {err}")),
        other => {
            tracing::error!(operation = what, error = %other, "gRPC API: storage failed");
            Status::internal(format!("{what}: storage error"))
        }
    }
}
