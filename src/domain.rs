//! The trading vocabulary shared by every module: fills, intents, executions and exact amounts.
//!
//! # Money
//! Every amount is an integer count of micro-units (6 decimals), the unit the exchange itself uses for
//! pUSD, USDC.e and outcome shares. No floating point anywhere on a money path.
//!
//! | type | unit | range used |
//! |---|---|---|
//! | [`Usdc`] | micro-USDC (1e-6) | signed: P&L can be negative |
//! | [`Shares`] | micro-shares (1e-6) | signed for deltas, non-negative for positions |
//! | [`Price`] | micro-USDC per share | 0 ..= 1_000_000 |

use std::fmt;

use alloy::primitives::{Address, B256, U256};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One whole unit (1 USDC, 1 share, price 1.0) in micro-units.
pub const ONE: i64 = 1_000_000;
/// The CLOB's lot size: 0.01 share, in micro-shares.
pub const LOT: i64 = 10_000;

/// The wallet of the orders the operator asks for by hand (`polycopy close`): journaled as fills of
/// this address so they pass the same exactly-once path as copies. No target can have it.
pub const OPERATOR: Address = Address::ZERO;

macro_rules! micros_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        pub struct $name(pub i64);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);

            /// Returns the raw micro-unit count.
            #[must_use]
            pub const fn micros(self) -> i64 {
                self.0
            }

            /// Parses an exact decimal ("12.5"); `None` when it has more than 6 decimals or overflows.
            #[must_use]
            pub fn from_decimal(d: Decimal) -> Option<Self> {
                decimal_to_micros(d).map(Self)
            }

            /// Returns the exact decimal value.
            #[must_use]
            pub fn to_decimal(self) -> Decimal {
                Decimal::new(self.0, 6).normalize()
            }

            /// Adds, `None` on overflow.
            #[must_use]
            pub const fn checked_add(self, other: Self) -> Option<Self> {
                match self.0.checked_add(other.0) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// Subtracts, `None` on overflow.
            #[must_use]
            pub const fn checked_sub(self, other: Self) -> Option<Self> {
                match self.0.checked_sub(other.0) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", format_micros(self.0))
            }
        }
    };
}

micros_type!(
    /// An amount of USDC (or pUSD) in micro-USDC.
    Usdc
);
micros_type!(
    /// A number of outcome shares in micro-shares.
    Shares
);
micros_type!(
    /// A price in micro-USDC per share; 1.0 (= 1_000_000) is the most a share can be worth.
    Price
);

impl Price {
    /// The average price of `shares` bought or sold for `usdc`, rounded down (0 for no shares).
    #[must_use]
    pub fn average(shares: Shares, usdc: Usdc) -> Self {
        if shares.0 <= 0 {
            return Self::ZERO;
        }
        Self(i64::try_from(i128::from(usdc.0) * 1_000_000 / i128::from(shares.0)).unwrap_or(0))
    }
}

/// Formats micro-units for a person and for JSON: "12.5", "0.47", "-3", never an exponent.
#[must_use]
pub fn format_micros(v: i64) -> String {
    Decimal::new(v, 6).normalize().to_string()
}

/// Converts an exact decimal to micro-units; `None` if it has sub-micro digits or does not fit.
#[must_use]
pub fn decimal_to_micros(d: Decimal) -> Option<i64> {
    let scaled = d.checked_mul(Decimal::from(ONE))?;
    if scaled.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(scaled.mantissa() / 10i128.pow(scaled.scale())).ok()
}

/// Converts an on-chain 6-decimal integer to micro-units; `None` if it does not fit in an `i64`.
#[must_use]
pub fn u256_to_micros(v: U256) -> Option<i64> {
    i64::try_from(v).ok()
}

/// What an execution in the journal is: a copy (paper or live), a resolved market paying out, or
/// the operator's reconciliation. Spelled in the journal as [`ExecMode::as_str`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// A simulated fill (paper trading).
    Paper,
    /// A fill on the exchange.
    Live,
    /// A resolved market's payout.
    Settlement,
    /// A correction recorded by `reconcile`.
    Adjustment,
}

impl ExecMode {
    /// As the journal spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Live => "live",
            Self::Settlement => "settlement",
            Self::Adjustment => "adjustment",
        }
    }

    /// Parses the journal's spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Paper, Self::Live, Self::Settlement, Self::Adjustment].into_iter().find(|m| m.as_str() == s)
    }
}

/// Which way a trade goes, from the point of view of the wallet that signed the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// Paid collateral, received shares.
    Buy,
    /// Gave shares, received collateral.
    Sell,
}

impl Side {
    /// "BUY" or "SELL", as the CLOB and our journal spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "BUY",
            Self::Sell => "SELL",
        }
    }

    /// Parses "BUY"/"SELL".
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "BUY" => Some(Self::Buy),
            "SELL" => Some(Self::Sell),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the target's order rested on the book or crossed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The target's order was resting and got hit.
    Maker,
    /// The target's order crossed the book (the log's taker topic is the exchange itself).
    Taker,
}

