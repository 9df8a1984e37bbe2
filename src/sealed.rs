//! Sealed request state for multi-round-trip requests (MRTR `requestState`,
//! feature `handles`): seal a value for a caller and a request, hand it to
//! the client, and open it when it comes back — for the same caller and
//! request, once, before it expires.
//!
//! ```
//! use mcp_session::sealed::{OpenError, SealKey, Sealer};
//! use mcp_session::{Identity, MokaStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let key = SealKey::generate("2026-12"); // in production: SealKey::new with a stored secret
//! let sealer = Sealer::new(MokaStore::default(), key); // the store records single use
//! let alice = Identity::new("alice", "Alice", ["user"]);
//!
//! let state = sealer.seal(&alice, "tools/call deploy", &("step", 2)).unwrap();
//! let (step, n): (String, u32) = sealer.open(&alice, "tools/call deploy", &state).await.unwrap();
//! assert_eq!((step.as_str(), n), ("step", 2));
//! // A second time: refused.
//! let replay = sealer.open::<(String, u32)>(&alice, "tools/call deploy", &state).await;
//! assert!(matches!(replay, Err(OpenError::Replayed)));
//! # });
//! ```
//!
//! # Threat model
//!
//! The specification says to treat `requestState` as attacker-controlled.
//! The attacker here is the client itself, or anyone who can read or
//! rewrite what it sends: it may change any byte, send a state back twice,
//! send it after a long delay, send one sealed for another user or another
//! request, send someone else's, or send garbage of any size.
//!
//! - **Integrity and origin.** The state carries an HMAC-SHA-256 tag (RustCrypto's
//!   `hmac` and `sha2`) under a server key of at least 32 bytes, checked in
//!   constant time (`Mac::verify_slice`). Changing any byte gives
//!   [`OpenError::Invalid`].
//! - **Bound to the principal and the request.** The caller's
//!   [`Identity::id`] and a request binding of your choice (for example the
//!   method and tool name, plus a digest of the arguments that must not
//!   change) are inside the tag; they are not sent, since the server knows
//!   them when the state comes back. Opened by another principal or for
//!   another request, the tag does not match: [`OpenError::Invalid`], the
//!   same answer as tampering (the caller learns nothing about whom it was
//!   for).
//! - **Short-lived.** The expiry (default 5 minutes, [`Sealer::ttl`]) is
//!   inside the tag: [`OpenError::Expired`] after it.
//! - **Single use.** Each state has a 128-bit random nonce. Opening claims it
//!   in the store ([`HandleStore::claim_once`]:
//!   Redis `SET NX PX`, or an in-memory cache with per-entry expiry) until
//!   the expiry; a second open gets [`OpenError::Replayed`]. The claim is
//!   made only after the tag checked out, so forged states cost the store
//!   nothing. Use a store shared by all replicas (Redis) when several serve
//!   the same clients: an in-process store only sees its own claims. An open
//!   that fails after the claim (the payload no longer deserializes) still
//!   used the state up: the client starts the request over.
//! - **Key rotation.** Every state names the key that sealed it (a short
//!   id, not secret). [`Sealer::also_open_with`] keeps older keys for
//!   opening while new states are sealed with the current one; a state
//!   whose key was removed gets [`OpenError::UnknownKey`].
//! - **Bounded work.** A state longer than [`Sealer::max_len`] (default 16 KiB) is refused
//!   before it is decoded ([`OpenError::Malformed`]); sealing refuses a value
//!   that would exceed it. Nothing panics on any input (fuzzed:
//!   `fuzz/fuzz_targets/sealed.rs`).
//!
//! **Not confidential.** The payload is signed, not encrypted: the client can
//! read it (base64url JSON). That is deliberate: the state goes back to
//! the same client whose request it describes, and an HMAC has no nonce to
//! misuse and no second primitive to get wrong. Put nothing in it the
//! caller may not see; keep secrets server-side (in a
//! [handle](crate::handles)) and seal the handle instead. If you need
//! secrecy from the client, this module is the wrong tool.
//!
//! # Format
//!
//! base64url (no padding) of `1 | key id length | key id | nonce (16) |
//! expiry (8, ms, big-endian) | payload (JSON) | tag (32)`, the tag over a
//! domain label, the length-prefixed principal and request binding, and
//! every byte before the tag.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

use crate::handles::HandleStore;
use crate::{Clock, Identity, StoreError, SystemClock, Timestamp};

