//! A `RedisStore::create` cut off between its steps (issue 13, item 7)
//! leaves nothing behind: no session written but uncounted, none counted
//! but missing.
//!
//! Creates run with a tiny `command_timeout` while another connection keeps
//! pausing the server's writes (`CLIENT PAUSE … WRITE`), so many creates
//! time out after some of their steps ran; others are dropped by their
//! caller mid-way (a client that disconnects). Once things settle, the
//! session keys, the identity index and the global index hold exactly the
//! sessions whose create returned `Ok`.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_stores.rs"]
mod redis_stores;

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_session::{
    Identity, IdentityLimitPolicy, Limits, Session, SessionId, SessionStore, StoreError, Timestamp,
};
use redis_server::RedisServer;

const PREFIX: &str = "cutoff:";

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_cut_off_midway_leave_nothing_half_written() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = redis_stores::replica(&redis, PREFIX, Duration::from_millis(25)).await;
    let limits = Limits::default()
        .max_sessions(100_000)
        .max_sessions_per_identity(100_000)
        .identity_limit(IdentityLimitPolicy::Reject);
    let alice = Identity::new("alice", "Alice", ["reader"]);

    // Writes pause for 20 ms out of every 30.
    let pauser = tokio::spawn({
        let client = redis::Client::open(redis.url()).unwrap();
        async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            for _ in 0..60 {
                let _: () = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(20)
                    .arg("WRITE")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    });

    let mut created = 0usize;
    let (mut timeouts, mut dropped) = (0usize, 0usize);
    let mut round = 0u64;
    while !pauser.is_finished() {
        round += 1;
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let session = Session::new(
            SessionId::generate(),
            alice.clone(),
            now,
            Duration::from_secs(600),
            Duration::from_secs(3600),
        );
        if round % 3 == 0 {
            // A caller that goes away mid-create (its future is dropped).
            let cut = Duration::from_millis(round % 7 + 1);
            if tokio::time::timeout(cut, store.create(&session, &limits))
                .await
                .is_err()
            {
                dropped += 1;
                continue;
            }
            created += 1;
            continue;
        }
        match store.create(&session, &limits).await {
            Ok(_) => created += 1,
            Err(StoreError::Timeout(_)) => timeouts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    pauser.await.unwrap();
    assert!(timeouts > 5, "the pauses cut creates off: {timeouts}");
    assert!(dropped > 5, "callers went away mid-create: {dropped}");

    // Let anything still running on the store's side finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sessions: BTreeSet<String> = lines(&redis.cli(&["--scan", "--pattern", "cutoff:s:*"]))
        .into_iter()
        .map(|k| k.trim_start_matches("cutoff:s:").to_owned())
        .collect();
    let identity = lines(&redis.cli(&["ZRANGE", "cutoff:i:alice", "0", "-1"]));
    let global = lines(&redis.cli(&["ZRANGE", "cutoff:global", "0", "-1"]));
    let written_uncounted: Vec<_> = sessions.difference(&identity).collect();
    let counted_missing: Vec<_> = identity.difference(&sessions).collect();
    let global_mismatch: Vec<_> = global.symmetric_difference(&sessions).collect();
    println!(
        "{created} created, {timeouts} timed out, {dropped} dropped; {} stored",
        sessions.len()
    );
    assert!(
        written_uncounted.is_empty(),
        "written but uncounted: {written_uncounted:?}"
    );
    assert!(
        counted_missing.is_empty(),
        "counted but missing: {counted_missing:?}"
    );
    assert!(
        global_mismatch.is_empty(),
        "global index vs sessions: {global_mismatch:?}"
    );
    // A create the caller saw fail or went away from left nothing: only
    // the `Ok` ones stay.
    assert_eq!(sessions.len(), created);
}
