//! The terminal's commands, each one exchange with the host; financial requests go through
//! the journal and the reversal flow of [`financial`].

mod financial;
#[cfg(test)]
mod flow_tests;
mod settle;
mod void_refund;

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use pos_crypto::{DesKey, DeviceKeyPair, SealedTmk, pinblock};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_client::TerminalGatewayClient;
use pos_proto::v1::terminal_message::Body;
use rand::RngCore;
use tonic::transport::Channel;

use crate::answer::Original;
use crate::device::{DataDir, Identity, Session};
use crate::journal::{self, Journal};
use crate::link::Link;
use crate::original;
use crate::reversal;
use crate::sale::{self, Clock};

use financial::{Header, Plan, Request};
pub use void_refund::{Refund, Void};

/// The software version reported at sign-in.
const SOFTWARE_VERSION: &str = concat!("pos-agent ", env!("CARGO_PKG_VERSION"));

/// The terminal: its data directory and its host.
#[derive(Debug)]
pub struct Terminal {
    dir: DataDir,
    gateway: String,
    ca: Option<std::path::PathBuf>,
    answer_timeout: Duration,
}

impl Terminal {
    /// A terminal whose state lives in `dir`, talking to `gateway`, waiting `answer_timeout`
    /// for each answer.
    pub fn new(
        dir: DataDir,
        gateway: String,
        ca: Option<std::path::PathBuf>,
        answer_timeout: Duration,
    ) -> Self {
        Self {
            dir,
            gateway,
            ca,
            answer_timeout,
        }
    }