/// Default lifetime of a sealed state: 5 minutes.
pub const DEFAULT_SEAL_TTL: Duration = Duration::from_secs(5 * 60);
/// Default largest sealed state (its text): 16 KiB.
pub const DEFAULT_MAX_SEALED_LEN: usize = 16 * 1024;
/// Shortest key secret: 32 bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest key id: 32 bytes.
pub const MAX_KEY_ID_LEN: usize = 32;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 32;
const DOMAIN: &[u8] = b"mcp-session sealed request state v1\0";

type HmacSha256 = Hmac<Sha256>;

/// A sealing key: an id (sent in every state, not secret) and a secret of
/// at least [`MIN_KEY_BYTES`]. `Debug` never shows the secret.
#[derive(Clone)]
pub struct SealKey {
    id: Box<[u8]>,
    secret: Arc<[u8]>,
}

/// A key that cannot be used: id empty, longer than [`MAX_KEY_ID_LEN`] or
/// not visible ASCII, or a secret shorter than [`MIN_KEY_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidKey;

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a seal key needs an id of 1 to {MAX_KEY_ID_LEN} visible ASCII characters and a \
             secret of at least {MIN_KEY_BYTES} bytes"
        )
    }
}

impl std::error::Error for InvalidKey {}

impl SealKey {
    /// A key with this id and secret (for example 32 random bytes kept in
    /// your secret store and shared by every replica).
    pub fn new(id: impl AsRef<str>, secret: &[u8]) -> Result<Self, InvalidKey> {
        let id = id.as_ref().as_bytes();
        let id_ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id.iter().all(|b| (0x21..=0x7e).contains(b));
        if !id_ok || secret.len() < MIN_KEY_BYTES {
            return Err(InvalidKey);
        }
        Ok(SealKey {
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// A key with this id and 32 fresh bytes from the operating system's
    /// CSPRNG (one process only: replicas must share their keys).
    ///
    /// # Panics
    ///
    /// If the id is invalid, or the operating system has no randomness.
    pub fn generate(id: impl AsRef<str>) -> Self {
        let mut secret = [0u8; MIN_KEY_BYTES];
        if let Err(error) = getrandom::fill(&mut secret) {
            panic!("the operating system's random number generator failed: {error}");
        }
        SealKey::new(id, &secret).expect("a valid key id")
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        // Checked to be ASCII in `new`.
        std::str::from_utf8(&self.id).unwrap_or_default()
    }

    fn mac(&self, principal: &str, request: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        for part in [principal.as_bytes(), request] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Seals and opens request state. See the [module docs](self) for the
/// threat model. Cheap to clone.
pub struct Sealer<S> {
    store: S,
    current: SealKey,
    older: Vec<SealKey>,
    ttl: Duration,
    max_len: usize,
    clock: Arc<dyn Clock>,
}

impl<S: Clone> Clone for Sealer<S> {
    fn clone(&self) -> Self {
        Sealer {
            store: self.store.clone(),
            current: self.current.clone(),
            older: self.older.clone(),
            ttl: self.ttl,
            max_len: self.max_len,
            clock: self.clock.clone(),
        }
    }
}

impl<S> fmt::Debug for Sealer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current)
            .field("older", &self.older)
            .field("ttl", &self.ttl)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

/// Why [`Sealer::seal`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed state would be longer than [`Sealer::max_len`].
    TooLarge,
    /// The value could not be serialized.
    Payload(serde_json::Error),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::TooLarge => f.write_str("the request state is too large to seal"),
            SealError::Payload(e) => write!(f, "the request state could not be serialized: {e}"),
        }
    }
}

impl std::error::Error for SealError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SealError::Payload(e) => Some(e),
            SealError::TooLarge => None,
        }
    }
}

