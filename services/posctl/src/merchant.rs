//! `posctl merchant …`

use clap::{Args, Subcommand, ValueEnum};
use pos_domain::{Currency, Money};
use pos_proto::v1 as pb;

use crate::client::Connection;
use crate::print;

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Onboard a new merchant (status pending until approved).
    Onboard(Box<OnboardArgs>),
    /// Show one merchant.
    Show { merchant_id: String },
    /// List merchants.
    List,
    /// Approve a pending merchant.
    Approve {
        merchant_id: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Activate an approved (or re-activate a suspended) merchant: it may then transact.
    Activate {
        merchant_id: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Suspend a merchant: every transaction is refused.
    Suspend {
        merchant_id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// 小微商户: no business licence.
    Micro,
    /// Enterprise or individual business with a licence.
    Enterprise,
}

#[derive(Debug, Args)]
pub struct OnboardArgs {
    #[arg(long = "type", value_enum)]
    kind: Kind,
    /// Registered (legal) name.
    #[arg(long)]
    name: String,
    /// Name printed on receipts (defaults to the legal name).
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    city: String,
    #[arg(long)]
    address: String,
    /// Unified social credit code (enterprise only).
    #[arg(long, default_value = "")]
    licence: String,
    #[arg(long)]
    legal_person: String,
    /// Legal person's resident ID number.
    #[arg(long)]
    id_number: String,
    #[arg(long, default_value = "")]
    phone: String,
    #[arg(long)]
    account_name: String,
    #[arg(long)]
    account_number: String,
    #[arg(long)]
    bank: String,
    #[arg(long, default_value = "")]
    bank_code: String,
    #[arg(long)]
    mcc: String,
    /// Debit card rate as a fraction, e.g. 0.0050 for 0.50 %.
    #[arg(long)]
    debit_rate: String,
    /// Fee cap per debit transaction in yuan, e.g. 20.00.
    #[arg(long)]
    debit_cap: Option<String>,
    #[arg(long)]
    credit_rate: String,
    #[arg(long)]
    credit_cap: Option<String>,
    /// Largest amount of one transaction in yuan.
    #[arg(long, default_value = "50000.00")]
    limit: String,
    /// Trading window "HH:MM-HH:MM" (repeatable).
    #[arg(long = "hours")]
    hours: Vec<String>,
    /// A night business (exempt from the night-time fraud rule).
    #[arg(long)]
    night_business: bool,
    /// The merchant accepted the electronic agreement.
    #[arg(long)]
    accept_agreement: bool,
    #[arg(long, default_value = "2025-01")]
    agreement_version: String,
    /// Idempotency key of this onboarding: a retry with the same key returns the same
    /// merchant instead of a second one. A fresh one is made when omitted.
    #[arg(long)]
    request_id: Option<String>,
}

fn cny(text: &str, what: &str) -> anyhow::Result<pb::Money> {
    let money =
        Money::parse_major(text, Currency::CNY).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(pb::Money {
        minor_units: money
            .to_minor()
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?,
        currency: "CNY".to_owned(),
    })
}

fn window(text: &str) -> anyhow::Result<pb::TradingWindow> {
    let (opens, closes) = text
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("--hours must look like 08:00-22:00, got {text}"))?;
    Ok(pb::TradingWindow {
        opens_at: opens.to_owned(),
        closes_at: closes.to_owned(),
    })
}

fn onboard_request(args: OnboardArgs) -> anyhow::Result<pb::OnboardMerchantRequest> {
    let merchant_type = match args.kind {
        Kind::Micro => pb::MerchantType::Micro,
        Kind::Enterprise => pb::MerchantType::Enterprise,
    };
    Ok(pb::OnboardMerchantRequest {
        request_id: args
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        merchant_type: merchant_type as i32,
        display_name: args.display_name.unwrap_or_else(|| args.name.clone()),
        legal_name: args.name,
        city: args.city,
        address: args.address,
        business_licence_no: args.licence,
        legal_person_name: args.legal_person,
        legal_person_id_number: args.id_number,
        contact_phone: args.phone,
        settlement_account: Some(pb::SettlementAccountInput {
            account_name: args.account_name,
            account_number: args.account_number,
            bank_name: args.bank,
            bank_code: args.bank_code,
        }),
        mcc: args.mcc,
        fee_schedule: Some(pb::FeeSchedule {
            debit_rate: args.debit_rate,
            debit_cap: args.debit_cap.map(|c| cny(&c, "--debit-cap")).transpose()?,
            credit_rate: args.credit_rate,
            credit_cap: args
                .credit_cap
                .map(|c| cny(&c, "--credit-cap"))
                .transpose()?,
            ..pb::FeeSchedule::default()
        }),
        trading_hours: Some(pb::TradingHours {
            windows: args
                .hours
                .iter()
                .map(|h| window(h))
                .collect::<Result<_, _>>()?,
            time_zone: String::new(),
            night_business: args.night_business,
        }),
        per_transaction_limit: Some(cny(&args.limit, "--limit")?),
        agreement: Some(pb::AgreementAcceptance {
            accepted: args.accept_agreement,
            version: args.agreement_version,
            accepted_at: args
                .accept_agreement
                .then(|| prost_types::Timestamp::from(std::time::SystemTime::now())),
        }),
    })
}

/// Runs one `posctl merchant` command.
pub async fn run(connection: &Connection, command: MerchantCommand) -> anyhow::Result<()> {
    let mut api = connection.management().await?;
    let merchant = match command {
        MerchantCommand::Onboard(args) => {
            let request = onboard_request(*args)?;
            api.onboard_merchant(request).await?.into_inner().merchant
        }
        MerchantCommand::Show { merchant_id } => {
            api.get_merchant(pb::GetMerchantRequest { merchant_id })
                .await?
                .into_inner()
                .merchant
        }
        MerchantCommand::List => {
            let list = api
                .list_merchants(pb::ListMerchantsRequest::default())
                .await?
                .into_inner();
            for merchant in &list.merchants {
                print::merchant_line(merchant);
            }
            return Ok(());
        }
        MerchantCommand::Approve { merchant_id, note } => {
            api.approve_merchant(pb::ApproveMerchantRequest { merchant_id, note })
                .await?
                .into_inner()
                .merchant
        }
        MerchantCommand::Activate { merchant_id, note } => {
            api.activate_merchant(pb::ActivateMerchantRequest { merchant_id, note })
                .await?
                .into_inner()
                .merchant
        }
        MerchantCommand::Suspend {
            merchant_id,
            reason,
        } => {
            api.suspend_merchant(pb::SuspendMerchantRequest {
                merchant_id,
                reason,
            })
            .await?
            .into_inner()
            .merchant
        }
    };
    let merchant = merchant.ok_or_else(|| anyhow::anyhow!("the gateway returned no merchant"))?;
    print::merchant(&merchant);
    Ok(())
}
