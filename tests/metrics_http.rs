//! The `metrics` and `tracing` features seen as an operator sees them: the
//! example server's `GET /metrics` (Prometheus text, parsed) and its logs
//! (`RUST_LOG`), over real HTTP against the example binary.
//!
//! - an initialize, a call and a DELETE: one session created, one ended
//!   `deleted`, its duration observed, the active gauge back where it was;
//! - an unknown id: one rejection `not_found`;
//! - a session left to expire: one end `expired`, the gauge back to 0;
//! - no metric label and no log line holds a whole session id (the span
//!   and the lifecycle events name it by its digest);
//! - `--metrics-addr` moves `/metrics` to a port of its own.

#[path = "support/example_server.rs"]
mod example_server;
#[path = "support/mcp_http.rs"]
mod mcp_http;
#[path = "support/prometheus.rs"]
mod prometheus;

use std::time::{Duration, Instant};

use example_server::Replica;
use mcp_http::{delete, initialize, whoami};
use mcp_session::observe::metrics::{
    SESSIONS_ACTIVE, SESSIONS_CREATED, SESSIONS_ENDED, SESSION_DURATION, SESSION_REJECTIONS,
    STORE_OPERATION_DURATION,
};
use mcp_session::SessionId;
use prometheus::Scrape;
use reqwest::StatusCode;

const ALICE: &str = "alice-token";

async fn scrape(client: &reqwest::Client, url: &str) -> (Scrape, String) {
    let res = client.get(url).send().await.unwrap(); // no credentials
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    (Scrape::parse(&text), text)
}

