//! CreateConnector, UpdateConnector, DeleteConnector and ListConnectors, behind Dex's
//! `DEX_API_CONNECTORS_CRUD` flag. A connector is checked as the configuration file's are, then opened
//! once before it is written (a config the connector refuses never reaches storage), and the server's
//! connectors are refreshed after each change so that it takes effect at once.

use tessera_core::model::Connector;
use tessera_storage::{Storage, StorageError};
use tonic::Status;

use super::status::{invalid, storage as storage_error};
use super::{Api, proto};
use crate::config::{TypeProblem, check_grant_types, connector_type, missing_mock_password_keys};

impl Api {
    fn connectors_crud_enabled(&self) -> Result<(), Status> {
        if self.connectors_crud {
            Ok(())
        } else {
            Err(Status::failed_precondition(
                "api_connectors_crud feature flag is not enabled (set DEX_API_CONNECTORS_CRUD=true)",
            ))
        }
    }

    /// Brings this server's connectors in line with what was just written (other replicas catch up at
    /// their next login page).
    async fn refresh_connectors(&self) {
        if let Err(err) = self.connectors.refresh(&self.storage).await {
            tracing::error!(error = %err, "refreshing the connectors after an API change failed");
        }
    }

    pub(super) async fn create_connector(
        &self,
        req: proto::CreateConnectorReq,
    ) -> Result<proto::CreateConnectorResp, Status> {
        self.connectors_crud_enabled()?;
        let Some(c) = req.connector else { return Err(invalid("connector", "no connector supplied")) };
        for (name, value) in [("id", &c.id), ("type", &c.r#type), ("name", &c.name)] {
            if value.is_empty() {
                return Err(invalid(&format!("connector.{name}"), format!("no {name} supplied")));
            }
        }
        if c.config.is_empty() {
            return Err(invalid("connector.config", "no config supplied"));
        }
        let connector = Connector {
            id: c.id,
            kind: c.r#type,
            name: c.name,
            resource_version: "1".into(),
            config: parse_config(&c.config, "connector.config")?,
            // The wire cannot tell an empty list from none; Dex reads both as "every grant type".
            grant_types: (!c.grant_types.is_empty()).then_some(c.grant_types),
        };
        self.storage
            .check_writable::<Connector>(&connector.id)
            .map_err(|err| storage_error("create connector", err))?;
        check(&connector, &self.storage, "connector.").await?;
        match self.storage.create(&connector).await {
            Ok(()) => {
                self.refresh_connectors().await;
                Ok(proto::CreateConnectorResp { already_exists: false })
            }
            Err(StorageError::AlreadyExists) => Ok(proto::CreateConnectorResp { already_exists: true }),
            Err(err) => Err(storage_error("create connector", err)),
        }
    }

    pub(super) async fn update_connector(
        &self,
        req: proto::UpdateConnectorReq,
    ) -> Result<proto::UpdateConnectorResp, Status> {
        self.connectors_crud_enabled()?;
        if req.id.is_empty() {
            return Err(invalid("id", "no id supplied"));
        }
        if req.new_config.is_empty()
            && req.new_name.is_empty()
            && req.new_type.is_empty()
            && req.new_grant_types.is_none()
        {
            return Err(invalid("id", "nothing to update"));
        }
        let config = (!req.new_config.is_empty()).then(|| parse_config(&req.new_config, "new_config")).transpose()?;
        let apply = |mut old: Connector| {
            if !req.new_type.is_empty() {
                old.kind.clone_from(&req.new_type);
            }
            if !req.new_name.is_empty() {
                old.name.clone_from(&req.new_name);
            }
            if let Some(config) = &config {
                old.config = config.clone();
            }
            if let Some(grants) = &req.new_grant_types {
                old.grant_types = (!grants.grant_types.is_empty()).then(|| grants.grant_types.clone());
            }
            // Other servers reopen a connector whose version moved.
            old.resource_version = old.resource_version.parse::<u64>().map_or(1, |v| v + 1).to_string();
            old
        };
        self.storage.check_writable::<Connector>(&req.id).map_err(|err| storage_error("update connector", err))?;
        let current = match self.storage.get::<Connector>(&req.id).await {
            Ok(current) => current,
            Err(StorageError::NotFound) => return Ok(proto::UpdateConnectorResp { not_found: true }),
            Err(err) => return Err(storage_error("update connector", err)),
        };
        // The connector as it would be, checked before anything is written.
        check(&apply(current), &self.storage, "new_").await?;
        match self.storage.update::<Connector, _, StorageError>(&req.id, |old| Ok(apply(old))).await {
            Ok(_) => {
                self.refresh_connectors().await;
                Ok(proto::UpdateConnectorResp { not_found: false })
            }
            Err(StorageError::NotFound) => Ok(proto::UpdateConnectorResp { not_found: true }),
            Err(err) => Err(storage_error("update connector", err)),
        }
    }

    pub(super) async fn delete_connector(
        &self,
        req: proto::DeleteConnectorReq,
    ) -> Result<proto::DeleteConnectorResp, Status> {
        self.connectors_crud_enabled()?;
        if req.id.is_empty() {
            return Err(invalid("id", "no id supplied"));
        }
        match self.storage.delete::<Connector>(&req.id).await {
            Ok(()) => {
                self.refresh_connectors().await;
                Ok(proto::DeleteConnectorResp { not_found: false })
            }
            Err(StorageError::NotFound) => Ok(proto::DeleteConnectorResp { not_found: true }),
            Err(err) => Err(storage_error("delete connector", err)),
        }
    }

    pub(super) async fn list_connectors(&self) -> Result<proto::ListConnectorResp, Status> {
        self.connectors_crud_enabled()?;
        let connectors = self.storage.list::<Connector>().await.map_err(|err| storage_error("list connectors", err))?;
        Ok(proto::ListConnectorResp {
            connectors: connectors
                .into_iter()
                .map(|c| proto::Connector {
                    config: if c.config.is_null() { Vec::new() } else { c.config.to_string().into_bytes() },
                    id: c.id,
                    r#type: c.kind,
                    name: c.name,
                    grant_types: c.grant_types.unwrap_or_default(),
                })
                .collect(),
        })
    }
}

/// A connector's settings: a JSON object, as the file's `config:` must be a mapping.
fn parse_config(bytes: &[u8], field: &str) -> Result<serde_json::Value, Status> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(config @ serde_json::Value::Object(_)) => Ok(config),
        Ok(_) => Err(invalid(field, "expected a JSON object")),
        Err(err) => Err(invalid(field, format!("invalid JSON: {err}"))),
    }
}

/// The configuration file's checks (type, grant types, mockPassword's settings), then an opening of
/// the connector, which checks the rest of its settings with the messages start-up would give.
/// `prefix` is how the request names the fields: `connector.` or `new_`.
async fn check(connector: &Connector, storage: &Storage, prefix: &str) -> Result<(), Status> {
    if let Err(TypeProblem::Unknown(message) | TypeProblem::NotImplemented(message)) = connector_type(&connector.kind) {
        return Err(invalid(&format!("{prefix}type"), message));
    }
    if let Err(message) = check_grant_types(connector.grant_types.iter().flatten()) {
        return Err(invalid(&format!("{prefix}grant_types"), message));
    }
    if let Some(key) = missing_mock_password_keys(&connector.kind, &connector.config).first() {
        return Err(invalid(&format!("{prefix}config.{key}"), "is required for mockPassword"));
    }
    tessera_connectors::open(connector, storage).await.map_err(|err| invalid(&format!("{prefix}config"), err))?;
    Ok(())
}
