//! Merchant settlement per business day (商户结算): gross, fee, net to the merchant's
//! settlement account, the settlement file, one `MerchantSettled` per merchant and date; and
//! the late steps carried into a later settlement as adjustments.
//!
//! Layout: `steps` (pure: the money steps of the transaction events), `compute` (pure: the
//! figures and the fee of each line), `file` (the CSV), `days` (Redis), `project` (the
//! projection, hooked into [`crate::follow::apply`], and the merchants' fee schedules); this
//! module runs settlements, records adjustments and answers reads.
//!
//! A run settles only closed dates ([`crate::day`]). Everything a run reads is in the
//! projection, so the figures are the same live and after Redis is rebuilt from the topics;
//! running again for a settled day returns what was settled (no event, no change). A run waits
//! for nothing: a step that the projection applies after its date was settled (in flight at
//! the cut, or a date closed early) is late and is carried, with its fee, by the merchant's
//! next settlement of a later date, never lost.

mod compute;
mod days;
mod file;
mod project;
mod steps;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pos_domain::MerchantId;
use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use pos_proto::v1 as pb;
use pos_store::Store;
use tonic::Status;
use tracing::{info, warn};

use crate::day::{ClosedDays, day_number, parse_date};
use crate::fees::RefundFee;
use compute::{ComputeError, Context, Figures, cny};
pub use days::Days;
pub use project::{apply, follow_merchants};
use steps::Step;

/// Result alias of merchant settlement.
pub type Result<T, E = MerchantError> = std::result::Result<T, E>;

/// What can go wrong settling or reading settlements.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    /// The request is malformed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The business date is not closed yet.
    #[error("business date {date} is not closed yet (today's business date is {today})")]
    NotClosed {
        /// Date asked.
        date: String,
        /// Today's business date.
        today: String,
    },
    /// No such merchant or settlement.
    #[error("{0}")]
    NotFound(String),
    /// The figures cannot be computed (no fee schedule, another currency).
    #[error("merchant {merchant_id}: {source}")]
    Compute {
        /// Merchant.
        merchant_id: String,
        /// Why.
        source: ComputeError,
    },
    /// Another run holds the merchant.
    #[error("another settlement of the same merchant is in progress: try again")]
    Busy,
    /// Redis failed.
    #[error("store: {0}")]
    Store(#[from] pos_store::StoreError),
    /// The broker failed.
    #[error("event bus: {0}")]
    Bus(#[from] pos_events::BusError),
    /// The settlement file could not be written.
    #[error("settlement file: {0}")]
    File(#[from] std::io::Error),
}

impl From<MerchantError> for Status {
    fn from(error: MerchantError) -> Self {
        let message = error.to_string();
        match error {
            MerchantError::Malformed(_) => Status::invalid_argument(message),
            MerchantError::NotClosed { .. } | MerchantError::Compute { .. } => {
                Status::failed_precondition(message)
            }
            MerchantError::NotFound(_) => Status::not_found(message),
            MerchantError::Busy => Status::aborted(message),
            MerchantError::Store(_) | MerchantError::Bus(_) | MerchantError::File(_) => {
                warn!(%message, "merchant settlement call not done");
                Status::unavailable(message)
            }
        }
    }
}

/// How merchant settlement is configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where settlement files are written.
    pub files_dir: PathBuf,
    /// Which dates are closed.
    pub closed: ClosedDays,
    /// Refund fee policy when a merchant's schedule leaves it unspecified.
    pub refund_default: RefundFee,
}

/// Merchant settlement: runs, reads, adjustments.
#[derive(Debug)]
pub struct MerchantSettlements {
    days: Days,
    publisher: EventPublisher,
    settings: Settings,
}

/// How often the recorder looks for late steps to record as adjustments.
const RECORD_EVERY: Duration = Duration::from_millis(500);

fn merchant_id(text: &str) -> Result<String> {
    MerchantId::parse(text)
        .map(|m| m.as_str().to_owned())
        .map_err(|e| MerchantError::Malformed(format!("merchant_id: {e}")))
}

fn date(text: &str, field: &str) -> Result<String> {
    parse_date(text).map(str::to_owned).ok_or_else(|| {
        MerchantError::Malformed(format!("{field} {text:?} is not a date YYYY-MM-DD"))
    })
}

fn kind_word(step: &Step) -> &'static str {
    match step.kind {
        steps::Kind::Purchase => "purchase",
        steps::Kind::Completion => "completion",
        steps::Kind::Void => "void",
        steps::Kind::Refund => "refund",
        steps::Kind::Reversal => "reversal",
    }
}

