//! The histories in Redis: each event is kept, as it was published, with every transaction it
//! concerns, and the summary is folded from those events when it is read (see `fold`). Keeping
//! events instead of a running summary makes applying them commutative and idempotent: an
//! event is stored under its event id (a redelivery writes the same field again and changes
//! nothing), and the order in which partitions are read does not matter.
//!
//! Every event is applied in one Lua script, so a crash never leaves half of it.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use pos_events::EventEnvelope;
use pos_proto::v1 as pb;
use pos_store::Store;
use prost::Message as _;
use redis::Script;

use crate::error::{HistoryError, Result};
use crate::fold;
use crate::links::{self, Links};
use crate::model::{ListFilter, Lookup, Page, Subject, TraceKey, TransactionHistory};

/// Default page size of a list (PageRequest: 0 means the server default).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size served.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Most index entries one list call reads while filtering, so that a filter matching little
/// cannot make one call read a whole index; the page then ends early with a token.
const SCAN_LIMIT: usize = 5_000;

/// Applies one event. KEYS[i] is written as ARGV[2 + i] says: `H` stores the event (field
/// ARGV[1] = event id, value ARGV[2] = the envelope) in the hash; `S:v` sets the string to v;
/// `N:v` sets it to v unless it exists; `M:v` sets the list member of a transaction unless it
/// has one, and only then do the following `Z` keys (sorted sets) get that member. Returns
/// the number of hashes the event was new to (0 for a redelivery).
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local added = 0
local member = false
for i = 1, #KEYS do
  local op = ARGV[2 + i]
  local kind = string.sub(op, 1, 1)
  local value = string.sub(op, 3)
  if kind == 'H' then
    added = added + redis.call('HSET', KEYS[i], ARGV[1], ARGV[2])
  elseif kind == 'S' then
    redis.call('SET', KEYS[i], value)
  elseif kind == 'N' then
    redis.call('SET', KEYS[i], value, 'NX')
  elseif kind == 'M' then
    if redis.call('SET', KEYS[i], value, 'NX') then
      member = value
    end
  elseif kind == 'Z' and member then
    redis.call('ZADD', KEYS[i], 0, member)
  end
end
return added
",
    )
});

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event was new and is now part of the histories it concerns.
    New,
    /// It was there already (a redelivery or a replay): nothing changed.
    Duplicate,
    /// It is no part of any transaction's history (an audit record, another topic's event).
    Ignored,
}

/// The transaction history projection over one [`Store`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryProjection {
    store: Store,
}

