//! Domain rules of `SessionManager` with a controllable clock (no sleeps).

use std::sync::Arc;
use std::time::Duration;

use mcp_session::{
    Config, Identity, IdentityLimitPolicy, ManualClock, MokaStore, SessionError, SessionManager,
    StoreError, Timestamp,
};

fn alice() -> Identity {
    Identity::new("alice", "Alice", ["admin", "reader"])
}

fn manager(clock: &ManualClock, config: Config) -> SessionManager {
    SessionManager::with_clock(MokaStore::new(1_000), config, clock.clone())
}

#[tokio::test]
async fn create_binds_identity_and_caches_roles() {
    let clock = ManualClock::new(Timestamp::from_millis(5_000));
    let m = manager(&clock, Config::default());
    let s = m.create(&alice()).await.unwrap();
    assert_eq!(s.identity_id(), "alice");
    assert_eq!(s.identity_name(), "Alice");
    assert!(s.identity().roles().contains("admin"));
    assert_eq!(s.created_at(), Timestamp::from_millis(5_000));
    assert_eq!(s.last_access(), s.created_at());
    assert_eq!(
        s.expires_at(),
        Timestamp::from_millis(5_000) + mcp_session::DEFAULT_TIMEOUT
    );
    let got = m.get_any_owner(s.id()).await.unwrap();
    assert_eq!(got.id(), s.id());
    assert_eq!(got.identity().roles(), s.identity().roles());
}

#[tokio::test]
async fn refresh_slides_expiry_but_never_past_the_lifetime_cap() {
    let clock = ManualClock::new(Timestamp::from_millis(0));
    let config = Config::default()
        .timeout(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(25));
    let m = manager(&clock, config);
    let s = m.create(&alice()).await.unwrap();
    clock.advance(Duration::from_secs(9));
    let r = m.refresh_any_owner(s.id()).await.unwrap();
    assert_eq!(r.last_access(), Timestamp::from_millis(9_000));
    assert_eq!(r.expires_at(), Timestamp::from_millis(19_000));
    clock.advance(Duration::from_secs(9)); // 18 s
    let r = m.refresh(s.id(), &alice()).await.unwrap();
    assert_eq!(
        r.expires_at(),
        Timestamp::from_millis(25_000),
        "capped at created + max_lifetime"
    );
    clock.advance(Duration::from_secs(6)); // 24 s
    assert!(m.refresh_any_owner(s.id()).await.is_ok());
    clock.advance(Duration::from_secs(1)); // 25 s
    assert!(m
        .refresh_any_owner(s.id())
        .await
        .unwrap_err()
        .is_not_found());
    assert!(m.get_any_owner(s.id()).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn idle_expiry_without_refresh() {
    let clock = ManualClock::new(Timestamp::from_millis(0));
    let m = manager(&clock, Config::default().timeout(Duration::from_secs(10)));
    let s = m.create(&alice()).await.unwrap();
    clock.advance(Duration::from_millis(9_999));
    assert!(m.get_any_owner(s.id()).await.is_ok());
    // `get` does not slide.
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        m.get_any_owner(s.id()).await,
        Err(SessionError::NotFound)
    ));
}

#[tokio::test]
async fn owner_checks_are_indistinguishable_from_unknown() {
    let clock = ManualClock::new(Timestamp::from_millis(0));
    let m = manager(&clock, Config::default());
    let bob = Identity::new("bob", "Bob", ["reader"]);
    let s = m.create(&alice()).await.unwrap();
    assert!(m.get(s.id(), &bob).await.unwrap_err().is_not_found());
    assert!(m.refresh(s.id(), &bob).await.unwrap_err().is_not_found());
    assert!(m.delete(s.id(), &bob).await.unwrap_err().is_not_found());
    // Bob's failed refresh did not slide Alice's session.
    assert_eq!(
        m.get_any_owner(s.id()).await.unwrap().last_access(),
        Timestamp::from_millis(0)
    );
    assert!(m.delete(s.id(), &alice()).await.is_ok());
}

