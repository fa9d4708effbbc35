//! A settlement transaction seen before its block: the operator's `matchOrders` call decoded for
//! each exchange generation, each order's EIP-712 hash computed under its exchange's domain, and
//! the fills of watched makers built with the identity the mined `OrderFilled` logs will have
//! (transaction, order hash, occurrence), so a pending and a mined sighting of one fill are one
//! journal row. Pure: docs/PROTOCOL.md §8 is the specification.
//!
//! Amounts: a maker order fills at its own price, so its amounts are exact. The taker order may
//! get a better price than its limit; V1/V2 calldata does not say how much better, so its
//! provisional amounts are at the limit (V3 carries what the taker receives) and the mined log
//! gives the exact ones.

use std::collections::HashSet;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{Eip712Domain, SolCall as _, SolStruct as _};

use crate::chain::abi::{v1, v2};
use crate::domain::{ExchangeVersion, FillId, Price, Role, Shares, Side, TargetFill, Usdc, u256_to_micros};

/// The EIP-712 domain name every Polymarket exchange signs orders under.
const DOMAIN_NAME: &str = "Polymarket CTF Exchange";

/// Which exchange generation a call is for (its selector says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// The legacy CTF Exchange (domain version "1").
    V1,
    /// CTF Exchange V2 and NegRisk V2 (domain version "2").
    V2,
    /// Exchange V3 (domain version "3").
    V3,
}

impl Generation {
    const fn domain_version(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
            Self::V3 => "3",
        }
    }
}

/// Why a pending transaction gave no fills.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    /// Not a `matchOrders` call of any generation.
    #[error("not a matchOrders call")]
    NotAMatch,
    /// The selector matched but the arguments did not decode.
    #[error("matchOrders arguments do not decode: {0}")]
    Malformed(String),
    /// Amount or side out of range.
    #[error("order out of range: {0}")]
    OutOfRange(&'static str),
}

/// One order of a match, reduced to what a fill needs.
#[derive(Debug, Clone, Copy)]
struct Leg {
    hash: B256,
    maker: Address,
    side: u8,
    token: U256,
    maker_amount: U256,
    taker_amount: U256,
    /// What the order gives in this match (its maker asset).
    making: U256,
    /// What it gets, when the calldata says (V3's taker); else from its price.
    taking: Option<U256>,
    fee: U256,
    role: Role,
}

fn domain(generation: Generation, chain_id: u64, exchange: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(DOMAIN_NAME.into()),
        Some(generation.domain_version().into()),
        Some(U256::from(chain_id)),
        Some(exchange),
        None,
    )
}

/// The EIP-712 hash of a V2/V3 order (what the exchange's `OrderFilled` carries as `orderHash`).
#[must_use]
pub fn order_hash_v2(o: &v2::SignedOrder, generation: Generation, chain_id: u64, exchange: Address) -> B256 {
    let signed = v2::Order {
        salt: o.salt,
        maker: o.maker,
        signer: o.signer,
        tokenId: o.tokenId,
        makerAmount: o.makerAmount,
        takerAmount: o.takerAmount,
        side: o.side,
        signatureType: o.signatureType,
        timestamp: o.timestamp,
        metadata: o.metadata,
        builder: o.builder,
    };
    signed.eip712_signing_hash(&domain(generation, chain_id, exchange))
}

/// The EIP-712 hash of a V1 order.
#[must_use]
pub fn order_hash_v1(o: &v1::SignedOrder, chain_id: u64, exchange: Address) -> B256 {
    let signed = v1::Order {
        salt: o.salt,
        maker: o.maker,
        signer: o.signer,
        taker: o.taker,
        tokenId: o.tokenId,
        makerAmount: o.makerAmount,
        takerAmount: o.takerAmount,
        expiration: o.expiration,
        nonce: o.nonce,
        feeRateBps: o.feeRateBps,
        side: o.side,
        signatureType: o.signatureType,
    };
    signed.eip712_signing_hash(&domain(Generation::V1, chain_id, exchange))
}

