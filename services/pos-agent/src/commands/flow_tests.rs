//! The financial flow against a scripted host on loopback: what reaches the host, in which
//! order, and what the journal holds afterwards, when answers come, do not come, fail their
//! MAC or name another transaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pos_crypto::{DesKey, retail_mac};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_server::{TerminalGateway, TerminalGatewayServer};
use pos_proto::v1::terminal_message::Body;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::{Kind, Refund, Terminal, Transaction, Void};
use crate::device::{DataDir, Identity, Session};
use crate::journal::{EntryState, Journal, ReasonCode};
use crate::original::VoidBy;

const MAC_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";
const PIN_KEY: &str = "89ABCDEF0123456776543210FEDCBA98";
const TERMINAL: &str = "12345678";

/// How the scripted host answers one message.
enum Reply {
    Answer(HostBody),
    BadMac(HostBody),
    Silence,
}

type Script = Arc<dyn Fn(&Body) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Host {
    script: Script,
    seen: Arc<Mutex<Vec<Body>>>,
}

#[tonic::async_trait]
impl TerminalGateway for Host {
    async fn activate(
        &self,
        _: Request<pb::ActivateRequest>,
    ) -> Result<Response<pb::ActivateResponse>, Status> {
        Err(Status::unimplemented("activate"))
    }

    type ConnectStream = ReceiverStream<Result<pb::HostMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::TerminalMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let host = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = incoming.message().await {
                let Some(body) = message.body else { continue };
                let reply = (host.script)(&body);
                host.seen.lock().unwrap().push(body);
                let (body, good_mac) = match reply {
                    Reply::Answer(body) => (body, true),
                    Reply::BadMac(body) => (body, false),
                    Reply::Silence => continue,
                };
                let mut answer = pb::HostMessage {
                    in_reply_to: message.message_seq,
                    mac: Vec::new(),
                    body: Some(body),
                };
                let key = DesKey::from_hex(MAC_KEY).unwrap();
                let mut mac = retail_mac(&key, &crate::link::mac_input_host(&mut answer)).to_vec();
                if !good_mac {
                    mac[0] ^= 1;
                }
                answer.mac = mac;
                if tx.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Counter {
    terminal: Terminal,
    journal: Journal,
    seen: Arc<Mutex<Vec<Body>>>,
    _dir: tempfile::TempDir,
}

impl Counter {
    async fn open(script: impl Fn(&Body) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let host = Host {
            script: Arc::new(script),
            seen: Arc::clone(&seen),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TerminalGatewayServer::new(host))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.save_identity(&Identity {
            terminal_id: TERMINAL.to_owned(),
            merchant_id: "898310048990001".to_owned(),
            merchant_name: "测试商户".to_owned(),
            serial_number: "SN-TEST".to_owned(),
            tmk: MAC_KEY.to_owned(),
        })
        .unwrap();
        data.save_session(&Session {
            key_version: 1,
            pin_key: PIN_KEY.to_owned(),
            mac_key: MAC_KEY.to_owned(),
            batch_no: 1,
            next_message_seq: 1,
            operator_no: "01".to_owned(),
            next_stan: 1,
        })
        .unwrap();
        let journal = Journal::open(&data.journal()).unwrap();
        let terminal = Terminal::new(
            data,
            format!("http://{address}"),
            None,
            Duration::from_secs(1),
        );
        Self {
            terminal,
            journal,
            seen,
            _dir: dir,
        }
    }

    async fn purchase(&self, amount: &str) -> anyhow::Result<()> {
        let card = card();
        self.terminal
            .transact(Transaction {
                kind: Kind::Purchase,
                amount: Some(amount),
                card: &card,
                entry: "chip",
                pin: None,
                face_last4: None,
                original: None,
            })
            .await
    }

    async fn void_stan(&self, stan: u32) -> anyhow::Result<()> {
        self.terminal
            .void(Void {
                by: VoidBy::Stan(stan),
                amount: None,
                card: None,
                entry: "chip",
                pin: None,
                supervisor_password: None,
            })
            .await
    }

    /// The kinds of message the host received, in order.
    fn seen(&self) -> Vec<&'static str> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|body| match body {
                Body::Purchase(_) => "purchase",
                Body::Void(_) => "void",
                Body::Refund(_) => "refund",
                Body::Reversal(_) => "reversal",
                Body::Settlement(_) => "settlement",
                Body::BatchUpload(_) => "upload",
                Body::SettlementComplete(_) => "complete",
                _ => "other",
            })
            .collect()
    }

    fn reversals(&self) -> Vec<pb::ReversalRequest> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|body| match body {
                Body::Reversal(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

fn card() -> String {
    let payload = "622202020011223344";
    let check = pos_domain::pan::luhn::check_digit(payload).unwrap();
    format!("{payload}{check}/2812/220")
}

fn approval(
    kind: pb::TransactionType,
    stan: u32,
    amount: Option<pb::Money>,
) -> pb::TransactionResponse {
    pb::TransactionResponse {
        response_code: "00".to_owned(),
        transaction_type: kind as i32,
        rrn: format!("6{stan:011}"),
        approval_code: "A1B2C3".to_owned(),
        amount,
        terminal_id: TERMINAL.to_owned(),
        batch_no: 1,
        stan,
        operator_no: "01".to_owned(),
        ..pb::TransactionResponse::default()
    }
}

/// A host that approves purchases, voids and refunds and acknowledges reversals.
fn approving(body: &Body) -> Reply {
    use pb::TransactionType as T;
    let transaction = |response| Reply::Answer(HostBody::Transaction(response));
    match body {
        Body::Purchase(r) => transaction(pb::TransactionResponse {
            batch_no: r.batch_no,
            ..approval(T::Purchase, r.stan, r.amount.clone())
        }),
        Body::Void(r) => transaction(approval(T::PurchaseVoid, r.stan, r.amount.clone())),
        Body::Refund(r) => transaction(approval(T::Refund, r.stan, r.amount.clone())),
        Body::Reversal(r) => acknowledge(r),
        _ => Reply::Silence,
    }
}

fn acknowledge(request: &pb::ReversalRequest) -> Reply {
    Reply::Answer(HostBody::Reversal(pb::ReversalResponse {
        response_code: "00".to_owned(),
        original_batch_no: request.original_batch_no,
        original_stan: request.original_stan,
        outcome: pb::ReversalOutcome::Reversed as i32,
        ..pb::ReversalResponse::default()
    }))
}

#[tokio::test]
async fn an_approved_purchase_is_booked_and_leaves_no_reversal() {
    let counter = Counter::open(approving).await;
    counter.purchase("50.00").await.unwrap();
    assert_eq!(counter.seen(), ["purchase"]);
    assert_eq!(counter.journal.pending_count().unwrap(), 0);
    let entries = counter.journal.entries(1).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].stan,
            entries[0].amount.minor_units,
            entries[0].state
        ),
        (1, 5_000, EntryState::Approved)
    );
    assert!(entries[0].masked_pan.contains("****"));
}

