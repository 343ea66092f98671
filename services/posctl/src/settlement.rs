//! `posctl settlement run|show|list`: merchant settlement per business day, straight from the
//! settlement service (`POSCTL_SETTLEMENT`, default http://127.0.0.1:7004) with the same
//! operator token and CA as every other command; the caller needs the `settlement` (or
//! `admin`) role. Output is `key: value` lines, one block per settlement:
//!
//! ```text
//! settlement_id: 898310048990001:2026-11-27
//! gross: 150.00 CNY
//! fee: 0.90 CNY
//! net: 149.10 CNY
//! purchases: 3 180.00 CNY
//! ...
//! file: /var/pos/settlement-files/settlement_898310048990001_2026-11-27.csv
//! ```

use anyhow::Context;
use clap::Subcommand;
use pos_proto::v1 as pb;
use pos_proto::v1::settlement_client::SettlementClient;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::client::Connection;

/// `posctl settlement`: where the settlement service is, and what to do.
#[derive(Debug, clap::Args)]
pub struct SettlementArgs {
    /// Address of the settlement service.
    #[arg(
        long,
        global = true,
        env = "POSCTL_SETTLEMENT",
        default_value = "http://127.0.0.1:7004"
    )]
    settlement: String,
    #[command(subcommand)]
    command: SettlementCommand,
}