fn leg_v2(o: &v2::SignedOrder, hash: B256, making: U256, taking: Option<U256>, fee: U256, role: Role) -> Leg {
    Leg {
        hash,
        maker: o.maker,
        side: o.side,
        token: o.tokenId,
        maker_amount: o.makerAmount,
        taker_amount: o.takerAmount,
        making,
        taking,
        fee,
        role,
    }
}

/// The maker orders of a V2/V3 match as legs (a missing amount reads as zero: no fill).
fn maker_legs(
    orders: &[v2::SignedOrder],
    fills: &[U256],
    fees: &[U256],
    h: &dyn Fn(&v2::SignedOrder) -> B256,
) -> Vec<Leg> {
    orders
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let fill = fills.get(i).copied().unwrap_or_default();
            let fee = fees.get(i).copied().unwrap_or_default();
            leg_v2(o, h(o), fill, None, fee, Role::Maker)
        })
        .collect()
}

/// The legs of a match in the order the exchange emits their `OrderFilled` logs: the maker
/// orders first, then the taker order.
fn legs(input: &[u8], chain_id: u64, exchange: Address) -> Result<(Generation, Vec<Leg>), PendingError> {
    let bad = |e: alloy::sol_types::Error| PendingError::Malformed(e.to_string());
    let selector: [u8; 4] = input.get(..4).and_then(|s| s.try_into().ok()).ok_or(PendingError::NotAMatch)?;
    let zero = U256::ZERO;
    if selector == v2::matchOrders_0Call::SELECTOR {
        let c = v2::matchOrders_0Call::abi_decode(input).map_err(bad)?;
        let h = |o: &v2::SignedOrder| order_hash_v2(o, Generation::V2, chain_id, exchange);
        let mut out = maker_legs(&c.makerOrders, &c.makerFillAmounts, &c.makerFeeAmounts, &h);
        let t = &c.takerOrder;
        out.push(leg_v2(t, h(t), c.takerFillAmount, None, c.takerFeeAmount, Role::Taker));
        return Ok((Generation::V2, out));
    }
    if selector == v2::matchOrders_1Call::SELECTOR {
        let c = v2::matchOrders_1Call::abi_decode(input).map_err(bad)?;
        let h = |o: &v2::SignedOrder| order_hash_v2(o, Generation::V3, chain_id, exchange);
        let mut out = maker_legs(&c.makerOrders, &c.makerFillAmounts, &c.makerFeeAmounts, &h);
        let (t, a) = (&c.takerOrder, &c.takerAmounts);
        let taking = (!a.receiveAmount.is_zero()).then_some(a.receiveAmount);
        out.push(leg_v2(t, h(t), a.fillAmount, taking, a.feeAmount, Role::Taker));
        return Ok((Generation::V3, out));
    }
    if selector == v1::matchOrdersCall::SELECTOR {
        let c = v1::matchOrdersCall::abi_decode(input).map_err(bad)?;
        let leg = |o: &v1::SignedOrder, making: U256, role: Role| Leg {
            hash: order_hash_v1(o, chain_id, exchange),
            maker: o.maker,
            side: o.side,
            token: o.tokenId,
            maker_amount: o.makerAmount,
            taker_amount: o.takerAmount,
            making,
            taking: None,
            fee: zero,
            role,
        };
        let mut out: Vec<Leg> = c
            .makerOrders
            .iter()
            .enumerate()
            .map(|(i, o)| leg(o, c.makerFillAmounts.get(i).copied().unwrap_or(zero), Role::Maker))
            .collect();
        out.push(leg(&c.takerOrder, c.takerFillAmount, Role::Taker));
        return Ok((Generation::V1, out));
    }
    Err(PendingError::NotAMatch)
}

