//! Servers run inside the test's process on a free loopback port: an axum
//! app until a `CancellationToken` is cancelled ([`serve_until_cancelled`]),
//! or any server (e.g. the example server, compiled into the test as a
//! module) until the test stops it, when it must shut down cleanly within
//! 10 s ([`InProcess`]).
//!
//! Include it with `#[path = "support/in_process.rs"] mod in_process;`.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Serves `app` on 127.0.0.1:0 (TCP_NODELAY on accepted sockets) until
/// `stop` is cancelled, in a task; its address.
pub async fn serve_until_cancelled(app: axum::Router, stop: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shutdown = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    addr
}

/// Ready once the test calls [`InProcess::stop`]: the server's shutdown
/// signal.
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A server running in a task of this process.
pub struct InProcess {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    running: JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Binds 127.0.0.1:0 and runs `serve(listener, shutdown)` in a task.
    pub async fn start<F, Fut>(serve: F) -> InProcess
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let running = tokio::spawn(serve(listener, Shutdown(stopped)));
        InProcess {
            addr,
            stop,
            running,
        }
    }

    /// `http://ADDR/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Signals the shutdown and waits (at most 10 s) until the server
    /// returned `Ok`.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.running)
            .await
            .expect("the server shuts down cleanly within 10 s")
            .unwrap()
            .unwrap();
    }
}
