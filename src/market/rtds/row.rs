//! One RTDS `activity`/`trades` frame read into sightings of our targets' fills (pure).
//!
//! A row carries the trader's wallet, the token, side, size and the settlement's transaction hash,
//! but no order hash (docs/PROTOCOL.md §8): it is linked to a fill by (transaction, wallet, token,
//! side, shares, occurrence), where the occurrence numbers identical rows of one transaction as
//! one socket saw them, so two sockets' copies of a row are one sighting and two identical fills
//! stay two.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use alloy::primitives::{Address, B256};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::domain::{Shares, Side, TokenId, decimal_to_micros};

/// A target's trade as RTDS showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtdsRow {
    /// The settlement transaction.
    pub tx_hash: B256,
    /// The trader's wallet.
    pub wallet: Address,
    /// The token.
    pub token_id: TokenId,
    /// The trader's side.
    pub side: Side,
    /// Shares.
    pub shares: Shares,
    /// Which of the transaction's identical rows this is (0, 1, ...).
    pub occurrence: u32,
}

/// Why a frame gave no rows (logged at debug level: the firehose carries much we do not read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// Not JSON, or not an object.
    #[error("not a JSON object")]
    NotJson,
    /// Another topic or type (subscription acknowledgements, other feeds).
    #[error("not an activity/trades frame")]
    OtherTopic,
    /// A field missing or unreadable.
    #[error("field {0} missing or unreadable")]
    Field(&'static str),
}

/// Numbers identical rows per transaction, for one socket.
#[derive(Debug, Default)]
pub struct Occurrences {
    seen: HashMap<(B256, Address, TokenId, Side, Shares), u32>,
}

impl Occurrences {
    /// Forgets what was counted (a transaction's rows arrive together; memory stays bounded).
    pub fn clear_if_larger_than(&mut self, n: usize) {
        if self.seen.len() > n {
            self.seen.clear();
        }
    }
}

fn field<'a>(p: &'a Value, k: &'static str) -> Result<&'a Value, RowError> {
    p.get(k).filter(|v| !v.is_null()).ok_or(RowError::Field(k))
}

/// A number or a numeric string, exactly (never through a float).
fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            Decimal::from_str(&n.to_string()).or_else(|_| Decimal::from_scientific(&n.to_string())).ok()
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// The rows of `targets` in one frame's text. A frame holds one row (`payload` an object) or
/// several (`payload` a list).
///
/// # Errors
/// When the frame is not an activity/trades frame or a target's row is unreadable.
pub fn parse_frame(text: &str, targets: &HashSet<Address>, occ: &mut Occurrences) -> Result<Vec<RtdsRow>, RowError> {
    let v: Value = serde_json::from_str(text).map_err(|_| RowError::NotJson)?;
    let obj = v.as_object().ok_or(RowError::NotJson)?;
    if obj.get("topic").and_then(Value::as_str) != Some("activity")
        || !matches!(obj.get("type").and_then(Value::as_str), Some("trades" | "orders_matched"))
    {
        return Err(RowError::OtherTopic);
    }
    let payloads: Vec<&Value> = match obj.get("payload") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(p @ Value::Object(_)) => vec![p],
        _ => return Err(RowError::Field("payload")),
    };
    let mut out = Vec::new();
    for p in payloads {
        let wallet: Address =
            field(p, "proxyWallet")?.as_str().and_then(|s| s.parse().ok()).ok_or(RowError::Field("proxyWallet"))?;
        if !targets.contains(&wallet) {
            continue;
        }
        let tx_hash: B256 = field(p, "transactionHash")?
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(RowError::Field("transactionHash"))?;
        let token_id = match field(p, "asset")? {
            Value::String(s) => TokenId::from_str_radix(s, 10).map_err(|_| RowError::Field("asset"))?,
            _ => return Err(RowError::Field("asset")),
        };
        let side = field(p, "side")?.as_str().and_then(Side::parse).ok_or(RowError::Field("side"))?;
        let shares = decimal(field(p, "size")?)
            .and_then(decimal_to_micros)
            .filter(|m| *m > 0)
            .map(Shares)
            .ok_or(RowError::Field("size"))?;
        let n = occ.seen.entry((tx_hash, wallet, token_id, side, shares)).or_insert(0);
        out.push(RtdsRow { tx_hash, wallet, token_id, side, shares, occurrence: *n });
        *n += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const T: Address = address!("1111111111111111111111111111111111111111");

    fn row(wallet: &str, size: &str) -> String {
        format!(
            r#"{{"proxyWallet":"{wallet}","asset":"123","conditionId":"0x01","side":"BUY","size":{size},"price":0.4,
               "timestamp":1764590000,"transactionHash":"0x{}","outcome":"Yes","name":"x"}}"#,
            "ab".repeat(32)
        )
    }

    #[test]
    fn target_rows_are_read_exactly_and_numbered() {
        let targets: HashSet<Address> = [T].into();
        let t = "0x1111111111111111111111111111111111111111";
        let o = "0x2222222222222222222222222222222222222222";
        let frame = format!(
            r#"{{"topic":"activity","type":"trades","timestamp":1764590000123,"payload":[{},{},{},{}]}}"#,
            row(t, "12.5"),
            row(o, "1"),
            row(t, "12.5"),
            row(t, "\"0.000001\"")
        );
        let mut occ = Occurrences::default();
        let rows = parse_frame(&frame, &targets, &mut occ).unwrap();
        let got: Vec<(i64, u32)> = rows.iter().map(|r| (r.shares.0, r.occurrence)).collect();
        assert_eq!(got, vec![(12_500_000, 0), (12_500_000, 1), (1, 0)]);
        // One row per frame too, and the count goes on for the same transaction.
        let single = format!(r#"{{"topic":"activity","type":"trades","payload":{}}}"#, row(t, "12.5"));
        assert_eq!(parse_frame(&single, &targets, &mut occ).unwrap()[0].occurrence, 2);
    }

    #[test]
    fn other_frames_and_bad_rows_are_said_apart() {
        let targets: HashSet<Address> = [T].into();
        let mut occ = Occurrences::default();
        let cases = [
            ("", RowError::NotJson),
            ("[]", RowError::NotJson),
            (r#"{"topic":"crypto_prices","type":"update","payload":{}}"#, RowError::OtherTopic),
            (r#"{"topic":"activity","type":"trades"}"#, RowError::Field("payload")),
            (
                r#"{"topic":"activity","type":"trades","payload":{"proxyWallet":"0x1111111111111111111111111111111111111111","asset":"1","side":"HOLD","size":1,"transactionHash":"0xabababababababababababababababababababababababababababababababab"}}"#,
                RowError::Field("side"),
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(parse_frame(frame, &targets, &mut occ), Err(want), "{frame}");
        }
    }
}
