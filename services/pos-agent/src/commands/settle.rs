//! Settlement (结算) of the open batch, on one `Connect` stream: pending reversals first (a
//! batch is not settled while one remains), then the totals (0500); when the host's totals
//! differ, every record that counts in them is uploaded (0320), each until the host takes it;
//! then the batch is closed. Only a closed batch moves the terminal to the next batch number;
//! any refusal on the way leaves the batch open, and settling again is safe (the host's calls
//! are idempotent). The closed batch's transactions stay in the journal under their number.

use std::io::Write as _;

use anyhow::{Context, bail};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_message::Body;

use super::{Terminal, refusal};
use crate::device::{DataDir, Session};
use crate::journal::BatchEntry;
use crate::link::{Link, NoAnswer};
use crate::reversal;
use crate::sale::Clock;
use crate::settlement::{self, Summary};

/// Times one upload record is sent before the settlement gives up (the batch stays open).
const UPLOAD_ATTEMPTS: u32 = 3;

/// The stream of one settlement and the session that numbers its messages.
#[derive(Debug)]
struct Exchange<'a> {
    dir: &'a DataDir,
    link: Link,
    session: Session,
}

impl Exchange<'_> {
    /// Sends `body` as the next message (its number saved first) and waits for its answer.
    /// The outer error means it was not sent; the inner one that no answer can be believed.
    async fn call(&mut self, body: Body) -> anyhow::Result<Result<HostBody, NoAnswer>> {
        let seq = self.session.take_seq();
        self.dir.save_session(&self.session)?;
        let mac_key = self.session.mac_key()?;
        self.link.send(seq, body, &mac_key).await?;
        Ok(self.link.answer(seq, Some(&mac_key)).await)
    }
}

impl Terminal {
    /// Settlement 结算 of the open batch; `list` also prints its transactions (明细). On
    /// success the batch is closed, the next batch number is saved, the summary printed and
    /// the settlement slip (结算单) saved with the receipts.
    pub async fn settle(&self, list: bool) -> anyhow::Result<()> {
        let (identity, mut session) = self.cashier()?;
        let journal = self.journal()?;
        let mut link = self.link(&identity).await?;
        let left = reversal::send_pending(&mut link, &self.dir, &mut session, &journal).await?;
        if left > 0 {
            bail!(
                "{left} pending reversal(s) could not be delivered, so the batch was not settled; try again when the host answers, or run `pos-agent reverse`"
            );
        }
        let batch_no = session.batch_no;
        let operator_no = session.operator_no.clone();
        let entries = journal.entries(batch_no)?;
        let terminal_totals = settlement::terminal_totals(&entries);
        let clock = Clock::now();
        let mut exchange = Exchange {
            dir: &self.dir,
            link,
            session,
        };
        let open = || {
            format!(
                "settlement of batch {batch_no:06} not completed, the batch stays open (run `pos-agent settle` again)"
            )
        };

        let request = pb::SettlementRequest {
            batch_no,
            operator_no: operator_no.clone(),
            totals: settlement::request_totals(&terminal_totals),
            local_datetime: clock.iso(),
        };
        let compared = exchange
            .call(Body::Settlement(request))
            .await
            .and_then(|answer| comparison(answer, batch_no))
            .with_context(open)?;
        println!("{}", settlement::result_line(batch_no, compared.result()));
        std::io::stdout().flush()?;

        let records = match compared.result() {
            pb::BatchBalance::Unbalanced => settlement::upload_records(&entries),
            _ => Vec::new(),
        };
        let uploaded = upload(&mut exchange, batch_no, &records)
            .await
            .with_context(open)?;

        let complete = pb::SettlementComplete {
            batch_no,
            uploaded_records: uploaded,
            operator_no: operator_no.clone(),
        };
        let closed = exchange
            .call(Body::SettlementComplete(complete))
            .await
            .and_then(|answer| closing(answer, batch_no))
            .with_context(open)?;
        let next_batch_no = next_batch(batch_no, closed.next_batch_no)?;
        let mut session = exchange.session;
        session.batch_no = next_batch_no;
        self.dir.save_session(&session)?;

        if list {
            print_list(batch_no, &entries);
        }
        let host = if closed.host_totals.is_empty() {
            &compared.host_totals
        } else {
            &closed.host_totals
        };
        let summary = Summary {
            batch_no,
            result: compared.result(),
            final_result: closed.result(),
            uploaded,
            terminal: terminal_totals,
            host: settlement::host_totals(host),
            differences: closed.difference_count,
            next_batch_no,
        };
        for line in summary.lines() {
            println!("{line}");
        }
        let header = settlement::SlipHeader {
            merchant_name: &identity.merchant_name,
            merchant_id: &identity.merchant_id,
            terminal_id: &identity.terminal_id,
            operator_no: &operator_no,
            printed_at: &clock.printed(),
        };
        let path = self.save_slip(&header, &summary)?;
        println!("settlement slip (结算单): {}", path.display());
        Ok(())
    }

