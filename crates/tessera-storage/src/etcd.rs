//! The `etcd` backend, with Dex's `etcd` keys, over etcd's v3 JSON gateway (the same API as its gRPC
//! one, spoken as HTTP/JSON, so no gRPC client is needed). One key per document under
//! `{namespace}tessera/{kind}/{id}`; the value is the document with its expiry and link; the version
//! that compare-and-swap checks is etcd's `mod_revision` of the key, and every conditional write is an
//! etcd transaction. Expired documents are removed by garbage collection, as Dex's etcd storage does
//! (a lease would expire on the real clock, not the one tessera's tests run on).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Backend, Document, EtcdSettings, Kind, StorageError, Swap};

const NAME: &str = "etcd";
/// How long one request may take (Dex: 5 s per storage call, 2 s to dial).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend(NAME, e)
}

/// What is stored at a key: the document and what the SQL backends keep in columns beside it.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int64")]
    mod_revision: i64,
}

/// etcd's gateway writes 64-bit integers as strings.
fn int64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    succeeded: bool,
}

#[derive(Deserialize)]
struct DeleteResponse {
    #[serde(default)]
    deleted: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EtcdBackend {
    http: reqwest::Client,
    /// `http(s)://host:port` of each endpoint; requests go to the first that answers.
    endpoints: Vec<String>,
    /// Dex's `namespace`: every key starts with it.
    namespace: String,
    prefix: String,
    credentials: Option<(String, String)>,
    token: std::sync::Arc<tokio::sync::RwLock<Option<String>>>,
}

impl EtcdBackend {
    /// Connects with Dex's settings and checks that etcd answers.
    pub async fn open(settings: &EtcdSettings) -> Result<Self, StorageError> {
        if settings.endpoints.is_empty() {
            return Err(err("no endpoints"));
        }
        let tls = settings.ssl.ca_file.is_some() || settings.ssl.cert_file.is_some();
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT);
        if let Some(ca) = &settings.ssl.ca_file {
            let pem = std::fs::read(ca).map_err(|e| err(format!("ssl.caFile {}: {e}", ca.display())))?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| err(format!("ssl.caFile: {e}")))?;
            http = http.add_root_certificate(certificate);
        }
        if let (Some(cert), Some(key)) = (&settings.ssl.cert_file, &settings.ssl.key_file) {
            let mut pem = std::fs::read(cert).map_err(|e| err(format!("ssl.certFile {}: {e}", cert.display())))?;
            pem.extend(std::fs::read(key).map_err(|e| err(format!("ssl.keyFile {}: {e}", key.display())))?);
            http = http.identity(reqwest::Identity::from_pem(&pem).map_err(|e| err(format!("ssl.certFile: {e}")))?);
        }
        let endpoints = settings
            .endpoints
            .iter()
            .map(|endpoint| {
                let endpoint = endpoint.trim_end_matches('/');
                if endpoint.contains("://") {
                    endpoint.to_owned()
                } else {
                    format!("{}://{endpoint}", if tls { "https" } else { "http" })
                }
            })
            .collect();
        let backend = Self {
            http: http.build().map_err(err)?,
            endpoints,
            namespace: settings.namespace.clone(),
            prefix: format!("{}tessera/", settings.namespace),
            credentials: (!settings.username.is_empty())
                .then(|| (settings.username.clone(), settings.password.clone())),
            token: Default::default(),
        };
        backend.ping().await?;
        Ok(backend)
    }

    fn key(&self, kind: Kind, key: &str) -> String {
        STANDARD.encode(format!("{}{}/{key}", self.prefix, kind.as_str()))
    }

    /// The first key after every key that starts with the kind's prefix (etcd's `range_end`).
    fn kind_range(&self, kind: Kind) -> (String, String) {
        let start = format!("{}{}/", self.prefix, kind.as_str());
        let mut end = start.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1; // '/' + 1 = '0'
        }
        (STANDARD.encode(&start), STANDARD.encode(end))
    }

    /// One call to the gateway, on the first endpoint that answers; signs in first when the
    /// settings name a user, and once more if the token has expired.
    async fn call<T: serde::de::DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, StorageError> {
        for attempt in 0..2 {
            let token = match &self.credentials {
                Some(credentials) => Some(self.token(credentials, attempt > 0).await?),
                None => None,
            };
            let mut last_error = None;
            for endpoint in &self.endpoints {
                let mut request = self.http.post(format!("{endpoint}{path}")).json(body);
                if let Some(token) = &token {
                    request = request.header("Authorization", token);
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        return response.json().await.map_err(|e| err(format!("{path}: {e}")));
                    }
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        if text.contains("invalid auth token") && attempt == 0 {
                            last_error = None;
                            break;
                        }
                        return Err(err(format!("{path}: {status}: {text}")));
                    }
                    Err(e) => last_error = Some(format!("{endpoint}: {e}")),
                }
            }
            if let Some(message) = last_error {
                return Err(err(format!("cannot reach etcd: {message}")));
            }
        }
        Err(err("etcd refused the authentication token twice"))
    }

    async fn token(&self, (name, password): &(String, String), renew: bool) -> Result<String, StorageError> {
        if !renew && let Some(token) = self.token.read().await.clone() {
            return Ok(token);
        }
        #[derive(Deserialize)]
        struct Authenticated {
            token: String,
        }
        let body = json!({ "name": name, "password": password });
        let mut last_error = String::new();
        for endpoint in &self.endpoints {
            match self.http.post(format!("{endpoint}/v3/auth/authenticate")).json(&body).send().await {
                Ok(response) if response.status().is_success() => {
                    let token = response.json::<Authenticated>().await.map_err(err)?.token;
                    *self.token.write().await = Some(token.clone());
                    return Ok(token);
                }
                Ok(response) => return Err(err(format!("authenticating as {name}: {}", response.status()))),
                Err(e) => last_error = format!("{endpoint}: {e}"),
            }
        }
        Err(err(format!("cannot reach etcd: {last_error}")))
    }

    fn encode(data: &str, expiry: Option<i64>, link: Option<&str>) -> Result<String, StorageError> {
        let stored = Stored { data: data.to_owned(), expiry, link: link.map(str::to_owned) };
        Ok(STANDARD.encode(serde_json::to_vec(&stored).map_err(err)?))
    }

    fn decode(kv: &KeyValue) -> Result<(Document, Option<i64>), StorageError> {
        let bytes = STANDARD.decode(&kv.value).map_err(err)?;
        let stored: Stored = serde_json::from_slice(&bytes).map_err(err)?;
        let document =
            Document { data: stored.data, version: kv.mod_revision, expiry: stored.expiry, link: stored.link };
        Ok((document, stored.expiry))
    }

    /// A transaction: `put` if `compare` holds. Returns whether it did.
    async fn put_if(&self, key: &str, compare: Value, value: String) -> Result<bool, StorageError> {
        let body = json!({
            "compare": [compare],
            "success": [{ "request_put": { "key": key, "value": value } }],
        });
        Ok(self.call::<TxnResponse>("/v3/kv/txn", &body).await?.succeeded)
    }

    async fn range(&self, body: Value) -> Result<Vec<KeyValue>, StorageError> {
        Ok(self.call::<RangeResponse>("/v3/kv/range", &body).await?.kvs)
    }

    /// Every (key, value) whose key starts with `{namespace}{prefix}`, in key order, the namespace cut
    /// off the keys: for reading what Dex's etcd storage keeps beside tessera's.
    pub(crate) async fn read_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let start = format!("{}{prefix}", self.namespace);
        let mut end = start.clone().into_bytes();
        match end.last_mut() {
            Some(last) if *last < 0xff => *last += 1,
            _ => end.push(0),
        }
        let body = json!({ "key": STANDARD.encode(&start), "range_end": STANDARD.encode(end) });
        let mut found = Vec::new();
        for kv in self.range(body).await? {
            let key = STANDARD.decode(kv.key.as_deref().unwrap_or_default()).map_err(err)?;
            let key = String::from_utf8_lossy(&key).trim_start_matches(self.namespace.as_str()).to_owned();
            found.push((key, STANDARD.decode(&kv.value).map_err(err)?));
        }
        Ok(found)
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn insert(
        &self,
        kind: Kind,
        key: &str,
        data: &str,
        expiry: Option<i64>,
        link: Option<&str>,
    ) -> Result<(), StorageError> {
        let key = self.key(kind, key);
        // A key that was never created (or was deleted) has create_revision 0.
        let absent = json!({ "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0" });
        if self.put_if(&key, absent, Self::encode(data, expiry, link)?).await? {
            Ok(())
        } else {
            Err(StorageError::AlreadyExists)
        }
    }

    async fn get(&self, kind: Kind, key: &str) -> Result<Document, StorageError> {
        let kvs = self.range(json!({ "key": self.key(kind, key) })).await?;
        let kv = kvs.first().ok_or(StorageError::NotFound)?;
        Ok(Self::decode(kv)?.0)
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Document>, StorageError> {
        let (key, range_end) = self.kind_range(kind);
        // etcd answers in key order, as the SQL backends' ORDER BY id.
        let kvs = self.range(json!({ "key": key, "range_end": range_end })).await?;
        kvs.iter().map(|kv| Self::decode(kv).map(|(document, _)| document)).collect()
    }

    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError> {
        let deleted: DeleteResponse = self.call("/v3/kv/deleterange", &json!({ "key": self.key(kind, key) })).await?;
        match deleted.deleted.as_deref() {
            Some(count) if count != "0" => Ok(()),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn compare_and_swap(&self, swap: &Swap<'_>) -> Result<bool, StorageError> {
        let key = self.key(swap.kind, swap.key);
        let unchanged =
            json!({ "key": key, "target": "MOD", "result": "EQUAL", "mod_revision": swap.version.to_string() });
        self.put_if(&key, unchanged, Self::encode(swap.data, swap.expiry, swap.link)?).await
    }

    async fn delete_expired(&self, kind: Kind, now: i64) -> Result<u64, StorageError> {
        let (start, range_end) = self.kind_range(kind);
        let kvs = self.range(json!({ "key": start, "range_end": range_end })).await?;
        let mut deleted = 0;
        for kv in &kvs {
            let Ok((document, Some(expiry))) = Self::decode(kv) else { continue };
            if expiry >= now {
                continue;
            }
            // Only as it was read: a document renewed meanwhile (a session's idle expiry) stays.
            let body = json!({
                "compare": [{ "key": key_of(kv)?, "target": "MOD", "result": "EQUAL",
                              "mod_revision": document.version.to_string() }],
                "success": [{ "request_delete_range": { "key": key_of(kv)? } }],
            });
            if self.call::<TxnResponse>("/v3/kv/txn", &body).await?.succeeded {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.call::<Value>("/v3/maintenance/status", &json!({})).await.map(drop)
    }
}

/// The (base64) key of a listed pair: kept in the raw JSON, so read it again from there.
fn key_of(kv: &KeyValue) -> Result<String, StorageError> {
    kv.key.clone().ok_or_else(|| err("a listed key came back without its name"))
}
