//! Calls that need no credentials: is the CLOB there and on V2, may this region trade, and the
//! midpoints that mark our positions (paper and live alike).

use std::collections::HashMap;
use std::time::Duration;

use polymarket_client_sdk_v2::clob::types::request::{MidpointRequest, OrderBookSummaryRequest};
use polymarket_client_sdk_v2::clob::types::response::OrderSummary;
use polymarket_client_sdk_v2::clob::{Client, Config};

use crate::clob::venue::{VenueConfig, VenueError, bounded, decimal_to_micros, sdk_error};
use crate::domain::{Price, Shares, TokenId};
use crate::risk::book_walk::Level;

/// An unauthenticated SDK client for `cfg`'s host.
pub(crate) fn sdk_client(cfg: &VenueConfig) -> polymarket_client_sdk_v2::Result<Client> {
    let config = match &cfg.geoblock_host {
        Some(h) => Config::builder().geoblock_host(h.clone()).build(),
        None => Config::default(),
    };
    Client::new(&cfg.host, config)
}

/// Asks the CLOB its protocol version without credentials (is it there, and is it V2?).
///
/// # Errors
/// When it cannot be reached or answers with an error.
pub async fn probe_version(cfg: &VenueConfig) -> Result<u32, VenueError> {
    let c = sdk_client(cfg).map_err(|e| sdk_error(&e, &[]))?;
    bounded(cfg.timeout, &[], c.version()).await
}

/// Whether Polymarket blocks this server's region: `Some((country, region))` when blocked.
///
/// # Errors
/// When the check cannot be made.
pub async fn geoblocked(cfg: &VenueConfig) -> Result<Option<(String, String)>, VenueError> {
    let c = sdk_client(cfg).map_err(|e| sdk_error(&e, &[]))?;
    let g = bounded(cfg.timeout, &[], c.check_geoblock()).await?;
    Ok(g.blocked.then_some((g.country, g.region)))
}

/// The CLOB's public reads (no credentials): midpoints that mark positions, and order books for
/// paper trading's `order_book` fill model.
#[derive(Debug, Clone)]
pub struct PublicClob {
    client: Client,
    timeout: Duration,
}

impl PublicClob {
    /// A reader of `host`.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(host: &str, timeout: Duration) -> Result<Self, VenueError> {
        Ok(Self { client: Client::new(host, Config::default()).map_err(|e| sdk_error(&e, &[]))?, timeout })
    }

    /// Midpoints of these tokens in one batched call; tokens without a book are missing.
    ///
    /// # Errors
    /// When the CLOB cannot be reached.
    pub async fn midpoints(&self, tokens: &[TokenId]) -> Result<HashMap<TokenId, Price>, VenueError> {
        if tokens.is_empty() {
            return Ok(HashMap::new());
        }
        let reqs: Vec<MidpointRequest> =
            tokens.iter().map(|t| MidpointRequest::builder().token_id(*t).build()).collect();
        let r = bounded(self.timeout, &[], self.client.midpoints(&reqs)).await?;
        Ok(r.midpoints.into_iter().filter_map(|(t, m)| Some((t, Price(decimal_to_micros(m)?)))).collect())
    }

    /// A token's order book: (bids, asks).
    ///
    /// # Errors
    /// When the CLOB cannot be reached or has no book for the token.
    pub async fn book(&self, token: TokenId) -> Result<(Vec<Level>, Vec<Level>), VenueError> {
        let req = OrderBookSummaryRequest::builder().token_id(token).build();
        let b = bounded(self.timeout, &[], self.client.order_book(&req)).await?;
        let levels = |side: &[OrderSummary]| {
            side.iter()
                .filter_map(|l| {
                    Some(Level { price: Price(decimal_to_micros(l.price)?), size: Shares(decimal_to_micros(l.size)?) })
                })
                .collect()
        };
        Ok((levels(&b.bids), levels(&b.asks)))
    }
}
