//! Wiring and start-up: the rules file (refused at start-up when invalid), Redis, the producer,
//! the projection (rebuilt when Redis lost it) and its follower, the rules watcher, then the
//! gRPC and metrics servers until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pos_auth::{OperatorGate, Role};
use pos_domain::TokenKey;
use pos_events::{BusConfig, EventPublisher, Topic, ensure_topics};
use pos_proto::v1::fraud_check_server::FraudCheckServer;
use pos_store::{Store, StoreConfig};
use tracing::{error, info};

use crate::config::Config;
use crate::grpc::FraudApi;
use crate::lists::Lists;
use crate::project::{Projection, TOPICS};
use crate::reload::{Reloader, RulesInForce};
use crate::service::{PRODUCER, Service};

/// Starts the service and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let rules = RulesInForce::new(crate::reload::load(&config.rules_file).await?);
    let tokens = TokenKey::from_bytes(&pos_crypto::read_key_file(
        &config.token_key_file,
        "POS_TOKEN_KEY_FILE",
    )?)
    .map_err(|e| anyhow::anyhow!("POS_TOKEN_KEY_FILE: {e}"))?;
    let bus = BusConfig {
        brokers: config.kafka.clone(),
        client_id: PRODUCER.to_owned(),
        topic_namespace: config.topic_namespace.clone(),
        ..BusConfig::default()
    };
    ensure_topics(&bus, &TOPICS)
        .await
        .context("creating the topics")?;
    let publisher = EventPublisher::new(&bus)?;
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    let lists = Lists::new(store);
    let projection = Projection::new(lists.clone());
    projection
        .rebuild_if_needed(&bus)
        .await
        .context("rebuilding the fraud projection from the topics")?;

    let stop = pos_telemetry::shutdown_channel(shutdown);
    let follow_stop = stop.clone();
    let follow_bus = bus.clone();
    tokio::spawn(async move {
        if let Err(e) = projection
            .follow(&follow_bus, pos_telemetry::stopped(follow_stop))
            .await
        {
            error!(error = %format!("{e:#}"), "the fraud projection stopped");
        }
    });
    let reloader = Reloader {
        path: config.rules_file.clone(),
        rules: rules.clone(),
        publisher: publisher.clone(),
        instance: format!("{}:{}", config.instance, uuid::Uuid::now_v7()),
        sequence: Arc::default(),
        rejected: Arc::default(),
    };
    reloader.started().await;
    tokio::spawn(reloader.watch(
        Duration::from_millis(config.rules_poll_ms),
        pos_telemetry::stopped(stop.clone()),
    ));
    let service = Arc::new(Service {
        lists,
        rules,
        publisher: publisher.clone(),
        business_day: config.business_day()?,
        tokens,
    });
    let operators = OperatorGate::new(
        config.operators_file.clone(),
        publisher.clone(),
        PRODUCER,
        Topic::Fraud,
        "pos.v1.FraudCheck",
        Role::Risk,
    );

    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone())).await?;
    tokio::spawn(metrics_server);
    let (reporter, health) = pos_telemetry::grpc::health();
    reporter.set_serving::<FraudCheckServer<FraudApi>>().await;
    let tls = config.tls.config()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    info!(
        listen = %config.listen,
        metrics = %metrics_addr,
        mtls = tls.is_some(),
        rules = %config.rules_file.display(),
        "fraud-check serving"
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
        .add_service(FraudCheckServer::new(FraudApi { service, operators }))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    publisher
        .flush(Duration::from_secs(5))
        .context("flushing events at shutdown")?;
    info!("fraud-check stopped");
    Ok(())
}