    /// A connection to the host (https verified against `--ca`, or plain http).
    async fn channel(&self) -> anyhow::Result<Channel> {
        pos_tls::tool_endpoint(&self.gateway, self.ca.as_deref())
            .with_context(|| format!("host address {}", self.gateway))?
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("cannot reach the host at {}", self.gateway))
    }

    /// A new `Connect` stream to the host.
    async fn link(&self, identity: &Identity) -> anyhow::Result<Link> {
        Link::open(
            self.channel().await?,
            &identity.terminal_id,
            self.answer_timeout,
        )
        .await
    }

    fn journal(&self) -> anyhow::Result<Journal> {
        Journal::open(&self.dir.journal())
    }

    /// Activation: an ephemeral X25519 key pair, the code and the serial go to the host, the
    /// TMK comes back sealed to this device and is checked against its check value.
    pub async fn activate(&self, code: &str, serial: &str) -> anyhow::Result<()> {
        if self.dir.is_activated() {
            bail!("this device is already activated; use a fresh data directory to re-bind it");
        }
        let device = DeviceKeyPair::generate();
        let channel = self.channel().await?;
        let answer = TerminalGatewayClient::new(channel)
            .activate(pb::ActivateRequest {
                activation_code: code.trim().to_owned(),
                serial_number: serial.to_owned(),
                device_public_key: device.public_key().to_vec(),
                ..pb::ActivateRequest::default()
            })
            .await
            .map_err(|status| anyhow::anyhow!("activation refused: {}", status.message()))?
            .into_inner();
        let sealed = SealedTmk {
            host_public_key: fixed(&answer.host_public_key, "host public key")?,
            nonce: fixed(&answer.tmk_nonce, "nonce")?,
            ciphertext: answer.tmk_ciphertext.clone(),
        };
        let tmk = device
            .open_tmk(&sealed, &answer.terminal_id)
            .context("the terminal master key could not be opened")?;
        if tmk.check_value().as_slice() != answer.tmk_check_value.as_slice() {
            bail!("the terminal master key does not match its check value; activation aborted");
        }
        self.dir.save_identity(&Identity {
            terminal_id: answer.terminal_id.clone(),
            merchant_id: answer.merchant_id.clone(),
            merchant_name: answer.merchant_name.clone(),
            serial_number: serial.to_owned(),
            tmk: hex::encode(tmk.expose_bytes()),
        })?;
        println!(
            "activated: terminal {} of merchant {} ({})",
            answer.terminal_id, answer.merchant_id, answer.merchant_name
        );
        println!(
            "operators: 00 (supervisor) and 01 (cashier) with password 0000; change it at first login"
        );
        Ok(())
    }

    /// Sign-in 签到: MACed under the TMK; the working keys arrive under the TMK and are checked
    /// against their check values before they are kept. Pending reversals follow on the same
    /// stream; the sign-in stands even when they cannot be delivered yet.
    pub async fn sign_in(&self) -> anyhow::Result<()> {
        let identity = self.dir.identity()?;
        let tmk = identity.tmk()?;
        let journal = self.journal()?;
        let previous = self.dir.session().ok();
        let mut nonce = vec![0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let request = pb::SignInRequest {
            terminal_id: identity.terminal_id.clone(),
            serial_number: identity.serial_number.clone(),
            software_version: SOFTWARE_VERSION.to_owned(),
            nonce,
            terminal_time: Some(prost_types::Timestamp::from(SystemTime::now())),
            open_batch_no: previous.as_ref().map_or(0, |s| s.batch_no),
            pending_reversals: journal.pending_count()?,
        };
        let mut link = self.link(&identity).await?;
        let answer = link.exchange(1, Body::SignIn(request), &tmk, None).await?;
        let response = match answer {
            HostBody::SignIn(response) => response,
            other => return Err(refusal(other)),
        };
        let pin_key = working_key(
            &tmk,
            &response.pin_key_under_tmk,
            &response.pin_key_check_value,
            "PIN",
        )?;
        let mac_key = working_key(
            &tmk,
            &response.mac_key_under_tmk,
            &response.mac_key_check_value,
            "MAC",
        )?;
        let mut session = Session {
            key_version: response.key_version,
            pin_key: hex::encode(pin_key.expose_bytes()),
            mac_key: hex::encode(mac_key.expose_bytes()),
            batch_no: response.batch_no,
            next_message_seq: 1,
            operator_no: String::new(),
            next_stan: previous.as_ref().map_or(1, |s| s.next_stan),
        };
        self.dir.save_session(&session)?;
        println!(
            "signed in: terminal {} batch {:06} key version {}",
            identity.terminal_id, response.batch_no, response.key_version
        );
        println!(
            "merchant: {} {}",
            response.merchant_id, response.merchant_name
        );
        if response.settlement_pending {
            println!(
                "隔日强制结算 forced settlement: the open batch began on an earlier business day; \
                 log in and run `pos-agent settle` before any new transaction"
            );
        }
        let left = reversal::send_pending(&mut link, &self.dir, &mut session, &journal).await?;
        if left > 0 {
            println!(
                "{left} reversal(s) still pending: they go out before the next transaction, or with `pos-agent reverse`"
            );
        }
        Ok(())
    }

    /// Operator login: the password travels as a format-1 block under the PIN key.
    pub async fn login(&self, operator: &str, password: &str) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let block = password_block(&session.pin_key()?, password)?;
        let body = Body::OperatorLogin(pb::OperatorLoginRequest {
            operator_no: operator.to_owned(),
            password_block: block,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        let HostBody::OperatorLogin(response) = answer else {
            return Err(refusal(answer));
        };
        if response.response_code != "00" {
            bail!(
                "login refused ({}): {}{}",
                response.response_code,
                response.response_message,
                if response.remaining_attempts > 0 {
                    format!("; {} attempts left", response.remaining_attempts)
                } else {
                    String::new()
                }
            );
        }
        session.operator_no = operator.to_owned();
        self.dir.save_session(&session)?;
        println!("operator {operator} logged in");
        if response.must_change_password {
            println!(
                "the default password must be changed: pos-agent password --operator {operator} --old OLD --new NEW"
            );
        }
        Ok(())
    }

    /// Password change of an operator.
    pub async fn change_password(
        &self,
        operator: &str,
        old: &str,
        new: &str,
    ) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let pin_key = session.pin_key()?;
        let body = Body::ChangeOperatorPassword(pb::ChangeOperatorPassword {
            operator_no: operator.to_owned(),
            current_password_block: password_block(&pin_key, old)?,
            new_password_block: password_block(&pin_key, new)?,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        acknowledged(answer, "password change")?;
        println!("operator {operator}: password changed");
        Ok(())
    }

    /// Supervisor unlock of a locked cashier.
    pub async fn unlock(&self, operator: &str, supervisor_password: &str) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let body = Body::UnlockOperator(pb::UnlockOperatorOnTerminal {
            operator_no: operator.to_owned(),
            supervisor_password_block: password_block(&session.pin_key()?, supervisor_password)?,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        acknowledged(answer, "unlock")?;
        println!("operator {operator} unlocked");
        Ok(())
    }

    /// A financial transaction (purchase, balance inquiry, pre-auth, completion, pre-auth void).
    pub async fn transact(&self, request: Transaction<'_>) -> anyhow::Result<()> {
        let (identity, session) = self.cashier()?;
        let (card, mode) = sale::present_card(request.card, request.entry)?;
        let amount = request.amount.map(sale::keyed_amount).transpose()?;
        let clock = Clock::now();
        let mut card_data = sale::card_data(
            &card,
            mode,
            minor(amount.as_ref()),
            request.kind.emv_type(),
            &clock,
        );
        if let Some(digits) = request.face_last4 {
            card_data.displayed_last4 = sale::face_last4(digits)?;
        }
        let pin_block = sale::pin_block(request.pin, &card, &session.pin_key()?)?;
        let (approval_code, date) = match request.original {
            Some((code, date)) => (
                code.to_owned(),
                original::date_or_today(date, clock.local())?,
            ),
            None => (String::new(), String::new()),
        };
        let plan = Plan {
            request: Request::from(request.kind),
            amount: amount.clone(),
            masked_pan: card.pan.masked().to_string(),
            entry_mode: entry_mode(&card_data),
            local_datetime: clock.iso(),
            types: vec![request.kind.transaction_type()],
            original: Original {
                approval_code: (!approval_code.is_empty()).then(|| approval_code.clone()),
                ..Original::default()
            },
        };
        let kind = request.kind;
        let local_datetime = clock.iso();
        let response = self
            .financial(identity, session, plan, move |header| {
                kind.body(
                    header,
                    amount,
                    card_data,
                    pin_block,
                    local_datetime,
                    approval_code,
                    date,
                )
            })
            .await?;
        sale::conclude(response, &self.dir.receipts(), &clock)?;
        Ok(())
    }

    /// Sends every pending reversal now; fails while any remains.
    pub async fn reverse(&self) -> anyhow::Result<()> {
        let journal = self.journal()?;
        if journal.pending_count()? == 0 {
            println!("no pending reversals");
            return Ok(());
        }
        let (identity, mut session) = self.signed_in()?;
        let mut link = self.link(&identity).await?;
        let left = reversal::send_pending(&mut link, &self.dir, &mut session, &journal).await?;
        if left > 0 {
            bail!("{left} reversal(s) still pending; run `pos-agent reverse` again later");
        }
        println!("no pending reversals");
        Ok(())
    }

    /// Prints the pending reversals and the current batch's transactions with its totals.
    pub fn show_journal(&self) -> anyhow::Result<()> {
        let journal = self.journal()?;
        let pending = journal.pending()?;
        if pending.is_empty() {
            println!("no pending reversals");
        } else {
            println!("pending reversals: {}", pending.len());
        }
        for record in &pending {
            println!("  {record}");
        }
        let Ok(session) = self.dir.session() else {
            println!("no open batch: the terminal has not signed in");
            return Ok(());
        };
        let entries = journal.entries(session.batch_no)?;
        println!(
            "batch {:06}: {} transaction(s)",
            session.batch_no,
            entries.len()
        );
        for entry in &entries {
            println!("  {entry}");
        }
        for (currency, totals) in journal::totals(&entries) {
            println!("totals {currency}: {totals}");
        }
        Ok(())
    }

    /// Identity and session of a signed-in terminal with an operator logged in.
    fn cashier(&self) -> anyhow::Result<(Identity, Session)> {
        let (identity, session) = self.signed_in()?;
        if session.operator_no.is_empty() {
            bail!("no operator is logged in: pos-agent login --operator 01 --password ...");
        }
        Ok((identity, session))
    }

    fn signed_in(&self) -> anyhow::Result<(Identity, Session)> {
        Ok((self.dir.identity()?, self.dir.session()?))
    }

    /// One MACed exchange under the session keys; the message counter is saved before sending
    /// so that a number is never used twice.
    async fn exchange(
        &self,
        identity: &Identity,
        session: &mut Session,
        body: Body,
    ) -> anyhow::Result<HostBody> {
        let seq = session.take_seq();
        self.dir.save_session(session)?;
        let mac_key = session.mac_key()?;
        let mut link = self.link(identity).await?;
        link.exchange(seq, body, &mac_key, Some(&mac_key)).await
    }
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> anyhow::Result<[u8; N]> {
    bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "the host sent a {what} of {} bytes, expected {N}",
            bytes.len()
        )
    })
}

fn working_key(
    tmk: &DesKey,
    under_tmk: &[u8],
    check_value: &[u8],
    name: &str,
) -> anyhow::Result<DesKey> {
    let under_tmk: [u8; 16] = fixed(under_tmk, "working key")?;
    let check_value: [u8; 4] = fixed(check_value, "check value")?;
    tmk.decrypt_working_key(&under_tmk, &check_value)
        .with_context(|| format!("the {name} key failed its check value; sign-in aborted"))
}

/// A password as an ISO 9564 format-1 block under the PIN key.
fn password_block(pin_key: &DesKey, password: &str) -> anyhow::Result<Vec<u8>> {
    let block = pinblock::format1(password).context("passwords are 4 to 12 digits")?;
    Ok(pin_key.encrypt_ecb(&block)?)
}

/// How the card of `data` was read.
fn entry_mode(data: &pb::CardData) -> pb::CardEntryMode {
    pb::CardEntryMode::try_from(data.entry_mode).unwrap_or_default()
}

/// An amount in minor units for field 55 (0 when none).
fn minor(amount: Option<&pb::Money>) -> u64 {
    amount.map_or(0, |m| u64::try_from(m.minor_units).unwrap_or(0))
}

fn acknowledged(answer: HostBody, what: &str) -> anyhow::Result<()> {
    match answer {
        HostBody::Ack(ack) if ack.response_code == "00" => Ok(()),
        HostBody::Ack(ack) => bail!(
            "{what} refused ({}): {}",
            ack.response_code,
            ack.response_message
        ),
        other => Err(refusal(other)),
    }
}

/// An answer that is not what the request expects: the host's error, or a protocol surprise.
fn refusal(answer: HostBody) -> anyhow::Error {
    match answer {
        HostBody::Error(error) => anyhow::anyhow!(
            "refused by the host ({}): {}",
            error.response_code,
            error.response_message
        ),
        other => anyhow::anyhow!("unexpected answer from the host: {other:?}"),
    }
}

/// The kinds of financial transaction the terminal offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 消费.
    Purchase,
    /// 余额查询.
    Balance,
    /// 预授权.
    PreAuth,
    /// 预授权完成.
    Completion,
    /// 预授权撤销.
    PreAuthVoid,
}

