#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod id;
mod identity;
mod log;
mod manager;
mod resolve;
mod session;
mod time;

pub mod layer;
pub mod store;

pub use config::{
    Config, IdentityLimitPolicy, Limits, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_IDENTITY, DEFAULT_TIMEOUT,
};
pub use error::{CapacityScope, InvalidSessionId, SessionError, StoreError};
pub use id::{SessionId, MAX_ADOPTED_ID_LEN, SESSION_ID_BYTES, SESSION_ID_HEX_LEN};
pub use identity::{Identity, Role, Roles};
pub use layer::{IdMode, SessionLayer, SessionMiddleware};
pub use manager::SessionManager;
pub use resolve::{IdentityFromExtensions, ResolveIdentity};
pub use session::Session;
pub use store::{CreateOutcome, MokaStore, SessionStore};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
