//! Numbers as operators write them in settings and `wallets.json`, read exactly: an integer, a
//! TOML float through its shortest text, or a string; never rounded through `f64` arithmetic.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::domain::{Price, Usdc};

/// A number from TOML or the environment, as an exact decimal. Floats are read through their
/// shortest round-trip text ("0.1" stays 0.1).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberLike {
    Int(i64),
    Float(f64),
    Text(String),
}

/// Parses a human-written number exactly.
pub fn number_to_decimal(text: &str) -> Option<Decimal> {
    text.trim().parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(text.trim()).ok())
}

pub(super) fn de_usdc<'de, D: Deserializer<'de>>(d: D) -> Result<Usdc, D::Error> {
    let text = match NumberLike::deserialize(d)? {
        NumberLike::Int(i) => i.to_string(),
        NumberLike::Float(f) => f.to_string(),
        NumberLike::Text(s) => s,
    };
    number_to_decimal(&text)
        .filter(|d| !d.is_sign_negative())
        .and_then(Usdc::from_decimal)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a non-negative USDC amount, got {text:?}")))
}

/// A price bound from an exact decimal in [0, 1].
#[must_use]
pub fn price_from_decimal(d: Decimal) -> Option<Price> {
    Price::from_decimal(d).filter(|p| (0..=1_000_000).contains(&p.0))
}
