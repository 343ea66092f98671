//! Receipts (签购单): on approval the terminal prints two copies, the merchant stub (商户存根,
//! with a signature line) and the cardholder stub (持卡人存根), Chinese labels with English
//! alongside, as UnionPay terminals print them. The card number is always masked.

use std::fmt::Write as _;

use pos_proto::v1 as pb;

/// Which copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// 商户存根: kept by the merchant, signed by the cardholder.
    Merchant,
    /// 持卡人存根: handed to the cardholder.
    Cardholder,
}

impl Copy {
    /// File name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Copy::Merchant => "merchant",
            Copy::Cardholder => "cardholder",
        }
    }
}

/// The transaction type as receipts print it, e.g. "消费 SALE".
pub fn type_label(kind: i32) -> &'static str {
    match pb::TransactionType::try_from(kind) {
        Ok(pb::TransactionType::Purchase) => "消费 SALE",
        Ok(pb::TransactionType::PreAuth) => "预授权 PRE-AUTH",
        Ok(pb::TransactionType::PreAuthCompletion) => "预授权完成 AUTH COMPLETE",
        Ok(pb::TransactionType::PreAuthVoid) => "预授权撤销 PRE-AUTH VOID",
        Ok(pb::TransactionType::BalanceInquiry) => "余额查询 BALANCE",
        Ok(pb::TransactionType::PurchaseVoid) => "消费撤销 VOID",
        Ok(pb::TransactionType::CompletionVoid) => "预授权完成撤销 COMPLETE VOID",
        Ok(pb::TransactionType::Refund) => "退货 REFUND",
        _ => "交易 TRANSACTION",
    }
}

fn entry_label(mode: i32) -> &'static str {
    match pb::CardEntryMode::try_from(mode) {
        Ok(pb::CardEntryMode::Swipe) => "刷卡 SWIPE",
        Ok(pb::CardEntryMode::Chip) => "插卡 CHIP",
        Ok(pb::CardEntryMode::Contactless) => "挥卡 CONTACTLESS",
        Ok(pb::CardEntryMode::FallbackSwipe) => "降级刷卡 FALLBACK",
        Ok(pb::CardEntryMode::Manual) => "手输 MANUAL",
        _ => "-",
    }
}

/// Formats minor units as yuan with two decimals ("RMB 50.00").
pub fn amount(money: Option<&pb::Money>) -> String {
    money.map_or_else(
        || "-".to_owned(),
        |m| {
            let abs = m.minor_units.unsigned_abs();
            let currency = if m.currency == "CNY" {
                "RMB"
            } else {
                m.currency.as_str()
            };
            format!("{currency} {}.{:02}", abs / 100, abs % 100)
        },
    )
}

/// The text of one copy of the receipt for an approved transaction.
pub fn render(copy: Copy, answer: &pb::TransactionResponse, printed_at: &str) -> String {
    let mut r = String::new();
    let title = match copy {
        Copy::Merchant => "商户存根 MERCHANT COPY",
        Copy::Cardholder => "持卡人存根 CARDHOLDER COPY",
    };
    let card = answer.card.as_ref().map_or("-", |c| c.masked_pan.as_str());
    let _ = writeln!(r, "        POS 签购单 / SALES SLIP");
    let _ = writeln!(r, "        {title}");
    let _ = writeln!(r, "------------------------------------------");
    let _ = writeln!(r, "商户名称 MERCHANT NAME: {}", answer.merchant_name);
    let _ = writeln!(r, "商户编号 MERCHANT NO.:  {}", answer.merchant_id);
    let _ = writeln!(r, "终端编号 TERMINAL NO.:  {}", answer.terminal_id);
    let _ = writeln!(r, "操作员号 OPERATOR NO.:  {}", answer.operator_no);
    let _ = writeln!(r, "卡号 CARD NO.:          {card}");
    let _ = writeln!(
        r,
        "输入方式 ENTRY MODE:    {}",
        entry_label(answer.entry_mode)
    );
    let _ = writeln!(
        r,
        "交易类型 TRANS TYPE:    {}",
        type_label(answer.transaction_type)
    );
    let _ = writeln!(r, "批次号 BATCH NO.:       {:06}", answer.batch_no);
    let _ = writeln!(r, "凭证号 VOUCHER NO.:     {:06}", answer.stan);
    let _ = writeln!(r, "参考号 REF. NO.:        {}", answer.rrn);
    let _ = writeln!(r, "授权码 AUTH NO.:        {}", answer.approval_code);
    let _ = writeln!(r, "日期/时间 DATE/TIME:    {printed_at}");
    let _ = writeln!(
        r,
        "金额 AMOUNT:            {}",
        amount(answer.amount.as_ref())
    );
    if let Some(original) = &answer.original {
        original_lines(&mut r, original);
    }
    let _ = writeln!(r, "------------------------------------------");
    if copy == Copy::Merchant {
        let _ = writeln!(r, "持卡人签名 CARDHOLDER SIGNATURE:");
        let _ = writeln!(r);
        let _ = writeln!(r, "__________________________________________");
        let _ = writeln!(r, "本人确认以上交易，同意将其记入本卡账户");
        let _ = writeln!(
            r,
            "I ACKNOWLEDGE SATISFACTORY RECEIPT OF RELATIVE GOODS/SERVICES"
        );
    }
    r
}

