//! Wiring and start-up: Redis, the producer, the batch projection rebuilt when Redis lost it
//! (with the merchant days), the merchants' fee schedules, the follower and the adjustment
//! recorder, then the gRPC and metrics servers until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pos_auth::{OperatorGate, Role};
use pos_events::{BusConfig, EventPublisher, Topic, ensure_topics};
use pos_proto::v1::settlement_server::SettlementServer;
use pos_store::{Store, StoreConfig};
use tracing::{error, info};

use crate::config::Config;
use crate::day::ClosedDays;
use crate::grpc::SettlementApi;
use crate::merchant::{self, MerchantSettlements};
use crate::service::{PRODUCER, Service};
use crate::store::Batches;

/// Starts the service and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let bus = BusConfig {
        brokers: config.kafka.clone(),
        client_id: PRODUCER.to_owned(),
        topic_namespace: config.topic_namespace.clone(),
        ..BusConfig::default()
    };
    ensure_topics(
        &bus,
        &[Topic::Transactions, Topic::Settlement, Topic::Merchants],
    )
    .await
    .context("creating the topics")?;
    let publisher = EventPublisher::new(&bus)?;
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    let batches = Batches::new(store);
    crate::follow::rebuild_if_needed(&bus, &batches)
        .await
        .context("rebuilding the batch projection from the topics")?;
    let service = Arc::new(Service {
        batches: batches.clone(),
        publisher: publisher.clone(),
    });
    let merchants = Arc::new(MerchantSettlements::new(
        batches.store().clone(),
        publisher.clone(),
        merchant::Settings {
            files_dir: config.files_dir.clone(),
            closed: ClosedDays {
                business_day: config.business_day()?,
                closed_through: config.closed_through.clone(),
            },
            refund_default: config.refund_fee,
        },
    ));
    // Merchant settlement is an operator's call: the `settlement` role, audited on our topic.
    let operators = OperatorGate::new(
        config.operators_file.clone(),
        publisher.clone(),
        PRODUCER,
        Topic::Settlement,
        "pos.v1.Settlement",
        Role::Settlement,
    );

    let stop = pos_telemetry::shutdown_channel(shutdown);
    merchant::follow_merchants(
        &bus,
        merchants.days().clone(),
        pos_telemetry::stopped(stop.clone()),
    )
    .await
    .context("reading the merchants' fee schedules")?;
    tokio::spawn(merchant::record_adjustments(
        merchants.clone(),
        pos_telemetry::stopped(stop.clone()),
    ));
    let follow_stop = stop.clone();
    let follow_bus = bus.clone();
    tokio::spawn(async move {
        if let Err(e) =
            crate::follow::follow(&follow_bus, batches, pos_telemetry::stopped(follow_stop)).await
        {
            error!(error = %format!("{e:#}"), "the batch projection stopped");
        }
    });
    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone())).await?;
    tokio::spawn(metrics_server);
    let (reporter, health) = pos_telemetry::grpc::health();
    reporter
        .set_serving::<SettlementServer<SettlementApi>>()
        .await;
    let tls = config.tls.config()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    info!(listen = %config.listen, metrics = %metrics_addr, mtls = tls.is_some(), "settlement serving");
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
        .add_service(SettlementServer::new(SettlementApi(
            service, merchants, operators,
        )))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    publisher
        .flush(Duration::from_secs(5))
        .context("flushing events at shutdown")?;
    info!("settlement stopped");
    Ok(())
}
