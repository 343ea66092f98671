//! Wiring and start-up: Redis, the seed file, the PIN verifier, and the gRPC and metrics
//! servers until shutdown; and the two one-shot commands, `account` and `seed`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use pos_domain::Pan;
use pos_proto::v1::issuer_server::IssuerServer;
use pos_store::{Store, StoreConfig};
use tracing::{info, warn};

use crate::books::Books;
use crate::clock::BankTime;
use crate::config::{AccountArgs, BooksConfig, SeedArgs, ServeArgs};
use crate::grpc::IssuerService;
use crate::pin::PinVerifier;
use crate::service::{Issuer, Rules};
use crate::{account, seed};

/// Connects to the books.
async fn open_books(config: &BooksConfig, retention: std::time::Duration) -> anyhow::Result<Books> {
    let store = Store::connect(&StoreConfig {
        url: config.redis.clone(),
        prefix: config.redis_prefix.clone(),
    })
    .await
    .context("connecting to redis")?;
    Ok(Books::new(store, config.token_key()?, retention))
}

/// Seeds the cards of `file`: new cards are written, existing ones left alone unless
/// `reseed`. Returns (written, left alone).
async fn seed_books(books: &Books, file: &Path, reseed: bool) -> anyhow::Result<(usize, usize)> {
    let cards = seed::load(file)?;
    let (mut written, mut kept) = (0, 0);
    for card in &cards {
        if !reseed && books.card_exists(&books.token(&card.pan)).await? {
            kept += 1;
            continue;
        }
        let pin = card.pin.clone();
        let pin_hash = tokio::task::spawn_blocking(move || pos_crypto::hash_password(&pin))
            .await
            .context("hashing a PIN")??;
        let now = BankTime::now().timestamp();
        if books.seed_card(card, &pin_hash, reseed, &now).await? {
            info!(card = %card.pan, funding = %card.account.funding(), status = %card.status, "card seeded");
            written += 1;
        } else {
            kept += 1;
        }
    }
    Ok((written, kept))
}

/// Starts the bank and serves until `shutdown` completes.
pub async fn run(
    config: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.uses_dev_zpk() {
        warn!("POS_ISSUER_ZPK is the public development key: for local runs only");
    }
    if config.books.uses_dev_card_key() {
        warn!("POS_ISSUER_CARD_KEY is the public development key: for local runs only");
    }
    let books = open_books(&config.books, config.retention()).await?;
    match &config.seed {
        Some(file) => {
            let (written, kept) = seed_books(&books, file, config.reseed)
                .await
                .with_context(|| format!("seeding from {}", file.display()))?;
            info!(written, kept, file = %file.display(), "seed file loaded");
        }
        None => info!("no seed file (POS_ISSUER_SEED): serving the cards already in the books"),
    }
    let tls = config.tls.config()?;
    let pins = PinVerifier::new(config.zone_pin_key()?, config.zpk_id.clone());
    let rules = Rules {
        completion_tolerance_percent: config.completion_tolerance_percent,
        pin_try_limit: config.pin_try_limit,
        answer_delay: std::time::Duration::from_millis(config.answer_delay_ms),
    };
    let issuer = Arc::new(Issuer::new(books, pins, rules));

    let stop = pos_telemetry::shutdown_channel(shutdown);
    let (metrics_addr, metrics_server) =
        pos_telemetry::metrics::bind(config.metrics, pos_telemetry::stopped(stop.clone()))
            .await
            .with_context(|| format!("binding the metrics port {}", config.metrics))?;
    tokio::spawn(metrics_server);

    let (reporter, health) = pos_telemetry::grpc::health();
    reporter.set_serving::<IssuerServer<IssuerService>>().await;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let listen = listener.local_addr()?;
    info!(%listen, metrics = %metrics_addr, prefix = %config.books.redis_prefix, mtls = tls.is_some(), "issuer-sim serving");
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
        .add_service(IssuerServer::new(IssuerService(issuer)))
        .serve_with_incoming_shutdown(
            pos_telemetry::grpc::incoming(listener),
            pos_telemetry::stopped(stop),
        )
        .await?;
    info!("issuer-sim stopped");
    Ok(())
}

/// `account`: prints the card's account and ledger; an error when there is no such card.
pub async fn account(args: AccountArgs) -> anyhow::Result<()> {
    let pan = Pan::parse(&args.pan).map_err(|e| anyhow::anyhow!("--pan: {e}"))?;
    let books = open_books(&args.books, std::time::Duration::from_secs(86_400)).await?;
    match account::report(&books, &pan).await? {
        Some(text) => {
            print!("{text}");
            Ok(())
        }
        None => anyhow::bail!(
            "no card {pan} in the books under prefix {}",
            args.books.redis_prefix
        ),
    }
}

/// `seed`: seeds the cards of a file and exits.
pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let books = open_books(&args.books, std::time::Duration::from_secs(86_400)).await?;
    let (written, kept) = seed_books(&books, &args.file, args.reseed).await?;
    println!("seeded {written} card(s), left {kept} existing card(s) as they were");
    Ok(())
}
