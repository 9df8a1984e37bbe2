//! Rolling upgrades (issue 13, item 9): a replica reads session values of
//! its own format (version 2) and of a later one that adds header and body
//! fields, written raw into Redis as a newer replica would, and serves them
//! on every path: `get`, the `touch` script, the `update` script, `delete`.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;

use std::time::Duration;

use mcp_session::{Config, Identity, Session, SessionManager};
use redis_server::RedisServer;

/// The one session key under `prefix` and its raw value.
fn stored_value(redis: &RedisServer, prefix: &str) -> (String, String) {
    let keys = redis.cli(&["--scan", "--pattern", &format!("{prefix}s:*")]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let value = redis.cli(&["GET", keys[0]]);
    (keys[0].to_owned(), value.trim_end_matches('\n').to_owned())
}

/// `value` as a later version would write it: version 3, one more header
/// field, one more body field.
fn as_version_3(value: &str) -> String {
    let (header, body) = value.split_once('\n').expect("a header line");
    let header = header.replacen("v2 ", "v3 ", 1);
    format!("{header} 0000000000000042 some-new-flag\n{body}9:new-field")
}

#[tokio::test]
async fn values_of_this_and_the_next_format_are_served() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    for version in [2, 3] {
        let prefix = format!("versions{version}:");
        let store = redis_stores::replica(&redis, &prefix, Duration::from_secs(2)).await;
        let manager = SessionManager::new(store, Config::default());
        let alice = Identity::new("alice", "Alice", ["reader"]);
        let session = manager.create(&alice).await.unwrap();

        // Rewrite the value raw, as a replica of that version would have.
        let (key, value) = stored_value(&redis, &prefix);
        assert!(value.starts_with("v2 "), "{value}");
        let raw = if version == 2 {
            value.clone()
        } else {
            as_version_3(&value)
        };
        assert_eq!(redis.cli(&["SET", &key, &raw, "KEEPTTL"]).trim(), "OK");
        assert_eq!(stored_value(&redis, &prefix).1, raw);

        let got = manager.get_any_owner(session.id()).await.unwrap();
        assert_eq!(got.identity_id(), "alice", "v{version}: get");
        assert_eq!(got.deadline(), session.deadline(), "v{version}");
        let touched = manager.refresh(session.id(), &alice).await;
        assert!(touched.is_ok(), "v{version}: touch script: {touched:?}");
        // Someone else's caller still gets nothing.
        let mallory = Identity::new("mallory", "M", ["reader"]);
        assert!(manager.refresh(session.id(), &mallory).await.is_err());

        let renamed = Session::from_parts(
            session.id().clone(),
            Identity::new("alice", "Alice B.", ["reader"]),
            session.created_at(),
            session.last_access(),
            session.idle_timeout(),
            session.deadline(),
        );
        manager.update(&renamed).await.unwrap();
        assert_eq!(
            manager
                .get_any_owner(session.id())
                .await
                .unwrap()
                .identity_name(),
            "Alice B.",
            "v{version}: update script"
        );
        manager.delete_any_owner(session.id()).await.unwrap();
        assert!(manager
            .get_any_owner(session.id())
            .await
            .unwrap_err()
            .is_not_found());
        assert!(redis
            .cli(&["ZRANGE", &format!("{prefix}i:alice"), "0", "-1"])
            .trim()
            .is_empty());
    }
}