/// A leg's (side, shares, usdc, price), or why it is out of range.
fn amounts(leg: &Leg) -> Result<(Side, i64, i64, i64), PendingError> {
    if leg.maker_amount.is_zero() {
        return Err(PendingError::OutOfRange("maker amount of zero"));
    }
    let taking = match leg.taking {
        Some(t) => t,
        // Floor, as the exchange computes the taking amount of a partial fill.
        None => leg.making.checked_mul(leg.taker_amount).ok_or(PendingError::OutOfRange("amount"))? / leg.maker_amount,
    };
    let (making, taking) = (micros(leg.making, "making amount")?, micros(taking, "taking amount")?);
    let (side, shares, usdc) = match leg.side {
        0 => (Side::Buy, taking, making),
        1 => (Side::Sell, making, taking),
        _ => return Err(PendingError::OutOfRange("side")),
    };
    if shares == 0 {
        return Err(PendingError::OutOfRange("zero shares"));
    }
    let price = i64::try_from(i128::from(usdc) * 1_000_000 / i128::from(shares))
        .map_err(|_| PendingError::OutOfRange("price"))?;
    Ok((side, shares, usdc, price))
}

fn micros(v: U256, what: &'static str) -> Result<i64, PendingError> {
    u256_to_micros(v).ok_or(PendingError::OutOfRange(what))
}

/// What a pending transaction was seen as.
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    /// The transaction.
    pub tx_hash: B256,
    /// The exchange it calls.
    pub exchange: Address,
    /// The chain id (part of the order hash's domain).
    pub chain_id: u64,
    /// When we saw it, unix seconds (stands in for the block time until it is mined).
    pub seen_s: u64,
}

/// What a pending `matchOrders` transaction holds of the watched makers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Their fills, as the mined logs will identify them.
    pub fills: Vec<TargetFill>,
    /// Those whose amounts are only a bound: a V1/V2 taker receives the match's surplus, which
    /// its calldata does not give, so its shares and price are computed at its limit (a market
    /// BUY limited at 0.99 that fills at 0.50 reads as half its shares at twice its price). Never
    /// acted on before the block: a copy would pay up to that limit, or be refused for good by
    /// the price band or the minimum order. Their logs give the real amounts.
    pub at_limit: HashSet<FillId>,
}

