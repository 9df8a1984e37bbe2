//! Small opaque values keyed by a session's [digest](crate::SessionId::digest),
//! in their own key space next to the sessions: `<prefix><space>:<digest as
//! 16 hex digits>`. The whole session id never appears in a key name.
//!
//! Used for state other components keep per session (rmcp's session state,
//! see `mcp_session::rmcp::SessionStateStore`). Every call is one command on one
//! key (Cluster-safe), bounded by the store's command timeout.

use std::time::Duration;

use super::RedisStore;
use crate::StoreError;

impl RedisStore {
    /// The key of `digest` in `space`.
    pub(crate) fn digest_key(&self, space: &str, digest: u64) -> String {
        format!("{}{space}:{digest:016x}", self.inner.config.key_prefix)
    }

    /// `SET key value PX ttl`: stores (or replaces) the value.
    pub(crate) async fn put_by_digest(
        &self,
        space: &str,
        digest: u64,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.digest_key(space, digest);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        self.bounded(
            ::redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(super::clamp(millis))
                .query_async::<()>(&mut conn),
        )
        .await?
        .map_err(|e| self.fail(e))
    }

    /// `GET key`.
    pub(crate) async fn get_by_digest(
        &self,
        space: &str,
        digest: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.digest_key(space, digest);
        let mut conn = self.conn.clone();
        self.bounded(conn.get(&key))
            .await?
            .map_err(|e| self.fail(e))
    }

    /// `DEL key`.
    pub(crate) async fn delete_by_digest(
        &self,
        space: &str,
        digest: u64,
    ) -> Result<(), StoreError> {
        let key = self.digest_key(space, digest);
        let mut conn = self.conn.clone();
        self.bounded(conn.del::<i64>(&key))
            .await?
            .map(drop)
            .map_err(|e| self.fail(e))
    }
}