#[tokio::test]
async fn an_unanswered_purchase_is_reversed_at_once_with_98() {
    let counter = Counter::open(|body| match body {
        Body::Purchase(_) => Reply::Silence,
        other => approving(other),
    })
    .await;
    let error = counter.purchase("50.00").await.unwrap_err().to_string();
    assert!(error.contains("was not completed"), "{error}");
    assert!(error.contains("reversed"), "{error}");
    assert_eq!(counter.seen(), ["purchase", "reversal"]);
    let reversal = &counter.reversals()[0];
    assert_eq!(
        (
            reversal.original_stan,
            reversal.reason_code.as_str(),
            reversal.repeat
        ),
        (1, "98", false)
    );
    assert_eq!(reversal.amount.as_ref().map(|m| m.minor_units), Some(5_000));
    assert_eq!(reversal.original_type, pb::TransactionType::Purchase as i32);
    assert!(reversal.masked_pan.contains("****"));
    assert_eq!(counter.journal.pending_count().unwrap(), 0);
    assert!(counter.journal.entries(1).unwrap().is_empty());
}

#[tokio::test]
async fn an_answer_failing_its_mac_is_reversed_with_a0() {
    let counter = Counter::open(|body| match body {
        Body::Purchase(r) => Reply::BadMac(HostBody::Transaction(approval(
            pb::TransactionType::Purchase,
            r.stan,
            r.amount.clone(),
        ))),
        other => approving(other),
    })
    .await;
    assert!(counter.purchase("50.00").await.is_err());
    assert_eq!(counter.reversals()[0].reason_code, "A0");
    assert!(counter.journal.entries(1).unwrap().is_empty());
}

#[tokio::test]
async fn an_answer_about_another_amount_is_reversed_with_98() {
    let counter = Counter::open(|body| match body {
        Body::Purchase(r) => Reply::Answer(HostBody::Transaction(approval(
            pb::TransactionType::Purchase,
            r.stan,
            Some(pb::Money {
                minor_units: 500,
                currency: "CNY".to_owned(),
            }),
        ))),
        other => approving(other),
    })
    .await;
    let error = counter.purchase("50.00").await.unwrap_err().to_string();
    assert!(error.contains("not about this request"), "{error}");
    assert_eq!(counter.reversals()[0].reason_code, "98");
}

