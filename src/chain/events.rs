//! Decoding `OrderFilled` logs (V1 and V2/V3 layouts) into [`TargetFill`]s, seen from the maker's side.
//!
//! Pure functions: no I/O. docs/PROTOCOL.md §3 is the specification; the tests pin it.

use alloy::primitives::{Address, B256, U256, b256};
use alloy::sol_types::SolEvent as _;

use crate::chain::abi;

use crate::domain::{ExchangeVersion, FillId, Price, Role, Shares, Side, TargetFill, TokenId, Usdc, u256_to_micros};

/// topic0 of the V1 `OrderFilled` event.
pub const ORDER_FILLED_V1: B256 = b256!("d0a08e8c493f9c94f29311604c9de1b4e8c8d4c06bd0c789af57f2d65bfec0f6");
/// topic0 of the V2/V3 `OrderFilled` event.
pub const ORDER_FILLED_V2: B256 = b256!("d543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee");

/// Why a log could not be turned into a fill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// topic0 is not an `OrderFilled` we know.
    #[error("not an OrderFilled event (topic0 {0})")]
    UnknownEvent(B256),
    /// Fewer than four topics.
    #[error("expected 4 topics, got {0}")]
    Topics(usize),
    /// Data is not the expected number of 32-byte words.
    #[error("expected {expected} data words, got {got} bytes")]
    DataLength {
        /// Words the layout has.
        expected: usize,
        /// Bytes we got.
        got: usize,
    },
    /// An amount does not fit in 63 bits: not a real Polymarket fill.
    #[error("amount out of range: {0}")]
    Amount(U256),
    /// V1 fill with neither asset being collateral (asset id 0).
    #[error("V1 fill without a collateral leg (maker asset {0}, taker asset {1})")]
    NoCollateral(U256, U256),
    /// V2 side byte other than 0 or 1.
    #[error("unknown side {0}")]
    Side(U256),
    /// A fill of zero shares has no price.
    #[error("fill of zero shares")]
    ZeroShares,
}

/// The raw parts of a log that decoding needs, independent of any RPC type.
#[derive(Debug, Clone)]
pub struct RawLog<'a> {
    /// Emitting contract.
    pub address: Address,
    /// The four topics.
    pub topics: &'a [B256],
    /// ABI-encoded non-indexed fields.
    pub data: &'a [u8],
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Log index within the block.
    pub log_index: u64,
    /// Block timestamp (seconds).
    pub block_ts: u64,
}

fn micros(v: U256) -> Result<i64, DecodeError> {
    u256_to_micros(v).ok_or(DecodeError::Amount(v))
}

/// Returns the address held in the low 20 bytes of a topic.
#[must_use]
pub fn topic_address(t: &B256) -> Address {
    Address::from_slice(&t[12..])
}

/// Returns a 32-byte topic holding `a`, the form `eth_getLogs` filters on.
#[must_use]
pub fn address_topic(a: &Address) -> B256 {
    a.into_word()
}

