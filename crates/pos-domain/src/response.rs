//! ISO 8583 DE39 response codes as China UnionPay uses them (REFERENCE.md), each with its
//! two-character code and a short description in English and Chinese for screens, receipts
//! and operators.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};

/// Defines `ResponseCode` and its code/description tables from one list.
macro_rules! response_codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $en:literal, $zh:literal;)+) => {
        /// The answer to a request (DE39): "00" approves, everything else declines or errs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum ResponseCode {
            $($(#[$doc])* $name,)+
        }

        impl ResponseCode {
            /// Every response code, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$name),+];

            /// The two-character code, e.g. "51".
            pub fn code(self) -> &'static str {
                match self { $(Self::$name => $code,)+ }
            }

            /// A short English description, e.g. "insufficient funds".
            pub fn description(self) -> &'static str {
                match self { $(Self::$name => $en,)+ }
            }

            /// A short Chinese description, e.g. "余额不足".
            pub fn description_zh(self) -> &'static str {
                match self { $(Self::$name => $zh,)+ }
            }

            /// Parses a two-character code; letters may be either case ("a0" is A0).
            pub fn parse(input: &str) -> Result<Self> {
                match input.to_ascii_uppercase().as_str() {
                    $($code => Ok(Self::$name),)+
                    _ => Err(DomainError::UnknownResponseCode(input.to_owned())),
                }
            }
        }
    };
}

response_codes! {
    /// 00: approved.
    Approved = "00", "approved", "交易成功";
    /// 01: refer to the card issuer.
    ReferToIssuer = "01", "refer to card issuer", "请持卡人与发卡行联系";
    /// 03: invalid merchant.
    InvalidMerchant = "03", "invalid merchant", "无效商户";
    /// 05: do not honour.
    DoNotHonour = "05", "do not honour", "不予承兑";
    /// 06: error; also the reversal reason after a failed reversal attempt.
    Error = "06", "error", "出错";
    /// 12: invalid transaction.
    InvalidTransaction = "12", "invalid transaction", "无效交易";
    /// 13: invalid amount.
    InvalidAmount = "13", "invalid amount", "无效金额";
    /// 14: invalid card number.
    InvalidCardNumber = "14", "invalid card number", "无效卡号";
    /// 22: suspected malfunction.
    SuspectedMalfunction = "22", "suspected malfunction", "故障怀疑";
    /// 25: original transaction not found.
    OriginalNotFound = "25", "original transaction not found", "找不到原始交易";
    /// 30: message format error.
    FormatError = "30", "format error", "报文格式错误";
    /// 40: requested function not supported.
    FunctionNotSupported = "40", "function not supported", "请求的功能尚不支持";
    /// 41: lost card, pick up.
    LostCard = "41", "lost card", "挂失卡";
    /// 43: stolen card, pick up.
    StolenCard = "43", "stolen card", "被窃卡";
    /// 51: insufficient funds.
    InsufficientFunds = "51", "insufficient funds", "余额不足";
    /// 54: expired card.
    ExpiredCard = "54", "expired card", "过期的卡";
    /// 55: incorrect PIN.
    IncorrectPin = "55", "incorrect PIN", "密码错";
    /// 57: transaction not permitted to the cardholder.
    NotPermittedToCardholder = "57", "not permitted to cardholder", "不允许持卡人进行的交易";
    /// 58: transaction not permitted to the terminal.
    NotPermittedToTerminal = "58", "not permitted to terminal", "不允许终端进行的交易";
    /// 59: suspected fraud.
    SuspectedFraud = "59", "suspected fraud", "有作弊嫌疑";
    /// 61: exceeds the amount limit.
    ExceedsAmountLimit = "61", "exceeds amount limit", "超出金额限制";
    /// 64: original amount incorrect.
    OriginalAmountIncorrect = "64", "original amount incorrect", "原始金额错误";
    /// 65: exceeds the frequency limit.
    ExceedsFrequencyLimit = "65", "exceeds frequency limit", "超出消费次数限制";
    /// 75: allowable number of PIN tries exceeded.
    PinTriesExceeded = "75", "PIN tries exceeded", "密码错误次数超限";
    /// 91: issuer unavailable.
    IssuerUnavailable = "91", "issuer unavailable", "发卡方不能操作";
    /// 94: duplicate transmission.
    DuplicateTransmission = "94", "duplicate transmission", "重复交易";
    /// 96: system malfunction.
    SystemMalfunction = "96", "system malfunction", "系统异常";
    /// 97: terminal not registered.
    TerminalNotRegistered = "97", "terminal not registered", "终端未登记";
    /// 98: no answer from the issuer; also the reversal reason "no response".
    NoIssuerResponse = "98", "no answer from issuer", "发卡方超时";
    /// 99: PIN block format error.
    PinBlockError = "99", "PIN block error", "PIN格式错";
    /// A0: MAC check failed; also the reversal reason for a bad MAC in the answer.
    MacCheckFailed = "A0", "MAC check failed", "MAC校验错";
}

impl ResponseCode {
    /// Whether the request was approved (only "00").
    pub fn is_approved(self) -> bool {
        self == Self::Approved
    }
}

/// The two-character code, e.g. "51".
impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for ResponseCode {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ResponseCode {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<ResponseCode> for String {
    fn from(value: ResponseCode) -> Self {
        value.code().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_round_trips() {
        assert_eq!(ResponseCode::ALL.len(), 31);
        for &code in ResponseCode::ALL {
            assert_eq!(ResponseCode::parse(code.code()), Ok(code));
            assert_eq!(ResponseCode::try_from(String::from(code)), Ok(code));
            assert_eq!(code.to_string().len(), 2);
        }
        let distinct: HashSet<_> = ResponseCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(distinct.len(), ResponseCode::ALL.len());
    }

    #[test]
    fn only_00_is_approved() {
        assert!(ResponseCode::Approved.is_approved());
        let approved = ResponseCode::ALL.iter().filter(|c| c.is_approved()).count();
        assert_eq!(approved, 1);
    }

    #[test]
    fn describes_codes_in_english_and_chinese() {
        let funds = ResponseCode::parse("51").unwrap();
        assert_eq!(funds, ResponseCode::InsufficientFunds);
        assert_eq!(
            (funds.description(), funds.description_zh()),
            ("insufficient funds", "余额不足")
        );
        let mac = ResponseCode::parse("a0").unwrap();
        assert_eq!(
            (mac.description(), mac.description_zh()),
            ("MAC check failed", "MAC校验错")
        );
        for &code in ResponseCode::ALL {
            assert!(!code.description().is_empty() && !code.description_zh().is_empty());
        }
    }

    #[test]
    fn refuses_unknown_codes() {
        let err = ResponseCode::parse("ZZ").unwrap_err();
        assert_eq!(err.to_string(), "unknown response code \"ZZ\"");
        assert!(ResponseCode::parse("5").is_err());
        assert!(ResponseCode::parse("").is_err());
    }
}
