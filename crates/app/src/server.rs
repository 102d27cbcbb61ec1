//! One node: database, tiers, slices, HTTP, and the background loops
//! (outbox relay, hold expiry, admission writers), with graceful shutdown.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use kernel::{ApiError, Backend, Config, Db, Kernel, jobs, pubsub::Hub, warm::Warm};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use platform::App;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

/// Opens the database (migrating it), Redis when configured, and the slices.
pub async fn build(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<App> {
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
    tracing::info!(backend = ?db.backend(), redis = warm.is_some(), "storage ready");
    let limits = kernel::ratelimit::Limits::new(config.sensitive_per_minute);
    Ok(App::new(Kernel {
        db,
        warm,
        hub,
        limits,
        config: Arc::new(config),
        shutdown,
    }))
}

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // A second server in one process (tests) shares the first recorder.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// How many requests may be in flight before new ones are shed with 503.
const MAX_IN_FLIGHT: usize = 8_192;

/// The full router: the slices' routes, `/metrics`, and the layers.
pub fn router(app: App) -> axum::Router {
    let handle = prometheus();
    let max_body = app.kernel.config.max_body_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    platform::router(app)
        .route("/metrics", get(move || async move { handle.render() }))
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Overloaded { retry_after_secs: 1 }
                }))
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT),
        )
}

async fn record_metrics(req: Request, next: Next) -> Response {
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
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (live streams end),
    /// then stops the background loops and closes the database.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(Duration::from_secs(15), self.server).await {
            Ok(_) => {}
            Err(_) => tracing::warn!("requests still running after 15 s; stopping anyway"),
        }
        for l in self.loops {
            l.abort();
        }
        self.app.db().close().await;
    }
}

/// Starts a node on `listener`.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let (stop, stopped) = watch::channel(false);
    let app = build(config, stopped.clone()).await?;
    let addr = listener.local_addr()?;
    let writers = match app.db().backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };
    let mut loops = platform::scanning::start_writers(&app, writers);
    let kernel = app.kernel.clone();
    let mut s = stopped.clone();
    loops.push(tokio::spawn(kernel::outbox::relay(kernel, async move {
        let _ = s.wait_for(|v| *v).await;
    })));
    loops.push(tokio::spawn(housekeeping(app.clone())));
    loops.push(tokio::spawn(worker(&app).run(
        app.db().clone(),
        "maintenance",
        Duration::from_secs(1),
        stopped.clone(),
    )));
    let router = router(app.clone());
    let mut s = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = s.wait_for(|v| *v).await;
        })
        .await
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        app,
        stop,
        server,
        loops,
    })
}

/// The job kinds this node runs, with their handlers.
fn worker(app: &App) -> jobs::Worker {
    let app = app.clone();
    jobs::Worker::new().handle(PRUNE, move |_| {
        let app = app.clone();
        async move {
            let keys = platform::sales::prune_idempotency_keys(&app)
                .await
                .map_err(|e| e.to_string())?;
            let events = kernel::outbox::prune(&app.kernel, Duration::from_secs(24 * 3600))
                .await
                .map_err(|e| e.to_string())?;
            let done = jobs::prune(app.db(), Duration::from_secs(24 * 3600))
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(keys, events, done, "pruned");
            Ok(())
        }
    })
}

const PRUNE: &str = "maintenance.prune";

/// Upkeep. Every second, expired holds are released (a sweep driven by
/// database state: idempotent, safe on many nodes, nothing lost in a crash).
/// Every minute, the hourly prune is scheduled (once per hour across all
/// nodes, through the job queue) and jobs orphaned by a dead node rescued.
async fn housekeeping(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_schedule = Instant::now() - Duration::from_secs(60);
    loop {
        tick.tick().await;
        match platform::sales::release_expired(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "expired holds released"),
            Err(e) => tracing::warn!(error = %e, "releasing expired holds failed"),
        }
        if last_schedule.elapsed() >= Duration::from_secs(60) {
            last_schedule = Instant::now();
            let prune = jobs::NewJob::new("maintenance", PRUNE, serde_json::json!({}));
            if let Err(e) =
                jobs::schedule_periodic(app.db(), prune, Duration::from_secs(3600)).await
            {
                tracing::warn!(error = %e, "scheduling the prune failed");
            }
            if let Err(e) = jobs::rescue(app.db(), Duration::from_secs(300)).await {
                tracing::warn!(error = %e, "rescuing orphaned jobs failed");
            }
        }
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