/// The fills of `watched` makers in a pending `matchOrders` transaction, as the mined logs will
/// identify them. Legs of other makers are skipped; an empty result is not an error.
///
/// # Errors
/// When the input is not a `matchOrders` call. A watched maker's order out of range is skipped.
pub fn decode_pending(s: &Sighting, input: &[u8], watched: &HashSet<Address>) -> Result<Decoded, PendingError> {
    let (generation, legs) = legs(input, s.chain_id, s.exchange)?;
    let version = if generation == Generation::V1 { ExchangeVersion::V1 } else { ExchangeVersion::V2 };
    let mut out = Decoded::default();
    let mut seen: std::collections::HashMap<B256, u32> = std::collections::HashMap::new();
    for leg in legs {
        if !watched.contains(&leg.maker) || leg.making.is_zero() {
            continue;
        }
        // One unreadable order does not hide the others: it is skipped (its fill is still seen
        // when mined, if it ever is).
        let ((side, shares, usdc, price), fee) = match amounts(&leg).and_then(|a| Ok((a, micros(leg.fee, "fee")?))) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(tx = %s.tx_hash, order = %leg.hash, cause = %e, "pending order skipped");
                continue;
            }
        };
        // Numbered as the mined logs are: among the order's fills that decode (a leg that fills
        // nothing has no fill of zero shares to count), in the order the exchange settles them.
        // Counted over every leg, a zero leg ahead of another of the same order shifted the
        // second's number, and its mined fill, under another identity, was copied again.
        let occurrence = {
            let n = seen.entry(leg.hash).or_insert(0);
            *n += 1;
            *n - 1
        };
        let id = FillId { tx_hash: s.tx_hash, order_hash: leg.hash, occurrence };
        if leg.role == Role::Taker && leg.taking.is_none() {
            out.at_limit.insert(id);
        }
        out.fills.push(TargetFill {
            id,
            wallet: leg.maker,
            role: leg.role,
            side,
            token_id: leg.token,
            shares: Shares(shares),
            usdc: Usdc(usdc),
            price: Price(price),
            fee,
            exchange: s.exchange,
            version,
            block_number: 0,
            block_hash: B256::ZERO,
            log_index: 0,
            block_ts: s.seen_s,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Bytes, address};

    const V2_EXCHANGE: Address = address!("E111180000d2663C0091e4f400237545B87B996B");
    const V3_EXCHANGE: Address = address!("e3333700cA9d93003F00f0F71f8515005F6c00Aa");
    const TARGET: Address = address!("1111111111111111111111111111111111111111");
    const OTHER: Address = address!("2222222222222222222222222222222222222222");
    const ONE: u64 = 1_000_000;

    fn order(maker: Address, side: u8, token: u64, maker_amount: u64, taker_amount: u64, salt: u64) -> v2::SignedOrder {
        v2::SignedOrder {
            salt: U256::from(salt),
            maker,
            signer: maker,
            tokenId: U256::from(token),
            makerAmount: U256::from(maker_amount),
            takerAmount: U256::from(taker_amount),
            side,
            signatureType: 0,
            timestamp: U256::from(1_760_000_000_000u64),
            metadata: B256::ZERO,
            builder: B256::ZERO,
            signature: Bytes::from(vec![7u8; 65]),
        }
    }

    fn sighting(exchange: Address) -> Sighting {
        Sighting { tx_hash: B256::repeat_byte(9), exchange, chain_id: 137, seen_s: 1_700_000_000 }
    }

    /// Our order hash against the SDK's own EIP-712 hashing of the same order (what it signs).
    #[test]
    fn order_hashes_equal_the_sdks() {
        use polymarket_client_sdk_v2::clob::types::OrderV2;
        for (generation, version, exchange) in [(Generation::V2, "2", V2_EXCHANGE), (Generation::V3, "3", V3_EXCHANGE)]
        {
            let o = order(TARGET, 1, 42, 10 * ONE, 4 * ONE, 12345);
            let mut sdk = OrderV2::default();
            sdk.salt = o.salt;
            sdk.maker = o.maker;
            sdk.signer = o.signer;
            sdk.tokenId = o.tokenId;
            sdk.makerAmount = o.makerAmount;
            sdk.takerAmount = o.takerAmount;
            sdk.side = o.side;
            sdk.signatureType = o.signatureType;
            sdk.timestamp = o.timestamp;
            sdk.metadata = o.metadata;
            sdk.builder = o.builder;
            let d = alloy::sol_types::eip712_domain! {
                name: "Polymarket CTF Exchange",
                version: version,
                chain_id: 137,
                verifying_contract: exchange,
            };
            assert_eq!(order_hash_v2(&o, generation, 137, exchange), sdk.eip712_signing_hash(&d), "{version}");
        }
    }

    #[test]
    fn decodes_each_generation_into_the_watched_makers_fills() {
        // A target SELL of 10 shares at 0.40 resting (maker), matched by another's BUY (taker).
        let maker = order(TARGET, 1, 42, 10 * ONE, 4 * ONE, 1);
        let taker = order(OTHER, 0, 42, 4 * ONE, 10 * ONE, 2);
        let v2_call = v2::matchOrders_0Call {
            conditionId: B256::repeat_byte(1),
            takerOrder: taker.clone(),
            makerOrders: vec![maker.clone()],
            takerFillAmount: U256::from(4 * ONE),
            makerFillAmounts: vec![U256::from(6 * ONE)],
            takerFeeAmount: U256::ZERO,
            makerFeeAmounts: vec![U256::from(1_000u64)],
        }
        .abi_encode();
        let v3_call = v2::matchOrders_1Call {
            takerOrder: maker.clone(),
            makerOrders: vec![taker.clone()],
            makerFillAmounts: vec![U256::from(2 * ONE)],
            makerFeeAmounts: vec![U256::ZERO],
            takerAmounts: v2::TakerAmounts {
                fillAmount: U256::from(5 * ONE),
                receiveAmount: U256::from(2_100_000u64),
                feeAmount: U256::ZERO,
            },
        }
        .abi_encode();
        let watched: HashSet<Address> = [TARGET].into();
        // V2 as taker: the calldata has no receive amount, so the fill is at its limit.
        let v2_taker = v2::matchOrders_0Call {
            conditionId: B256::repeat_byte(1),
            takerOrder: maker.clone(),
            makerOrders: vec![taker.clone()],
            takerFillAmount: U256::from(5 * ONE),
            makerFillAmounts: vec![U256::from(2 * ONE)],
            takerFeeAmount: U256::ZERO,
            makerFeeAmounts: vec![U256::ZERO],
        }
        .abi_encode();
        let d = decode_pending(&sighting(V2_EXCHANGE), &v2_taker, &watched).unwrap();
        assert_eq!(d.fills.len(), 1);
        assert_eq!(d.at_limit, [d.fills[0].id].into(), "its amounts are a bound");
        // (call, exchange, role, shares, usdc, price, fee)
        let cases = [
            // V2: the maker's partial fill of 6 at its 0.40: 2.4 USDC, exactly.
            (v2_call, V2_EXCHANGE, Generation::V2, Role::Maker, 6 * ONE, 2_400_000, 400_000, 1_000),
            // V3 as taker: 5 shares given, 2.1 received (better than its limit of 2.0).
            (v3_call, V3_EXCHANGE, Generation::V3, Role::Taker, 5 * ONE, 2_100_000, 420_000, 0),
        ];
        for (call, exchange, generation, role, shares, usdc, price, fee) in cases {
            let mut with_trailer = call.clone();
            with_trailer.extend_from_slice(&[0xee; 96]); // the test stand-in's logs ride here
            for input in [call, with_trailer] {
                let d = decode_pending(&sighting(exchange), &input, &watched).unwrap();
                assert!(d.at_limit.is_empty(), "{generation:?}: exact amounts");
                let fills = d.fills;
                assert_eq!(fills.len(), 1, "{generation:?}");
                let f = &fills[0];
                assert_eq!((f.wallet, f.role, f.side), (TARGET, role, Side::Sell), "{generation:?}");
                assert_eq!(
                    (f.shares.0, f.usdc.0, f.price.0, f.fee),
                    (shares as i64, usdc, price, fee),
                    "{generation:?}"
                );
                assert_eq!(f.id.order_hash, order_hash_v2(&maker, generation, 137, exchange));
                assert_eq!((f.id.tx_hash, f.id.occurrence, f.exchange), (B256::repeat_byte(9), 0, exchange));
            }
        }
    }

    /// One watched order with an unreadable fee is skipped; the other watched order of the same
    /// transaction is still decoded.
    #[test]
    fn an_absurd_fee_skips_only_its_own_order() {
        let first = order(TARGET, 1, 42, 10 * ONE, 4 * ONE, 1);
        let second = order(TARGET, 1, 42, 10 * ONE, 4 * ONE, 3);
        let taker = order(OTHER, 0, 42, 8 * ONE, 20 * ONE, 2);
        let call = v2::matchOrders_0Call {
            conditionId: B256::repeat_byte(1),
            takerOrder: taker,
            makerOrders: vec![first, second.clone()],
            takerFillAmount: U256::from(8 * ONE),
            makerFillAmounts: vec![U256::from(10 * ONE), U256::from(10 * ONE)],
            takerFeeAmount: U256::ZERO,
            makerFeeAmounts: vec![U256::MAX, U256::from(2_000u64)],
        }
        .abi_encode();
        let fills = decode_pending(&sighting(V2_EXCHANGE), &call, &[TARGET].into()).unwrap().fills;
        assert_eq!(fills.len(), 1, "{fills:?}");
        assert_eq!(fills[0].id.order_hash, order_hash_v2(&second, Generation::V2, 137, V2_EXCHANGE));
        assert_eq!(fills[0].fee, 2_000);
    }

    /// The same order twice in one match, its first leg filling nothing: the second is the order's
    /// first fill, as the mined logs number it (a zero fill decodes to nothing there), so the
    /// pending and the mined sighting are one fill.
    #[test]
    fn a_leg_that_fills_nothing_is_not_counted_in_the_orders_occurrences() {
        let o = order(TARGET, 1, 42, 10 * ONE, 4 * ONE, 1);
        let taker = order(OTHER, 0, 42, 8 * ONE, 20 * ONE, 2);
        let call = v2::matchOrders_0Call {
            conditionId: B256::repeat_byte(1),
            takerOrder: taker,
            makerOrders: vec![o.clone(), o.clone()],
            takerFillAmount: U256::from(8 * ONE),
            makerFillAmounts: vec![U256::ZERO, U256::from(10 * ONE)],
            takerFeeAmount: U256::ZERO,
            makerFeeAmounts: vec![U256::ZERO, U256::ZERO],
        }
        .abi_encode();
        let fills = decode_pending(&sighting(V2_EXCHANGE), &call, &[TARGET].into()).unwrap().fills;
        assert_eq!(fills.len(), 1, "{fills:?}");
        assert_eq!((fills[0].id.occurrence, fills[0].shares.0), (0, 10 * ONE as i64));
    }

    #[test]
    fn v1_matches_decode_and_other_calls_do_not() {
        let o = |maker, side, amount_in, amount_out| v1::SignedOrder {
            salt: U256::from(5),
            maker,
            signer: maker,
            taker: Address::ZERO,
            tokenId: U256::from(77),
            makerAmount: U256::from(amount_in),
            takerAmount: U256::from(amount_out),
            expiration: U256::ZERO,
            nonce: U256::ZERO,
            feeRateBps: U256::ZERO,
            side,
            signatureType: 0,
            signature: Bytes::new(),
        };
        // The target's resting BUY of 20 shares for 10 USDC, taken by another's SELL.
        let call = v1::matchOrdersCall {
            takerOrder: o(OTHER, 1, 20 * ONE, 10 * ONE),
            makerOrders: vec![o(TARGET, 0, 10 * ONE, 20 * ONE)],
            takerFillAmount: U256::from(20 * ONE),
            makerFillAmounts: vec![U256::from(10 * ONE)],
        }
        .abi_encode();
        let ex = address!("4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E");
        let fills = decode_pending(&sighting(ex), &call, &[TARGET].into()).unwrap().fills;
        assert_eq!(fills.len(), 1);
        assert_eq!((fills[0].side, fills[0].shares.0, fills[0].price.0), (Side::Buy, 20 * ONE as i64, 500_000));
        assert_eq!(fills[0].version, ExchangeVersion::V1);
        // The other as the taker: what it received is only in its log.
        let d = decode_pending(&sighting(ex), &call, &[OTHER].into()).unwrap();
        assert_eq!((d.fills.len(), d.at_limit.len()), (1, 1));
        assert_eq!(
            decode_pending(&sighting(ex), &[0xa9, 0x05, 0x9c, 0xbb, 0, 0], &[TARGET].into()),
            Err(PendingError::NotAMatch)
        );
        assert!(matches!(
            decode_pending(&sighting(ex), &v2::matchOrders_0Call::SELECTOR, &[TARGET].into()),
            Err(PendingError::Malformed(_))
        ));
        // Nobody watched: nothing, and no error.
        assert!(decode_pending(&sighting(ex), &call, &HashSet::new()).unwrap().fills.is_empty());
    }
}
