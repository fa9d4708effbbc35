//! Polymarket's Data API: the positions it reports for a wallet (what `reconcile` compares with
//! the journal and the chain, and the redemption loop's cross-check of its `redeemable` flag).

use std::collections::BTreeMap;
use std::time::Duration;

use polymarket_client_sdk_v2::data::types::request::PositionsRequest;

use crate::domain::{Price, Shares, TokenId};

/// Longest one page may take.
const SOURCE_WAIT: Duration = Duration::from_secs(20);

/// One position as the Data API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPosition {
    /// Shares held.
    pub size: Shares,
    /// Its market resolved and the tokens can be redeemed.
    pub redeemable: bool,
    /// What the account paid for them on average (`None`: not given, or not a price).
    pub avg_price: Option<Price>,
    /// What a share is worth now (a resolved market's: its payout, 0 for the losing side);
    /// `None`: not given, or not a price.
    pub cur_price: Option<Price>,
}

impl DataPosition {
    /// A position in a resolved market that paid nothing: its tokens are worth nothing, and
    /// redeeming them would only burn them.
    #[must_use]
    pub fn lost(&self) -> bool {
        self.redeemable && self.cur_price == Some(Price(0))
    }
}

/// The Data API's positions of `funder`, by token.
///
/// # Errors
/// When the Data API cannot be reached or answers something unreadable.
pub async fn positions(
    url: &str,
    funder: alloy::primitives::Address,
) -> Result<BTreeMap<TokenId, DataPosition>, String> {
    let client = polymarket_client_sdk_v2::data::Client::new(url).map_err(|e| said(&e))?;
    let mut out = BTreeMap::new();
    for page in 0..PAGES {
        let rows = page_of(&client, funder, PAGE, page * PAGE).await?;
        let n = rows.len();
        for p in rows {
            let size = crate::clob::venue::decimal_to_micros(p.size).ok_or("a position size out of range")?;
            // A price is within (0, 1]; anything else is no price rather than a guess.
            let avg_price = crate::clob::venue::decimal_to_micros(p.avg_price)
                .filter(|m| *m > 0 && *m <= crate::domain::ONE)
                .map(Price);
            let cur_price = crate::clob::venue::decimal_to_micros(p.cur_price)
                .filter(|m| (0..=crate::domain::ONE).contains(m))
                .map(Price);
            out.insert(p.asset, DataPosition { size: Shares(size), redeemable: p.redeemable, avg_price, cur_price });
        }
        if n < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            return Ok(out);
        }
    }
    // Every page full: more than was read, or exactly that many. A partial list would read as
    // "holds none" for every token past it (false differences in reconcile), and an empty page
    // past the window would not prove the list complete (the API may serve nothing beyond it),
    // so it is not used.
    Err(format!(
        "the Data API lists {} positions or more for {funder:#x}: only that many can be read, so it is not used",
        PAGES * PAGE
    ))
}

/// The client's errors may name the URL, and a key in it.
fn said(e: &dyn std::fmt::Display) -> String {
    crate::config::env::redact(&e.to_string())
}

/// `limit` positions of `funder` from `offset` on.
async fn page_of(
    client: &polymarket_client_sdk_v2::data::Client,
    funder: alloy::primitives::Address,
    limit: i32,
    offset: i32,
) -> Result<Vec<polymarket_client_sdk_v2::data::types::response::Position>, String> {
    let req = PositionsRequest::builder()
        .user(funder)
        .size_threshold(rust_decimal::Decimal::ZERO)
        .limit(limit)
        .map_err(|e| e.to_string())?
        .offset(offset)
        .map_err(|e| e.to_string())?
        .build();
    tokio::time::timeout(SOURCE_WAIT, client.positions(&req))
        .await
        .map_err(|_| format!("no answer within {} s", SOURCE_WAIT.as_secs()))?
        .map_err(|e| said(&e))
}

/// Positions per page, and pages read at most.
const PAGE: i32 = 500;
const PAGES: i32 = 20;