impl MerchantSettlements {
    /// Merchant settlement over `store`, publishing with `publisher`.
    pub fn new(store: Store, publisher: EventPublisher, settings: Settings) -> Self {
        Self {
            days: Days::new(store),
            publisher,
            settings,
        }
    }

    /// The Redis state.
    pub fn days(&self) -> &Days {
        &self.days
    }

    async fn locked<T>(
        &self,
        merchant_id: &str,
        run: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(lock) = self.days.lock(merchant_id).await? else {
            return Err(MerchantError::Busy);
        };
        let result = run().await;
        if let Err(error) = lock.release().await {
            warn!(%error, "releasing a merchant lock");
        }
        result
    }

    async fn publish(
        &self,
        merchant_id: &str,
        date: &str,
        seq: u64,
        payload: Payload,
    ) -> Result<()> {
        let aggregate = AggregateRef::new("merchant_settlement", format!("{merchant_id}:{date}"));
        let envelope = new_envelope(&aggregate, seq, crate::service::PRODUCER, payload);
        self.publisher
            .publish(Topic::Settlement, merchant_id, &envelope)
            .await?;
        Ok(())
    }

    /// What the figures of `steps` need: their originals (and theirs) and the merchant's fee
    /// schedules of every date involved and of `dates`.
    async fn context(&self, merchant_id: &str, steps: &[Step], dates: &[&str]) -> Result<Context> {
        let mut context = Context {
            refund_default: Some(self.settings.refund_default),
            ..Context::default()
        };
        for _ in 0..4 {
            let missing = context.missing_originals(steps.iter().chain(context.steps.values()));
            let found = self.days.steps(&missing).await?;
            if found.is_empty() {
                break;
            }
            context
                .steps
                .extend(found.into_iter().map(|s| (s.key.clone(), s)));
        }
        let wanted: BTreeSet<String> = steps
            .iter()
            .chain(context.steps.values())
            .map(|s| s.business_date.clone())
            .chain(dates.iter().map(|d| (*d).to_owned()))
            .collect();
        context.schedules = self
            .days
            .schedules(merchant_id, wanted)
            .await?
            .into_iter()
            .collect();
        Ok(context)
    }

    /// Records the late steps (of one merchant, or all) as adjustment events.
    pub async fn record_pending(&self, only: Option<&str>) -> Result<usize> {
        let keys = self.days.pending().await?;
        let mut late = self.days.steps(&keys).await?;
        late.retain(|s| only.is_none_or(|m| m == s.merchant_id));
        let merchants: BTreeSet<String> = late.iter().map(|s| s.merchant_id.clone()).collect();
        let mut recorded = 0;
        for merchant in merchants {
            let theirs: Vec<&Step> = late.iter().filter(|s| s.merchant_id == merchant).collect();
            recorded += self
                .locked(&merchant, async || {
                    self.record_locked(&merchant, &theirs).await
                })
                .await?;
        }
        Ok(recorded)
    }

    async fn record_locked(&self, merchant_id: &str, late: &[&Step]) -> Result<usize> {
        let mut recorded = 0;
        for step in late {
            if self.days.has_adjustment(merchant_id, &step.key).await? {
                continue;
            }
            let context = self.context(merchant_id, &[(*step).clone()], &[]).await?;
            let fee = context
                .natural_fee(step)
                .map_err(|source| MerchantError::Compute {
                    merchant_id: merchant_id.to_owned(),
                    source,
                })?;
            let adjustment = pb::SettlementAdjustment {
                adjustment_id: step.key.clone(),
                merchant_id: merchant_id.to_owned(),
                transaction_id: step.transaction_id().to_owned(),
                original_business_date: step.business_date.clone(),
                applied_business_date: String::new(),
                transaction_type: step.transaction_type,
                amount: Some(cny(step.effect())),
                fee: Some(cny(fee)),
                reason: format!(
                    "{} after the settlement of {}",
                    kind_word(step),
                    step.business_date
                ),
            };
            let seq = self.days.seq(merchant_id, &step.business_date).await? + 1;
            let event = pb::SettlementAdjustmentRecorded {
                adjustment: Some(adjustment.clone()),
            };
            self.publish(
                merchant_id,
                &step.business_date,
                seq,
                Payload::SettlementAdjustmentRecorded(event),
            )
            .await?;
            self.days.record_adjustment(&adjustment, seq).await?;
            info!(%merchant_id, step = %step.key, business_date = %step.business_date, amount = step.effect(), fee, "late step recorded as an adjustment");
            recorded += 1;
        }
        Ok(recorded)
    }

