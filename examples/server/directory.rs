//! DEMO ONLY: the role directory (a `RoleSource`), and the admin operations
//! the admin tools call.

use std::future::Future;
use std::sync::Arc;

use mcp_session::roles::{RoleLookupError, RoleSource};
use mcp_session::{Identity, Role, Roles, SessionManager, SessionStore};

/// DEMO ONLY: the roles of each identity, in memory or in one Redis hash
/// (shared by replicas). Identities it does not list have the initial roles
/// below (alice: admin, reader; bob: reader; anyone else: none).
pub enum DemoDirectory {
    /// One process.
    Memory(std::sync::RwLock<std::collections::HashMap<String, Roles>>),
    /// Shared: field = identity id, value = the roles as a JSON array.
    Redis(redis::aio::ConnectionManager),
}

const DIRECTORY_KEY: &str = "mcp-session-demo:directory";

impl DemoDirectory {
    /// A directory in this process's memory.
    pub fn memory() -> Self {
        DemoDirectory::Memory(Default::default())
    }

    /// A directory in Redis at `url`.
    pub async fn redis(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(DemoDirectory::Redis(client.get_connection_manager().await?))
    }

    fn initial(identity_id: &str) -> Roles {
        match identity_id {
            "alice" => Roles::new(["admin", "reader"]),
            "bob" => Roles::new(["reader"]),
            _ => Roles::default(),
        }
    }

    /// Replaces an identity's roles.
    pub async fn set(&self, identity_id: &str, roles: &Roles) -> Result<(), String> {
        match self {
            DemoDirectory::Memory(map) => {
                let mut map = map.write().map_err(|_| "directory lock poisoned")?;
                map.insert(identity_id.to_string(), roles.clone());
                Ok(())
            }
            DemoDirectory::Redis(conn) => {
                let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
                let value = serde_json::to_string(&names).map_err(|e| e.to_string())?;
                redis::cmd("HSET")
                    .arg(DIRECTORY_KEY)
                    .arg(identity_id)
                    .arg(value)
                    .query_async::<()>(&mut conn.clone())
                    .await
                    .map_err(|e| format!("directory unavailable: {e}"))
            }
        }
    }
}

impl RoleSource for DemoDirectory {
    async fn roles(&self, caller: &Identity) -> Result<Roles, RoleLookupError> {
        let id = caller.id();
        match self {
            DemoDirectory::Memory(map) => {
                let map = map
                    .read()
                    .map_err(|_| RoleLookupError::new("directory lock poisoned"))?;
                Ok(map.get(id).cloned().unwrap_or_else(|| Self::initial(id)))
            }
            DemoDirectory::Redis(conn) => {
                let value: Option<String> = redis::cmd("HGET")
                    .arg(DIRECTORY_KEY)
                    .arg(id)
                    .query_async(&mut conn.clone())
                    .await
                    .map_err(RoleLookupError::new)?;
                match value {
                    None => Ok(Self::initial(id)),
                    Some(json) => {
                        let names: Vec<String> =
                            serde_json::from_str(&json).map_err(RoleLookupError::new)?;
                        Ok(Roles::new(names))
                    }
                }
            }
        }
    }
}

/// What the admin tools do, whatever the session store (the tools' server
/// type is not generic over it).
pub trait Admin: Send + Sync + 'static {
    /// Replaces an identity's roles and invalidates them on every replica.
    fn set_roles<'a>(
        &'a self,
        identity_id: &'a str,
        roles: Roles,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// Ends every session of an identity on every replica.
    fn revoke_sessions<'a>(
        &'a self,
        identity_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>>;
}

/// The admin operations over a session manager and the directory.
pub struct AdminOps<S> {
    /// Ends sessions and invalidates cached roles.
    pub manager: SessionManager<S>,
    /// Where roles live.
    pub directory: Arc<DemoDirectory>,
}

impl<S: SessionStore> Admin for AdminOps<S> {
    fn set_roles<'a>(
        &'a self,
        identity_id: &'a str,
        roles: Roles,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.directory.set(identity_id, &roles).await?;
            self.manager
                .invalidate_roles(identity_id)
                .await
                .map_err(|e| format!("roles changed, but not every replica was told: {e}"))
        })
    }

    fn revoke_sessions<'a>(
        &'a self,
        identity_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>> {
        Box::pin(async move {
            self.manager
                .revoke_sessions(identity_id)
                .await
                .map_err(|e| format!("could not revoke the sessions: {e}"))
        })
    }
}
