//! TEST TOOLING: a minimal round-robin HTTP reverse proxy, so that the MCP
//! conformance suite (`.ci/conformance.sh`) runs against two replicas of
//! `examples/conformance.rs` as it would behind a load balancer without
//! sticky sessions. Not a production proxy: no TLS, no timeouts, no health
//! checks, no retries.
//!
//! ```text
//! cargo run --example round_robin_proxy -- --listen 127.0.0.1:3000 \
//!     --upstream http://127.0.0.1:3001 --upstream http://127.0.0.1:3002
//! ```
//!
//! - Round robin per **request**, not per connection: a client that keeps
//!   its connection alive (the suite's Node client does) still has each of
//!   its requests sent to the next upstream in turn.
//! - Bodies stream both ways, frame by frame, as hyper reads them: an SSE
//!   response reaches the client event by event, never buffered whole, and
//!   hyper's backpressure bounds what is held in flight.
//! - Every end-to-end header passes through (`Mcp-Session-Id`,
//!   `MCP-Protocol-Version`, `Last-Event-ID`, `Authorization`, `Host`…);
//!   only the hop-by-hop ones (RFC 9110 §7.6.1) are dropped.
//! - An upstream path prefix, if any, goes in front of the request's path.
//! - An upstream that cannot be reached: `502` with a JSON-RPC error body.
//!
//! It prints `listening on http://ADDR` once ready and, when stopped (SIGINT
//! or SIGTERM), how many requests each upstream got, one line each
//! (`round-robin proxy: upstream 0 http://127.0.0.1:3001 served 57 requests`),
//! and how many requests carrying an `Mcp-Session-Id` went to another
//! upstream than the one whose response first carried that id (`round-robin
//! proxy: 40 requests of a session served by another upstream …`).
//! `.ci/conformance.sh` checks those counts: a run where one replica served
//! nothing, or where no session moved, proves nothing about replicas.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// A round-robin HTTP reverse proxy (TEST TOOLING): each request goes to
/// the next upstream in turn.
#[derive(Debug, Parser)]
#[command(name = "round_robin_proxy")]
struct Options {
    /// Address to listen on, e.g. 127.0.0.1:3000.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,

    /// An upstream's base URL (http only), e.g. http://127.0.0.1:3001;
    /// repeat it, one per upstream, at least one.
    #[arg(long = "upstream", value_name = "URL", required = true, value_parser = parse_upstream)]
    upstreams: Vec<UpstreamUrl>,
}

type ProxyBody = Either<Incoming, Full<Bytes>>;

/// An upstream as given on the command line.
#[derive(Clone, Debug)]
struct UpstreamUrl {
    url: String,
    authority: Authority,
    /// Path prefix without a trailing `/` ("" for none).
    prefix: String,
}

struct Upstream {
    url: String,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix without a trailing `/` ("" for none).
    prefix: String,
    served: AtomicUsize,
}

impl From<UpstreamUrl> for Upstream {
    fn from(upstream: UpstreamUrl) -> Self {
        Upstream {
            url: upstream.url,
            scheme: Scheme::HTTP,
            authority: upstream.authority,
            prefix: upstream.prefix,
            served: AtomicUsize::new(0),
        }
    }
}

struct Proxy {
    upstreams: Vec<Upstream>,
    next: AtomicUsize,
    client: Client<HttpConnector, Incoming>,
    origins: Origins,
}

/// Which upstream answered with each session id (`Mcp-Session-Id` on a
/// response: it created the session), to count the requests of a session
/// that another upstream served: the proof that sessions moved between
/// replicas. Keyed by a hash of the id; bounded (forgotten when full).
#[derive(Default)]
struct Origins {
    upstream_of: Mutex<HashMap<u64, usize>>,
    hasher: RandomState,
    crossed: AtomicUsize,
}

impl Origins {
    const CAPACITY: usize = 10_000;

    fn key(&self, headers: &HeaderMap) -> Option<u64> {
        let id = headers.get("mcp-session-id")?;
        Some(self.hasher.hash_one(id.as_bytes()))
    }

    fn created(&self, key: u64, upstream: usize) {
        let mut map = self.upstream_of.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.entry(key).or_insert(upstream);
    }

    fn served(&self, key: u64, upstream: usize) {
        let map = self.upstream_of.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|&origin| origin != upstream) {
            self.crossed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn parse_upstream(url: &str) -> Result<UpstreamUrl, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err("only http:// upstreams".into());
    }
    let authority = uri.authority().cloned().ok_or("no host")?;
    if uri.query().is_some() {
        return Err("no query allowed".into());
    }
    Ok(UpstreamUrl {
        url: url.to_string(),
        authority,
        prefix: uri.path().trim_end_matches('/').to_string(),
    })
}

/// Connection-level headers (RFC 9110 §7.6.1): they describe one hop, so
/// they are not forwarded; hyper frames each hop's body itself.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

fn bad_gateway(message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32603, "message": message },
    });
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Proxy {
    async fn forward(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        let upstream = &self.upstreams[index];
        upstream.served.fetch_add(1, Ordering::Relaxed);

        let (mut parts, body) = request.into_parts();
        if let Some(key) = self.origins.key(&parts.headers) {
            self.origins.served(key, index);
        }
        let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let uri = Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(format!("{}{path}", upstream.prefix))
            .build();
        parts.uri = match uri {
            Ok(uri) => uri,
            Err(_) => return bad_gateway("round-robin proxy: cannot build the upstream URI"),
        };
        // The client pool speaks HTTP/1.1 to the upstreams, whatever the
        // client spoke here.
        parts.version = http::Version::HTTP_11;
        drop_hop_by_hop(&mut parts.headers);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                if let Some(key) = self.origins.key(&parts.headers) {
                    self.origins.created(key, index);
                }
                drop_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(error) => {
                eprintln!(
                    "round-robin proxy: upstream {index} {}: {error}",
                    upstream.url
                );
                bad_gateway("round-robin proxy: upstream unreachable")
            }
        }
    }

    fn report(&self) {
        for (index, upstream) in self.upstreams.iter().enumerate() {
            println!(
                "round-robin proxy: upstream {index} {} served {} requests",
                upstream.url,
                upstream.served.load(Ordering::Relaxed)
            );
        }
        println!(
            "round-robin proxy: {} requests of a session served by another upstream than the one that created it",
            self.origins.crossed.load(Ordering::Relaxed)
        );
    }
}

fn main() -> ExitCode {
    // Bad arguments: clap's message on stderr, exit code 2.
    let options = Options::parse();
    let upstreams = options.upstreams.into_iter().map(Upstream::from).collect();
    let listen = options.listen;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(listen, upstreams)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(listen: SocketAddr, upstreams: Vec<Upstream>) -> std::io::Result<()> {
    let proxy = Arc::new(Proxy {
        upstreams,
        next: AtomicUsize::new(0),
        client: Client::builder(TokioExecutor::new()).build_http(),
        origins: Origins::default(),
    });
    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: the next accept may work.
                    eprintln!("round-robin proxy: accept: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.forward(request).await) }
            });
            // A client that goes away mid-stream ends its connection here,
            // which drops the upstream response and closes that one too.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
    proxy.report();
    Ok(())
}