impl HistoryProjection {
    /// The projection in `store` (under its prefix).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut all = vec!["hist"];
        all.extend_from_slice(parts);
        self.store.key(&all)
    }

    fn events_key(&self, id: &str) -> String {
        self.key(&["txn", id])
    }

    fn trace_events_key(&self, trace: &TraceKey) -> String {
        self.key(&["trace-steps", &trace.to_string()])
    }

    fn trace_key(&self, trace: &TraceKey) -> String {
        self.key(&["trace", &trace.to_string()])
    }

    fn rrn_key(&self, rrn: &str, business_date: &str) -> String {
        self.key(&["rrn", business_date, rrn])
    }

    fn rebuilt_key(&self) -> String {
        self.key(&["rebuilt"])
    }

    /// The sorted set a list with `filter` reads (the narrowest index that covers it); the
    /// rest of the filter is applied to the summaries.
    fn list_key(&self, filter: &ListFilter) -> Result<String> {
        let terminal = filter.terminal_id.as_deref();
        let merchant = filter.merchant_id.as_deref();
        let date = filter.business_date.as_deref();
        Ok(match (terminal, filter.batch_no, merchant, date) {
            (None, Some(_), _, _) => {
                return Err(HistoryError::Invalid(
                    "a batch number needs its terminal id".to_owned(),
                ));
            }
            (Some(t), Some(b), _, _) => self.key(&["list", "batch", t, &b.to_string()]),
            (Some(t), None, _, Some(d)) => self.key(&["list", "terminal-date", t, d]),
            (Some(t), None, _, None) => self.key(&["list", "terminal", t]),
            (None, None, Some(m), Some(d)) => self.key(&["list", "merchant-date", m, d]),
            (None, None, Some(m), None) => self.key(&["list", "merchant", m]),
            (None, None, None, Some(d)) => self.key(&["list", "date", d]),
            (None, None, None, None) => self.key(&["list", "all"]),
        })
    }

    /// Every list a transaction appears in.
    fn list_keys(&self, own: &links::Own) -> Vec<String> {
        let mut keys = vec![self.key(&["list", "all"])];
        let date = own.business_date.as_str();
        if !own.merchant_id.is_empty() {
            keys.push(self.key(&["list", "merchant", &own.merchant_id]));
            if !date.is_empty() {
                keys.push(self.key(&["list", "merchant-date", &own.merchant_id, date]));
            }
        }
        if let Some(trace) = &own.trace {
            let t = trace.terminal_id.as_str();
            keys.push(self.key(&["list", "terminal", t]));
            keys.push(self.key(&["list", "batch", t, &trace.batch_no.to_string()]));
            if !date.is_empty() {
                keys.push(self.key(&["list", "terminal-date", t, date]));
            }
        }
        if !date.is_empty() {
            keys.push(self.key(&["list", "date", date]));
        }
        keys
    }

    /// Applies one event of `pos.transactions.v1`. Idempotent: applying it again (or after
    /// other events) leaves the same histories.
    pub async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied> {
        let Some(links) = links::links(envelope) else {
            return Ok(Applied::Ignored);
        };
        if envelope.event_id.is_empty() {
            return Err(HistoryError::Invalid(format!(
                "event {}:{}#{} has no event id",
                envelope.aggregate_type, envelope.aggregate_id, envelope.sequence
            )));
        }
        let ops = self.operations(&links);
        if ops.is_empty() {
            return Ok(Applied::Ignored);
        }
        let mut invocation = APPLY.prepare_invoke();
        invocation
            .arg(&envelope.event_id)
            .arg(envelope.encode_to_vec());
        for (key, op) in &ops {
            invocation.key(key).arg(op);
        }
        let mut conn = self.store.connection();
        let added: u64 = invocation.invoke_async(&mut conn).await?;
        Ok(if added > 0 {
            Applied::New
        } else {
            Applied::Duplicate
        })
    }

    /// The script's keys and operations for an event's links.
    fn operations(&self, links: &Links) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        if let Some(own) = &links.own {
            ops.push((self.events_key(&own.id), "H".to_owned()));
            // The transaction's own event decides where its trace and RRN point.
            if let Some(trace) = &own.trace {
                ops.push((self.trace_key(trace), format!("S:{}", own.id)));
            }
            if !own.rrn.is_empty() && !own.business_date.is_empty() {
                ops.push((
                    self.rrn_key(&own.rrn, &own.business_date),
                    format!("S:{}", own.id),
                ));
            }
            let member = list_member(own.at_millis, &own.id);
            ops.push((self.key(&["listed", &own.id]), format!("M:{member}")));
            ops.extend(self.list_keys(own).into_iter().map(|k| (k, "Z".to_owned())));
        }
        for named in &links.named {
            ops.push((self.events_key(&named.id), "H".to_owned()));
            // A step's reference indexes its original only until the original's own event
            // says otherwise.
            if let Some(trace) = &named.trace {
                ops.push((self.trace_key(trace), format!("N:{}", named.id)));
            }
            if !named.rrn.is_empty() && !named.business_date.is_empty() {
                ops.push((
                    self.rrn_key(&named.rrn, &named.business_date),
                    format!("N:{}", named.id),
                ));
            }
        }
        for trace in &links.traces {
            ops.push((self.trace_events_key(trace), "H".to_owned()));
        }
        ops
    }

    /// The history of one transaction; `None` when nothing is known of it.
    pub async fn find(&self, lookup: &Lookup) -> Result<Option<TransactionHistory>> {
        match lookup {
            Lookup::Id(id) => self.history(id).await,
            Lookup::Trace(trace) => match self.string(&self.trace_key(trace)).await? {
                Some(id) => self.history(&id).await,
                None => self.trace_only(trace).await,
            },
            Lookup::Rrn { rrn, business_date } => {
                match self.string(&self.rrn_key(rrn, business_date)).await? {
                    Some(id) => self.history(&id).await,
                    None => Ok(None),
                }
            }
        }
    }

    /// A page of transactions matching `filter`, newest first. `page_token` is empty for the
    /// first page, else a `next_page_token` this projection issued.
    pub async fn list(
        &self,
        filter: &ListFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page> {
        let key = self.list_key(filter)?;
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        } as usize;
        let mut max = match page_token {
            "" => "+".to_owned(),
            token if member_id(token).is_some() => format!("({token}"),
            _ => {
                return Err(HistoryError::Invalid(
                    "page_token is not one this server issued".to_owned(),
                ));
            }
        };
        let mut transactions = Vec::new();
        let mut last_included = String::new();
        let mut scanned = 0;
        let mut conn = self.store.connection();
        loop {
            let members: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&key)
                .arg(&max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(size + 1)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<&str> = members.iter().filter_map(|m| member_id(m)).collect();
            let histories = self.histories(&ids).await?;
            for (member, history) in members.iter().zip(histories) {
                scanned += 1;
                let Some(history) = history else { continue };
                if !filter.matches(&history.summary) {
                    continue;
                }
                if transactions.len() == size {
                    return Ok(Page {
                        transactions,
                        next_page_token: Some(last_included),
                    });
                }
                transactions.push(history.summary);
                last_included.clone_from(member);
            }
            let Some(last) = members.last() else {
                break;
            };
            if members.len() <= size {
                break;
            }
            if scanned >= SCAN_LIMIT {
                return Ok(Page {
                    transactions,
                    next_page_token: Some(last.clone()),
                });
            }
            max = format!("({last}");
        }
        Ok(Page {
            transactions,
            next_page_token: None,
        })
    }

    /// Whether the projection was rebuilt from the topic's first event (the marker is set
    /// once a rebuild read the topic to its end; a flushed Redis has none).
    pub async fn is_rebuilt(&self) -> Result<bool> {
        Ok(self.store.get(&self.rebuilt_key()).await?.is_some())
    }

    /// Sets the marker: the projection holds every event up to now.
    pub async fn mark_rebuilt(&self) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut conn = self.store.connection();
        let () = redis::cmd("SET")
            .arg(self.rebuilt_key())
            .arg(now.to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn string(&self, key: &str) -> Result<Option<String>> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| HistoryError::Corrupt {
                    key: key.to_owned(),
                    detail: "not UTF-8 text".to_owned(),
                }),
        }
    }

    async fn history(&self, id: &str) -> Result<Option<TransactionHistory>> {
        Ok(self.histories(&[id]).await?.into_iter().next().flatten())
    }

    /// What is known of a trace whose transaction the host never recorded (a reversal of a
    /// request that did not arrive).
    async fn trace_only(&self, trace: &TraceKey) -> Result<Option<TransactionHistory>> {
        let events = self.events(&[self.trace_events_key(trace)]).await?;
        let subject = Subject {
            id: String::new(),
            trace: Some(trace.clone()),
        };
        Ok(events
            .into_iter()
            .next()
            .and_then(|events| fold::build(&subject, &events)))
    }

    /// The histories of `ids`, in order (`None` for unknown ids), in two round trips: the
    /// transactions' events, then the events kept under their traces.
    async fn histories(&self, ids: &[&str]) -> Result<Vec<Option<TransactionHistory>>> {
        let keys: Vec<String> = ids.iter().map(|id| self.events_key(id)).collect();
        let mut events = self.events(&keys).await?;
        let traces: Vec<Option<TraceKey>> = ids
            .iter()
            .zip(&events)
            .map(|(id, events)| {
                let subject = Subject {
                    id: (*id).to_owned(),
                    trace: None,
                };
                fold::build(&subject, events).and_then(|h| TraceKey::of(h.summary.trace.as_ref()))
            })
            .collect();
        let trace_keys: Vec<String> = traces
            .iter()
            .flatten()
            .map(|t| self.trace_events_key(t))
            .collect();
        let mut by_trace = self.events(&trace_keys).await?.into_iter();
        for (trace, events) in traces.iter().zip(events.iter_mut()) {
            if trace.is_some() {
                events.extend(by_trace.next().unwrap_or_default());
            }
        }
        Ok(ids
            .iter()
            .zip(traces)
            .zip(events)
            .map(|((id, trace), events)| {
                let subject = Subject {
                    id: (*id).to_owned(),
                    trace,
                };
                fold::build(&subject, &events)
            })
            .collect())
    }

    /// The events kept in each hash of `keys`, in one pipeline.
    async fn events(&self, keys: &[String]) -> Result<Vec<Vec<EventEnvelope>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HVALS").arg(key);
        }
        let mut conn = self.store.connection();
        let raw: Vec<Vec<Vec<u8>>> = pipe.query_async(&mut conn).await?;
        keys.iter()
            .zip(raw)
            .map(|(key, values)| {
                values
                    .iter()
                    .map(|bytes| {
                        EventEnvelope::decode(bytes.as_slice()).map_err(|e| HistoryError::Corrupt {
                            key: key.clone(),
                            detail: format!("not an event envelope: {e}"),
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// The member of a transaction in the list indexes: its decision time, zero-padded so that
/// the lexicographic order of members is their time order, then its id. All members have score
/// 0 and are paged with ZREVRANGEBYLEX; the member of the last item is the page token.
fn list_member(at_millis: u64, id: &str) -> String {
    format!("{at_millis:013}:{id}")
}

/// The transaction id of a list member (or page token); `None` when it is not one.
fn member_id(member: &str) -> Option<&str> {
    let (millis, id) = member.split_at_checked(13)?;
    let id = id.strip_prefix(':')?;
    (millis.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()).then_some(id)
}

/// The lookup of a proto request, validated.
pub fn lookup_of(request: &pb::GetTransactionHistoryRequest) -> Result<Lookup> {
    use pb::get_transaction_history_request::Lookup as L;
    let invalid = |m: &str| HistoryError::Invalid(m.to_owned());
    match &request.lookup {
        None => Err(invalid(
            "lookup is required: transaction_id, trace, or rrn with business_date",
        )),
        Some(L::TransactionId(id)) if id.trim().is_empty() => {
            Err(invalid("transaction_id: must not be empty"))
        }
        Some(L::TransactionId(id)) => Ok(Lookup::Id(id.trim().to_owned())),
        Some(L::Trace(trace)) => {
            let mut problems = Vec::new();
            if pos_domain::TerminalId::parse(&trace.terminal_id).is_err() {
                problems.push("trace.terminal_id: must be 8 upper-case letters or digits");
            }
            if pos_domain::BatchNo::new(trace.batch_no).is_err() {
                problems.push("trace.batch_no: must be 1 to 999999");
            }
            if pos_domain::Stan::new(trace.stan).is_err() {
                problems.push("trace.stan: must be 1 to 999999");
            }
            if problems.is_empty() {
                Ok(Lookup::Trace(TraceKey {
                    terminal_id: trace.terminal_id.clone(),
                    batch_no: trace.batch_no,
                    stan: trace.stan,
                }))
            } else {
                Err(HistoryError::Invalid(problems.join("; ")))
            }
        }
        Some(L::Rrn(rrn)) => {
            let mut problems = Vec::new();
            if pos_domain::Rrn::parse(&rrn.rrn).is_err() {
                problems.push("rrn.rrn: must be 12 letters or digits");
            }
            if !is_date(&rrn.business_date) {
                problems.push("rrn.business_date: must be a date YYYY-MM-DD");
            }
            if problems.is_empty() {
                Ok(Lookup::Rrn {
                    rrn: rrn.rrn.clone(),
                    business_date: rrn.business_date.clone(),
                })
            } else {
                Err(HistoryError::Invalid(problems.join("; ")))
            }
        }
    }
}

/// The filter of a proto list request, validated.
pub fn filter_of(request: &pb::ListTransactionsRequest) -> Result<ListFilter> {
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = ListFilter {
        merchant_id: text(&request.merchant_id),
        terminal_id: text(&request.terminal_id),
        batch_no: (request.batch_no != 0).then_some(request.batch_no),
        business_date: text(&request.business_date),
    };
    let mut problems = Vec::new();
    if filter.batch_no.is_some() && filter.terminal_id.is_none() {
        problems.push("batch_no: needs terminal_id");
    }
    if filter.business_date.as_deref().is_some_and(|d| !is_date(d)) {
        problems.push("business_date: must be a date YYYY-MM-DD");
    }
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(HistoryError::Invalid(problems.join("; ")))
    }
}

/// "YYYY-MM-DD" with a plausible month and day.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) {
        return false;
    }
    if !digits(8..10) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_members_sort_by_time_and_give_back_their_id() {
        let early = list_member(1_764_300_000_000, "0195-a");
        let late = list_member(1_764_300_000_001, "0195-b");
        assert!(early < late);
        assert_eq!(member_id(&early), Some("0195-a"));
        assert_eq!(member_id("garbage"), None);
        assert_eq!(member_id("0000000000000:"), None);
        assert_eq!(member_id("000000000000x:abc"), None);
    }

    #[test]
    fn dates_are_checked() {
        assert!(is_date("2026-11-28"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("20261128"));
        assert!(!is_date("2026-1-28x"));
    }

    #[test]
    fn lookups_are_validated() {
        use pb::get_transaction_history_request::Lookup as L;
        let request = |lookup| pb::GetTransactionHistoryRequest {
            lookup: Some(lookup),
        };
        assert!(lookup_of(&pb::GetTransactionHistoryRequest { lookup: None }).is_err());
        let trace = lookup_of(&request(L::Trace(pb::TerminalTraceRef {
            terminal_id: "T0000001".to_owned(),
            batch_no: 1,
            stan: 42,
        })));
        assert!(matches!(trace, Ok(Lookup::Trace(t)) if t.stan == 42));
        let bad = lookup_of(&request(L::Trace(pb::TerminalTraceRef {
            terminal_id: "t1".to_owned(),
            batch_no: 0,
            stan: 1,
        })));
        let message = bad.map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("trace.terminal_id") && message.contains("trace.batch_no"));
        let rrn = lookup_of(&request(L::Rrn(pb::RrnLookup {
            rrn: "123456789012".to_owned(),
            business_date: "2026-11-28".to_owned(),
        })));
        assert!(rrn.is_ok());
    }

    #[test]
    fn a_batch_needs_its_terminal() {
        let request = pb::ListTransactionsRequest {
            batch_no: 3,
            ..Default::default()
        };
        assert!(filter_of(&request).is_err());
    }
}
