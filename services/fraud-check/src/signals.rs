//! What Redis knows around one transaction, read and updated in one round trip (one Lua
//! script): the sliding windows of the card, the terminal, the merchant and the card at the
//! merchant (this transaction added), the card's earlier chip fallbacks and last sighting, the
//! terminal's place, declines in a row and daily volumes, the merchant's trading hours and own
//! cards, and the blacklist entries that match.
//!
//! Keys (under the deployment prefix, all `fraud:`): `vel:{card|terminal|merchant}:{id}` and
//! `vel:split:{merchant}:{token}` (sorted sets of `txn|amount` by time, each with its
//! `count|sum` under `…:state`), `fallback:{token}`,
//! `seen:{token}` (hash: terminal, lat, lon, city, at), `terminal:{id}` and `merchant:{id}`
//! (profiles from the registry's events), `cards:lp:{legal person token}` and
//! `cards:merchant:{id}` (settlement cards), `declines:{terminal}`, `volume:{terminal}` (hash
//! business date → minor units), `bl:{card|merchant|terminal}:{id}` and `bl:bins`.

use std::sync::LazyLock;
use std::time::Duration;

use pos_store::StoreError;
use redis::{Script, Value};

use crate::assess::{Listed, Place, Sighting, Signals, Trading, Window};
use crate::lists::Lists;

/// The windows and lifetimes the script needs (from the rules in force).
#[derive(Debug, Clone, Copy)]
pub struct Spans {
    /// Card velocity window.
    pub card: Duration,
    /// Terminal velocity window.
    pub terminal: Duration,
    /// Merchant velocity window.
    pub merchant: Duration,
    /// Split purchases window.
    pub split: Duration,
    /// Earlier chip fallbacks window.
    pub fallback: Duration,
    /// How long a card's last sighting is kept.
    pub seen: Duration,
}

/// One transaction as the script sees it.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Transaction id (the window member: a retried assessment does not count twice).
    pub transaction_id: &'a str,
    /// Card token; empty when the request has no card.
    pub card_token: &'a str,
    /// First six digits of the PAN.
    pub bin: &'a str,
    /// Terminal id.
    pub terminal_id: &'a str,
    /// Merchant id.
    pub merchant_id: &'a str,
    /// Amount, minor units (0 when none).
    pub amount_minor: i64,
    /// Counted in the velocity and cash-out windows.
    pub counted: bool,
    /// A chip fallback (recorded for the repeat count).
    pub fallback: bool,
    /// The terminal's place as the request gave it; unknown parts come from the projection.
    pub place: Place,
    /// Current business date, then the earlier business dates of the volume history.
    pub dates: &'a [String],
    /// Now, Unix ms.
    pub now_ms: u64,
}

static OBSERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("observe.lua")));

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Reads the signals of `o` and records it (windows, fallback, sighting).
pub async fn observe(
    lists: &Lists,
    o: &Observation<'_>,
    spans: &Spans,
) -> Result<Signals, StoreError> {
    let token = o.card_token;
    let key = |parts: &[&str]| lists.key(parts);
    let mut invocation = OBSERVE.prepare_invoke();
    invocation
        .key(key(&["vel", "card", token]))
        .key(key(&["vel", "terminal", o.terminal_id]))
        .key(key(&["vel", "merchant", o.merchant_id]))
        .key(key(&["vel", "split", o.merchant_id, token]))
        .key(key(&["fallback", token]))
        .key(key(&["seen", token]))
        .key(key(&["terminal", o.terminal_id]))
        .key(key(&["merchant", o.merchant_id]))
        .key(key(&["declines", o.terminal_id]))
        .key(key(&["volume", o.terminal_id]))
        .key(key(&["bl", "card", token]))
        .key(key(&["bl", "merchant", o.merchant_id]))
        .key(key(&["bl", "terminal", o.terminal_id]))
        .key(key(&["bl", "bins"]))
        .key(key(&["cards", "merchant", o.merchant_id]))
        .key(key(&["vel", "card", token, "state"]))
        .key(key(&["vel", "terminal", o.terminal_id, "state"]))
        .key(key(&["vel", "merchant", o.merchant_id, "state"]))
        .key(key(&["vel", "split", o.merchant_id, token, "state"]))
        .arg(key(&["cards", "lp", ""]))
        .arg(o.now_ms)
        .arg(o.transaction_id)
        .arg(o.amount_minor)
        .arg(u8::from(o.counted && !token.is_empty()))
        .arg(u8::from(o.fallback && !token.is_empty()))
        .arg(ms(spans.card))
        .arg(ms(spans.terminal))
        .arg(ms(spans.merchant))
        .arg(ms(spans.split))
        .arg(ms(spans.fallback))
        .arg(ms(spans.seen))
        .arg(o.terminal_id)
        .arg(coordinate(o.place.coordinates.map(|c| c.0)))
        .arg(coordinate(o.place.coordinates.map(|c| c.1)))
        .arg(&o.place.city)
        .arg(token)
        .arg(o.bin);
    for date in o.dates {
        invocation.arg(date);
    }
    let mut conn = lists.store().connection();
    let values: Vec<Value> = invocation.invoke_async(&mut conn).await?;
    Ok(decode(&values, o.now_ms))
}