    /// Saves the settlement slip (结算单) of `summary` with the receipts; returns its path.
    fn save_slip(
        &self,
        header: &settlement::SlipHeader<'_>,
        summary: &Summary,
    ) -> anyhow::Result<std::path::PathBuf> {
        let receipts = self.dir.receipts();
        let path = receipts.join(settlement::slip_file_name(summary.batch_no));
        std::fs::create_dir_all(&receipts)
            .and_then(|()| std::fs::write(&path, settlement::slip(header, summary)))
            .with_context(|| {
                format!(
                    "the settlement slip could not be saved to {}",
                    path.display()
                )
            })?;
        Ok(path)
    }
}

/// The host's comparison of the totals (0510), or why the settlement cannot go on.
fn comparison(
    answer: Result<HostBody, NoAnswer>,
    batch_no: u32,
) -> anyhow::Result<pb::SettlementResponse> {
    let answer = answer.context("the settlement (0500) got no answer")?;
    let HostBody::Settlement(response) = answer else {
        return Err(refusal(answer));
    };
    if response.response_code != "00" {
        bail!(
            "settlement refused by the host ({}): {}",
            response.response_code,
            response.response_message
        );
    }
    if response.batch_no != 0 && response.batch_no != batch_no {
        bail!(
            "the host compared batch {:06}, not {batch_no:06}",
            response.batch_no
        );
    }
    if response.result() == pb::BatchBalance::Unspecified {
        bail!("the host compared the totals but named no result");
    }
    Ok(response)
}

/// The host's closing of the batch, or why it is not closed.
fn closing(
    answer: Result<HostBody, NoAnswer>,
    batch_no: u32,
) -> anyhow::Result<pb::SettlementCompleteResponse> {
    let answer = answer.context("closing the batch got no answer")?;
    let HostBody::SettlementComplete(response) = answer else {
        return Err(refusal(answer));
    };
    if response.response_code != "00" {
        bail!(
            "the host did not close the batch ({}): {}",
            response.response_code,
            response.response_message
        );
    }
    if response.closed_batch_no != 0 && response.closed_batch_no != batch_no {
        bail!(
            "the host closed batch {:06}, not {batch_no:06}",
            response.closed_batch_no
        );
    }
    Ok(response)
}

/// The batch after `closed`: the host's, or, when it names none, the next number as a Lakala
/// terminal counts (000001 after 999999).
fn next_batch(closed: u32, from_host: u32) -> anyhow::Result<u32> {
    match from_host {
        0 if closed >= 999_999 => Ok(1),
        0 => Ok(closed + 1),
        same if same == closed => bail!(
            "the host closed batch {closed:06} but named it as the next batch too; the terminal keeps it"
        ),
        next => Ok(next),
    }
}

/// Uploads `records` of `batch_no` one by one, each until the host takes it (at most
/// [`UPLOAD_ATTEMPTS`] times). Returns how many were uploaded; fails at the first record the
/// host will not take, or at an error the host reports.
async fn upload(
    exchange: &mut Exchange<'_>,
    batch_no: u32,
    records: &[pb::BatchRecord],
) -> anyhow::Result<u32> {
    let total_records = u32::try_from(records.len()).context("too many records to upload")?;
    for (record_no, record) in (1..).zip(records) {
        let stan = record.stan;
        let mut attempt = 1;
        loop {
            let body = Body::BatchUpload(pb::BatchUploadRecord {
                batch_no,
                record_no,
                total_records,
                record: Some(record.clone()),
            });
            let why = match exchange.call(body).await? {
                Ok(HostBody::BatchUploadAck(ack)) => match taken(&ack, batch_no, stan) {
                    Ok(()) => {
                        print_reconciliation(stan, ack.reconciliation());
                        break;
                    }
                    Err(why) => why,
                },
                Ok(other) => return Err(refusal(other)),
                Err(no_answer) => no_answer.to_string(),
            };
            if attempt >= UPLOAD_ATTEMPTS {
                bail!(
                    "record {record_no} of {total_records} (STAN {stan:06}) was not taken by the host after {attempt} attempts: {why}"
                );
            }
            println!(
                "record {record_no} of {total_records} (STAN {stan:06}) not taken: {why}; sending it again"
            );
            attempt += 1;
        }
    }
    Ok(total_records)
}

