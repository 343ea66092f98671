//! Wiring and start-up: the secret files shared with the gateway (LMK, token key), the HSM and
//! the zone PIN key, Redis, the producer, the issuer and fraud-check channels, then the gRPC
//! and metrics servers until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pos_crypto::{DesKey, Hsm, SoftHsm, read_key_file as read_key};
use pos_domain::TokenKey;
use pos_events::{BusConfig, EventPublisher, Topic, ensure_topics};
use pos_facts::Facts;
use pos_proto::v1::authorization_server::AuthorizationServer;
use pos_store::{Store, StoreConfig};
use tracing::info;

use crate::clients::{self, Fraud, Issuer};
use crate::config::Config;
use crate::grpc::AuthorizationApi;
use crate::idempotency::Idempotency;
use crate::service::{PRODUCER, Service, ZoneKey};
use pos_facts::txn::Records;

/// Margin on top of the slowest path of a request before its pending claim counts as abandoned.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Margin on top of the issuer and fraud deadlines that a retry waits for its first attempt.
const IN_PROGRESS_MARGIN: Duration = Duration::from_secs(1);

/// Starts the service and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rules = config.validate()?;
    let hsm: Arc<dyn Hsm> = Arc::new(SoftHsm::new(read_key(
        &config.lmk_file,
        "POS_HSM_LMK_FILE",
    )?));
    let tokens = TokenKey::from_bytes(&read_key(&config.token_key_file, "POS_TOKEN_KEY_FILE")?)
        .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
    let zpk =
        DesKey::from_hex(&config.issuer_zpk).map_err(|e| anyhow::anyhow!("POS_ISSUER_ZPK: {e}"))?;
    let zone = ZoneKey {
        key: hsm.import_key(&zpk).context("importing the zone PIN key")?,
        id: config.issuer_zpk_id.clone(),
    };
    drop(zpk);

    let bus = BusConfig {
        brokers: config.kafka.clone(),
        client_id: PRODUCER.to_owned(),
        topic_namespace: config.topic_namespace.clone(),
        ..BusConfig::default()
    };
    ensure_topics(&bus, &[Topic::Transactions])
        .await
        .context("creating the transactions topic")?;
    let publisher = EventPublisher::new(&bus)?;
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    let lease =
        config.issuer_timeout() + config.fraud_timeout() + bus.publish_timeout + LEASE_MARGIN;

    let tls = config.tls.config()?;
    let issuer = Issuer::new(
        clients::channel(&config.issuer_url, config.issuer_timeout(), tls.as_ref())
            .context("POS_ISSUER_URL")?,
        config.issuer_timeout(),
    );
    let fraud = match &config.fraud_url {
        Some(url) => Some(Fraud::new(
            clients::channel(url, config.fraud_timeout(), tls.as_ref()).context("POS_FRAUD_URL")?,
            config.fraud_timeout(),
        )),
        None => None,
    };
    let idempotency = Idempotency::new(store.clone(), lease);
    let records = Records::new(store.clone());
    crate::rebuild::rebuild_if_needed(&bus, &store, &records, &idempotency)
        .await
        .context("rebuilding the transaction records from the topic")?;
    let service = Arc::new(Service {
        rules,
        facts: Facts::new(store),
        idempotency,
        records,
        publisher: publisher.clone(),
        hsm,
        zone,
        tokens,
        issuer,
        fraud,
        acquirer_id: config.acquirer_id.clone(),
        in_progress_wait: config.issuer_timeout() + config.fraud_timeout() + IN_PROGRESS_MARGIN,
        business_day: config.business_day()?,
    });

    let stop = pos_telemetry::shutdown_channel(shutdown);
    let holds_bus = bus.clone();
    let holds_records = service.records.clone();
    let holds_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::holds::follow(
            &holds_bus,
            holds_records,
            pos_telemetry::stopped(holds_stop),
        )
        .await
        {
            tracing::error!(error = %format!("{e:#}"), "the pre-authorization hold follower stopped");
        }
    });
    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone())).await?;
    tokio::spawn(metrics_server);
    let (reporter, health) = pos_telemetry::grpc::health();
    reporter
        .set_serving::<AuthorizationServer<AuthorizationApi>>()
        .await;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    info!(
        listen = %config.listen,
        metrics = %metrics_addr,
        issuer = %config.issuer_url,
        fraud = config.fraud_url.as_deref().unwrap_or("not configured"),
        mtls = tls.is_some(),
        "authorization serving"
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
        .add_service(AuthorizationServer::new(AuthorizationApi(service)))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    publisher
        .flush(Duration::from_secs(5))
        .context("flushing events at shutdown")?;
    info!("authorization stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secret_files_must_exist_be_private_and_hold_64_hex() {
        let dir = std::env::temp_dir().join(format!("authz-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = read_key(&dir.join("none.hex"), "POS_HSM_LMK_FILE").unwrap_err();
        assert!(
            missing.to_string().contains("start the gateway first"),
            "{missing}"
        );

        let path = dir.join("lmk.hex");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = read_key(&path, "POS_HSM_LMK_FILE").unwrap_err();
        assert!(open.to_string().contains("chmod 600"), "{open}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key(&path, "POS_HSM_LMK_FILE").unwrap(), [0xAB; 32]);
        std::fs::write(&path, "abcd").unwrap();
        assert!(read_key(&path, "POS_HSM_LMK_FILE").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
