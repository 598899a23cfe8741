//! The HTTP listener: HTTP/1.1 (hyper) over TCP or TLS (rustls), with
//!
//! - a cap on open connections ([`HttpOptions::max_connections`]; a
//!   connection over it is closed at once),
//! - a header timeout ([`HttpOptions::header_timeout`]: a request's headers
//!   must arrive within it, and a kept-alive connection idle for as long is
//!   closed),
//! - a body timeout ([`HttpOptions::body_timeout`]: a request body that
//!   sends nothing for that long fails with 408),
//! - a TLS handshake timeout (the header timeout),
//! - graceful shutdown (connections get 10 s to finish).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::{Server, router, start_background};
use crate::error::{NativeError, Result};

/// Limits and TLS of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time for a request's headers, an idle kept-alive connection and the TLS handshake.
    pub header_timeout: Duration,
    /// Longest pause within a request body.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// HTTPS: every connection must do a TLS handshake first.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl HttpOptions {
    /// The listener options of a server configuration (TLS loaded).
    pub fn of(cfg: &crate::config::ServerConfig) -> Result<Self> {
        Ok(HttpOptions {
            header_timeout: Duration::from_secs_f64(cfg.http_header_timeout_s),
            body_timeout: Duration::from_secs_f64(cfg.http_body_timeout_s),
            max_connections: cfg.http_max_connections,
            tls: cfg.http_tls()?,
        })
    }
}

/// The client address of a request served by [`serve_http`] (`unknown` otherwise).
pub(super) fn peer_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

/// Serve `app` on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: Router,
    opts: HttpOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%addr, "too many HTTP connections; closed");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let body_timeout = opts.body_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|b| Body::new(TimeoutBody::new(body_timeout, b)));
            req.extensions_mut().insert(ConnectInfo(addr));
            app.clone().oneshot(req)
        });
        let (tls, builder, header_timeout) = (tls.clone(), builder.clone(), opts.header_timeout);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let served = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, "TLS handshake: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%addr, "HTTP connection: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("HTTP connections still open after 10 s; closing");
        }
    }
    Ok(())
}

/// Run the server until Ctrl-C or SIGTERM. Jobs still running then are
/// recovered (queued again) at the next start.
pub fn run(server: Arc<Server>) -> Result<()> {
    let http = HttpOptions::of(&server.cfg)?;
    let dicom = start_background(&server)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NativeError::Config(format!("runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&server.cfg.listen)
            .await
            .map_err(|e| NativeError::Config(format!("listen {}: {e}", server.cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| NativeError::Config(e.to_string()))?;
        let scheme = if http.tls.is_some() { "https" } else { "http" };
        tracing::info!(
            http = %format!("{scheme}://{addr}"),
            dicom = ?dicom,
            dicom_tls = server.cfg.dicom_tls,
            ae = %server.cfg.ae_title,
            "ct-triage server ready"
        );
        let app = router(server.clone());
        let stopper = server.clone();
        serve_http(listener, app, http, async move {
            shutdown_signal().await;
            stopper.shutdown();
        })
        .await
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