#[tokio::test]
async fn an_unacknowledged_reversal_blocks_the_next_purchase_until_the_host_takes_it() {
    let reversals = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&reversals);
    let counter = Counter::open(move |body| match body {
        Body::Purchase(r) if r.stan == 1 => Reply::Silence,
        Body::Reversal(r) if count.fetch_add(1, Ordering::SeqCst) < 2 => {
            Reply::Answer(HostBody::Reversal(pb::ReversalResponse {
                response_code: "96".to_owned(),
                response_message: "system malfunction".to_owned(),
                original_batch_no: r.original_batch_no,
                original_stan: r.original_stan,
                ..pb::ReversalResponse::default()
            }))
        }
        other => approving(other),
    })
    .await;
    let error = counter.purchase("50.00").await.unwrap_err().to_string();
    assert!(error.contains("pending"), "{error}");
    let pending = counter.journal.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].reason, pending[0].attempts),
        (ReasonCode::AfterFailedAttempt, 1)
    );

    let error = counter.purchase("10.00").await.unwrap_err().to_string();
    assert!(error.contains("was not sent"), "{error}");
    assert_eq!(
        counter.seen(),
        ["purchase", "reversal", "reversal"],
        "no new purchase while a reversal is pending"
    );
    assert_eq!(counter.journal.pending().unwrap()[0].attempts, 2);

    counter.purchase("10.00").await.unwrap();
    assert_eq!(
        counter.seen(),
        ["purchase", "reversal", "reversal", "reversal", "purchase"]
    );
    let repeats: Vec<_> = counter
        .reversals()
        .iter()
        .map(|r| (r.reason_code.clone(), r.repeat))
        .collect();
    assert_eq!(
        repeats,
        [
            ("98".to_owned(), false),
            ("06".to_owned(), true),
            ("06".to_owned(), true)
        ]
    );
    assert_eq!(counter.journal.pending_count().unwrap(), 0);
    assert_eq!(counter.journal.entries(1).unwrap().len(), 1);
    counter.terminal.reverse().await.unwrap();
}