/// No label value, and nothing in the text, holds `id` or half of it.
fn assert_no_id(scrape: &Scrape, text: &str, id: &str) {
    let half = &id[..id.len() / 2];
    assert!(
        !text.contains(half),
        "the scrape holds a session id:\n{text}"
    );
    for sample in &scrape.samples {
        for value in sample.labels.values() {
            assert!(!value.contains(half), "label {value:?} of {sample:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_used_and_deleted_is_counted_once() {
    let server = Replica::start_logging(&[], "info,mcp_session=debug");
    let client = reqwest::Client::new();
    let (before, _) = scrape(&client, &server.metrics_url()).await;
    let moka = [("store", "moka")];
    let deleted = [("reason", "deleted")];
    let touch = [("store", "moka"), ("operation", "touch")];
    let touch_count = format!("{STORE_OPERATION_DURATION}_count");
    let duration_count = format!("{SESSION_DURATION}_count");

    let id = initialize(&client, &server.url, ALICE).await;
    let (during, _) = scrape(&client, &server.metrics_url()).await;
    assert_eq!(
        during.value(SESSIONS_ACTIVE, &moka),
        before.value(SESSIONS_ACTIVE, &moka) + 1.0
    );
    let res = whoami(&client, &server.url, ALICE, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        delete(&client, &server.url, ALICE, &id).await,
        StatusCode::NO_CONTENT
    );

    let (after, text) = scrape(&client, &server.metrics_url()).await;
    assert_eq!(after.kind(SESSIONS_ACTIVE), Some("gauge"));
    assert_eq!(after.kind(SESSIONS_CREATED), Some("counter"));
    assert_eq!(after.kind(SESSION_DURATION), Some("histogram"));
    assert_eq!(
        after.value(SESSIONS_CREATED, &moka),
        before.value(SESSIONS_CREATED, &moka) + 1.0
    );
    assert_eq!(
        after.value(SESSIONS_ENDED, &deleted),
        before.value(SESSIONS_ENDED, &deleted) + 1.0
    );
    assert_eq!(
        after.value(SESSIONS_ACTIVE, &moka),
        before.value(SESSIONS_ACTIVE, &moka)
    );
    assert_eq!(
        after.value(&duration_count, &[]),
        before.value(&duration_count, &[]) + 1.0
    );
    // `initialized`, the call: two touches of the store, timed.
    assert!(after.value(&touch_count, &touch) >= before.value(&touch_count, &touch) + 2.0);
    assert_no_id(&after, &text, &id);

    // The logs: the span and the lifecycle events name the session by its
    // digest, never by the id.
    tokio::time::sleep(Duration::from_millis(200)).await; // stderr drained
    let logs = server.logs();
    let digest = format!("{:016x}", SessionId::parse(&id).unwrap().digest());
    let named: Vec<&str> = logs.lines().filter(|l| l.contains(&digest)).collect();
    assert!(
        named.iter().any(|l| l.contains("session created")),
        "no creation event naming {digest}:\n{logs}"
    );
    assert!(
        named
            .iter()
            .any(|l| l.contains("session ended") && l.contains("reason=\"deleted\"")),
        "no end event naming {digest}:\n{logs}"
    );
    assert!(
        named.iter().any(|l| l.contains("mcp.session.request")),
        "no request span naming {digest}:\n{logs}"
    );
    assert!(
        !logs.contains(&id[..32]),
        "a log line holds a session id:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_counted_as_not_found() {
    let server = Replica::start(&[]);
    let client = reqwest::Client::new();
    let not_found = [("reason", "not_found")];
    let (before, _) = scrape(&client, &server.metrics_url()).await;
    let unknown = SessionId::generate().reveal();
    let res = whoami(&client, &server.url, ALICE, &unknown).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (after, text) = scrape(&client, &server.metrics_url()).await;
    assert_eq!(
        after.value(SESSION_REJECTIONS, &not_found),
        before.value(SESSION_REJECTIONS, &not_found) + 1.0
    );
    // Nothing else counted as a rejection.
    let total = |s: &Scrape| {
        s.samples
            .iter()
            .filter(|x| x.name == SESSION_REJECTIONS)
            .map(|x| x.value)
            .sum::<f64>()
    };
    assert_eq!(total(&after), total(&before) + 1.0);
    assert_no_id(&after, &text, &unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_left_to_expire_is_counted_as_expired() {
    let server = Replica::start(&["--timeout-secs", "1"]);
    let client = reqwest::Client::new();
    let moka = [("store", "moka")];
    let expired = [("reason", "expired")];
    let id = initialize(&client, &server.url, ALICE).await;
    let (live, _) = scrape(&client, &server.metrics_url()).await;
    assert_eq!(live.value(SESSIONS_ACTIVE, &moka), 1.0);
    assert_eq!(live.value(SESSIONS_ENDED, &expired), 0.0);

    // Nobody comes back: the store's own expiry is counted, by scrape time.
    let start = Instant::now();
    let after = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (now, text) = scrape(&client, &server.metrics_url()).await;
        assert_no_id(&now, &text, &id);
        if now.value(SESSIONS_ENDED, &expired) > 0.0 || start.elapsed() > Duration::from_secs(15) {
            break now;
        }
    };
    assert_eq!(after.value(SESSIONS_ENDED, &expired), 1.0);
    assert_eq!(after.value(SESSIONS_ACTIVE, &moka), 0.0);
    assert_eq!(after.value(&format!("{SESSION_DURATION}_count"), &[]), 1.0);
    // Expired, not deleted: a request with its id is refused.
    let res = whoami(&client, &server.url, ALICE, &id).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (last, _) = scrape(&client, &server.metrics_url()).await;
    assert_eq!(last.value(SESSIONS_ENDED, &expired), 1.0, "counted once");
    assert_eq!(last.value(SESSIONS_ENDED, &[("reason", "deleted")]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_addr_moves_the_endpoint_to_its_own_port() {
    let server = Replica::start(&["--metrics-addr", "127.0.0.1:0"]);
    let announced = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("no `metrics on URL` line in {:?}", server.banner))
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let _ = initialize(&client, &server.url, ALICE).await;
    let (scraped, _) = scrape(&client, &announced).await;
    assert_eq!(scraped.value(SESSIONS_CREATED, &[("store", "moka")]), 1.0);
    // Not on the MCP port any more.
    let res = client.get(server.metrics_url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
