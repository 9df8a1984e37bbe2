//! A `create` that is never left half done (issue 13, item 7).
//!
//! A create is several commands on keys that may live on different Cluster
//! shards (session key, identity index, global index), so it cannot be one
//! transaction. Cut off between its steps — by the caller's timeout, or by a
//! caller that goes away (its future dropped) — it used to leave a session
//! written but uncounted, or counted but missing. Now:
//!
//! - the steps run in their own task, so dropping the caller's future never
//!   stops them half way;
//! - their result is handed over through a channel: a success that nobody
//!   receives (the caller timed out or went away) is undone, and so is every
//!   failure after the session may have been written;
//! - undoing removes the session key (only if it still holds this create's
//!   session) and this create's index entries (only if they still carry its
//!   scores), in that order, on the same connection as the steps, so it runs
//!   after any step command that was still in flight; it is retried a few
//!   times within the command timeout each.
//!
//! What is left only if Redis stays unreachable through every retry (or the
//! process dies): a session no caller knows, which expires with its TTL, and
//! index entries that the cap checks drop once they find the session gone.

use std::time::Duration;

use tokio::sync::oneshot;

use super::hashed_id::HashedId;
use super::scripts::UNDO;
use super::{clamp, RedisStore};
use crate::store::CreateOutcome;
use crate::{Limits, Session, StoreError};

/// How many times an undo is tried, waiting 25 ms, 50 ms, … (at most 1 s)
/// between tries: about 4 s in all, so an undo outlasts a Redis stalled for
/// a few seconds.
const UNDO_ATTEMPTS: u32 = 10;

type Outcome = Result<CreateOutcome, StoreError>;

impl RedisStore {
    /// [`SessionStore::create`](crate::SessionStore::create): runs the steps
    /// detached and waits for them at most the command timeout.
    pub(super) async fn create_detached(&self, session: &Session, limits: &Limits) -> Outcome {
        let (tx, rx) = oneshot::channel::<Outcome>();
        let (store, owned, limits) = (self.clone(), session.clone(), *limits);
        // The steps' own bound: they stop (and undo) even when the
        // connection has no response timeout of its own.
        let bound = self.inner.config.command_timeout.saturating_mul(4);
        tokio::spawn(async move {
            let result = match tokio::time::timeout(bound, store.create_now(&owned, &limits)).await
            {
                Ok(result) => result,
                Err(_) => Err(StoreError::Timeout(bound)),
            };
            let must_undo = match &result {
                Ok(_) => false,
                // Nothing was written.
                Err(StoreError::AlreadyExists) => false,
                Err(_) => true,
            };
            if must_undo {
                store.undo_create(&owned).await;
            }
            // Refused by a closed receiver: nobody will learn of this
            // session, so it must not stay.
            if let Err(Ok(_)) = tx.send(result) {
                store.undo_create(&owned).await;
            }
        });
        let mut pending = Pending {
            rx: Some(rx),
            store: self.clone(),
            session: session.clone(),
        };
        let timeout = self.inner.config.command_timeout;
        let waited = match pending.rx.as_mut() {
            Some(rx) => tokio::time::timeout(timeout, rx).await,
            None => unreachable!("set just above"),
        };
        match waited {
            Ok(Ok(result)) => {
                pending.rx = None;
                result
            }
            // The task panicked: whatever it wrote is left to expire.
            Ok(Err(_)) => {
                pending.rx = None;
                Err(StoreError::Timeout(timeout))
            }
            // `pending` is dropped here, which undoes a success that
            // arrives from now on (or just did).
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// Removes what a create of `session` may have written: the session key
    /// if it still holds this create's session, then its index entries if
    /// they still carry this create's scores. Idempotent; retried.
    pub(super) async fn undo_create(&self, session: &Session) {
        let hashed = HashedId::of(session.id());
        let key = self.session_key(&hashed.member);
        let identity_key = self.identity_key(session.identity_id());
        let deadline_score = clamp(session.deadline().as_millis());
        let expiry_score = clamp(session.expires_at().as_millis());
        let created = format!("{:016}", clamp(session.created_at().as_millis()));
        let timeout = self.inner.config.command_timeout;
        for attempt in 0..UNDO_ATTEMPTS {
            let mut conn = self.conn.clone();
            // All three are sent whatever the others answer (one that timed
            // out may still run), and the try succeeds only if all did.
            let steps = async {
                let session = UNDO
                    .key(&key)
                    .arg(&hashed.check)
                    .arg(&created)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .is_ok();
                let identity = conn
                    .forget(&identity_key, &hashed.member, deadline_score)
                    .await
                    .is_ok();
                let global = !self.inner.config.global_cap
                    || conn
                        .forget(&self.inner.global_key, &hashed.member, expiry_score)
                        .await
                        .is_ok();
                session && identity && global
            };
            if let Ok(true) = tokio::time::timeout(timeout.saturating_mul(3), steps).await {
                return;
            }
            let backoff = Duration::from_millis(25).saturating_mul(1 << attempt.min(6));
            tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
        }
        crate::log::log_warn!(StoreError::Timeout(timeout); "could not undo a failed Redis create; its session expires with its TTL");
    }
}

/// The caller's side of a detached create.
struct Pending {
    rx: Option<oneshot::Receiver<Outcome>>,
    store: RedisStore,
    session: Session,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // From now on the task's send fails and it undoes by itself; a
        // success already sent is undone here.
        rx.close();
        if let Ok(Ok(_)) = rx.try_recv() {
            let (store, session) = (self.store.clone(), self.session.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { store.undo_create(&session).await });
            }
        }
    }
}