/// Decodes one `OrderFilled` log into the maker's fill. `occurrence` is filled in by the caller,
/// who sees the whole transaction.
///
/// # Errors
/// [`DecodeError`] when the log is not a well-formed Polymarket fill.
pub fn decode_order_filled(log: &RawLog<'_>) -> Result<TargetFill, DecodeError> {
    if log.topics.len() != 4 {
        return Err(DecodeError::Topics(log.topics.len()));
    }
    let (version, words) = match log.topics[0] {
        t if t == ORDER_FILLED_V1 => (ExchangeVersion::V1, 5),
        t if t == ORDER_FILLED_V2 => (ExchangeVersion::V2, 7),
        t => return Err(DecodeError::UnknownEvent(t)),
    };
    if log.data.len() != words * 32 {
        return Err(DecodeError::DataLength { expected: words, got: log.data.len() });
    }
    let order_hash = log.topics[1];
    let maker = topic_address(&log.topics[2]);
    let taker = topic_address(&log.topics[3]);
    let malformed = |_| DecodeError::DataLength { expected: words, got: log.data.len() };
    let (side, token_id, shares, usdc, fee): (Side, TokenId, i64, i64, U256) = match version {
        ExchangeVersion::V1 => {
            let e = abi::v1::OrderFilled::decode_raw_log(log.topics.iter().copied(), log.data).map_err(malformed)?;
            let (maker_amt, taker_amt) = (micros(e.makerAmountFilled)?, micros(e.takerAmountFilled)?);
            if e.makerAssetId.is_zero() && !e.takerAssetId.is_zero() {
                (Side::Buy, e.takerAssetId, taker_amt, maker_amt, e.fee)
            } else if e.takerAssetId.is_zero() && !e.makerAssetId.is_zero() {
                (Side::Sell, e.makerAssetId, maker_amt, taker_amt, e.fee)
            } else {
                return Err(DecodeError::NoCollateral(e.makerAssetId, e.takerAssetId));
            }
        }
        ExchangeVersion::V2 => {
            // The side is read as a whole word: a uint8 field with high bits set is not a fill.
            let side = match U256::from_be_slice(&log.data[..32]) {
                s if s.is_zero() => Side::Buy,
                s if s == U256::from(1) => Side::Sell,
                s => return Err(DecodeError::Side(s)),
            };
            let e = abi::v2::OrderFilled::decode_raw_log(log.topics.iter().copied(), log.data).map_err(malformed)?;
            let (maker_amt, taker_amt) = (micros(e.makerAmountFilled)?, micros(e.takerAmountFilled)?);
            match side {
                Side::Buy => (side, e.tokenId, taker_amt, maker_amt, e.fee),
                Side::Sell => (side, e.tokenId, maker_amt, taker_amt, e.fee),
            }
        }
    };
    if shares == 0 {
        return Err(DecodeError::ZeroShares);
    }
    let price = i64::try_from(i128::from(usdc) * 1_000_000 / i128::from(shares))
        .map_err(|_| DecodeError::Amount(U256::from(usdc.unsigned_abs())))?;
    Ok(TargetFill {
        id: FillId { tx_hash: log.tx_hash, order_hash, occurrence: 0 },
        wallet: maker,
        role: if taker == log.address { Role::Taker } else { Role::Maker },
        side,
        token_id,
        shares: Shares(shares),
        usdc: Usdc(usdc),
        price: Price(price),
        fee: micros(fee)?,
        exchange: log.address,
        version,
        block_number: log.block_number,
        block_hash: log.block_hash,
        log_index: log.log_index,
        block_ts: log.block_ts,
    })
}

