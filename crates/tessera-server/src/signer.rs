//! The signing keys as the server uses them: rotated in shared storage (exactly once across
//! replicas, by compare-and-swap), parsed once and cached until they change, so signing a token
//! never decodes a key.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::IntCounter;
use tessera_core::clock::Clock;
use tessera_core::model::Keys;
use tessera_jose::{Algorithm, JoseError, PrivateKey, PublicKey, RotationError, jwks, needs_rotation, rotate};
use tessera_storage::{Optional, Storage, StorageError};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::config::{Config, SigningAlgorithm};

/// Dex checks whether the keys need rotating every 30 seconds.
pub const ROTATION_CHECK_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("keys: {0}")]
    Key(#[from] JoseError),
    #[error("key generation did not finish")]
    Generation,
    #[error("signing did not finish")]
    Signing,
}

/// What a rotation attempt inside the storage updater can end with.
enum RotateFailure {
    Storage(StorageError),
    AlreadyRotated,
}

impl From<StorageError> for RotateFailure {
    fn from(err: StorageError) -> Self {
        RotateFailure::Storage(err)
    }
}

/// The keys in force, parsed.
#[derive(Debug)]
pub struct ActiveKeys {
    pub signing: PrivateKey,
    /// The current public key first, then older ones still valid for verification.
    pub verification: Vec<PublicKey>,
    /// The JWKS document, rendered once (indented, as Dex serves it).
    pub jwks: String,
    pub next_rotation: OffsetDateTime,
}

pub struct Signer {
    storage: Storage,
    clock: Arc<dyn Clock>,
    algorithm: Algorithm,
    rotation_period: Duration,
    /// How long an old public key stays published: the ID-token lifetime.
    verify_for: Duration,
    active: RwLock<Option<Arc<ActiveKeys>>>,
    /// RSA key generation is CPU-heavy: at most one at a time, off the async executor.
    generation: Semaphore,
    /// RSA signatures (~0.75 ms of CPU each) run on the blocking pool, at most one per core at a
    /// time, so the executor's workers keep their share of the CPU for requests that do not sign.
    rsa_signing: Semaphore,
    /// Counts the rotations this replica wrote.
    rotations: Option<IntCounter>,
}

impl Signer {
    pub fn new(storage: Storage, clock: Arc<dyn Clock>, config: &Config) -> Self {
        Self {
            storage,
            clock,
            algorithm: match config.signer.algorithm {
                SigningAlgorithm::RS256 => Algorithm::RS256,
                SigningAlgorithm::ES256 => Algorithm::ES256,
            },
            rotation_period: config.signer.keys_rotation_period,
            verify_for: config.expiry.id_tokens,
            active: RwLock::new(None),
            generation: Semaphore::new(1),
            rsa_signing: Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from)),
            rotations: None,
        }
    }

    /// The same signer, counting in `counter` each rotation it writes (not those it adopts).
    pub fn counting_rotations(self, counter: IntCounter) -> Self {
        Self { rotations: Some(counter), ..self }
    }

    /// A compact JWS of the serialised `payload` with the active signing key. ES256 (~20 µs) is
    /// signed in place, where handing it off would cost more than it saves.
    pub async fn sign(&self, keys: &Arc<ActiveKeys>, payload: Vec<u8>) -> Result<String, SignerError> {
        if keys.signing.alg() == Algorithm::ES256 {
            return Ok(keys.signing.sign_payload(&payload)?);
        }
        let _permit = self.rsa_signing.acquire().await.map_err(|_| SignerError::Signing)?;
        let keys = Arc::clone(keys);
        Ok(tokio::task::spawn_blocking(move || keys.signing.sign_payload(&payload))
            .await
            .map_err(|_| SignerError::Signing)??)
    }

    /// The algorithm new keys are made with (existing keys keep theirs until rotated).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The cached keys, or `None` before the first successful load.
    pub fn active(&self) -> Option<Arc<ActiveKeys>> {
        self.active.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Rotates the keys in storage if their time has come (one replica wins; the others adopt its
    /// keys), then refreshes the cache from storage.
    pub async fn rotate_and_load(&self) -> Result<Arc<ActiveKeys>, SignerError> {
        let now = self.clock.now();
        // No keys until the first rotation.
        let keys = self.storage.get_keys().await.optional()?.unwrap_or_default();
        let keys = if needs_rotation(&keys, now) { self.rotate(now).await? } else { keys };
        self.load(&keys)
    }

    async fn rotate(&self, now: OffsetDateTime) -> Result<Keys, SignerError> {
        let new_key = self.generate().await?;
        let (period, verify_for) = (self.rotation_period, self.verify_for);
        let rotated = self
            .storage
            .update_keys(|keys| {
                rotate(keys, &new_key, now, period, verify_for)
                    .map_err(|RotationError::AlreadyRotated| RotateFailure::AlreadyRotated)
            })
            .await;
        match rotated {
            Ok(keys) => {
                if let Some(rotations) = &self.rotations {
                    rotations.inc();
                }
                tracing::info!(kid = new_key.kid(), alg = new_key.alg().as_str(), "rotated the signing key");
                Ok(keys)
            }
            Err(RotateFailure::AlreadyRotated) => Ok(self.storage.get_keys().await?),
            Err(RotateFailure::Storage(err)) => Err(err.into()),
        }
    }

    async fn generate(&self) -> Result<PrivateKey, SignerError> {
        let _permit = self.generation.acquire().await.map_err(|_| SignerError::Generation)?;
        let algorithm = self.algorithm;
        tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm))
            .await
            .map_err(|_| SignerError::Generation)?
            .map_err(SignerError::from)
    }

    /// Parses `keys` into the cache, unless the cache already holds exactly these keys.
    fn load(&self, keys: &Keys) -> Result<Arc<ActiveKeys>, SignerError> {
        let published = jwks(keys);
        if let Some(active) = self.active()
            && active.next_rotation == keys.next_rotation
            && serde_json::to_string_pretty(&published).ok().as_deref() == Some(active.jwks.as_str())
        {
            return Ok(active);
        }
        let stored = keys.signing_key.as_ref().ok_or(JoseError::InvalidKey("no signing key in storage".into()))?;
        let signing = PrivateKey::from_stored(stored)?;
        let verification = published["keys"]
            .as_array()
            .map(|all| all.iter().map(PublicKey::from_jwk).collect::<Result<Vec<_>, _>>())
            .transpose()?
            .unwrap_or_default();
        let active = Arc::new(ActiveKeys {
            signing,
            verification,
            jwks: serde_json::to_string_pretty(&published).unwrap_or_default(),
            next_rotation: keys.next_rotation,
        });
        *self.active.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(active.clone());
        Ok(active)
    }
}
