//! The rules themselves, pure: a transaction, what Redis knows around it (its signals) and the
//! rules in force give a decision, a score and every reason that contributed. No I/O here.

use pos_proto::v1 as pb;
use rust_decimal::Decimal;

use crate::rules::{MAX_SCORE, Rules, minutes_of_day};

/// Count and amount sum of a sliding window (this transaction included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Transactions in the window.
    pub count: u64,
    /// Their amounts, minor units.
    pub sum_minor: i64,
}

/// Where a terminal stands, as far as known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Place {
    /// City; empty when unknown.
    pub city: String,
    /// Latitude and longitude in degrees; `None` when unknown.
    pub coordinates: Option<(f64, f64)>,
}

/// The last time a card was seen before this transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// Terminal it was seen at.
    pub terminal_id: String,
    /// Where that terminal stands.
    pub place: Place,
    /// When, Unix milliseconds.
    pub at_ms: u64,
}

/// A merchant's trading hours, as onboarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trading {
    /// Daily windows, minutes since midnight (close before open = crosses midnight).
    pub windows: Vec<(u32, u32)>,
    /// A night business (exempt from the night-time rule).
    pub night_business: bool,
}

/// A blacklist entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Reason code: BLACKLIST_CARD, _BIN, _MERCHANT or _TERMINAL.
    pub code: &'static str,
    /// The entry.
    pub entry_id: String,
}

/// What the platform knows around one transaction (read and updated in one Redis round trip).
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Whether this transaction counts in the velocity and cash-out windows (purchases and
    /// pre-authorizations; a completion captures a hold already assessed).
    pub counted: bool,
    /// The card's window.
    pub card: Window,
    /// The terminal's window.
    pub terminal: Window,
    /// The merchant's window.
    pub merchant: Window,
    /// The card's window at this merchant (split purchases).
    pub split: Window,
    /// Chip fallbacks of this card before this one, inside the repeat window.
    pub earlier_fallbacks: u64,
    /// Where the card was seen last.
    pub last_seen: Option<Sighting>,
    /// Where this terminal stands.
    pub here: Place,
    /// Declines on this terminal since its last approval.
    pub declines_in_a_row: u64,
    /// This terminal's volume so far in the current business day, minor units.
    pub volume_today_minor: i64,
    /// Its volume on each earlier business day of the history that had any, minor units.
    pub volume_history_minor: Vec<i64>,
    /// The card is the merchant's own or a related merchant's settlement card.
    pub own_card: bool,
    /// The merchant's trading hours; `None` when unknown.
    pub trading: Option<Trading>,
    /// Blacklist entries that match.
    pub listed: Vec<Listed>,
    /// When the signals were read, Unix milliseconds.
    pub read_at_ms: u64,
}

/// The outcome of an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Approve, review or decline.
    pub decision: pb::FraudDecision,
    /// 0..1000.
    pub score: i32,
    /// Every reason that contributed, highest score first.
    pub reasons: Vec<pb::FraudReason>,
}

impl Assessment {
    /// Whether it makes an alert: a review, a decline or any rule hit.
    pub fn alerts(&self) -> bool {
        !self.reasons.is_empty() || self.decision != pb::FraudDecision::Approve
    }
}

/// Major units of an amount in minor units (every currency here has two decimals: CNY).
pub fn major(minor: i64) -> Decimal {
    Decimal::new(minor, 2)
}

/// Whether the card is a chip card by its service code (first digit 2 or 6).
pub fn is_chip_card(service_code: &str) -> bool {
    matches!(service_code.as_bytes().first(), Some(b'2' | b'6'))
}

/// Whether this read is the stripe of the card (a swipe, or the fallback swipe).
pub fn is_stripe_read(entry_mode: pb::CardEntryMode) -> bool {
    matches!(
        entry_mode,
        pb::CardEntryMode::Swipe | pb::CardEntryMode::FallbackSwipe
    )
}

