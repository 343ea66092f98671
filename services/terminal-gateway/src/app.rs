//! Wiring and start-up: secrets and the HSM, Redis and Kafka, the registry projections (caught
//! up from the topics before anything is served, then followed), and the gRPC and metrics
//! servers until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use pos_crypto::{Hsm, SoftHsm};
use pos_domain::TokenKey;
use pos_events::{BusConfig, EventPublisher, EventReader, ReceivedEvent, Topic, ensure_topics};
use pos_proto::v1::EncryptedValue;
use pos_proto::v1::authorization_client::AuthorizationClient;
use pos_proto::v1::reversal_client::ReversalClient;
use pos_proto::v1::settlement_client::SettlementClient;
use pos_proto::v1::terminal_gateway_server::TerminalGatewayServer;
use pos_proto::v1::terminal_management_server::TerminalManagementServer;
use pos_registry::{Payload, RegistryError, merchant, operator, terminal};
use pos_store::{Store, StoreConfig};
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::auth::Credentials;
use crate::config::Config;
use crate::error::{GatewayError, Result};
use crate::hot::Hot;
use crate::repo::{Aggregate, Repo};
use crate::secrets;

/// Everything a request handler needs; shared by both gRPC services.
#[derive(Debug)]
pub struct Gateway {
    /// Settings.
    pub config: Config,
    /// Registry aggregates.
    pub repo: Repo,
    /// Sessions and fleet state.
    pub hot: Hot,
    /// Key handling.
    pub hsm: Arc<dyn Hsm>,
    /// Keyed hashes of personal data and activation codes.
    pub tokens: TokenKey,
    /// Encryption of personal data that must be read back.
    pub data_key: DataKey,
    /// Operator credentials.
    pub credentials: Credentials,
    /// The authorization service (one long-lived channel).
    pub authorization: AuthorizationClient<Channel>,
    /// Transaction histories (the `pos.transactions.v1` projection).
    pub history: pos_history::HistoryProjection,
    /// The reversal service (one long-lived channel).
    pub reversal: ReversalClient<Channel>,
    /// The settlement service (one long-lived channel).
    pub settlement: SettlementClient<Channel>,
    /// Publisher of the gateway's own transaction-side events (`ApprovalUndelivered`).
    pub publisher: EventPublisher,
}

/// Aggregate types the gateway keeps event lists of.
const REGISTRY_KINDS: [&str; 4] = [
    merchant::AGGREGATE_TYPE,
    terminal::AGGREGATE_TYPE,
    operator::AGGREGATE_TYPE,
    terminal::DEVICE_AGGREGATE_TYPE,
];

impl Aggregate for merchant::MerchantState {
    const KIND: &'static str = merchant::AGGREGATE_TYPE;
    const TOPIC: Topic = Topic::Merchants;
    fn version(&self) -> u64 {
        self.version
    }
    fn fold(state: Option<Self>, payload: &Payload) -> Option<Self> {
        merchant::apply(state, payload)
    }
}

impl Aggregate for terminal::TerminalState {
    const KIND: &'static str = terminal::AGGREGATE_TYPE;
    const TOPIC: Topic = Topic::Terminals;
    fn version(&self) -> u64 {
        self.version
    }
    fn fold(state: Option<Self>, payload: &Payload) -> Option<Self> {
        terminal::apply(state, payload)
    }
}

impl Aggregate for operator::OperatorState {
    const KIND: &'static str = operator::AGGREGATE_TYPE;
    const TOPIC: Topic = Topic::Terminals;
    fn version(&self) -> u64 {
        self.version
    }
    fn fold(state: Option<Self>, payload: &Payload) -> Option<Self> {
        operator::apply(state, payload)
    }
}

/// Failed activations of a device whose code matched no terminal ("device" aggregate).
#[derive(Debug, Clone)]
pub struct DeviceLog {
    version: u64,
}

impl Aggregate for DeviceLog {
    const KIND: &'static str = terminal::DEVICE_AGGREGATE_TYPE;
    const TOPIC: Topic = Topic::Terminals;
    fn version(&self) -> u64 {
        self.version
    }
    fn fold(state: Option<Self>, payload: &Payload) -> Option<Self> {
        match payload {
            Payload::ActivationFailed(e) if e.terminal_id.is_empty() => Some(DeviceLog {
                version: state.map_or(0, |s| s.version) + 1,
            }),
            _ => state,
        }
    }
}

impl Gateway {
    /// Runs a command on aggregate `id` under its lock: load, decide, append. A refusal
    /// appends the events the domain says to record (failed attempts) and is then returned.
    pub async fn execute<A, D>(
        &self,
        id: &str,
        partition_key: &str,
        causation: &str,
        decide: D,
    ) -> Result<Option<A>>
    where
        A: Aggregate,
        D: FnOnce(Option<&A>) -> std::result::Result<Vec<Payload>, RegistryError>,
    {
        let lock = self.repo.lock(A::KIND, id).await?;
        let outcome = self
            .execute_locked(id, partition_key, causation, decide)
            .await;
        if let Err(error) = lock.release().await {
            warn!(%error, kind = A::KIND, id, "releasing an aggregate lock failed");
        }
        outcome
    }