    /// Settles a closed business date: every merchant with activity or open adjustments, or
    /// only the one asked. Settled days are returned as they were.
    pub async fn run(
        &self,
        request: pb::RunMerchantSettlementRequest,
    ) -> Result<pb::RunMerchantSettlementResponse> {
        let date = date(&request.business_date, "business_date")?;
        let only = (!request.merchant_id.is_empty())
            .then(|| merchant_id(&request.merchant_id))
            .transpose()?;
        let today = self.settings.closed.today();
        if !self.settings.closed.is_closed(&date, &today) {
            return Err(MerchantError::NotClosed { date, today });
        }
        self.record_pending(only.as_deref()).await?;
        let merchants = match &only {
            Some(merchant) => {
                let known = self.days.terms(merchant).await?.is_some()
                    || self.days.active(&date).await?.contains(merchant);
                if !known {
                    return Err(MerchantError::NotFound(format!(
                        "merchant {merchant} is not known to settlement"
                    )));
                }
                vec![merchant.clone()]
            }
            None => self.merchants_to_settle(&date).await?,
        };
        let mut settlements = Vec::with_capacity(merchants.len());
        let mut created_count = 0;
        for merchant in merchants {
            let (settlement, created) = self
                .locked(&merchant, async || {
                    self.settle_locked(&merchant, &date).await
                })
                .await?;
            created_count += u32::from(created);
            settlements.push(settlement);
        }
        Ok(pb::RunMerchantSettlementResponse {
            business_date: date,
            settlements,
            created_count,
        })
    }

    /// Merchants with lines on `date`, with adjustments a settlement of `date` would carry, or
    /// settled on `date` already.
    async fn merchants_to_settle(&self, date: &str) -> Result<Vec<String>> {
        let mut merchants: BTreeSet<String> = self.days.active(date).await?.into_iter().collect();
        for merchant in self.days.adjusted().await? {
            let open = self.days.open_adjustments(&merchant).await?;
            if open
                .iter()
                .any(|a| a.original_business_date.as_str() < date)
            {
                merchants.insert(merchant);
            }
        }
        if let Some(day) = day_number(date) {
            merchants.extend(
                self.days
                    .settled_between(day, day)
                    .await?
                    .into_iter()
                    .map(|(_, m)| m),
            );
        }
        Ok(merchants.into_iter().collect())
    }

    async fn settle_locked(
        &self,
        merchant_id: &str,
        date: &str,
    ) -> Result<(pb::MerchantSettlement, bool)> {
        self.record_locked(
            merchant_id,
            &self
                .days
                .steps(&self.days.pending().await?)
                .await?
                .iter()
                .filter(|s| s.merchant_id == merchant_id)
                .collect::<Vec<_>>(),
        )
        .await?;
        if let Some(settled) = self.days.settlement(merchant_id, date).await? {
            self.rewrite_missing_file(&settled).await;
            return Ok((settled, false));
        }
        let steps = self
            .days
            .steps(&self.days.day(merchant_id, date).await?)
            .await?;
        let adjustments: Vec<pb::SettlementAdjustment> = self
            .days
            .open_adjustments(merchant_id)
            .await?
            .into_iter()
            .filter(|a| a.original_business_date.as_str() < date)
            .map(|a| pb::SettlementAdjustment {
                applied_business_date: date.to_owned(),
                ..a
            })
            .collect();
        let context = self.context(merchant_id, &steps, &[date]).await?;
        let fee_schedule = context.schedules.get(date).cloned();
        let figures = compute::figures(steps, &adjustments, &context).map_err(|source| {
            MerchantError::Compute {
                merchant_id: merchant_id.to_owned(),
                source,
            }
        })?;
        let account = self
            .days
            .terms(merchant_id)
            .await?
            .map(|t| t.account_masked)
            .unwrap_or_default();
        let mut settlement = self.settlement(merchant_id, date, &figures, adjustments, account);
        settlement.fee_schedule = fee_schedule;
        let content = file::content(&settlement, &figures);
        let path = file::write(&self.settings.files_dir, &settlement.file_name, &content).await?;
        settlement.file_path = path.display().to_string();
        let seq = self.days.seq(merchant_id, date).await? + 1;
        let event = pb::MerchantSettled {
            settlement: Some(settlement.clone()),
        };
        self.publish(merchant_id, date, seq, Payload::MerchantSettled(event))
            .await?;
        self.days.record_settled(&settlement, seq).await?;
        info!(
            %merchant_id,
            business_date = %date,
            gross = figures.gross,
            fee = figures.fee,
            net = figures.net,
            adjustments = settlement.adjustments.len(),
            "merchant settled"
        );
        Ok((settlement, true))
    }

