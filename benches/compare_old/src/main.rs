//! The session hot path through SessionLayer over MokaStore, before this
//! crate's role cache and session-end registry (commit a655c3a, checked out
//! at target/mcp-old) and after (this tree), and after with a warm role
//! cache: `compare_old MODE N` (MODE old, new, cached; N = 0 measures the
//! setup alone, for callgrind) or `compare_old all ROUNDS` (interleaved
//! rounds in separate processes, medians). See BENCHMARKS.md.
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::service_fn;
use tower_layer::Layer;
use tower_service::Service;

struct Directory;
impl new::roles::RoleSource for Directory {
    async fn roles(&self, _: &new::Identity) -> Result<new::Roles, new::roles::RoleLookupError> {
        Ok(new::Roles::new(["reader"]))
    }
}

macro_rules! run {
    ($krate:ident, $rt:expr, $n:expr, $manager:expr) => {{
        let manager = $manager;
        let identity = $krate::Identity::new("alice", "Alice", ["reader"]);
        let id = $rt
            .block_on(manager.create(&identity))
            .unwrap()
            .id()
            .to_header_value();
        let inner = service_fn(|r: Request<_>| {
            black_box(&r);
            std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
        });
        let mut svc = $krate::SessionLayer::new(manager).layer(inner);
        let mut one = || {
            let mut req = Request::new(Empty::<Bytes>::new());
            *req.method_mut() = http::Method::POST;
            req.headers_mut().insert("mcp-session-id", id.clone());
            req.extensions_mut().insert(identity.clone());
            let resp = $rt.block_on(svc.call(req)).unwrap();
            assert_eq!(resp.status(), 200);
            black_box(resp);
        };
        for _ in 0..100 {
            one();
        }
        let start = Instant::now();
        for _ in 0..$n {
            one();
        }
        start.elapsed().as_nanos() as f64 / ($n as f64).max(1.0)
    }};
}

fn main() {
    let mode = std::env::args().nth(1).expect("mode");
    if mode == "all" {
        // Interleaved rounds in one process: the machine's speed drifts.
        let exe = std::env::current_exe().unwrap();
        let rounds: usize = std::env::args().nth(2).map_or(9, |n| n.parse().unwrap());
        let mut times: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            for (i, m) in ["old", "new", "cached"].iter().enumerate() {
                let out = std::process::Command::new(&exe)
                    .args([m, "500000"])
                    .output()
                    .unwrap();
                let text = String::from_utf8(out.stdout).unwrap();
                let ns: f64 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
                times[i].push(ns);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let [mut o, mut n, mut c] = times;
        let (o, n, c) = (median(&mut o), median(&mut n), median(&mut c));
        println!("median ns/request over {rounds} interleaved rounds: old {o:.1}, new {n:.1} ({:.3}x), new + warm role cache {c:.1} ({:.3}x)", n / o, c / o);
        return;
    }
    let n: usize = std::env::args()
        .nth(2)
        .map_or(1_000_000, |n| n.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ns = match mode.as_str() {
        "old" => run!(old, rt, n, old::SessionManager::default()),
        "new" => run!(new, rt, n, new::SessionManager::default()),
        "cached" => run!(
            new,
            rt,
            n,
            rt.block_on(async {
                new::SessionManager::builder(new::MokaStore::default())
                    .role_source(Directory)
                    .build()
            })
        ),
        _ => panic!("mode"),
    };
    println!("{mode}: {ns:.1} ns/request");
}