    async fn execute_locked<A, D>(
        &self,
        id: &str,
        partition_key: &str,
        causation: &str,
        decide: D,
    ) -> Result<Option<A>>
    where
        A: Aggregate,
        D: FnOnce(Option<&A>) -> std::result::Result<Vec<Payload>, RegistryError>,
    {
        let current = self.repo.load::<A>(id).await?;
        match decide(current.as_ref()) {
            Ok(events) => {
                self.repo
                    .append(id, partition_key, current, events, causation)
                    .await
            }
            Err(refusal) => {
                let record = refusal.events_to_record().to_vec();
                if !record.is_empty() {
                    self.repo
                        .append(id, partition_key, current, record, causation)
                        .await?;
                }
                Err(refusal.into())
            }
        }
    }
}

/// Encrypts personal data the platform must read back (ChaCha20-Poly1305, random nonce).
pub struct DataKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// Key id recorded with every value the data key encrypts.
const DATA_KEY_ID: &str = "data-key-1";

impl DataKey {
    /// A data key from 32 secret bytes.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Encrypts `plain`, bound to `purpose` (associated data).
    pub fn encrypt(&self, purpose: &str, plain: &[u8]) -> Result<EncryptedValue> {
        let nonce_bytes = secrets::random_bytes::<12>();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                AeadPayload {
                    msg: plain,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| GatewayError::Internal("data encryption failed".to_owned()))?;
        Ok(EncryptedValue {
            ciphertext,
            nonce: nonce_bytes.to_vec(),
            key_id: DATA_KEY_ID.to_owned(),
        })
    }
}

/// Keeps a registry event read from a topic; other aggregates (sessions, audit) are skipped.
async fn keep_registry_event(repo: &Repo, event: &ReceivedEvent) -> pos_events::Result<()> {
    if !REGISTRY_KINDS.contains(&event.envelope.aggregate_type.as_str()) {
        return Ok(());
    }
    repo.keep(&event.envelope)
        .await
        .map(|_| ())
        .map_err(|e| pos_events::BusError::Handler(e.to_string()))
}

/// Starts the gateway and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hsm: Arc<dyn Hsm> = Arc::new(SoftHsm::new(secrets::load_or_create_key(&config.lmk_file)?));
    let tokens = TokenKey::from_bytes(&secrets::load_or_create_key(&config.token_key_file)?)
        .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
    let data_key = DataKey::new(secrets::load_or_create_key(&config.data_key_file)?);
    let (credentials, created) = Credentials::load_or_create(&config.operators_file)?;
    if let Some(path) = created {
        info!(token_file = %path.display(), "created the first admin operator credential");
    }

    let bus = BusConfig {
        brokers: config.kafka.clone(),
        client_id: "terminal-gateway".to_owned(),
        topic_namespace: config.topic_namespace.clone(),
        ..BusConfig::default()
    };
    ensure_topics(&bus, &Topic::ALL)
        .await
        .context("creating topics")?;
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    let publisher = EventPublisher::new(&bus)?;
    let repo = Repo::new(store.clone(), publisher.clone(), "terminal-gateway");

    let reader = EventReader::from_beginning(&bus, &[Topic::Merchants, Topic::Terminals]).await?;
    let replayed = reader
        .catch_up(async |event| keep_registry_event(&repo, event).await)
        .await
        .context("rebuilding the registry from the topics")?;
    info!(events = replayed, "registry rebuilt from the topics");
    let follower = repo.clone();
    tokio::spawn(async move {
        loop {
            match reader.recv().await {
                Ok(event) => {
                    if let Err(error) = keep_registry_event(&follower, &event).await {
                        warn!(%error, "following the registry topics");
                    }
                }
                Err(error) => warn!(%error, "reading the registry topics"),
            }
        }
    });
    // Transaction histories: rebuilt from the topic when Redis lost them, then followed.
    let history = crate::history::start(&bus, &store).await?;

    let tls = config.tls.config()?;
    let authorization = AuthorizationClient::new(
        pos_tls::endpoint(&config.authorization_url, tls.as_ref())
            .context("POS_AUTHORIZATION_URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(),
    );
    let reversal = ReversalClient::new(
        pos_tls::endpoint(&config.reversal_url, tls.as_ref())
            .context("POS_REVERSAL_URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(),
    );
    let settlement = SettlementClient::new(
        pos_tls::endpoint(&config.settlement_url, tls.as_ref())
            .context("POS_SETTLEMENT_URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(),
    );
    let gateway = Arc::new(Gateway {
        authorization,
        reversal,
        settlement,
        publisher,
        history,
        hot: Hot::new(store),
        repo,
        hsm,
        tokens,
        data_key,
        credentials,
        config: config.clone(),
    });

    let stop = pos_telemetry::shutdown_channel(shutdown);
    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone())).await?;
    tokio::spawn(metrics_server);

    let (reporter, health) = pos_telemetry::grpc::health();
    reporter
        .set_serving::<TerminalGatewayServer<crate::connect::TerminalService>>()
        .await;
    reporter
        .set_serving::<TerminalManagementServer<Gateway>>()
        .await;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    info!(listen = %config.listen, metrics = %metrics_addr, mtls = tls.is_some(), "terminal-gateway serving");
    let builder = tonic::transport::Server::builder();
    let mut builder = match &tls {
        Some(tls) => builder
            .tls_config(pos_tls::edge_server_tls(tls)?)
            .context("configuring TLS")?,
        None => builder,
    };
    builder
        .add_service(health)
        .add_service(pos_telemetry::grpc::reflection()?)
        .add_service(TerminalGatewayServer::new(crate::connect::TerminalService(
            Arc::clone(&gateway),
        )))
        .add_service(TerminalManagementServer::from_arc(gateway))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    info!("terminal-gateway stopped");
    Ok(())
}

/// The current time (one place, so the clock is easy to find).
pub fn now() -> SystemTime {
    SystemTime::now()
}