/// One financial request as the cashier enters it.
#[derive(Debug)]
pub struct Transaction<'a> {
    /// Which transaction.
    pub kind: Kind,
    /// Amount keyed in yuan ("50.00"); `None` for a balance inquiry.
    pub amount: Option<&'a str>,
    /// `--card`: card file or spec.
    pub card: &'a str,
    /// `--entry`: swipe, chip, tap, fallback.
    pub entry: &'a str,
    /// `--pin`, when the cardholder enters one.
    pub pin: Option<&'a str>,
    /// `--card-face-last4`: the last four printed on the card, as the cashier keyed them.
    pub face_last4: Option<&'a str>,
    /// The pre-authorization's approval code and date (completion and pre-auth void).
    pub original: Option<(&'a str, Option<&'a str>)>,
}

impl Kind {
    /// The contract's type of this transaction.
    fn transaction_type(self) -> pb::TransactionType {
        match self {
            Kind::Purchase => pb::TransactionType::Purchase,
            Kind::Balance => pb::TransactionType::BalanceInquiry,
            Kind::PreAuth => pb::TransactionType::PreAuth,
            Kind::Completion => pb::TransactionType::PreAuthCompletion,
            Kind::PreAuthVoid => pb::TransactionType::PreAuthVoid,
        }
    }

