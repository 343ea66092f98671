//! The rules in force and their reload: the file is read at start-up (a bad file stops the
//! service: it would otherwise run without rules), then checked every poll interval and on
//! SIGHUP; a changed file that validates replaces the rules (`FraudRulesReloaded`), one that
//! does not is refused (`FraudRulesRejected`, with the reason, logged at warn) and the rules in
//! force stay. Assessments read the rules through one `Arc` clone, never blocked by a reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use pos_proto::v1 as pb;
use tracing::{info, warn};

use crate::rules::{Loaded, Rules, digest};
use crate::service::PRODUCER;

/// The rules in force, shared by every request.
#[derive(Debug, Clone)]
pub struct RulesInForce(Arc<RwLock<Arc<Loaded>>>);

impl RulesInForce {
    /// Holds `loaded`.
    pub fn new(loaded: Loaded) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(loaded))))
    }

    /// The rules now.
    pub fn current(&self) -> Arc<Loaded> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, loaded: Loaded) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
    }
}

/// Reads and validates the rules file.
pub async fn load(path: &Path) -> anyhow::Result<Loaded> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| anyhow::anyhow!("reading the rules file {}: {e}", path.display()))?;
    Rules::parse(&text)
        .map_err(|e| anyhow::anyhow!("the rules file {} is invalid: {e}", path.display()))
}

/// Watches the rules file and reloads it.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// The file.
    pub path: PathBuf,
    /// The rules it feeds.
    pub rules: RulesInForce,
    /// Publisher of the reload events.
    pub publisher: EventPublisher,
    /// This process's name in the events (the `fraud_rules` aggregate id): unique per start.
    pub instance: String,
    /// Sequence of this process's rules events.
    pub sequence: Arc<AtomicU64>,
    /// Digest of the last refused content (refused once, not at every poll).
    pub rejected: Arc<Mutex<Option<String>>>,
}

impl Reloader {
    /// Records the rules loaded at start-up.
    pub async fn started(&self) {
        let event = self.reloaded(&self.rules.current(), "");
        self.publish(event).await;
    }

    /// `FraudRulesReloaded` of `loaded`, which replaced version `previous` ("" at start-up).
    fn reloaded(&self, loaded: &Loaded, previous: &str) -> Payload {
        Payload::FraudRulesReloaded(pb::FraudRulesReloaded {
            rules_version: loaded.rules.version.clone(),
            previous_rules_version: previous.to_owned(),
            rules_digest: loaded.digest.clone(),
            enabled_rules: loaded.rules.enabled_codes(),
            instance: self.instance.clone(),
        })
    }

    /// Reads the file again and applies it when it changed.
    pub async fn reload(&self) {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) => {
                // A file being replaced may be missing for an instant: not a new version.
                warn!(path = %self.path.display(), error = %e, "rules file unreadable; rules kept");
                return;
            }
        };
        if text.trim().is_empty() {
            // A file being rewritten in place is empty for an instant: not a new version.
            return;
        }
        let in_force = self.rules.current();
        let content_digest = digest(&text);
        if content_digest == in_force.digest {
            return;
        }
        match Rules::parse(&text) {
            Ok(loaded) => {
                info!(
                    version = %loaded.rules.version,
                    previous = %in_force.rules.version,
                    "fraud rules reloaded"
                );
                let event = self.reloaded(&loaded, &in_force.rules.version);
                self.rules.replace(loaded);
                self.publish(event).await;
            }
            Err(error) => {
                // Refused once per content: the rejected digest is remembered.
                {
                    let mut rejected = match self.rejected.lock() {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    if rejected.as_deref() == Some(content_digest.as_str()) {
                        return;
                    }
                    *rejected = Some(content_digest.clone());
                }
                warn!(
                    path = %self.path.display(),
                    %error,
                    version_in_force = %in_force.rules.version,
                    "rules file refused; the rules in force stay"
                );
                self.publish(Payload::FraudRulesRejected(pb::FraudRulesRejected {
                    rules_digest: content_digest,
                    error,
                    rules_version_in_force: in_force.rules.version.clone(),
                    instance: self.instance.clone(),
                }))
                .await;
            }
        }
    }

    async fn publish(&self, payload: Payload) {
        let envelope = new_envelope(
            &AggregateRef::new("fraud_rules", self.instance.clone()),
            self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            PRODUCER,
            payload,
        );
        if let Err(error) = self
            .publisher
            .publish(Topic::Fraud, &self.instance, &envelope)
            .await
        {
            warn!(%error, "recording a rules change failed");
        }
    }

    /// Polls the file every `every` and on SIGHUP until `shutdown`.
    pub async fn watch(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            self.reload().await;
        }
    }
}