    fn settlement(
        &self,
        merchant_id: &str,
        date: &str,
        figures: &Figures,
        adjustments: Vec<pb::SettlementAdjustment>,
        account: String,
    ) -> pb::MerchantSettlement {
        pb::MerchantSettlement {
            settlement_id: format!("{merchant_id}:{date}"),
            merchant_id: merchant_id.to_owned(),
            business_date: date.to_owned(),
            gross: Some(cny(figures.gross)),
            fee: Some(cny(figures.fee)),
            net: Some(cny(figures.net)),
            purchases: Some(figures.purchases.proto()),
            completions: Some(figures.completions.proto()),
            voids: Some(figures.voids.proto()),
            reversals: Some(figures.reversals.proto()),
            refunds: Some(figures.refunds.proto()),
            adjustments_total: Some(cny(figures.adjustments_total)),
            adjustments,
            transaction_count: u32::try_from(figures.lines.len()).unwrap_or(u32::MAX),
            file_name: file::file_name(merchant_id, date),
            file_path: String::new(),
            settlement_account_masked: account,
            fee_schedule: None,
            settled_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        }
    }

    /// Writes a settled day's file again when it is missing (another host, a cleaned
    /// directory): the lines of a settled day do not change, so it is the same file.
    async fn rewrite_missing_file(&self, settled: &pb::MerchantSettlement) {
        if std::path::Path::new(&settled.file_path).exists() {
            return;
        }
        let (merchant_id, date) = (&settled.merchant_id, &settled.business_date);
        let written = async {
            let steps = self
                .days
                .steps(&self.days.day(merchant_id, date).await?)
                .await?;
            let context = self.context(merchant_id, &steps, &[date]).await?;
            let figures =
                compute::figures(steps, &settled.adjustments, &context).map_err(|source| {
                    MerchantError::Compute {
                        merchant_id: merchant_id.clone(),
                        source,
                    }
                })?;
            let content = file::content(settled, &figures);
            Ok::<_, MerchantError>(
                file::write(&self.settings.files_dir, &settled.file_name, &content).await?,
            )
        }
        .await;
        match written {
            Ok(path) => info!(path = %path.display(), "settlement file written again"),
            Err(error) => warn!(%error, %merchant_id, %date, "writing a missing settlement file"),
        }
    }

    /// One merchant's settlement of one date.
    pub async fn get(
        &self,
        request: pb::GetMerchantSettlementRequest,
    ) -> Result<pb::GetMerchantSettlementResponse> {
        let merchant = merchant_id(&request.merchant_id)?;
        let date = date(&request.business_date, "business_date")?;
        let settlement = self
            .days
            .settlement(&merchant, &date)
            .await?
            .ok_or_else(|| {
                MerchantError::NotFound(format!("merchant {merchant} has no settlement of {date}"))
            })?;
        Ok(pb::GetMerchantSettlementResponse {
            settlement: Some(settlement),
        })
    }

    /// Settlements in a date range, newest business date first.
    pub async fn list(
        &self,
        request: pb::ListSettlementsRequest,
    ) -> Result<pb::ListSettlementsResponse> {
        let only = (!request.merchant_id.is_empty())
            .then(|| merchant_id(&request.merchant_id))
            .transpose()?;
        let bound = |text: &str, field: &str, open: i64| -> Result<i64> {
            if text.is_empty() {
                return Ok(open);
            }
            Ok(day_number(&date(text, field)?).unwrap_or(open))
        };
        let from = bound(&request.from_date, "from_date", -1_000_000)?;
        let to = bound(&request.to_date, "to_date", 1_000_000)?;
        let mut found: Vec<(String, String)> = self
            .days
            .settled_between(from, to)
            .await?
            .into_iter()
            .filter(|(_, m)| only.as_ref().is_none_or(|o| o == m))
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let page = request.page.unwrap_or_default();
        let size = match page.page_size {
            0 => 50,
            n => n.min(500),
        } as usize;
        let start: usize = if page.page_token.is_empty() {
            0
        } else {
            page.page_token.parse().map_err(|_| {
                MerchantError::Malformed("page_token is not from this list".to_owned())
            })?
        };
        let mut settlements = Vec::new();
        for (date, merchant) in found.iter().skip(start).take(size) {
            if let Some(settlement) = self.days.settlement(merchant, date).await? {
                settlements.push(settlement);
            }
        }
        let next = start + size;
        Ok(pb::ListSettlementsResponse {
            settlements,
            page: Some(pb::PageResponse {
                next_page_token: if next < found.len() {
                    next.to_string()
                } else {
                    String::new()
                },
            }),
        })
    }
}

/// Records late steps as adjustments until `shutdown`: a late step is an event within a
/// moment of its arrival, so a Redis rebuilt from the topics knows it as late.
pub async fn record_adjustments(
    service: Arc<MerchantSettlements>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(RECORD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                if let Err(error) = service.record_pending(None).await {
                    warn!(%error, "recording late steps as adjustments; will retry");
                }
            }
        }
    }
}