/// Numbers the fills of the same order within one transaction (0, 1, ...), in log order, so each
/// has a distinct, reorg-stable [`FillId`]. `fills` must be sorted by block and log index.
pub fn assign_occurrences(fills: &mut [TargetFill]) {
    let mut seen: std::collections::HashMap<(B256, B256), u32> = std::collections::HashMap::new();
    for f in fills {
        let n = seen.entry((f.id.tx_hash, f.id.order_hash)).or_insert(0);
        f.id.occurrence = *n;
        *n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const EXCHANGE: Address = address!("E111180000d2663C0091e4f400237545B87B996B");
    const TARGET: Address = address!("1111111111111111111111111111111111111111");
    const OTHER: Address = address!("2222222222222222222222222222222222222222");

    fn data(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| U256::from(*w).to_be_bytes::<32>()).collect()
    }

    fn raw<'a>(topics: &'a [B256], data: &'a [u8]) -> RawLog<'a> {
        RawLog {
            address: EXCHANGE,
            topics,
            data,
            tx_hash: B256::repeat_byte(9),
            block_number: 7,
            block_hash: B256::repeat_byte(8),
            log_index: 3,
            block_ts: 1_700_000_000,
        }
    }

    /// (version, data words, taker) → (side, token, shares, usdc, price, role)
    #[test]
    fn decodes_every_layout_and_side() {
        let cases: Vec<(B256, Vec<u64>, Address, Side, u64, i64, i64, i64, Role)> = vec![
            // V1 buy: maker gives 0 (collateral) 4.7 USDC, gets 10 shares of token 55.
            (
                ORDER_FILLED_V1,
                vec![0, 55, 4_700_000, 10_000_000, 0],
                OTHER,
                Side::Buy,
                55,
                10_000_000,
                4_700_000,
                470_000,
                Role::Maker,
            ),
            // V1 sell: maker gives 10 shares of 55 for 6 USDC; taker topic = exchange → taker role.
            (
                ORDER_FILLED_V1,
                vec![55, 0, 10_000_000, 6_000_000, 1],
                EXCHANGE,
                Side::Sell,
                55,
                10_000_000,
                6_000_000,
                600_000,
                Role::Taker,
            ),
            // V2 buy: side 0, token 77, pays 2.5 pUSD for 5 shares.
            (
                ORDER_FILLED_V2,
                vec![0, 77, 2_500_000, 5_000_000, 0, 0, 0],
                OTHER,
                Side::Buy,
                77,
                5_000_000,
                2_500_000,
                500_000,
                Role::Maker,
            ),
            // V2 sell: side 1, gives 3 shares for 2.97 pUSD, as taker.
            (
                ORDER_FILLED_V2,
                vec![1, 77, 3_000_000, 2_970_000, 0, 0, 0],
                EXCHANGE,
                Side::Sell,
                77,
                3_000_000,
                2_970_000,
                990_000,
                Role::Taker,
            ),
        ];
        for (t0, words, taker, side, token, shares, usdc, price, role) in cases {
            let topics = [t0, B256::repeat_byte(1), address_topic(&TARGET), address_topic(&taker)];
            let d = data(&words);
            let f = decode_order_filled(&raw(&topics, &d)).unwrap();
            assert_eq!(f.wallet, TARGET);
            assert_eq!(f.side, side);
            assert_eq!(f.token_id, U256::from(token));
            assert_eq!(f.shares, Shares(shares));
            assert_eq!(f.usdc, Usdc(usdc));
            assert_eq!(f.price, Price(price));
            assert_eq!(f.role, role);
        }
    }

    #[test]
    fn rejects_malformed_logs() {
        let topics = [ORDER_FILLED_V2, B256::ZERO, address_topic(&TARGET), address_topic(&OTHER)];
        let short = data(&[0, 1, 2]);
        assert!(matches!(decode_order_filled(&raw(&topics, &short)), Err(DecodeError::DataLength { .. })));
        let bad_side = data(&[2, 1, 1, 1, 0, 0, 0]);
        assert!(matches!(decode_order_filled(&raw(&topics, &bad_side)), Err(DecodeError::Side(_))));
        let zero = data(&[0, 1, 1, 0, 0, 0, 0]);
        assert_eq!(decode_order_filled(&raw(&topics, &zero)), Err(DecodeError::ZeroShares));
        let v1 = [ORDER_FILLED_V1, B256::ZERO, address_topic(&TARGET), address_topic(&OTHER)];
        let no_collateral = data(&[5, 6, 1, 1, 0]);
        assert!(matches!(decode_order_filled(&raw(&v1, &no_collateral)), Err(DecodeError::NoCollateral(..))));
        let mut huge = data(&[0, 1, 0, 1, 0, 0, 0]);
        huge[64] = 0xff;
        assert!(matches!(decode_order_filled(&raw(&topics, &huge)), Err(DecodeError::Amount(_))));
        let other = [B256::ZERO, B256::ZERO, B256::ZERO, B256::ZERO];
        assert!(matches!(decode_order_filled(&raw(&other, &short)), Err(DecodeError::UnknownEvent(_))));
    }

    #[test]
    fn numbers_repeated_orders_in_one_transaction() {
        let topics = [ORDER_FILLED_V2, B256::repeat_byte(1), address_topic(&TARGET), address_topic(&OTHER)];
        let d = data(&[0, 77, 1_000_000, 2_000_000, 0, 0, 0]);
        let f = decode_order_filled(&raw(&topics, &d)).unwrap();
        let mut fills = vec![f.clone(), f.clone(), f];
        fills[2].id.order_hash = B256::repeat_byte(2);
        assign_occurrences(&mut fills);
        assert_eq!(fills.iter().map(|f| f.id.occurrence).collect::<Vec<_>>(), vec![0, 1, 0]);
    }
}