fn coordinate(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.6}")).unwrap_or_default()
}

fn text(values: &[Value], i: usize) -> String {
    match values.get(i) {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn int(values: &[Value], i: usize) -> i64 {
    match values.get(i) {
        Some(Value::Int(n)) => *n,
        _ => text(values, i).parse().unwrap_or(0),
    }
}

fn window(values: &[Value], i: usize) -> Window {
    Window {
        count: u64::try_from(int(values, i)).unwrap_or(0),
        sum_minor: int(values, i + 1),
    }
}

fn place(lat: String, lon: String, city: String) -> Place {
    let coordinates = match (lat.parse::<f64>(), lon.parse::<f64>()) {
        (Ok(lat), Ok(lon)) if lat.is_finite() && lon.is_finite() => Some((lat, lon)),
        _ => None,
    };
    Place { city, coordinates }
}

/// Trading windows "HH:MM-HH:MM,…" as the projection stores them.
pub fn trading_windows(text: &str) -> Vec<(u32, u32)> {
    text.split(',')
        .filter_map(|w| {
            let (open, close) = w.split_once('-')?;
            Some((
                crate::rules::minutes_of_day(open)?,
                crate::rules::minutes_of_day(close)?,
            ))
        })
        .collect()
}

/// Whether a blacklist value `entry_id|expires_ms` applies at `now_ms`.
fn entry(value: &str, now_ms: u64) -> Option<String> {
    let (id, expires) = value.split_once('|')?;
    let expires: u64 = expires.parse().ok()?;
    (expires == 0 || expires > now_ms).then(|| id.to_owned())
}

/// Index of the own-card flag; the volumes (today first) follow it.
const OWN_CARD_AT: usize = 25;
const VOLUMES_AT: usize = 26;

fn decode(v: &[Value], now_ms: u64) -> Signals {
    let seen_terminal = text(v, 9);
    let last_seen = (!seen_terminal.is_empty()).then(|| Sighting {
        terminal_id: seen_terminal,
        place: place(text(v, 10), text(v, 11), text(v, 12)),
        at_ms: u64::try_from(int(v, 13)).unwrap_or(0),
    });
    let profile = text(v, 17);
    let trading = (profile == "1").then(|| Trading {
        night_business: text(v, 18) == "1",
        windows: trading_windows(&text(v, 19)),
    });
    let mut listed = Vec::new();
    for (i, code) in [
        (21, "BLACKLIST_CARD"),
        (22, "BLACKLIST_MERCHANT"),
        (23, "BLACKLIST_TERMINAL"),
        (24, "BLACKLIST_BIN"),
    ] {
        if let Some(entry_id) = entry(&text(v, i), now_ms) {
            listed.push(Listed { code, entry_id });
        }
    }
    let volumes: Vec<i64> = (VOLUMES_AT..v.len()).map(|i| int(v, i)).collect();
    let (today, history) = volumes.split_first().map_or((0, &[][..]), |(t, h)| (*t, h));
    Signals {
        counted: false,
        card: window(v, 0),
        terminal: window(v, 2),
        merchant: window(v, 4),
        split: window(v, 6),
        earlier_fallbacks: u64::try_from(int(v, 8)).unwrap_or(0),
        last_seen,
        here: place(text(v, 14), text(v, 15), text(v, 16)),
        declines_in_a_row: u64::try_from(int(v, 20)).unwrap_or(0),
        volume_today_minor: today,
        volume_history_minor: history.iter().copied().filter(|m| *m > 0).collect(),
        own_card: int(v, OWN_CARD_AT) == 1,
        trading,
        listed,
        read_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trading_windows_parse_and_skip_garbage() {
        assert_eq!(
            trading_windows("07:00-21:00,22:00-02:00"),
            vec![(420, 1260), (1320, 120)]
        );
        assert_eq!(trading_windows(""), vec![]);
        assert_eq!(trading_windows("7-9,08:00-09:00"), vec![(480, 540)]);
    }

    #[test]
    fn blacklist_values_expire() {
        assert_eq!(entry("e1|0", 5), Some("e1".to_owned()));
        assert_eq!(entry("e1|10", 5), Some("e1".to_owned()));
        assert_eq!(entry("e1|5", 5), None);
        assert_eq!(entry("", 5), None);
    }
}