/// Why [`Sealer::open`] refused a state. Every message tells the client to
/// start the request over; none says whom a state was for.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a sealed state at all: too long, not base64url, truncated, an
    /// unknown format version.
    Malformed,
    /// Sealed with a key this server no longer (or never) had.
    UnknownKey,
    /// The tag does not match: tampered with, or sealed for another caller
    /// or another request (deliberately the same answer).
    Invalid,
    /// Authentic, but past its expiry.
    Expired,
    /// Authentic and fresh, but already opened once.
    Replayed,
    /// Authentic, but the payload does not deserialize as the type asked for.
    Payload(serde_json::Error),
    /// The store could not record the single use (it fails closed).
    Store(StoreError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            OpenError::Malformed => "is malformed",
            OpenError::UnknownKey => "was sealed with a key this server no longer has",
            OpenError::Invalid => "is not valid for this caller and request",
            OpenError::Expired => "has expired",
            OpenError::Replayed => "was already used",
            OpenError::Payload(_) => "could not be read",
            OpenError::Store(_) => "could not be checked right now",
        };
        write!(f, "the request state {what}; start the request over")
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Payload(e) => Some(e),
            OpenError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl<S: HandleStore> Sealer<S> {
    /// A sealer that seals with `key`, records single use in `store`, with
    /// the default TTL and size bound and the system clock.
    pub fn new(store: S, key: SealKey) -> Self {
        Sealer {
            store,
            current: key,
            older: Vec::new(),
            ttl: DEFAULT_SEAL_TTL,
            max_len: DEFAULT_MAX_SEALED_LEN,
            clock: Arc::new(SystemClock),
        }
    }

    /// Also opens states sealed with `key` (a previous key, during a
    /// rotation). Remove it once its states have expired.
    pub fn also_open_with(mut self, key: SealKey) -> Self {
        self.older.push(key);
        self
    }

    /// Sets how long a sealed state stays valid (default [`DEFAULT_SEAL_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the longest sealed state accepted or produced, in characters
    /// (default [`DEFAULT_MAX_SEALED_LEN`]).
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// Sets the clock (tests use [`crate::ManualClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Seals `value` for `caller` and the request `request` (any bytes that
    /// identify it: method, tool name, a digest of fixed arguments).
    pub fn seal<T: Serialize + ?Sized>(
        &self,
        caller: &Identity,
        request: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<String, SealError> {
        let payload = serde_json::to_vec(value).map_err(SealError::Payload)?;
        let key = &self.current;
        let raw_len = 2 + key.id.len() + NONCE_LEN + 8 + payload.len() + TAG_LEN;
        if raw_len.div_ceil(3) * 4 > self.max_len {
            return Err(SealError::TooLarge);
        }
        let mut nonce = [0u8; NONCE_LEN];
        if let Err(error) = getrandom::fill(&mut nonce) {
            panic!("the operating system's random number generator failed: {error}");
        }
        let expires = self.clock.now() + self.ttl;
        let mut raw = Vec::with_capacity(raw_len);
        raw.push(VERSION);
        raw.push(key.id.len() as u8); // at most MAX_KEY_ID_LEN
        raw.extend_from_slice(&key.id);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&expires.as_millis().to_be_bytes());
        raw.extend_from_slice(&payload);
        let tag = key
            .mac(caller.id(), request.as_ref())
            .chain_update(&raw)
            .finalize()
            .into_bytes();
        raw.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Opens a state sealed for `caller` and `request`, and records it as
    /// used: it never opens again. See [`OpenError`] for the refusals.
    pub async fn open<T: DeserializeOwned>(
        &self,
        caller: &Identity,
        request: impl AsRef<[u8]>,
        sealed: &str,
    ) -> Result<T, OpenError> {
        let checked = self.check(caller, request.as_ref(), sealed)?;
        let now = self.clock.now();
        match self
            .store
            .claim_once(&checked.nonce, checked.expires, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(OpenError::Replayed),
            Err(e) => return Err(OpenError::Store(e)),
        }
        serde_json::from_slice(&checked.payload).map_err(OpenError::Payload)
    }

    /// Every check but the single-use claim: size, format, key, tag, expiry.
    fn check(&self, caller: &Identity, request: &[u8], sealed: &str) -> Result<Checked, OpenError> {
        // Bounded before any decoding.
        if sealed.len() > self.max_len {
            return Err(OpenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed)?;
        let (&version, rest) = raw.split_first().ok_or(OpenError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(OpenError::Malformed)?;
        let id_len = usize::from(id_len);
        if version != VERSION || rest.len() < id_len + NONCE_LEN + 8 + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let id = &rest[..id_len];
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|key| *key.id == *id)
            .ok_or(OpenError::UnknownKey)?;
        let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
        key.mac(caller.id(), request)
            .chain_update(signed)
            .verify_slice(tag)
            .map_err(|_| OpenError::Invalid)?;
        let body = &signed[2 + id_len..];
        let nonce: [u8; NONCE_LEN] = body[..NONCE_LEN].try_into().expect("length checked");
        let expires: [u8; 8] = body[NONCE_LEN..NONCE_LEN + 8]
            .try_into()
            .expect("length checked");
        let expires = Timestamp::from_millis(u64::from_be_bytes(expires));
        if self.clock.now() >= expires {
            return Err(OpenError::Expired);
        }
        let start = 2 + id_len + NONCE_LEN + 8;
        Ok(Checked {
            nonce,
            expires,
            payload: raw[start..raw.len() - TAG_LEN].to_vec(),
        })
    }
}

struct Checked {
    nonce: [u8; NONCE_LEN],
    expires: Timestamp,
    payload: Vec<u8>,
}