/// Whether the acknowledgement takes the record of `stan`, or why not.
fn taken(ack: &pb::BatchUploadAck, batch_no: u32, stan: u32) -> Result<(), String> {
    if ack.response_code != "00" {
        return Err(format!(
            "the host answered {}: {}",
            ack.response_code, ack.response_message
        ));
    }
    let other = |got: u32, sent: u32| got != 0 && got != sent;
    if other(ack.batch_no, batch_no) || other(ack.stan, stan) {
        return Err(format!(
            "the host acknowledged batch {:06} STAN {:06}",
            ack.batch_no, ack.stan
        ));
    }
    Ok(())
}

/// A record the host's books disagree with is named for the cashier.
fn print_reconciliation(stan: u32, reconciliation: pb::RecordReconciliation) {
    use pb::RecordReconciliation as R;
    let differs = match reconciliation {
        R::Unspecified | R::Matched => return,
        R::MissingOnHost => "the host has no approved transaction for it",
        R::MissingOnTerminal => "the host has it, the terminal did not send it",
        R::AmountMismatch => "the host has another amount",
        R::StateMismatch => "the host has it in another state",
    };
    println!("STAN {stan:06}: {differs}");
}

/// The transaction list (明细) of the batch, as `pos-agent journal` prints its lines.
fn print_list(batch_no: u32, entries: &[BatchEntry]) {
    println!(
        "transactions (明细) of batch {batch_no:06}: {}",
        entries.len()
    );
    for entry in entries {
        println!("  {entry}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_batch_is_the_hosts_or_counted_on() {
        assert_eq!(next_batch(1, 2).unwrap(), 2);
        assert_eq!(next_batch(1, 7).unwrap(), 7);
        assert_eq!(next_batch(41, 0).unwrap(), 42);
        assert_eq!(next_batch(999_999, 0).unwrap(), 1);
        assert!(next_batch(3, 3).is_err());
    }

    #[test]
    fn an_ack_takes_a_record_only_with_00_about_that_record() {
        let ack = |code: &str, batch_no, stan| pb::BatchUploadAck {
            response_code: code.to_owned(),
            response_message: "system malfunction".to_owned(),
            batch_no,
            stan,
            reconciliation: pb::RecordReconciliation::Matched as i32,
        };
        assert!(taken(&ack("00", 1, 5), 1, 5).is_ok());
        assert!(taken(&ack("00", 0, 0), 1, 5).is_ok(), "unnamed is ours");
        let refused = taken(&ack("96", 1, 5), 1, 5).unwrap_err();
        assert!(refused.contains("96: system malfunction"), "{refused}");
        assert!(taken(&ack("00", 1, 6), 1, 5).is_err());
        assert!(taken(&ack("00", 2, 5), 1, 5).is_err());
    }

    #[test]
    fn a_refused_or_foreign_answer_leaves_the_batch_open() {
        let response = |code: &str, batch_no, result: pb::BatchBalance| {
            Ok(HostBody::Settlement(pb::SettlementResponse {
                response_code: code.to_owned(),
                response_message: "no".to_owned(),
                batch_no,
                result: result as i32,
                host_totals: Vec::new(),
            }))
        };
        use pb::BatchBalance as B;
        assert!(comparison(response("00", 1, B::Balanced), 1).is_ok());
        let refused = comparison(response("96", 1, B::Balanced), 1).unwrap_err();
        assert!(refused.to_string().contains("(96)"), "{refused}");
        assert!(comparison(response("00", 2, B::Balanced), 1).is_err());
        assert!(comparison(response("00", 1, B::Unspecified), 1).is_err());
        let error = HostBody::Error(pb::ErrorResponse {
            response_code: "12".to_owned(),
            response_message: "operator not logged in".to_owned(),
            closing: false,
        });
        let refused = comparison(Ok(error), 1).unwrap_err().to_string();
        assert!(
            refused.contains("(12): operator not logged in"),
            "{refused}"
        );
        let silent = comparison(Err(NoAnswer::BadMac), 1).unwrap_err();
        assert!(format!("{silent:#}").contains("MAC"), "{silent:#}");
        let not_closed = closing(
            Ok(HostBody::SettlementComplete(
                pb::SettlementCompleteResponse {
                    response_code: "96".to_owned(),
                    ..pb::SettlementCompleteResponse::default()
                },
            )),
            1,
        );
        assert!(not_closed.is_err());
    }
}
