//! Observability of the example: logs through `tracing-subscriber`
//! (`RUST_LOG`, on stderr) and `GET /metrics` in the Prometheus text format
//! through `metrics-exporter-prometheus` (the library's `metrics` feature).

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::routing::get;
use axum::Router;
use mcp_session::observe::metrics as names;
use mcp_session::{AnyStore, SessionManager};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Logs to stderr (stdout carries the `listening on …` line scripts wait
/// for), filtered by `RUST_LOG` (default `warn`: store failures and such;
/// `RUST_LOG=mcp_session=debug` adds a span per request).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The process's Prometheus recorder, installed on first use (before the
/// session manager is built: the library registers its handles then).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms with buckets (not summaries): buckets add up across
        // replicas, quantiles do not.
        let fast = [
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5,
        ];
        let sessions = [
            1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
        ];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(names::STORE_OPERATION_DURATION.into()), &fast)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(names::ROLE_LOOKUP_DURATION.into()), &fast)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(names::SESSION_DURATION.into()), &sessions)
            })
            .and_then(|b| b.install_recorder())
            .expect("the only metrics recorder of the process")
    })
}

/// `GET /metrics`: the Prometheus text. Over the in-memory store it first
/// sweeps expired sessions, so that their ends are counted by scrape time.
pub fn metrics_router(manager: SessionManager<AnyStore>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let manager = manager.clone();
            async move {
                if let Some(store) = manager.store().as_moka() {
                    store.run_pending_tasks();
                }
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    prometheus().render(),
                )
            }
        }),
    )
}

/// Serves `/metrics` alone on `addr` (`--metrics-addr`), in the background.
pub async fn serve_metrics_on(addr: SocketAddr, router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(bound)
}
