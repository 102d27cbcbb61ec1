//! One node: database, tiers, the slices, HTTP with its edges hardened,
//! and the background work the slices declare, with graceful shutdown.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use kernel::{ApiError, Clock, Config, Db, Kernel, pubsub::Hub, warm::Warm};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use platform::{App, Platform};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    timeout::RequestBodyDeadlineLayer,
    trace::TraceLayer,
};

/// Opens the database (migrating it), Redis when configured, and wires the
/// slices onto them.
pub async fn build(
    config: Config,
    shutdown: watch::Receiver<bool>,
    clock: Clock,
) -> anyhow::Result<Platform> {
    let db = Db::connect(&config).await?;
    db.migrate().await.context("applying migrations")?;
    let (warm, hub) = match &config.redis_url {
        Some(url) => {
            let warm = Warm::connect(url).await.with_context(|| {
                format!("connecting to Redis at {}", kernel::config::redact_url(url))
            })?;
            let hub = Hub::bridged(warm.client.clone())
                .await
                .context("subscribing to Redis pub/sub")?;
            (Some(warm), hub)
        }
        None => (None, Hub::local()),
    };
    tracing::info!(backend = ?db.backend(), redis = warm.is_some(), clock = ?clock, "storage ready");
    // Nodes of one deployment share rate-limit buckets in Redis; the
    // deployment is its database (as the database itself names it, so
    // nodes reaching it under different host names still agree).
    let deployment = match &db {
        Db::Pg(_) => kernel::db_run!(&db, p => sqlx::query_scalar::<_, String>("SELECT current_database()").fetch_one(p).await)
            .unwrap_or_else(|_| "default".into()),
        _ => "local".into(),
    };
    let limits = kernel::ratelimit::Limits::from_config(&config, warm.as_ref(), &deployment);
    let master = kernel::secrets::MasterKey::resolve(&config, &db)
        .await
        .context("the master key")?;
    tracing::info!(source = ?master.source, fingerprint = %master.fingerprint, "master key ready");
    Ok(platform::assemble(Kernel {
        master: Arc::new(master),
        db,
        warm,
        hub,
        clock,
        limits,
        config: Arc::new(config),
        shutdown,
        load: Default::default(),
    }))
}

/// The process's Prometheus recorder. Its upkeep (folding histogram samples
/// into their summaries) runs on a timer, so memory stays flat whether or
/// not anything scrapes `/metrics`.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // A second node in one process (tests) shares the first recorder.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    upkeep.run_upkeep();
                }
            })
            .ok();
        handle
    })
}

/// Request ids: a random prefix per process and a counter — unique, and
/// without a trip to the operating system's random source per request.
#[derive(Clone)]
struct RequestIds {
    prefix: u64,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: u64::from_le_bytes(kernel::auth::random_bytes::<8>()),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{:016x}{:016x}", self.prefix, n))
            .ok()
            .map(RequestId::new)
    }
}

/// How many requests may be in flight before new ones are shed with 503.
const MAX_IN_FLIGHT: usize = 8_192;

/// The full router: the slices' routes, `/metrics`, and the layers every
/// request passes: request id, trace, panic → 500 problem, load shedding,
/// the handler time limit (503), the body deadline (408) and size limit.
pub fn router(app: &App, router: axum::Router) -> axum::Router {
    let handle = prometheus();
    let config = &app.kernel.config;
    let request_id = HeaderName::from_static("x-request-id");
    router
        .route("/metrics", get(move || async move { handle.render() }))
        .layer(middleware::from_fn_with_state(app.kernel.load.clone(), record_metrics))
        .layer(middleware::from_fn(audit_context))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyDeadlineLayer::new(Duration::from_secs(config.body_timeout_secs)))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), RequestIds::new()))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
                .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        tracing::warn!("a request ran past the handler time limit");
                    }
                    ApiError::Overloaded { retry_after_secs: 1 }
                }))
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT)
                .timeout(Duration::from_secs(config.handler_timeout_secs)),
        )
}

/// The request's id and client address, for the audit entries its changes
/// write.
async fn audit_context(req: Request, next: Next) -> Response {
    let ctx = kernel::audit::RequestContext {
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        client_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    };
    kernel::audit::with_context(ctx, next.run(req)).await
}

async fn record_metrics(
    State(load): State<kernel::load::Load>,
    req: Request,
    next: Next,
) -> Response {
    // Counted while the handler runs, so background jobs yield to it.
    let _in_flight = load.enter();
    let start = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("voelgoed_http_requests_total", "method" => method.clone(), "path" => path.clone(), "status" => status).increment(1);
    metrics::histogram!("voelgoed_http_request_seconds", "method" => method, "path" => path)
        .record(start.elapsed().as_secs_f64());
    res
}

/// A running node.
pub struct Node {
    pub addr: SocketAddr,
    pub app: App,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    background: kernel::slice::Running,
}

impl Node {
    /// Stops accepting, lets in-flight requests finish (live streams end),
    /// then stops the background work and closes the database.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(20), self.server)
            .await
            .is_err()
        {
            tracing::warn!("the server did not stop in 20 s");
        }
        let grace = Duration::from_secs(self.app.kernel.config.jobs_grace_secs);
        self.background.stop(grace).await;
        self.app.db().close().await;
    }
}

/// Starts a node on `listener` with the system clock.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Node> {
    start_with_clock(config, listener, Clock::system()).await
}

/// Starts a node on `listener` whose rules read time from `clock`.
pub async fn start_with_clock(
    config: Config,
    listener: TcpListener,
    clock: Clock,
) -> anyhow::Result<Node> {
    raise_open_files_limit();
    let (stop, stopped) = watch::channel(false);
    let platform = build(config, stopped.clone(), clock).await?;
    let addr = listener.local_addr()?;
    let app = platform.app.clone();
    let background = platform
        .runtime
        .start(&app.kernel, app.clone(), stopped.clone());
    let router = router(&app, platform.router);
    let header_timeout = Duration::from_secs(app.kernel.config.header_timeout_secs);
    let server = tokio::spawn(serve(listener, router, header_timeout, stopped));
    tracing::info!(%addr, "listening");
    Ok(Node {
        addr,
        app,
        stop,
        server,
        background,
    })
}

/// Accepts connections until `stop`: HTTP/1.1 with keep-alive, each
/// connection closed when a request's headers do not arrive within
/// `header_timeout` (also while it sits idle). On stop, open connections
/// finish their requests (bounded) and close.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = platform::web::until_down(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true)
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(15), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after 15 s; stopping anyway");
    }
}

/// Idle and slow clients each hold a file descriptor: allow as many as the
/// hard limit does.
fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!(error = %e, "could not raise the open files limit");
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