/// Assesses `request` with its `signals` under `rules`.
pub fn assess(rules: &Rules, request: &pb::AssessRequest, signals: &Signals) -> Assessment {
    let mut hits = Hits::default();
    let amount_minor = request.amount.as_ref().map_or(0, |m| m.minor_units);
    let entry_mode =
        pb::CardEntryMode::try_from(request.entry_mode).unwrap_or(pb::CardEntryMode::Unspecified);
    let card = request.card.clone().unwrap_or_default();

    if rules.blacklist.enabled {
        for listed in &signals.listed {
            hits.add(
                listed.code,
                format!("on the blacklist (entry {})", listed.entry_id),
                rules.blacklist.score,
            );
        }
    }

    let fallback = &rules.chip_fallback;
    if fallback.enabled && is_chip_card(&request.service_code) && is_stripe_read(entry_mode) {
        let earlier = signals.earlier_fallbacks;
        let extra = i64::from(fallback.repeat_score).saturating_mul(earlier as i64);
        let score = (i64::from(fallback.score) + extra).min(i64::from(MAX_SCORE));
        let mut detail = format!(
            "chip card (service code {}) read by its stripe",
            request.service_code
        );
        if earlier > 0 {
            detail.push_str(&format!(
                "; {earlier} earlier fallback(s) of this card in {} min",
                fallback.repeat_window_minutes
            ));
        }
        hits.add("CHIP_FALLBACK", detail, score as i32);
    }

    if rules.cloned_card.enabled
        && let Some(detail) = far_apart(rules, request, signals)
    {
        hits.add("CLONED_CARD_DISTANCE", detail, rules.cloned_card.score);
    }

    let chip_read = matches!(
        entry_mode,
        pb::CardEntryMode::Chip | pb::CardEntryMode::Contactless
    );
    if rules.emv.enabled && chip_read {
        emv(rules, request.emv.as_ref(), amount_minor, &mut hits);
    }

    if rules.track_expiry.enabled
        && !request.track2_expiry.is_empty()
        && !request.expiry.is_empty()
        && request.track2_expiry != request.expiry
    {
        hits.add(
            "TRACK_EXPIRY_MISMATCH",
            format!(
                "track 2 expiry {} differs from the card's expiry {}",
                request.track2_expiry, request.expiry
            ),
            rules.track_expiry.score,
        );
    }

    if rules.card_number_mismatch.enabled
        && !request.displayed_last4.is_empty()
        && !card.last4.is_empty()
        && request.displayed_last4 != card.last4
    {
        hits.add(
            "CARD_NUMBER_MISMATCH",
            "the last four digits the cashier confirmed differ from the card read".to_owned(),
            rules.card_number_mismatch.score,
        );
    }

    if signals.counted {
        velocity(rules, signals, &mut hits);
        cash_out(rules, request, signals, amount_minor, &mut hits);
    }

    let declines = &rules.declines_in_a_row;
    if declines.enabled && signals.declines_in_a_row >= declines.threshold {
        hits.add(
            "DECLINES_IN_A_ROW",
            format!(
                "{} declines in a row on this terminal (limit {})",
                signals.declines_in_a_row, declines.threshold
            ),
            declines.score,
        );
    }

    if rules.night_time.enabled
        && let Some(detail) = night(rules, &request.local_datetime, signals.trading.as_ref())
    {
        hits.add("NIGHT_TIME", detail, rules.night_time.score);
    }

    hits.into_assessment(rules)
}

#[derive(Debug, Default)]
struct Hits(Vec<pb::FraudReason>);

impl Hits {
    fn add(&mut self, code: &str, detail: String, score: i32) {
        self.0.push(pb::FraudReason {
            code: code.to_owned(),
            detail,
            score,
        });
    }