    /// EMV transaction type (9C).
    fn emv_type(self) -> u8 {
        match self {
            Kind::Balance => 0x30,
            Kind::PreAuth | Kind::PreAuthVoid => 0x03,
            Kind::Purchase | Kind::Completion => 0x00,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn body(
        self,
        Header {
            batch_no,
            stan,
            operator_no,
        }: Header,
        amount: Option<pb::Money>,
        card: pb::CardData,
        pin_block: Vec<u8>,
        local_datetime: String,
        original_approval_code: String,
        original_date: String,
    ) -> Body {
        let card = Some(card);
        match self {
            Kind::Purchase => Body::Purchase(pb::PurchaseRequest {
                batch_no,
                stan,
                operator_no,
                amount,
                card,
                pin_block,
                local_datetime,
            }),
            Kind::Balance => Body::BalanceInquiry(pb::BalanceInquiryRequest {
                batch_no,
                stan,
                operator_no,
                card,
                pin_block,
                local_datetime,
                currency: "CNY".to_owned(),
            }),
            Kind::PreAuth => Body::PreAuth(pb::PreAuthRequest {
                batch_no,
                stan,
                operator_no,
                amount,
                card,
                pin_block,
                local_datetime,
            }),
            Kind::Completion => Body::PreAuthCompletion(pb::PreAuthCompletionRequest {
                batch_no,
                stan,
                operator_no,
                amount,
                card,
                pin_block,
                local_datetime,
                original_approval_code,
                original_date,
            }),
            Kind::PreAuthVoid => Body::PreAuthVoid(pb::PreAuthVoidRequest {
                batch_no,
                stan,
                operator_no,
                amount,
                card,
                pin_block,
                local_datetime,
                original_approval_code,
                original_date,
                supervisor_password_block: Vec::new(),
            }),
        }
    }
}
