//! Aggregates of the registry (merchants, terminals, operators) as the gateway keeps them:
//! every change is appended to its topic first (acknowledged by the broker), then to the
//! aggregate's event list in Redis, whose length is the aggregate's version. Loading folds the
//! list. A reader of the gateway's own topics appends the same events again (skipping those
//! already there), so flushing Redis and restarting rebuilds every aggregate, and a second
//! gateway instance sees the first one's changes.

use std::time::Duration;

use pos_events::{AggregateRef, EventEnvelope, EventPublisher, Payload, Topic, new_envelope};
use pos_facts::{Facts, MerchantFacts, TerminalFacts};
use pos_registry::merchant::{self, MerchantState};
use pos_registry::terminal::{self, TerminalState};
use pos_store::{Appended, Store};
use prost::Message;

use crate::error::{GatewayError, Result};

/// A registry aggregate, folded from its events.
pub trait Aggregate: Clone + Send + Sync + Sized {
    /// Aggregate type in envelopes ("merchant", "terminal", "operator").
    const KIND: &'static str;
    /// Topic its events go to.
    const TOPIC: Topic;
    /// Events applied so far (the sequence of the last one).
    fn version(&self) -> u64;
    /// Folds one event into the state.
    fn fold(state: Option<Self>, payload: &Payload) -> Option<Self>;
}

/// Reads and writes registry aggregates.
#[derive(Debug, Clone)]
pub struct Repo {
    store: Store,
    facts: Facts,
    publisher: EventPublisher,
    producer: String,
}

impl Repo {
    /// A repository over `store`, publishing with `publisher` as `producer`.
    pub fn new(store: Store, publisher: EventPublisher, producer: &str) -> Self {
        Self {
            facts: Facts::new(store.clone()),
            store,
            publisher,
            producer: producer.to_owned(),
        }
    }

    /// The Redis store (for indexes and hot state).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn list_key(&self, kind: &str, id: &str) -> String {
        self.store.key(&["agg", kind, id, "events"])
    }

    /// The current state of aggregate `id`, `None` when it has no events.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Option<A>> {
        let key = self.list_key(A::KIND, id);
        let mut state = None;
        for bytes in self.store.event_list(&key).await? {
            let envelope = EventEnvelope::decode(bytes.as_slice()).map_err(|e| {
                GatewayError::Internal(format!("event in {key} is unreadable: {e}"))
            })?;
            if let Some(payload) = &envelope.payload {
                state = A::fold(state, payload);
            }
        }
        Ok(state)
    }

    /// Appends `payloads` as the next events of aggregate `id` (whose state is `current`),
    /// each acknowledged by the broker before it is kept, and returns the new state. Callers
    /// hold the aggregate's lock ([`Repo::lock`]).
    pub async fn append<A: Aggregate>(
        &self,
        id: &str,
        partition_key: &str,
        current: Option<A>,
        payloads: Vec<Payload>,
        causation: &str,
    ) -> Result<Option<A>> {
        let aggregate = AggregateRef::new(A::KIND, id);
        let mut sequence = current.as_ref().map_or(0, A::version);
        let mut state = current;
        for payload in payloads {
            sequence += 1;
            let mut envelope = new_envelope(&aggregate, sequence, &self.producer, payload);
            envelope.causation_id = causation.to_owned();
            self.publisher
                .publish(A::TOPIC, partition_key, &envelope)
                .await?;
            self.keep(&envelope).await?;
            state = envelope
                .payload
                .as_ref()
                .and_then(|p| A::fold(state.clone(), p));
        }
        Ok(state)
    }

    /// Publishes a one-event aggregate (audit records, sessions); nothing is kept in Redis.
    pub async fn record(
        &self,
        topic: Topic,
        kind: &str,
        id: &str,
        key: &str,
        payload: Payload,
    ) -> Result<()> {
        let envelope = new_envelope(&AggregateRef::new(kind, id), 1, &self.producer, payload);
        self.publisher.publish(topic, key, &envelope).await?;
        Ok(())
    }

    /// Keeps an event read from a topic (or just published) in its aggregate's list unless it
    /// is there already; `true` when it was new.
    pub async fn keep(&self, envelope: &EventEnvelope) -> Result<bool> {
        let key = self.list_key(&envelope.aggregate_type, &envelope.aggregate_id);
        match self
            .store
            .append_next(&key, envelope.sequence, &envelope.encode_to_vec())
            .await?
        {
            Appended::Appended => {
                self.refresh_facts(&envelope.aggregate_type, &envelope.aggregate_id)
                    .await?;
                Ok(true)
            }
            Appended::AlreadyThere => Ok(false),
            Appended::Gap { len } => Err(GatewayError::Internal(format!(
                "{} {} has {len} events but event {} arrived; events are missing",
                envelope.aggregate_type, envelope.aggregate_id, envelope.sequence
            ))),
        }
    }

    /// The read model of the transaction path.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Rewrites the read-model facts of a merchant or terminal from its events.
    async fn refresh_facts(&self, kind: &str, id: &str) -> Result<()> {
        if kind == merchant::AGGREGATE_TYPE {
            if let Some(state) = self.load::<MerchantState>(id).await? {
                let onboarded = &state.onboarded;
                let limit = onboarded.per_transaction_limit.as_ref();
                self.facts
                    .put_merchant(&MerchantFacts {
                        merchant_id: id.to_owned(),
                        status: state.status.to_string(),
                        name: onboarded.display_name.clone(),
                        city: onboarded.city.clone(),
                        mcc: state.mcc.to_string(),
                        limit_minor: limit.map(|m| m.minor_units),
                        currency: limit.map_or_else(|| "CNY".to_owned(), |m| m.currency.clone()),
                    })
                    .await?;
            }
        } else if kind == terminal::AGGREGATE_TYPE
            && let Some(state) = self.load::<TerminalState>(id).await?
        {
            self.facts
                .put_terminal(&TerminalFacts {
                    terminal_id: id.to_owned(),
                    merchant_id: state.merchant_id.to_string(),
                    status: state.status.to_string(),
                })
                .await?;
        }
        Ok(())
    }

    /// Serializes commands on one aggregate across gateway instances: waits up to 5 s for the
    /// lock, which expires by itself after 10 s if its holder dies.
    pub async fn lock(&self, kind: &str, id: &str) -> Result<pos_store::Lock> {
        let name = format!("{kind}:{id}");
        for _ in 0..100 {
            if let Some(lock) = self.store.try_lock(&name, Duration::from_secs(10)).await? {
                return Ok(lock);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(GatewayError::Busy(format!(
            "{kind} {id} is busy; try again"
        )))
    }
}
