//! The event pipeline inside the `marquee` binary: the embedded profile's projector and
//! maintenance tasks, and the `replay` command.

use event_store::EventStore;
use projectors::{Adapters, Projector};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Settings;

/// The adapters the profile calls for.
pub async fn adapters(settings: &Settings) -> anyhow::Result<Adapters> {
    match settings.profile {
        crate::config::Profile::Embedded => Ok(Adapters::local()),
        crate::config::Profile::Aws => {
            let aws = crate::aws_config(settings).await;
            Ok(Adapters::aws(&aws, &topology(settings)).await?)
        }
    }
}

/// The SNS and SQS names of this deployment.
pub fn topology(settings: &Settings) -> projectors::aws::Topology {
    projectors::aws::Topology::new(&settings.sns_topic_prefix)
        .with_metrics_namespace(&settings.metrics_namespace)
}

/// Embedded profile: every projector tails the store, and maintenance runs on a timer.
pub fn start_embedded(
    store: &EventStore,
    adapters: &Adapters,
    settings: &Settings,
    stopped: &watch::Receiver<bool>,
) {
    for projector in projectors::projectors(store, adapters, &settings.pipeline) {
        tokio::spawn(projectors::tail(
            projector,
            settings.relay_poll,
            stopped.clone(),
        ));
    }
    if let Some(interval) = settings.maintenance_interval {
        let maintenance = projectors::maintenance(store, adapters, &settings.pipeline);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(error) = maintenance.run(chrono::Utc::now()).await {
                            warn!(%error, "maintenance failed");
                        }
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
    }
}

/// `marquee relay`: publishes the store to the bus until SIGTERM or Ctrl-C.
pub async fn relay(settings: &Settings) -> anyhow::Result<()> {
    require_aws(settings, "relay")?;
    let store = crate::open_store(settings).await?;
    let aws = crate::aws_config(settings).await;
    let publisher = projectors::aws::SnsFifoPublisher::connect(&aws, &topology(settings)).await?;
    let relay = projectors::Relay::new(store, std::sync::Arc::new(publisher), RELAY_PAGE);
    let (stop, stopped) = watch::channel(false);
    let poll = settings.relay_poll;
    let running = tokio::spawn(async move { relay.run(stopped, poll).await });
    info!("relay running");
    crate::serve::shutdown_signal().await;
    info!("relay stopping");
    let _ = stop.send(true);
    running.await?;
    Ok(())
}

/// `marquee project`: long-polls every projector's queue and applies what arrives, and sweeps
/// the store for what the bus has not delivered, until SIGTERM or Ctrl-C. The same handlers as
/// the `projector` Lambda; the sweep is the scheduler's.
pub async fn project(settings: &Settings) -> anyhow::Result<()> {
    require_aws(settings, "project")?;
    let store = crate::open_store(settings).await?;
    let aws = crate::aws_config(settings).await;
    let topology = topology(settings);
    let adapters = Adapters::aws(&aws, &topology).await?;
    let client = aws_sdk_sqs::Client::new(&aws);
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for projector in projectors::projectors(&store, &adapters, &settings.pipeline) {
        let queue_url =
            projectors::aws::queue_url(&client, &topology.queue(projector.name())).await?;
        let consumer =
            projectors::aws::SqsConsumer::new(client.clone(), queue_url, settings.queue_wait);
        tasks.push(tokio::spawn(projectors::sweep_periodically(
            projector.clone(),
            stopped.clone(),
        )));
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            consumer.run(&projector, stopped).await
        }));
    }
    info!(
        projections = projectors::PROJECTIONS.len(),
        sweep_every = ?projectors::SWEEP_INTERVAL,
        "projectors consuming and sweeping"
    );
    crate::serve::shutdown_signal().await;
    info!("projectors stopping");
    let _ = stop.send(true);
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// `marquee provision`: creates the topics and queues the aws profile expects, for local runs
/// and tests (production creates them from deploy/'s template).
pub async fn provision(settings: &Settings) -> anyhow::Result<()> {
    require_aws(settings, "provision")?;
    let aws = crate::aws_config(settings).await;
    let topology = topology(settings);
    topology.provision(&aws, &projectors::PROJECTIONS).await?;
    println!(
        "provisioned {} and a queue per projector",
        topology.events_topic()
    );
    Ok(())
}

fn require_aws(settings: &Settings, command: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.profile == crate::config::Profile::Aws,
        "marquee {command} belongs to the aws profile (MARQUEE_PROFILE=aws); the embedded profile runs its projectors inside marquee serve"
    );
    Ok(())
}

/// Events per relay read: a few SNS batches.
const RELAY_PAGE: u32 = 100;

/// `marquee replay`: rebuilds one projection or all that can be rebuilt.
pub async fn replay(settings: &Settings, only: Option<&str>) -> anyhow::Result<()> {
    let store = crate::open_store(settings).await?;
    let adapters = adapters(settings).await?;
    let chosen: Vec<Projector> = match only {
        Some(name) => vec![projectors::projector(
            &store,
            &adapters,
            &settings.pipeline,
            name,
        )?],
        None => projectors::projectors(&store, &adapters, &settings.pipeline)
            .into_iter()
            .filter(|p| p.projection().rebuild().is_some())
            .collect(),
    };
    for projector in chosen {
        let report = projectors::replay(&projector).await?;
        let rate = report.events as f64 / report.elapsed.as_secs_f64().max(1e-9);
        info!(
            projection = report.projection,
            events = report.events,
            "replayed"
        );
        println!(
            "{}: {} events replayed in {:.2} s ({rate:.0} events/s)",
            report.projection,
            report.events,
            report.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// `marquee replay --compare`: true when the live read models equal a fresh replay.
pub async fn compare(settings: &Settings) -> anyhow::Result<bool> {
    let store = crate::open_store(settings).await?;
    let differences = projectors::compare_read_models(&store).await?;
    for difference in &differences {
        println!(
            "{} {}: live {} / replayed {}",
            difference.table,
            difference.key,
            difference.live.as_deref().unwrap_or("(missing)"),
            difference.replayed.as_deref().unwrap_or("(missing)")
        );
    }
    if differences.is_empty() {
        println!("read models match a replay of the store");
    } else {
        println!(
            "{} row(s) differ from a replay of the store",
            differences.len()
        );
    }
    Ok(differences.is_empty())
}
