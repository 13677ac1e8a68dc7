//! `marquee serve`: the HTTP API and, in the background, the ledger's checkpoints and (embedded
//! profile) the projectors and the maintenance job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use command_api::{
    AppState, DiskPosters, PosterStorage, S3Posters, SnsSubscriptions, SubscriptionDirectory,
    TableSubscriptions,
};
use event_store::EventStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{PosterStore, Profile, Settings};

/// A started app: where it listens, its store, and the handle to stop it.
pub struct RunningApp {
    pub address: SocketAddr,
    pub store: EventStore,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await??;
        Ok(())
    }

    /// Turns true when the app is asked to stop: for tasks a test runs beside it.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Serves until the server ends or `signal` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        signal.await;
        info!("shutting down");
        self.shutdown().await
    }
}

/// Opens the store, binds `bind` (port 0 picks a free one) and starts serving.
pub async fn start(settings: &Settings, bind: SocketAddr) -> anyhow::Result<RunningApp> {
    let store = crate::open_store(settings).await?;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    if let Some(interval) = settings.checkpoint_interval {
        tokio::spawn(seal_checkpoints(store.clone(), interval, stopped.clone()));
    }
    if settings.profile == Profile::Embedded {
        let adapters = crate::pipeline::adapters(settings).await?;
        crate::pipeline::start_embedded(&store, &adapters, settings, &stopped);
    }
    let api_config = settings.api_config(address);
    let (posters, subscriptions) = adapters(settings, &store, &api_config.public_origin).await?;
    let query = query_api::QueryApi::new(
        store.clone(),
        posters.clone(),
        metric_source(settings, &store).await,
        dead_letters(settings).await,
        settings.query,
        api_config.public_origin.clone(),
        stopped.clone(),
    );
    let headers =
        crate::web::SecurityHeaders::new(&api_config.public_origin, &posters.public_url(""));
    let state = AppState::new(store.clone(), api_config, posters, subscriptions)?;
    // The command router brings the fallback; GraphQL's and the UI's routes merge beside its own.
    let app = query_api::router(query)
        .merge(command_api::router(state))
        .merge(crate::web::router())
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(headers),
            crate::web::security_headers,
        ))
        .layer(axum::middleware::from_fn(
            crate::unread_body::drain_unread_body,
        ))
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut shutdown = stopped;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await
    });
    info!(%address, profile = ?settings.profile, "marquee is serving");
    Ok(RunningApp {
        address,
        store,
        stop,
        server,
    })
}

/// The adapters the profile calls for: the one place that chooses between local and AWS.
async fn adapters(
    settings: &Settings,
    store: &EventStore,
    public_origin: &str,
) -> anyhow::Result<(Arc<dyn PosterStorage>, Arc<dyn SubscriptionDirectory>)> {
    let base_url = settings.poster_base_url.clone();
    Ok(match &settings.posters {
        PosterStore::Disk(dir) => (
            Arc::new(DiskPosters::new(dir.clone(), base_url, public_origin)),
            Arc::new(TableSubscriptions::new(store.database().pool().clone())),
        ),
        PosterStore::S3 { bucket } => {
            let aws = crate::aws_config(settings).await;
            let subscriptions = SnsSubscriptions::connect(&aws, &settings.sns_topic_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the SNS topics: {e}"))?;
            (
                Arc::new(S3Posters::new(&aws, bucket.clone(), base_url)?),
                Arc::new(subscriptions),
            )
        }
    })
}

/// Where GraphQL's `metrics` reads: the series the profile's metric sink writes to.
async fn metric_source(
    settings: &Settings,
    store: &EventStore,
) -> Arc<dyn query_api::MetricSource> {
    match settings.profile {
        Profile::Embedded => Arc::new(query_api::LocalMetrics(store.database().clone())),
        Profile::Aws => {
            let aws = crate::aws_config(settings).await;
            Arc::new(query_api::CloudWatchSource::new(
                aws_sdk_cloudwatch::Client::new(&aws),
                settings.metrics_namespace.clone(),
            ))
        }
    }
}

/// What GraphQL's `deadLetters` asks: the projectors' queues, which only the aws profile has.
async fn dead_letters(settings: &Settings) -> Option<Arc<dyn projectors::DeadLetterProbe>> {
    match settings.profile {
        Profile::Embedded => None,
        Profile::Aws => {
            let aws = crate::aws_config(settings).await;
            Some(projectors::sqs_dead_letters(
                &aws,
                &crate::pipeline::topology(settings),
            ))
        }
    }
}

/// Signs off the log at a steady pace so `verify` can prove ranges, not just chains.
async fn seal_checkpoints(
    store: EventStore,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => match store.seal_checkpoint().await {
                Ok(Some(checkpoint)) => info!(
                    from = checkpoint.from_position,
                    to = checkpoint.to_position,
                    "ledger checkpoint sealed"
                ),
                Ok(None) => {}
                Err(error) => warn!(%error, "could not seal a ledger checkpoint"),
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
