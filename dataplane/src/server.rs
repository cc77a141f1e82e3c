//! Wiring of one palaverd process: clients, background tasks, HTTP server, graceful shutdown.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fred::prelude::*;
use fred::types::config::ReconnectPolicy;
use rdkafka::producer::{FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::auth::Verifier;
use crate::config::{Config, Timing};
use crate::consumer::push::{PushProvider, PushSettings, WebhookPush};
use crate::consumer::{Notifier, Worker};
use crate::cursors::Cursors;
use crate::fanout::{Fanout, Tuning};
use crate::gateway::{self, AppState};
use crate::presence::Presence;
use crate::publish::{self, Publisher};
use crate::store::Store;
use crate::workspaces::Workspaces;

fn redis_builder(url: &str) -> anyhow::Result<Builder> {
    let config = fred::prelude::Config::from_url(url).context("PALAVER_REDIS_URL")?;
    let mut b = Builder::from_config(config);
    b.with_performance_config(|p| {
        p.default_command_timeout = Duration::from_secs(1);
        // Pub/sub messages wait here for the fan-out actor; a burst beyond it is lost (and
        // then read from Postgres), so leave room for a few seconds of peak traffic.
        p.broadcast_channel_capacity = 16_384;
    })
    .with_connection_config(|c| {
        c.connection_timeout = Duration::from_secs(2);
        c.max_command_attempts = 2;
    })
    // Retry forever: Redis coming back must not need a pod restart.
    .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    Ok(b)
}

/// Runs until SIGTERM/SIGINT (or `stop` is cancelled), then shuts down gracefully.
pub async fn run(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let pod_id = cfg.pod_id.clone().unwrap_or_else(|| crate::store::new_id("pod"));
    let verifier = Verifier::from_config(&cfg.auth)?;
    if cfg.auth.dev_secret().is_some() {
        tracing::warn!("PALAVER_DEV_JWT_SECRET is set: tokens signed with it are accepted and /v1/dev signs anyone in as any user; never in production");
    }
    let kafka_properties = crate::kafka::load_properties(cfg.kafka_properties_file.as_deref()).context("PALAVER_KAFKA_PROPERTIES_FILE")?;
    let store = Store::connect(&cfg.database_url, cfg.db_pool).await.context("PALAVER_DATABASE_URL")?;

    let redis = redis_builder(&cfg.redis_url)?.build()?;
    redis.connect();
    let subscriber = redis_builder(&cfg.redis_url)?.build_subscriber_client()?;
    subscriber.connect();
    let _resubscribe = subscriber.manage_subscriptions();

    let producer: FutureProducer =
        crate::kafka::producer_config(&cfg.kafka_brokers, &kafka_properties).create().context("kafka producer")?;
    let (publisher, cleared) = Publisher::new(redis.clone(), producer.clone());
    let workspaces = Workspaces::new(store.clone());
    if let Err(e) = workspaces.refresh().await {
        tracing::warn!(error = %e, "workspace registry not readable yet; will retry");
    }
    let tasks = CancellationToken::new();
    let fanout = Fanout::start(
        store.clone(),
        subscriber.clone(),
        Tuning {
            reorder_wait: Timing::ms(cfg.timing.reorder_wait_ms),
            position_check: Timing::ms(cfg.timing.position_check_ms),
            shards: match cfg.fanout_shards {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
        },
        tasks.clone(),
    );
    let cursors = Cursors::new(redis.clone());
    let presence = Presence::new(redis.clone(), pod_id.clone(), Timing::ms(cfg.timing.offline_grace_ms));
    let consumer = if cfg.consumers {
        Some(start_consumers(&cfg, &kafka_properties, &store, &presence, &publisher, &producer, &workspaces, &tasks)?)
    } else {
        None
    };
    tokio::spawn(publish::run_outbox_clearer(store.clone(), cleared));
    tokio::spawn(publish::run_sweeper(
        store.clone(),
        publisher.clone(),
        workspaces.clone(),
        Timing::ms(cfg.timing.sweep_interval_ms),
        cfg.timing.sweep_age_ms,
        tasks.clone(),
    ));
    tokio::spawn(workspaces.clone().run_refresh(Duration::from_secs(5), tasks.clone()));
    let flusher = tokio::spawn(cursors.clone().run_flusher(store.clone(), Timing::ms(cfg.timing.cursor_flush_ms), tasks.clone()));

    let objects = crate::objects::Objects::from_config(&cfg.s3).context("PALAVER_S3_*")?;
    match &objects {
        Some(objects) => {
            tokio::spawn(crate::domain::files::run_sweeper(
                store.clone(),
                objects.clone(),
                workspaces.clone(),
                cfg.files.clone(),
                tasks.clone(),
            ));
        }
        None => tracing::info!("no object storage configured (PALAVER_S3_ENDPOINT): attachments are off"),
    }
    let shutdown = CancellationToken::new();
    let domain = crate::domain::Domain {
        store: store.clone(),
        cursors: cursors.clone(),
        publisher: publisher.clone(),
        redis: redis.clone(),
        presence: presence.clone(),
        limits: cfg.limits.clone(),
        objects,
        files: cfg.files.clone(),
        sender: crate::domain::sender::Sender::start(store.clone(), cfg.batching.clone()),
    };
    let state = Arc::new(AppState {
        domain,
        rest_limits: gateway::Limiter::new("send", cfg.limits.send_rate, cfg.limits.send_burst),
        search_limits: gateway::Limiter::new(
            "search",
            cfg.limits.search_rate_per_minute / 60.0,
            cfg.limits.search_rate_per_minute.max(1.0),
        ),
        upload_limits: gateway::Limiter::new(
            "upload",
            cfg.files.file_uploads_per_minute / 60.0,
            cfg.files.file_uploads_per_minute.max(1.0),
        ),
        known_users: Default::default(),
        cfg: cfg.clone(),
        store,
        redis,
        producer: producer.clone(),
        publisher,
        fanout,
        cursors,
        presence,
        workspaces,
        verifier,
        shutdown: shutdown.clone(),
        next_conn: AtomicU64::new(1),
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(pod = %pod_id, listen = %cfg.listen, "palaverd listening");
    let app = gateway::router(state.clone());
    let limits = gateway::listener::ListenerLimits {
        max_connections: cfg.limits.max_connections.max(1),
        header_timeout: Timing::ms(cfg.timing.http_header_timeout_ms.max(1)),
    };
    let server = tokio::spawn(gateway::listener::serve(listener, app, limits, shutdown.clone()));

    tokio::select! {
        _ = stop.cancelled() => {}
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down: closing connections so clients resume elsewhere");
    shutdown.cancel();
    let grace = Timing::ms(cfg.timing.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async {
        while crate::metrics::global().connections.get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = server.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed with connections still open");
    }
    tasks.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), flusher).await;
    if let Some(consumer) = consumer {
        // It commits the offsets of what it processed before leaving the group.
        let _ = tokio::time::timeout(Duration::from_secs(3), consumer).await;
    }
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(2))).await;
    tracing::info!("stopped");
    Ok(())
}

/// The partition-by-channel consumer groups (inbox, search index) and the push worker.
#[allow(clippy::too_many_arguments)]
fn start_consumers(
    cfg: &Config,
    kafka_properties: &[(String, String)],
    store: &Store,
    presence: &Presence,
    publisher: &Publisher,
    producer: &FutureProducer,
    workspaces: &Workspaces,
    tasks: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let consumer = |group: &str| -> anyhow::Result<Arc<rdkafka::consumer::StreamConsumer>> {
        Ok(Arc::new(crate::kafka::consumer_config(&cfg.kafka_brokers, group, kafka_properties).create().context("kafka consumer")?))
    };
    let inbox = consumer(&cfg.consumer_group)?;
    let search = consumer(&format!("{}-search", cfg.consumer_group))?;
    let provider: Option<Arc<dyn PushProvider>> = match cfg.push.push_webhook_url.clone() {
        Some(url) => Some(Arc::new(WebhookPush::new(url).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let notifier = Notifier {
        store: store.clone(),
        presence: presence.clone(),
        publisher: publisher.clone(),
        push_enabled: provider.is_some(),
        kinds: Arc::default(),
    };
    let indexer = crate::consumer::Indexer { store: store.clone() };
    let inbox = tokio::spawn(crate::consumer::run(inbox, Worker::Inbox(notifier), workspaces.clone(), tasks.clone()));
    let search = tokio::spawn(crate::consumer::run(search, Worker::Search(indexer), workspaces.clone(), tasks.clone()));
    let handle = tokio::spawn(async move {
        let _ = tokio::join!(inbox, search);
    });
    if let Some(provider) = provider {
        let settings = PushSettings {
            interval: Timing::ms(cfg.push.push_interval_ms),
            max_attempts: cfg.push.push_max_attempts.max(1),
            backoff_ms: cfg.push.push_backoff_ms.max(1),
        };
        tokio::spawn(crate::consumer::push::run_worker(
            store.clone(),
            provider,
            producer.clone(),
            workspaces.clone(),
            settings,
            tasks.clone(),
        ));
    }
    Ok(handle)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