impl Role {
    /// "maker" or "taker".
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Maker => "maker",
            Self::Taker => "taker",
        }
    }
}

/// Which exchange event layout a log used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeVersion {
    /// The legacy CTF exchange: asset ids, collateral is asset 0.
    V1,
    /// CLOB V2 and Exchange V3: explicit side and token id.
    V2,
}

/// The identity of one fill, stable when a reorg re-includes its transaction elsewhere.
///
/// `(tx_hash, log_index)` would change on re-inclusion; `(tx_hash, order_hash)` does not. The
/// occurrence counter separates the theoretical case of the same order filled twice in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FillId {
    /// The transaction that carried the match.
    pub tx_hash: B256,
    /// The hash of the target's order.
    pub order_hash: B256,
    /// 0 for the first fill of this order in this transaction, 1 for the next...
    pub occurrence: u32,
}

/// A token id of an outcome share (a decimal uint256 on the CLOB).
pub type TokenId = U256;

/// One fill of one target wallet's order, decoded from an `OrderFilled` log and seen from the target's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFill {
    /// Stable identity across reorgs.
    pub id: FillId,
    /// The target wallet (the order's maker/funder).
    pub wallet: Address,
    /// Maker (rested) or taker (crossed).
    pub role: Role,
    /// What the target did.
    pub side: Side,
    /// The outcome token traded.
    pub token_id: TokenId,
    /// Shares that changed hands.
    pub shares: Shares,
    /// Collateral that changed hands (gross of fees).
    pub usdc: Usdc,
    /// `usdc / shares`, rounded down to a micro.
    pub price: Price,
    /// The fee field of the event.
    pub fee: i64,
    /// The exchange contract that emitted the log.
    pub exchange: Address,
    /// Which event layout it used.
    pub version: ExchangeVersion,
    /// Block number at which we saw it (may change on re-inclusion).
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Position of the log in the block.
    pub log_index: u64,
    /// Block timestamp, seconds.
    pub block_ts: u64,
}

/// How the copy order should behave on the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderType {
    /// Fill what is there now, cancel the rest.
    Fak,
    /// All now or nothing.
    Fok,
}

/// A sized order we intend to place to mirror one target fill. Immutable once created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    /// The fill this mirrors; also our idempotency key.
    pub fill_id: FillId,
    /// Row id of the fill in the journal.
    pub fill_row: i64,
    /// The target that traded.
    pub wallet: Address,
    /// The token to trade.
    pub token_id: TokenId,
    /// Our side (always the target's side).
    pub side: Side,
    /// Our size, a whole number of lots.
    pub shares: Shares,
    /// The worst price we accept.
    pub limit_price: Price,
    /// The target's price, the reference for slippage.
    pub target_price: Price,
    /// How the order behaves on the book.
    pub order_type: OrderType,
    /// The target's block timestamp (seconds), for latency and staleness.
    pub block_ts: u64,
}

impl OrderIntent {
    /// Our copy of `fill` (journal row `fill_row`): same token and side, our size and limit, FAK.
    #[must_use]
    pub const fn for_fill(fill: &TargetFill, fill_row: i64, shares: Shares, limit_price: Price) -> Self {
        Self {
            fill_id: fill.id,
            fill_row,
            wallet: fill.wallet,
            token_id: fill.token_id,
            side: fill.side,
            shares,
            limit_price,
            target_price: fill.price,
            order_type: OrderType::Fak,
            block_ts: fill.block_ts,
        }
    }

    /// The most this order can cost (or bring in): shares × limit price, rounded up.
    #[must_use]
    pub fn notional(&self) -> Usdc {
        Usdc(mul_price_ceil(self.shares, self.limit_price))
    }
}

/// A target fill for tests: `shares` at `price` by target 0x…01, everything else zero.
#[cfg(test)]
pub(crate) fn test_fill(side: Side, shares: Shares, price: Price) -> TargetFill {
    use alloy::primitives::{Address, B256, U256};
    TargetFill {
        id: FillId { tx_hash: B256::ZERO, order_hash: B256::ZERO, occurrence: 0 },
        // Not the zero address: that is the operator's own orders (OPERATOR).
        wallet: Address::with_last_byte(1),
        role: Role::Maker,
        side,
        token_id: U256::from(7),
        shares,
        usdc: Usdc(mul_price_floor(shares, price)),
        price,
        fee: 0,
        exchange: Address::ZERO,
        version: ExchangeVersion::V2,
        block_number: 1,
        block_hash: B256::ZERO,
        log_index: 0,
        block_ts: 0,
    }
}