#[tokio::test]
async fn update_never_resurrects() {
    let clock = ManualClock::new(Timestamp::from_millis(0));
    let m = manager(&clock, Config::default().timeout(Duration::from_secs(10)));
    let s = m.create(&alice()).await.unwrap();
    m.delete_any_owner(s.id()).await.unwrap();
    assert!(m.update(&s).await.unwrap_err().is_not_found());
    assert!(m.get_any_owner(s.id()).await.unwrap_err().is_not_found());

    let s = m.create(&alice()).await.unwrap();
    clock.advance(Duration::from_secs(11));
    assert!(m
        .update(&s.touched(Timestamp::from_millis(0)))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(m.get_any_owner(s.id()).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn caps_evict_oldest_or_reject() {
    let clock = ManualClock::new(Timestamp::from_millis(0));
    let m = manager(
        &clock,
        Config::default()
            .max_sessions_per_identity(3)
            .identity_limit(IdentityLimitPolicy::EvictOldest),
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        clock.advance(Duration::from_millis(1));
        ids.push(m.create(&alice()).await.unwrap().id().clone());
    }
    let (_, outcome) = m.create_reporting(&alice()).await.unwrap();
    assert_eq!(outcome.evicted, vec![ids[0].clone().into()]);
    assert!(m.get_any_owner(&ids[0]).await.unwrap_err().is_not_found());
    assert!(m.get_any_owner(&ids[1]).await.is_ok());

    let m = manager(
        &clock,
        Config::default()
            .max_sessions_per_identity(1)
            .identity_limit(IdentityLimitPolicy::Reject),
    );
    let kept = m.create(&alice()).await.unwrap();
    assert!(matches!(
        m.create(&alice()).await,
        Err(SessionError::Store(StoreError::AtCapacity(
            mcp_session::CapacityScope::Identity
        )))
    ));
    assert!(m.get_any_owner(kept.id()).await.is_ok());

    let m = manager(&clock, Config::default().max_sessions(2));
    m.create(&alice()).await.unwrap();
    m.create(&Identity::new("bob", "Bob", ["reader"]))
        .await
        .unwrap();
    assert!(matches!(
        m.create(&Identity::new("carol", "Carol", ["reader"])).await,
        Err(SessionError::Store(StoreError::AtCapacity(
            mcp_session::CapacityScope::Global
        )))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resurrection_after_delete_under_concurrent_refreshes() {
    let m = SessionManager::new(MokaStore::new(10_000), Config::default());
    for _ in 0..50 {
        let s = m.create(&alice()).await.unwrap();
        let id = Arc::new(s.id().clone());
        let mut refreshers = Vec::new();
        for _ in 0..4 {
            let (m, id) = (m.clone(), id.clone());
            refreshers.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let _ = m.refresh(&id, &alice()).await;
                    // Read-then-write straddling the delete must not write it back.
                    if let Ok(seen) = m.get_any_owner(&id).await {
                        tokio::task::yield_now().await;
                        let _ = m.update(&seen).await;
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        tokio::task::yield_now().await;
        m.delete_any_owner(&id).await.unwrap();
        // From here on, nothing may see the session again.
        for _ in 0..200 {
            assert!(m.refresh(&id, &alice()).await.unwrap_err().is_not_found());
            assert!(m.get_any_owner(&id).await.unwrap_err().is_not_found());
            tokio::task::yield_now().await;
        }
        for r in refreshers {
            r.await.unwrap();
        }
        assert!(m.get_any_owner(&id).await.unwrap_err().is_not_found());
    }
}

#[tokio::test]
async fn identities_are_interned_in_the_moka_store() {
    let m = SessionManager::new(MokaStore::new(100), Config::default());
    // Two separately built but equal identities (as an auth layer produces per request).
    let a = m.create(&alice()).await.unwrap();
    let b = m.create(&alice()).await.unwrap();
    let a = m.get_any_owner(a.id()).await.unwrap();
    let b = m.get_any_owner(b.id()).await.unwrap();
    assert!(
        a.identity().ptr_eq(b.identity()),
        "one identity allocation shared by its sessions"
    );
}

/// Settings that cannot work are refused when the manager is built, with a
/// message that says what to change; nothing is refused that works.
#[test]
fn an_invalid_config_is_refused_at_build_time() {
    use mcp_session::ConfigError;
    let build = |config: Config| {
        SessionManager::builder(MokaStore::default())
            .config(config)
            .try_build()
            .map(|_| ())
    };
    assert_eq!(build(Config::default()), Ok(()));
    let equal = Config::default()
        .timeout(Duration::from_secs(60))
        .max_lifetime(Duration::from_secs(60));
    assert_eq!(
        build(equal),
        Ok(()),
        "a lifetime equal to the timeout is fine"
    );
    let cases = [
        (
            Config::default().timeout(Duration::ZERO),
            ConfigError::ZeroTimeout,
        ),
        (
            Config::default().timeout(Duration::from_micros(999)),
            ConfigError::ZeroTimeout,
        ),
        (
            Config::default().max_sessions(0),
            ConfigError::ZeroMaxSessions,
        ),
        (
            Config::default().max_sessions_per_identity(0),
            ConfigError::ZeroMaxSessionsPerIdentity,
        ),
        (
            Config::default().roles_lookup_timeout(Duration::ZERO),
            ConfigError::ZeroRolesLookupTimeout,
        ),
    ];
    for (config, want) in cases {
        let error = build(config).unwrap_err();
        assert_eq!(error, want);
        assert!(
            error.to_string().contains("Config::"),
            "names the setting: {error}"
        );
    }
    let short = Config::default()
        .timeout(Duration::from_secs(600))
        .max_lifetime(Duration::from_secs(60));
    let error = build(short).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::LifetimeShorterThanTimeout { .. }
    ));
    assert!(error
        .to_string()
        .contains("raise the lifetime or lower the timeout"));

    // `new` and `build` refuse it too, loudly, at start-up.
    let panic = std::panic::catch_unwind(|| {
        SessionManager::new(MokaStore::default(), Config::default().max_sessions(0))
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("invalid mcp_session::Config") && message.contains("max_sessions"));
}
