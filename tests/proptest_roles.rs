//! Property: over random sequences of role changes (with or without an
//! invalidation), requests and clock steps, the roles any request is
//! authorized with were the directory's at some moment within the last
//! `roles_max_age`, and never predate a change that was invalidated before
//! the request.

#[path = "support/directory.rs"]
mod directory;

use std::sync::Arc;
use std::time::Duration;

use directory::Directory;
use mcp_session::{Config, Identity, ManualClock, MokaStore, Roles, SessionManager};
use proptest::prelude::*;

const MAX_AGE_MS: u64 = 60_000;
const IDENTITIES: [&str; 3] = ["alice", "bob", "carol"];
const ROLE_SETS: [&[&str]; 4] = [&[], &["reader"], &["admin"], &["admin", "reader"]];

#[derive(Clone, Debug)]
enum Op {
    /// Change an identity's roles in the directory, then maybe invalidate.
    Set {
        who: usize,
        roles: usize,
        invalidate: bool,
    },
    Request {
        who: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..IDENTITIES.len(), 0..ROLE_SETS.len(), any::<bool>())
            .prop_map(|(who, roles, invalidate)| Op::Set { who, roles, invalidate }),
        3 => (0..IDENTITIES.len()).prop_map(|who| Op::Request { who }),
        1 => (0u64..90_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// One version of an identity's roles in the directory.
struct Version {
    since_ms: u64,
    roles: Roles,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn authorized_roles_are_never_older_than_max_age(ops in proptest::collection::vec(op(), 1..80)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let directory = Arc::new(Directory::default());
            let clock = ManualClock::new(mcp_session::Timestamp::from_millis(0));
            let manager = SessionManager::builder(MokaStore::default())
                .config(Config::default().roles_max_age(Duration::from_millis(MAX_AGE_MS)))
                .clock(clock.clone())
                .role_source(directory.clone())
                .build();
            let mut history: Vec<Vec<Version>> = IDENTITIES
                .iter()
                .map(|_| vec![Version { since_ms: 0, roles: Roles::default() }])
                .collect();
            // Per identity: the first version a request may still be served.
            let mut oldest_allowed = vec![0usize; IDENTITIES.len()];
            let mut now = 0u64;
            for op in &ops {
                match *op {
                    Op::Set { who, roles, invalidate } => {
                        directory.set(IDENTITIES[who], ROLE_SETS[roles]);
                        history[who].push(Version { since_ms: now, roles: Roles::new(ROLE_SETS[roles].iter().copied()) });
                        if invalidate {
                            manager.invalidate_roles(IDENTITIES[who]).await.unwrap();
                            oldest_allowed[who] = history[who].len() - 1;
                        }
                    }
                    Op::Advance { ms } => {
                        clock.advance(Duration::from_millis(ms));
                        now += ms;
                    }
                    Op::Request { who } => {
                        let caller = Identity::new::<&str>(IDENTITIES[who], "x", []);
                        let got = manager.roles(&caller).await.unwrap();
                        let versions = &history[who];
                        // Version i was the directory's during [since_i, since_{i+1}].
                        let fits = (oldest_allowed[who]..versions.len()).any(|i| {
                            let until = versions.get(i + 1).map_or(u64::MAX, |next| next.since_ms);
                            versions[i].roles == got
                                && versions[i].since_ms <= now
                                && until.saturating_add(MAX_AGE_MS) > now
                        });
                        prop_assert!(fits, "at {now} ms {} got {got:?}; ops {ops:?}", IDENTITIES[who]);
                    }
                }
            }
            Ok(())
        })?;
    }
}
