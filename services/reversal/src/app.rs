//! Wiring and start-up: the token key shared with the gateway, Redis, the producer, the
//! issuer channel, the state rebuilt from the topics when Redis lost it, the follower and the
//! sweeper, then the gRPC and metrics servers until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pos_domain::TokenKey;
use pos_events::{BusConfig, EventPublisher, Topic, ensure_topics};
use pos_facts::txn::Records;
use pos_proto::v1::reversal_server::ReversalServer;
use pos_store::{Store, StoreConfig};
use tracing::{error, info};

use crate::config::Config;
use crate::grpc::ReversalApi;
use crate::issuer::{self, Issuer};
use crate::service::{PRODUCER, Policy, Service};
use crate::state::State;

/// Starts the service and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let tokens = TokenKey::from_bytes(&pos_crypto::read_key_file(
        &config.token_key_file,
        "POS_TOKEN_KEY_FILE",
    )?)
    .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
    let bus = BusConfig {
        brokers: config.kafka.clone(),
        client_id: PRODUCER.to_owned(),
        topic_namespace: config.topic_namespace.clone(),
        ..BusConfig::default()
    };
    ensure_topics(&bus, &[Topic::Transactions, Topic::Settlement])
        .await
        .context("creating the topics")?;
    let publisher = EventPublisher::new(&bus)?;
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    let state = State::new(store.clone());
    crate::rebuild::rebuild_if_needed(&bus, &state)
        .await
        .context("rebuilding the reversal state from the topics")?;
    let tls = config.tls.config()?;
    let issuer = Issuer::new(
        issuer::channel(&config.issuer_url, config.issuer_timeout(), tls.as_ref())
            .context("POS_ISSUER_URL")?,
        config.issuer_timeout(),
    );
    let service = Arc::new(Service {
        records: Records::new(store),
        state,
        publisher: publisher.clone(),
        issuer,
        tokens,
        policy: Policy {
            refund_window_days: config.refund_window_days,
            void_approval: config.void_approval,
            refund_approval: config.refund_approval,
            business_day: config.business_day()?,
        },
    });

    let stop = pos_telemetry::shutdown_channel(shutdown);
    let follower = Arc::clone(&service);
    let follow_bus = bus.clone();
    let follow_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) =
            crate::follow::follow(&follow_bus, follower, pos_telemetry::stopped(follow_stop)).await
        {
            error!(error = %format!("{e:#}"), "the transactions follower stopped");
        }
    });
    tokio::spawn(crate::follow::sweep_unrecorded(
        Arc::clone(&service),
        Duration::from_millis(config.sweep_ms),
    ));

    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone())).await?;
    tokio::spawn(metrics_server);
    let (reporter, health) = pos_telemetry::grpc::health();
    reporter.set_serving::<ReversalServer<ReversalApi>>().await;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    info!(
        listen = %config.listen,
        metrics = %metrics_addr,
        issuer = %config.issuer_url,
        mtls = tls.is_some(),
        "reversal serving"
    );
    let builder = tonic::transport::Server::builder();
    let mut builder = match &tls {
        Some(tls) => builder
            .tls_config(pos_tls::server_tls(tls)?)
            .context("configuring mutual TLS")?,
        None => builder,
    };
    builder
        .add_service(health)
        .add_service(pos_telemetry::grpc::reflection()?)
        .add_service(ReversalServer::new(ReversalApi(service)))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    publisher
        .flush(Duration::from_secs(5))
        .context("flushing events at shutdown")?;
    info!("reversal stopped");
    Ok(())
}