/// The original a void, refund, completion or pre-auth void refers to, as far as it is known.
fn original_lines(r: &mut String, original: &pb::OriginalTransactionRef) {
    if original.stan != 0 {
        let _ = writeln!(r, "原凭证号 ORIG. VOUCHER:  {:06}", original.stan);
    }
    if !original.rrn.is_empty() {
        let _ = writeln!(r, "原参考号 ORIG. REF. NO.: {}", original.rrn);
    }
    if !original.approval_code.is_empty() {
        let _ = writeln!(r, "原授权码 ORIG. AUTH NO.: {}", original.approval_code);
    }
    if !original.business_date.is_empty() {
        let _ = writeln!(r, "原交易日期 ORIG. DATE:   {}", original.business_date);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved() -> pb::TransactionResponse {
        pb::TransactionResponse {
            response_code: "00".to_owned(),
            transaction_type: pb::TransactionType::Purchase as i32,
            rrn: "612345678901".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            amount: Some(pb::Money {
                minor_units: 5_000,
                currency: "CNY".to_owned(),
            }),
            card: Some(pb::MaskedCard {
                masked_pan: "622202****3446".to_owned(),
                ..pb::MaskedCard::default()
            }),
            merchant_id: "898310048990001".to_owned(),
            merchant_name: "上海市徐汇区张三便利店".to_owned(),
            terminal_id: "12345678".to_owned(),
            batch_no: 1,
            stan: 42,
            operator_no: "01".to_owned(),
            entry_mode: pb::CardEntryMode::Chip as i32,
            ..pb::TransactionResponse::default()
        }
    }

    #[test]
    fn both_copies_carry_what_a_cardholder_checks() {
        for copy in [Copy::Merchant, Copy::Cardholder] {
            let text = render(copy, &approved(), "2026-11-28 18:00:00");
            for needle in [
                "622202****3446",
                "RMB 50.00",
                "000042",
                "000001",
                "612345678901",
                "A1B2C3",
                "12345678",
                "898310048990001",
                "消费 SALE",
                "插卡 CHIP",
            ] {
                assert!(text.contains(needle), "{needle} missing from\n{text}");
            }
        }
        assert!(render(Copy::Merchant, &approved(), "-").contains("CARDHOLDER SIGNATURE"));
        assert!(!render(Copy::Merchant, &approved(), "-").contains("ORIG."));
        assert!(!render(Copy::Cardholder, &approved(), "-").contains("CARDHOLDER SIGNATURE"));
    }

    #[test]
    fn voids_and_refunds_are_titled_as_such_and_name_their_original() {
        let mut void = approved();
        void.transaction_type = pb::TransactionType::PurchaseVoid as i32;
        void.stan = 43;
        void.original = Some(pb::OriginalTransactionRef {
            stan: 42,
            rrn: "612345678901".to_owned(),
            ..pb::OriginalTransactionRef::default()
        });
        let text = render(Copy::Cardholder, &void, "-");
        for needle in [
            "消费撤销 VOID",
            "原凭证号 ORIG. VOUCHER:  000042",
            "原参考号 ORIG. REF. NO.: 612345678901",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        void.transaction_type = pb::TransactionType::CompletionVoid as i32;
        assert!(render(Copy::Merchant, &void, "-").contains("预授权完成撤销 COMPLETE VOID"));
        let mut refund = approved();
        refund.transaction_type = pb::TransactionType::Refund as i32;
        refund.original = Some(pb::OriginalTransactionRef {
            rrn: "612345678901".to_owned(),
            business_date: "2026-11-27".to_owned(),
            ..pb::OriginalTransactionRef::default()
        });
        let text = render(Copy::Merchant, &refund, "-");
        for needle in [
            "退货 REFUND",
            "原参考号 ORIG. REF. NO.: 612345678901",
            "2026-11-27",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
