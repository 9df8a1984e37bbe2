//! A test role source: a directory of roles per identity id that counts its
//! lookups and can be made slow or failing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mcp_session::roles::{RoleLookupError, RoleSource};
use mcp_session::{Identity, Roles};

#[derive(Default)]
pub struct Directory {
    roles: Mutex<HashMap<String, Roles>>,
    lookups: AtomicUsize,
    failing: AtomicBool,
    delay: Mutex<Duration>,
}

impl Directory {
    pub fn with<const N: usize>(entries: [(&str, &[&str]); N]) -> Self {
        let directory = Directory::default();
        for (id, roles) in entries {
            directory.set(id, roles);
        }
        directory
    }

    pub fn set(&self, identity_id: &str, roles: &[&str]) {
        self.roles
            .lock()
            .unwrap()
            .insert(identity_id.to_string(), Roles::new(roles.iter().copied()));
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

impl RoleSource for Directory {
    async fn roles(&self, caller: &Identity) -> Result<Roles, RoleLookupError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(RoleLookupError::new("directory is down"));
        }
        Ok(self
            .roles
            .lock()
            .unwrap()
            .get(caller.id())
            .cloned()
            .unwrap_or_default())
    }
}