/// A BUY/SELL intent for token 1 with neutral identity fields, for unit tests.
#[cfg(test)]
pub(crate) fn test_intent(side: Side, shares: i64, limit: i64, target: i64) -> OrderIntent {
    OrderIntent {
        fill_id: FillId { tx_hash: B256::ZERO, order_hash: B256::ZERO, occurrence: 0 },
        fill_row: 1,
        wallet: Address::ZERO,
        token_id: U256::from(1),
        side,
        shares: Shares(shares),
        limit_price: Price(limit),
        target_price: Price(target),
        order_type: OrderType::Fak,
        block_ts: 0,
    }
}

/// shares × price in micro-USDC, rounded down.
#[must_use]
pub fn mul_price_floor(shares: Shares, price: Price) -> i64 {
    let v = i128::from(shares.0) * i128::from(price.0) / i128::from(ONE);
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// shares × price in micro-USDC, rounded up (for limits, so a cap is never exceeded by rounding).
#[must_use]
pub fn mul_price_ceil(shares: Shares, price: Price) -> i64 {
    let num = i128::from(shares.0) * i128::from(price.0);
    let v = (num + i128::from(ONE) - 1).div_euclid(i128::from(ONE));
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What our executor did with an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The fill mirrored.
    pub fill_row: i64,
    /// Our side.
    pub side: Side,
    /// The token.
    pub token_id: TokenId,
    /// Shares we got (BUY) or gave (SELL).
    pub shares: Shares,
    /// Our average price.
    pub price: Price,
    /// Collateral paid (BUY) or received (SELL).
    pub usdc: Usdc,
    /// Where it happened: a paper or live fill, a market's settlement, or an operator's adjustment.
    pub mode: ExecMode,
    /// When it happened, unix ms.
    pub at_ms: i64,
}

/// A character that changes how text around it is shown without showing itself: a control
/// character, a line or paragraph separator (U+2028, U+2029: a new line in many clients), a
/// bidirectional mark, override or isolate (U+200E-200F, U+202A-202E, U+2066-2069, U+061C), an
/// invisible one (U+200B-200C, U+2060-2065, U+FEFF). In a name shown to the operator one could
/// forge a line, or reorder or hide what follows it ("whale" reading as another target's name).
/// The zero-width joiner (U+200D) is judged by its neighbours ([`shown_plainly`]): emoji
/// sequences (🧑‍💻) are made with it.
#[must_use]
pub fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'
                | '\u{200C}'
                | '\u{200E}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{061C}'
                | '\u{FEFF}'
        )
}

/// `s` with every character [`is_hidden_or_control`] left out, and every zero-width joiner that
/// does not join two characters outside ASCII (an emoji sequence, a script's ligature): between
/// ASCII letters, or alone, one is invisible ("wha\u{200D}le" reads as "whale").
#[must_use]
pub fn shown_plainly(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let joins = |i: usize| {
        let outside = |c: Option<&char>| c.is_some_and(|c| !c.is_ascii() && !is_hidden_or_control(*c));
        i > 0 && outside(chars.get(i - 1)) && outside(chars.get(i + 1))
    };
    chars
        .iter()
        .enumerate()
        .filter(|(i, c)| !is_hidden_or_control(**c) && (**c != '\u{200D}' || joins(*i)))
        .map(|(_, c)| *c)
        .collect()
}

/// Formats an address as lower-case 0x-hex, the form we store and compare.
#[must_use]
pub fn addr_lower(a: &Address) -> String {
    format!("{a:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn formats_micros_for_people() {
        for (v, s) in [(12_500_000, "12.5"), (470_000, "0.47"), (0, "0"), (-3_000_000, "-3"), (1, "0.000001")] {
            assert_eq!(format_micros(v), s);
        }
    }

    #[test]
    fn an_average_price_rounds_down_and_is_zero_for_no_shares() {
        for (shares, usdc, want) in
            [(10_000_000, 5_100_000, 510_000), (3_000_000, 1_000_000, 333_333), (0, 5, 0), (-1, 5, 0)]
        {
            assert_eq!(Price::average(Shares(shares), Usdc(usdc)), Price(want), "{shares} {usdc}");
        }
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(decimal_to_micros(Decimal::from_str("0.1").unwrap()), Some(100_000));
        assert_eq!(decimal_to_micros(Decimal::from_str("20").unwrap()), Some(20_000_000));
        assert_eq!(decimal_to_micros(Decimal::from_str("0.0000001").unwrap()), None);
    }

    #[test]
    fn notional_rounds_up() {
        assert_eq!(mul_price_ceil(Shares(1), Price(1)), 1);
        assert_eq!(mul_price_floor(Shares(1), Price(1)), 0);
        assert_eq!(mul_price_ceil(Shares(10 * ONE), Price(470_000)), 4_700_000);
    }

    #[test]
    fn an_execution_mode_reads_back_as_written_in_the_journal_and_in_json() {
        for m in [ExecMode::Paper, ExecMode::Live, ExecMode::Settlement, ExecMode::Adjustment] {
            assert_eq!(ExecMode::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.as_str()));
        }
        for bad in ["", "Paper", "PAPER", "papr", "dry"] {
            assert_eq!(ExecMode::parse(bad), None, "{bad:?}");
        }
    }
}
