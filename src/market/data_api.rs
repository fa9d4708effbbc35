//! Polymarket's Data API: the positions it reports for a wallet (what `reconcile` compares with
//! the journal and the chain, and the redemption loop's cross-check of its `redeemable` flag).

use std::collections::BTreeMap;
use std::time::Duration;

use polymarket_client_sdk_v2::data::types::request::PositionsRequest;

use crate::domain::{Shares, TokenId};

/// Longest one page may take.
const SOURCE_WAIT: Duration = Duration::from_secs(20);

/// The Data API's positions of `funder`: token → (size, redeemable).
///
/// # Errors
/// When the Data API cannot be reached or answers something unreadable.
pub async fn positions(
    url: &str,
    funder: alloy::primitives::Address,
) -> Result<BTreeMap<TokenId, (Shares, bool)>, String> {
    let client = polymarket_client_sdk_v2::data::Client::new(url).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for page in 0..20 {
        let req = PositionsRequest::builder()
            .user(funder)
            .size_threshold(rust_decimal::Decimal::ZERO)
            .limit(500)
            .map_err(|e| e.to_string())?
            .offset(page * 500)
            .map_err(|e| e.to_string())?
            .build();
        let rows = tokio::time::timeout(SOURCE_WAIT, client.positions(&req))
            .await
            .map_err(|_| format!("no answer within {} s", SOURCE_WAIT.as_secs()))?
            .map_err(|e| e.to_string())?;
        let n = rows.len();
        for p in rows {
            let size = crate::clob::venue::decimal_to_micros(p.size).ok_or("a position size out of range")?;
            out.insert(p.asset, (Shares(size), p.redeemable));
        }
        if n < 500 {
            break;
        }
    }
    Ok(out)
}