#[tokio::test]
async fn a_void_by_stan_takes_the_amount_from_the_journal_and_marks_the_original() {
    let counter = Counter::open(approving).await;
    counter.purchase("50.00").await.unwrap();
    counter.void_stan(1).await.unwrap();
    let voids: Vec<_> = counter
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|body| match body {
            Body::Void(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(voids.len(), 1);
    assert_eq!(voids[0].amount.as_ref().map(|m| m.minor_units), Some(5_000));
    assert_eq!(
        voids[0].original,
        Some(pb::void_request::Original::OriginalStan(1))
    );
    let states: Vec<_> = counter
        .journal
        .entries(1)
        .unwrap()
        .iter()
        .map(|e| (e.stan, e.state, e.original_stan))
        .collect();
    assert_eq!(
        states,
        [(1, EntryState::Voided, 0), (2, EntryState::Approved, 1)]
    );
    let unknown = counter.void_stan(9).await.unwrap_err().to_string();
    assert!(unknown.contains("--amount"), "{unknown}");
}

#[tokio::test]
async fn an_unanswered_refund_is_in_doubt_and_never_reversed() {
    let counter = Counter::open(|body| match body {
        Body::Refund(_) => Reply::Silence,
        other => approving(other),
    })
    .await;
    let card = card();
    let error = counter
        .terminal
        .refund(Refund {
            rrn: "600000000001",
            date: "0101",
            amount: "30.00",
            card: &card,
            entry: "chip",
            pin: None,
            supervisor_password: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("in doubt"), "{error}");
    assert_eq!(counter.seen(), ["refund"]);
    assert_eq!(counter.journal.pending_count().unwrap(), 0);
}

fn cny(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units,
        currency: "CNY".to_owned(),
    })
}

fn domestic(debit_count: u32, debit: i64, credit_count: u32, credit: i64) -> pb::BatchTotals {
    pb::BatchTotals {
        card_origin: pb::CardOrigin::Domestic as i32,
        debit_amount: cny(debit),
        debit_count,
        credit_amount: cny(credit),
        credit_count,
    }
}

/// The host's side of settlement: compares with `host` totals (balanced when they are the
/// terminal's), takes every upload, closes the batch with `differences` and the next number.
fn settling(host: pb::BatchTotals, differences: u32) -> impl Fn(&Body) -> Reply {
    move |body| match body {
        Body::Settlement(r) => {
            let result = if r.totals == [host.clone()] {
                pb::BatchBalance::Balanced
            } else {
                pb::BatchBalance::Unbalanced
            };
            Reply::Answer(HostBody::Settlement(pb::SettlementResponse {
                response_code: "00".to_owned(),
                batch_no: r.batch_no,
                result: result as i32,
                host_totals: vec![host.clone()],
                ..pb::SettlementResponse::default()
            }))
        }
        Body::BatchUpload(r) => Reply::Answer(HostBody::BatchUploadAck(pb::BatchUploadAck {
            response_code: "00".to_owned(),
            batch_no: r.batch_no,
            stan: r.record.as_ref().map_or(0, |record| record.stan),
            reconciliation: pb::RecordReconciliation::Matched as i32,
            ..pb::BatchUploadAck::default()
        })),
        Body::SettlementComplete(r) => Reply::Answer(HostBody::SettlementComplete(
            pb::SettlementCompleteResponse {
                response_code: "00".to_owned(),
                closed_batch_no: r.batch_no,
                next_batch_no: r.batch_no + 1,
                result: pb::BatchBalance::Balanced as i32,
                host_totals: vec![host.clone()],
                difference_count: differences,
                ..pb::SettlementCompleteResponse::default()
            },
        )),
        other => approving(other),
    }
}

impl Counter {
    fn batch_no(&self) -> u32 {
        self.terminal.dir.session().unwrap().batch_no
    }

    fn slip(&self, batch_no: u32) -> String {
        let name = crate::settlement::slip_file_name(batch_no);
        std::fs::read_to_string(self.terminal.dir.receipts().join(name)).unwrap()
    }

    fn settlements(&self) -> Vec<pb::SettlementRequest> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|body| match body {
                Body::Settlement(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn uploads(&self) -> Vec<pb::BatchUploadRecord> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|body| match body {
                Body::BatchUpload(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn completes(&self) -> Vec<pb::SettlementComplete> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|body| match body {
                Body::SettlementComplete(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn a_balanced_settlement_uploads_nothing_and_opens_the_next_batch() {
    let counter = Counter::open(settling(domestic(2, 7_000, 0, 0), 0)).await;
    counter.purchase("50.00").await.unwrap();
    counter.purchase("20.00").await.unwrap();
    counter.terminal.settle(true).await.unwrap();

    assert_eq!(
        counter.seen(),
        ["purchase", "purchase", "settlement", "complete"]
    );
    let request = &counter.settlements()[0];
    assert_eq!((request.batch_no, request.operator_no.as_str()), (1, "01"));
    assert_eq!(request.totals, [domestic(2, 7_000, 0, 0)]);
    assert_eq!(
        counter.completes()[0],
        pb::SettlementComplete {
            batch_no: 1,
            uploaded_records: 0,
            operator_no: "01".to_owned(),
        }
    );
    assert_eq!(counter.batch_no(), 2);
    assert_eq!(
        counter.journal.entries(1).unwrap().len(),
        2,
        "the closed batch stays readable"
    );
    assert!(counter.journal.entries(2).unwrap().is_empty());
    let slip = counter.slip(1);
    for needle in [
        "对账平 BALANCED",
        "RMB 70.00",
        "下一批次号 NEXT BATCH:  000002",
    ] {
        assert!(slip.contains(needle), "{needle} missing from\n{slip}");
    }

    counter.purchase("10.00").await.unwrap();
    let entries = counter.journal.entries(2).unwrap();
    assert_eq!(
        (entries.len(), entries[0].amount.minor_units),
        (1, 1_000),
        "the next purchase opens batch 000002"
    );
    counter.terminal.show_journal().unwrap();
}

#[tokio::test]
async fn an_unbalanced_settlement_uploads_what_counts_resending_a_refused_record() {
    let refusals = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&refusals);
    let host = settling(domestic(2, 8_000, 1, 1_000), 1);
    let counter = Counter::open(move |body| match body {
        Body::BatchUpload(r) if count.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::Answer(HostBody::BatchUploadAck(pb::BatchUploadAck {
                response_code: "96".to_owned(),
                response_message: "system malfunction".to_owned(),
                batch_no: r.batch_no,
                ..pb::BatchUploadAck::default()
            }))
        }
        other => host(other),
    })
    .await;
    counter.purchase("50.00").await.unwrap();
    counter.purchase("30.00").await.unwrap();
    counter.void_stan(1).await.unwrap();
    let card = card();
    counter
        .terminal
        .refund(Refund {
            rrn: "600000000002",
            date: "0101",
            amount: "10.00",
            card: &card,
            entry: "chip",
            pin: None,
            supervisor_password: None,
        })
        .await
        .unwrap();
    counter.terminal.settle(false).await.unwrap();

    assert_eq!(
        counter.settlements()[0].totals,
        [domestic(1, 3_000, 1, 1_000)]
    );
    let uploads: Vec<_> = counter
        .uploads()
        .iter()
        .map(|u| {
            let record = u.record.clone().unwrap();
            (
                u.batch_no,
                u.record_no,
                u.total_records,
                record.stan,
                record.transaction_type,
                record.amount.map(|m| m.minor_units),
            )
        })
        .collect();
    let purchase = pb::TransactionType::Purchase as i32;
    let refund = pb::TransactionType::Refund as i32;
    assert_eq!(
        uploads,
        [
            (1, 1, 2, 2, purchase, Some(3_000)),
            (1, 1, 2, 2, purchase, Some(3_000)),
            (1, 2, 2, 4, refund, Some(1_000)),
        ],
        "the voided purchase and its void are not uploaded; the refused record goes again"
    );
    let record = counter.uploads()[2].record.clone().unwrap();
    assert!(record.masked_pan.contains("****"));
    assert_eq!(record.entry_mode, pb::CardEntryMode::Chip as i32);
    assert!(record.emv_data.is_empty());
    assert_eq!(counter.completes()[0].uploaded_records, 2);
    assert_eq!(counter.batch_no(), 2);
    let slip = counter.slip(1);
    for needle in [
        "对账不平 UNBALANCED",
        "批上送 UPLOADED:        2",
        "差错笔数 DIFFERENCES:   1",
    ] {
        assert!(slip.contains(needle), "{needle} missing from\n{slip}");
    }
}

#[tokio::test]
async fn a_refused_settlement_or_upload_leaves_the_batch_open_to_settle_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&calls);
    let host = settling(domestic(0, 0, 0, 0), 0);
    let counter = Counter::open(move |body| {
        let call = match body {
            Body::Settlement(_) | Body::BatchUpload(_) => count.fetch_add(1, Ordering::SeqCst),
            _ => usize::MAX,
        };
        match (body, call) {
            (Body::Settlement(_), 0) => Reply::Answer(HostBody::Error(pb::ErrorResponse {
                response_code: "96".to_owned(),
                response_message: "settlement unavailable".to_owned(),
                closing: false,
            })),
            (Body::BatchUpload(r), 2..=4) => {
                Reply::Answer(HostBody::BatchUploadAck(pb::BatchUploadAck {
                    response_code: "96".to_owned(),
                    response_message: "system malfunction".to_owned(),
                    batch_no: r.batch_no,
                    ..pb::BatchUploadAck::default()
                }))
            }
            _ => host(body),
        }
    })
    .await;
    counter.purchase("50.00").await.unwrap();

    let error = format!("{:#}", counter.terminal.settle(false).await.unwrap_err());
    assert!(error.contains("(96): settlement unavailable"), "{error}");
    assert!(error.contains("stays open"), "{error}");
    assert_eq!(counter.batch_no(), 1);

    let error = format!("{:#}", counter.terminal.settle(false).await.unwrap_err());
    assert!(error.contains("after 3 attempts"), "{error}");
    assert!(error.contains("stays open"), "{error}");
    assert_eq!(counter.uploads().len(), 3);
    assert!(counter.completes().is_empty(), "the batch is not closed");
    assert_eq!(counter.batch_no(), 1);

    counter.terminal.settle(false).await.unwrap();
    assert_eq!(counter.batch_no(), 2);
    assert_eq!(
        counter.seen(),
        [
            "purchase",
            "settlement",
            "settlement",
            "upload",
            "upload",
            "upload",
            "settlement",
            "upload",
            "complete"
        ]
    );
}

#[tokio::test]
async fn a_pending_reversal_that_cannot_be_delivered_stops_the_settlement() {
    let counter = Counter::open(|body| match body {
        Body::Purchase(_) => Reply::Silence,
        Body::Reversal(r) => Reply::Answer(HostBody::Reversal(pb::ReversalResponse {
            response_code: "96".to_owned(),
            original_batch_no: r.original_batch_no,
            original_stan: r.original_stan,
            ..pb::ReversalResponse::default()
        })),
        other => settling(domestic(0, 0, 0, 0), 0)(other),
    })
    .await;
    assert!(counter.purchase("50.00").await.is_err());
    let error = counter
        .terminal
        .settle(false)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not settled"), "{error}");
    assert_eq!(counter.seen(), ["purchase", "reversal", "reversal"]);
    assert_eq!(counter.batch_no(), 1);
}