    fn into_assessment(mut self, rules: &Rules) -> Assessment {
        self.0.sort_by_key(|r| std::cmp::Reverse(r.score));
        let total: i64 = self.0.iter().map(|r| i64::from(r.score)).sum();
        let score = total.min(i64::from(MAX_SCORE)) as i32;
        let decision = if score >= rules.decision.decline_at {
            pb::FraudDecision::Decline
        } else if score >= rules.decision.review_at {
            pb::FraudDecision::Review
        } else {
            pb::FraudDecision::Approve
        };
        Assessment {
            decision,
            score,
            reasons: self.0,
        }
    }
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn far_apart(rules: &Rules, request: &pb::AssessRequest, signals: &Signals) -> Option<String> {
    let cloned = &rules.cloned_card;
    let seen = signals.last_seen.as_ref()?;
    if seen.terminal_id == request.terminal_id {
        return None;
    }
    let now_ms = signals.read_at_ms.max(seen.at_ms);
    let minutes = now_ms.saturating_sub(seen.at_ms) as f64 / 60_000.0;
    if minutes > f64::from(cloned.window_minutes) {
        return None;
    }
    let here = &signals.here;
    match (seen.place.coordinates, here.coordinates) {
        (Some(there), Some(here_at)) => {
            let km = distance_km(there, here_at);
            // A minute at least: two reads in the same second are not infinitely fast.
            let hours = (minutes / 60.0).max(1.0 / 60.0);
            let speed = km / hours;
            (km >= cloned.min_distance_km && speed > cloned.max_speed_kmh).then(|| {
                format!(
                    "seen {km:.0} km away ({}) {minutes:.0} min earlier: {speed:.0} km/h (limit \
                     {:.0})",
                    place_name(&seen.place, &seen.terminal_id),
                    cloned.max_speed_kmh
                )
            })
        }
        _ => {
            let other_city = !seen.place.city.is_empty()
                && !here.city.is_empty()
                && !seen.place.city.eq_ignore_ascii_case(&here.city);
            (other_city && minutes <= f64::from(cloned.other_city_minutes)).then(|| {
                format!(
                    "seen in {} {minutes:.0} min earlier, now in {}",
                    place_name(&seen.place, &seen.terminal_id),
                    here.city
                )
            })
        }
    }
}

fn place_name(place: &Place, terminal_id: &str) -> String {
    if place.city.is_empty() {
        format!("terminal {terminal_id}")
    } else {
        format!("terminal {terminal_id}, {}", place.city)
    }
}

fn emv(rules: &Rules, emv: Option<&pb::EmvFacts>, amount_minor: i64, hits: &mut Hits) {
    let Some(emv) = emv.filter(|e| e.present) else {
        hits.add(
            "EMV_MISSING",
            "chip read without EMV data (field 55)".to_owned(),
            rules.emv.missing_score,
        );
        return;
    };
    let mut missing: Vec<&str> = emv.missing_tags.iter().map(String::as_str).collect();
    if !emv.cryptogram_present && !missing.contains(&"9F26") {
        missing.push("9F26");
    }
    if !missing.is_empty() {
        hits.add(
            "EMV_MISSING",
            format!("chip read without mandatory EMV tags {}", missing.join(" ")),
            rules.emv.missing_score,
        );
    }
    let mut inconsistent = Vec::new();
    let cid = u8::from_str_radix(&emv.cryptogram_information_data, 16).ok();
    if let Some(cid) = cid
        && cid & 0xC0 != 0x80
    {
        inconsistent.push(format!("cryptogram type {:02X} is not an ARQC", cid & 0xC0));
    }
    if !emv.amount_consistent && amount_minor > 0 {
        inconsistent.push("EMV amount or currency differs from the request".to_owned());
    }
    if !inconsistent.is_empty() {
        hits.add(
            "EMV_INCONSISTENT",
            inconsistent.join("; "),
            rules.emv.inconsistent_score,
        );
    }
}

fn velocity(rules: &Rules, signals: &Signals, hits: &mut Hits) {
    let checks = [
        ("VELOCITY_CARD", &rules.velocity_card, signals.card, "card"),
        (
            "VELOCITY_TERMINAL",
            &rules.velocity_terminal,
            signals.terminal,
            "terminal",
        ),
        (
            "VELOCITY_MERCHANT",
            &rules.velocity_merchant,
            signals.merchant,
            "merchant",
        ),
    ];
    for (code, rule, window, whose) in checks {
        if !rule.enabled {
            continue;
        }
        let sum = major(window.sum_minor);
        if window.count > rule.max_count {
            hits.add(
                code,
                format!(
                    "{} transactions of this {whose} in {} min (limit {})",
                    window.count, rule.window_minutes, rule.max_count
                ),
                rule.score,
            );
        } else if sum > rule.max_amount {
            hits.add(
                code,
                format!(
                    "{sum} of this {whose} in {} min (limit {})",
                    rule.window_minutes, rule.max_amount
                ),
                rule.score,
            );
        }
    }
}

fn cash_out(
    rules: &Rules,
    request: &pb::AssessRequest,
    signals: &Signals,
    amount_minor: i64,
    hits: &mut Hits,
) {
    let amount = major(amount_minor);
    if rules.cash_out_own_card.enabled && signals.own_card {
        hits.add(
            "CASH_OUT_OWN_CARD",
            "the merchant's own or a related merchant's settlement card pays at its terminal"
                .to_owned(),
            rules.cash_out_own_card.score,
        );
    }

    let round = &rules.cash_out_round_amount;
    if round.enabled && amount >= round.min_amount && (amount % round.round_to).is_zero() {
        let merchant_limit = request
            .merchant_limit
            .as_ref()
            .map(|m| major(m.minor_units));
        let band = Decimal::ONE - round.under_limit_percent / Decimal::ONE_HUNDRED;
        let under = round
            .limits
            .iter()
            .copied()
            .chain(merchant_limit)
            .filter(|limit| amount <= *limit && amount >= *limit * band)
            .min();
        if let Some(limit) = under {
            hits.add(
                "CASH_OUT_ROUND_AMOUNT",
                format!("round amount {amount} just under the limit {limit}"),
                round.score,
            );
        }
    }

    let split = &rules.cash_out_split;
    let parts = signals.split;
    if split.enabled && parts.count >= split.min_parts && major(parts.sum_minor) >= split.min_total
    {
        hits.add(
            "CASH_OUT_SPLIT",
            format!(
                "{} payments of this card at this merchant within {} min, {} in all",
                parts.count,
                split.window_minutes,
                major(parts.sum_minor)
            ),
            split.score,
        );
    }

    let jump = &rules.cash_out_volume_jump;
    let days = signals.volume_history_minor.len();
    if jump.enabled && days >= jump.min_history_days as usize {
        let history: i64 = signals.volume_history_minor.iter().sum();
        let average = major(history) / Decimal::from(days as u64);
        let today = major(signals.volume_today_minor.saturating_add(amount_minor));
        if today >= jump.min_amount && today > average * jump.factor {
            hits.add(
                "CASH_OUT_VOLUME_JUMP",
                format!(
                    "terminal volume today {today} against a daily average of {} over {days} \
                     days (limit {}x)",
                    average.round_dp(2),
                    jump.factor
                ),
                jump.score,
            );
        }
    }
}

/// The local time of `local_datetime` ("YYYY-MM-DDTHH:MM:SS") in minutes since midnight.
fn local_minutes(local_datetime: &str) -> Option<u32> {
    let time = local_datetime.split_once('T')?.1;
    minutes_of_day(time.get(..5)?)
}

fn inside(minute: u32, (start, end): (u32, u32)) -> bool {
    if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}

fn night(rules: &Rules, local_datetime: &str, trading: Option<&Trading>) -> Option<String> {
    let night = &rules.night_time;
    let minute = local_minutes(local_datetime)?;
    let window = (
        minutes_of_day(&night.starts_at)?,
        minutes_of_day(&night.ends_at)?,
    );
    if !inside(minute, window) {
        return None;
    }
    let hhmm = format!("{:02}:{:02}", minute / 60, minute % 60);
    match trading {
        Some(t) if t.night_business => None,
        Some(t) if t.windows.iter().any(|w| inside(minute, *w)) => None,
        Some(t) if !t.windows.is_empty() => Some(format!(
            "{hhmm} is outside the merchant's trading hours {}",
            t.windows
                .iter()
                .map(|(a, b)| format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Some(format!(
            "{hhmm} at night ({}-{}) and the merchant is not a night business",
            night.starts_at, night.ends_at
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::parse(include_str!("../rules/default.toml"))
            .unwrap()
            .rules
    }

    fn request(amount_minor: i64) -> pb::AssessRequest {
        pb::AssessRequest {
            transaction_id: "t1".to_owned(),
            transaction_type: pb::TransactionType::Purchase as i32,
            card: Some(pb::MaskedCard {
                masked_pan: "622202****1234".to_owned(),
                card_token: "ab".repeat(32),
                bin: "622202".to_owned(),
                last4: "1234".to_owned(),
            }),
            service_code: "201".to_owned(),
            entry_mode: pb::CardEntryMode::Chip as i32,
            emv: Some(pb::EmvFacts {
                present: true,
                cryptogram_present: true,
                cryptogram_information_data: "80".to_owned(),
                atc: Some(7),
                tvr: "0000000000".to_owned(),
                missing_tags: vec![],
                amount_consistent: true,
            }),
            expiry: "2812".to_owned(),
            displayed_last4: "1234".to_owned(),
            amount: Some(pb::Money {
                minor_units: amount_minor,
                currency: "CNY".to_owned(),
            }),
            merchant_id: "898310048990001".to_owned(),
            terminal_id: "T0000001".to_owned(),
            local_datetime: "2026-11-28T14:30:00".to_owned(),
            ..pb::AssessRequest::default()
        }
    }

    fn signals() -> Signals {
        Signals {
            counted: true,
            card: Window {
                count: 1,
                sum_minor: 10_000,
            },
            trading: Some(Trading {
                windows: vec![(7 * 60, 21 * 60)],
                night_business: false,
            }),
            ..Signals::default()
        }
    }

    fn codes(a: &Assessment) -> Vec<&str> {
        a.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn a_clean_chip_purchase_is_approved_without_reasons() {
        let a = assess(&rules(), &request(10_000), &signals());
        assert_eq!(a.decision, pb::FraudDecision::Approve);
        assert_eq!(a.score, 0);
        assert!(a.reasons.is_empty());
        assert!(!a.alerts());
    }

    #[test]
    fn chip_fallback_scores_more_when_repeated() {
        let mut r = request(10_000);
        r.entry_mode = pb::CardEntryMode::Swipe as i32;
        r.emv = None;
        let first = assess(&rules(), &r, &signals());
        assert_eq!(codes(&first), ["CHIP_FALLBACK"]);
        assert_eq!(first.decision, pb::FraudDecision::Approve);
        assert!(first.alerts());
        let again = assess(
            &rules(),
            &r,
            &Signals {
                earlier_fallbacks: 2,
                ..signals()
            },
        );
        assert_eq!(again.score, 700);
        assert_eq!(again.decision, pb::FraudDecision::Decline);
        // A magnetic-only card (service code 1xx) swiped is no fallback.
        r.service_code = "101".to_owned();
        assert!(assess(&rules(), &r, &signals()).reasons.is_empty());
    }

    #[test]
    fn far_apart_terminals_within_minutes_signal_a_cloned_card() {
        let shanghai = Place {
            city: "上海".to_owned(),
            coordinates: Some((31.2304, 121.4737)),
        };
        let beijing = Place {
            city: "北京".to_owned(),
            coordinates: Some((39.9042, 116.4074)),
        };
        let seen = |place: Place, minutes_ago: u64| Signals {
            last_seen: Some(Sighting {
                terminal_id: "T0000009".to_owned(),
                place,
                at_ms: 100_000_000 - minutes_ago * 60_000,
            }),
            here: shanghai.clone(),
            read_at_ms: 100_000_000,
            ..signals()
        };
        let hit = assess(&rules(), &request(10_000), &seen(beijing.clone(), 20));
        assert_eq!(codes(&hit), ["CLONED_CARD_DISTANCE"]);
        assert!(hit.reasons[0].detail.contains("km away"), "{hit:?}");
        // Four hours is enough to fly Beijing → Shanghai.
        let flight = assess(&rules(), &request(10_000), &seen(beijing, 240));
        assert!(flight.reasons.is_empty());
        // The shop next door.
        let near = Place {
            city: "上海".to_owned(),
            coordinates: Some((31.2310, 121.4740)),
        };
        assert!(
            assess(&rules(), &request(10_000), &seen(near, 1))
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn emv_data_missing_or_inconsistent_on_a_chip_read() {
        let mut r = request(10_000);
        r.emv = None;
        assert_eq!(codes(&assess(&rules(), &r, &signals())), ["EMV_MISSING"]);
        let mut r = request(10_000);
        if let Some(emv) = r.emv.as_mut() {
            emv.cryptogram_information_data = "00".to_owned();
            emv.amount_consistent = false;
        }
        let a = assess(&rules(), &r, &signals());
        assert_eq!(codes(&a), ["EMV_INCONSISTENT"]);
        assert!(a.reasons[0].detail.contains("not an ARQC"));
    }

    #[test]
    fn track_expiry_and_card_number_mismatches() {
        let mut r = request(10_000);
        r.entry_mode = pb::CardEntryMode::Swipe as i32;
        r.service_code = "101".to_owned();
        r.track2_expiry = "2912".to_owned();
        assert_eq!(
            codes(&assess(&rules(), &r, &signals())),
            ["TRACK_EXPIRY_MISMATCH"]
        );
        let mut r = request(10_000);
        r.displayed_last4 = "4321".to_owned();
        let a = assess(&rules(), &r, &signals());
        assert_eq!(codes(&a), ["CARD_NUMBER_MISMATCH"]);
        assert_eq!(a.decision, pb::FraudDecision::Decline);
    }

    #[test]
    fn velocity_counts_and_amounts() {
        let busy = Signals {
            card: Window {
                count: 6,
                sum_minor: 60_000,
            },
            ..signals()
        };
        let a = assess(&rules(), &request(10_000), &busy);
        assert_eq!(codes(&a), ["VELOCITY_CARD"]);
        assert_eq!(a.decision, pb::FraudDecision::Review);
        let five = Signals {
            card: Window {
                count: 5,
                sum_minor: 60_000,
            },
            ..signals()
        };
        assert!(assess(&rules(), &request(10_000), &five).reasons.is_empty());
        let big = Signals {
            terminal: Window {
                count: 2,
                sum_minor: 20_000_001,
            },
            ..signals()
        };
        assert_eq!(
            codes(&assess(&rules(), &request(10_000), &big)),
            ["VELOCITY_TERMINAL"]
        );
        // Not counted (a completion): no velocity.
        let uncounted = Signals {
            counted: false,
            ..busy
        };
        assert!(
            assess(&rules(), &request(10_000), &uncounted)
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn declines_in_a_row_on_a_terminal() {
        let s = Signals {
            declines_in_a_row: 5,
            ..signals()
        };
        assert_eq!(
            codes(&assess(&rules(), &request(10_000), &s)),
            ["DECLINES_IN_A_ROW"]
        );
        let s = Signals {
            declines_in_a_row: 4,
            ..signals()
        };
        assert!(assess(&rules(), &request(10_000), &s).reasons.is_empty());
    }

    #[test]
    fn cash_out_signals() {
        let own = Signals {
            own_card: true,
            ..signals()
        };
        let a = assess(&rules(), &request(10_000), &own);
        assert_eq!(codes(&a), ["CASH_OUT_OWN_CARD"]);
        assert_eq!(a.decision, pb::FraudDecision::Review);

        // 49,900.00: round, large, within 10 % under 50,000.
        assert_eq!(
            codes(&assess(&rules(), &request(4_990_000), &signals())),
            ["CASH_OUT_ROUND_AMOUNT"]
        );
        // 49,873.50 is not round; 30,000.00 is under no limit; 4,900.00 is small.
        for minor in [4_987_350, 3_000_000, 490_000] {
            assert!(
                assess(&rules(), &request(minor), &signals())
                    .reasons
                    .is_empty(),
                "{minor}"
            );
        }
        // Just under the merchant's own limit of 8,000.00.
        let mut r = request(780_000);
        r.merchant_limit = Some(pb::Money {
            minor_units: 800_000,
            currency: "CNY".to_owned(),
        });
        assert_eq!(
            codes(&assess(&rules(), &r, &signals())),
            ["CASH_OUT_ROUND_AMOUNT"]
        );

        let split = Signals {
            split: Window {
                count: 3,
                sum_minor: 600_000,
            },
            ..signals()
        };
        assert_eq!(
            codes(&assess(&rules(), &request(200_000), &split)),
            ["CASH_OUT_SPLIT"]
        );

        let jump = Signals {
            volume_today_minor: 1_500_000,
            volume_history_minor: vec![200_000, 300_000, 250_000],
            ..signals()
        };
        let a = assess(&rules(), &request(10_000), &jump);
        assert_eq!(codes(&a), ["CASH_OUT_VOLUME_JUMP"]);
        assert!(a.reasons[0].detail.contains("2500.00"), "{a:?}");
        // Too little history: no judgement.
        let young = Signals {
            volume_history_minor: vec![200_000, 300_000],
            ..jump
        };
        assert!(
            assess(&rules(), &request(10_000), &young)
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn night_time_only_for_merchants_that_do_not_trade_at_night() {
        let mut r = request(10_000);
        r.local_datetime = "2026-11-28T02:13:00".to_owned();
        let a = assess(&rules(), &r, &signals());
        assert_eq!(codes(&a), ["NIGHT_TIME"]);
        assert!(a.reasons[0].detail.contains("07:00-21:00"));
        let bakery = Signals {
            trading: Some(Trading {
                windows: vec![(22 * 60, 6 * 60)],
                night_business: false,
            }),
            ..signals()
        };
        assert!(assess(&rules(), &r, &bakery).reasons.is_empty());
        let bar = Signals {
            trading: Some(Trading {
                windows: vec![],
                night_business: true,
            }),
            ..signals()
        };
        assert!(assess(&rules(), &r, &bar).reasons.is_empty());
        r.local_datetime = "2026-11-28T05:00:00".to_owned();
        assert!(assess(&rules(), &r, &signals()).reasons.is_empty());
    }

    #[test]
    fn blacklist_hits_decline_and_switches_turn_rules_off() {
        let listed = Signals {
            listed: vec![Listed {
                code: "BLACKLIST_CARD",
                entry_id: "e1".to_owned(),
            }],
            ..signals()
        };
        let a = assess(&rules(), &request(10_000), &listed);
        assert_eq!(a.decision, pb::FraudDecision::Decline);
        assert_eq!(a.score, 1000);
        let mut off = rules();
        off.blacklist.enabled = false;
        assert!(assess(&off, &request(10_000), &listed).reasons.is_empty());
    }

    #[test]
    fn scores_add_up_to_at_most_1000() {
        let mut r = request(4_990_000);
        r.displayed_last4 = "0000".to_owned();
        let s = Signals {
            own_card: true,
            ..signals()
        };
        let a = assess(&rules(), &r, &s);
        assert_eq!(a.score, 1000);
        assert_eq!(
            codes(&a),
            [
                "CARD_NUMBER_MISMATCH",
                "CASH_OUT_OWN_CARD",
                "CASH_OUT_ROUND_AMOUNT"
            ]
        );
    }
}