#[derive(Debug, Subcommand)]
enum SettlementCommand {
    /// Settle a closed business date: every merchant with transactions or adjustments, or one.
    /// Running it again changes nothing and prints the same settlements.
    Run {
        /// Business date YYYY-MM-DD (before today's business date).
        #[arg(long)]
        date: String,
        /// Only this merchant.
        #[arg(long)]
        merchant: Option<String>,
    },
    /// One merchant's settlement of one business date, with its adjustments and file.
    Show {
        /// Merchant id.
        #[arg(long)]
        merchant: String,
        /// Business date YYYY-MM-DD.
        #[arg(long)]
        date: String,
    },
    /// Settlements in a date range, newest business date first, one line each.
    List {
        /// Only this merchant's.
        #[arg(long)]
        merchant: Option<String>,
        /// First business date included, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last business date included, YYYY-MM-DD.
        #[arg(long)]
        to: Option<String>,
        /// Settlements per page (0 = the service's default, 50; at most 500).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Page token printed by the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

fn token(connection: &Connection) -> anyhow::Result<String> {
    if let Some(token) = &connection.token {
        return Ok(token.trim().to_owned());
    }
    let text = std::fs::read_to_string(&connection.token_file).with_context(|| {
        format!(
            "no operator token: set POSCTL_TOKEN or put it in {}",
            connection.token_file.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = SettlementClient<InterceptedService<Channel, Bearer>>;

async fn client(connection: &Connection, address: &str) -> anyhow::Result<Client> {
    let header: MetadataValue<Ascii> = format!("Bearer {}", token(connection)?)
        .parse()
        .context("the operator token has characters that cannot be sent")?;
    let channel = pos_tls::tool_endpoint(address, connection.ca.as_deref())
        .with_context(|| format!("settlement address {address}"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach the settlement service at {address}"))?;
    Ok(SettlementClient::with_interceptor(channel, Bearer(header)))
}

/// Runs one `posctl settlement` command.
pub async fn run(connection: &Connection, args: SettlementArgs) -> anyhow::Result<()> {
    let mut api = client(connection, &args.settlement).await?;
    match args.command {
        SettlementCommand::Run { date, merchant } => {
            let answer = api
                .run_merchant_settlement(pb::RunMerchantSettlementRequest {
                    business_date: date,
                    merchant_id: merchant.unwrap_or_default(),
                })
                .await?
                .into_inner();
            println!("business_date: {}", answer.business_date);
            println!("settlements: {}", answer.settlements.len());
            println!("created: {}", answer.created_count);
            for settlement in &answer.settlements {
                println!();
                print_settlement(settlement);
            }
        }
        SettlementCommand::Show { merchant, date } => {
            let settlement = api
                .get_merchant_settlement(pb::GetMerchantSettlementRequest {
                    merchant_id: merchant,
                    business_date: date,
                })
                .await?
                .into_inner()
                .settlement
                .ok_or_else(|| anyhow::anyhow!("the settlement service returned no settlement"))?;
            print_settlement(&settlement);
        }
        SettlementCommand::List {
            merchant,
            from,
            to,
            limit,
            page_token,
        } => {
            let answer = api
                .list_settlements(pb::ListSettlementsRequest {
                    merchant_id: merchant.unwrap_or_default(),
                    from_date: from.unwrap_or_default(),
                    to_date: to.unwrap_or_default(),
                    page: Some(pb::PageRequest {
                        page_size: limit,
                        page_token,
                    }),
                })
                .await?
                .into_inner();
            for s in &answer.settlements {
                println!(
                    "{}  {}  gross {}  fee {}  net {}  adjustments {}",
                    s.business_date,
                    s.merchant_id,
                    money(s.gross.as_ref()),
                    money(s.fee.as_ref()),
                    money(s.net.as_ref()),
                    s.adjustments.len()
                );
            }
            if let Some(next) = answer.page.filter(|p| !p.next_page_token.is_empty()) {
                println!("next_page_token: {}", next.next_page_token);
            }
        }
    }
    Ok(())
}

fn money(m: Option<&pb::Money>) -> String {
    m.map_or_else(
        || "-".to_owned(),
        |m| {
            let sign = if m.minor_units < 0 { "-" } else { "" };
            let abs = m.minor_units.unsigned_abs();
            format!("{sign}{}.{:02} {}", abs / 100, abs % 100, m.currency)
        },
    )
}

fn count(c: Option<&pb::CountAmount>) -> String {
    c.map_or_else(
        || "-".to_owned(),
        |c| format!("{} {}", c.count, money(c.amount.as_ref())),
    )
}

fn type_name(transaction_type: i32) -> &'static str {
    pb::TransactionType::try_from(transaction_type)
        .map(|t| t.as_str_name().trim_start_matches("TRANSACTION_TYPE_"))
        .unwrap_or("UNKNOWN")
}

/// One settlement, in full.
fn print_settlement(s: &pb::MerchantSettlement) {
    println!("settlement_id: {}", s.settlement_id);
    println!("merchant_id: {}", s.merchant_id);
    println!("business_date: {}", s.business_date);
    println!("gross: {}", money(s.gross.as_ref()));
    println!("fee: {}", money(s.fee.as_ref()));
    println!("net: {}", money(s.net.as_ref()));
    println!("purchases: {}", count(s.purchases.as_ref()));
    println!("completions: {}", count(s.completions.as_ref()));
    println!("voids: {}", count(s.voids.as_ref()));
    println!("reversals: {}", count(s.reversals.as_ref()));
    println!("refunds: {}", count(s.refunds.as_ref()));
    println!(
        "adjustments: {} {}",
        s.adjustments.len(),
        money(s.adjustments_total.as_ref())
    );
    for a in &s.adjustments {
        println!(
            "adjustment: {} {} of {} amount {} fee {} ({})",
            a.adjustment_id,
            type_name(a.transaction_type),
            a.original_business_date,
            money(a.amount.as_ref()),
            money(a.fee.as_ref()),
            a.reason
        );
    }
    println!("transactions: {}", s.transaction_count);
    println!("account: {}", s.settlement_account_masked);
    if let Some(fees) = &s.fee_schedule {
        println!(
            "fee_schedule: debit {} cap {}, credit {} cap {}",
            fees.debit_rate,
            money(fees.debit_cap.as_ref()),
            fees.credit_rate,
            money(fees.credit_cap.as_ref())
        );
    }
    println!("file: {}", s.file_path);
}
