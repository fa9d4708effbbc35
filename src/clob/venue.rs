//! The connection to Polymarket's CLOB through `polymarket_client_sdk_v2`: authentication (L1 to
//! derive API credentials, L2 HMAC on every trading call), market rules, order building and EIP-712
//! signing, posting, lookups, midpoints and balances. Every call is paced and bounded by a timeout;
//! nothing here decides what an answer means for a copy (that is [`crate::clob::outcome`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::Signer as _;
use alloy::signers::local::PrivateKeySigner;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use polymarket_client_sdk_v2::auth::Normal;
use polymarket_client_sdk_v2::auth::state::Authenticated;
use polymarket_client_sdk_v2::clob::Client;
use polymarket_client_sdk_v2::clob::types::request::{BalanceAllowanceRequest, OrderBookSummaryRequest};
use polymarket_client_sdk_v2::clob::types::{
    AssetType, OrderPayload, OrderStatusType, Side as SdkSide, TickSize as SdkTickSize,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use secrecy::ExposeSecret as _;

use crate::clob::account::{OrderKind, POLYGON, SigType, resolve_funder};
use crate::clob::credentials::Rederivation;
use crate::clob::order::{OrderError, StoredOrder};
use crate::clob::outcome::{LookupOutcome, PostOutcome, classify_answer, classify_lookup, classify_status};
use crate::clob::pricing::TickSize;
use crate::clob::reachability::Reachability;
use crate::domain::{Price, Shares, Side, TokenId};

pub use super::venue_config::VenueConfig;
pub use super::venue_error::VenueError;
pub(crate) use super::venue_error::{bounded, sdk_error};

/// A market's trading rules, from `GET /book`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketRules {
    /// Price increment.
    pub tick: TickSize,
    /// Smallest order, shares.
    pub min_size: Shares,
    /// Signed for the NegRisk exchange.
    pub neg_risk: bool,
}

/// An order as the exchange reports it on lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundOrder {
    /// Finished or still working.
    pub state: LookupOutcome,
    /// The order's limit price.
    pub price: Decimal,
}

/// Converts micro-units to a decimal with no trailing zeros (the SDK counts decimal places).
#[must_use]
pub fn micros_to_decimal(m: i64) -> Decimal {
    Decimal::new(m, 6).normalize()
}

/// Converts a decimal amount to micro-units, truncating.
#[must_use]
pub fn decimal_to_micros(d: Decimal) -> Option<i64> {
    // Checked: an absurd amount from the exchange is unreadable, never a panic.
    d.checked_mul(Decimal::from(1_000_000))?.trunc().to_i64()
}

/// The authenticated CLOB connection.
pub struct Venue {
    /// `None` until the CLOB answered once: a live daemon starts while the CLOB is down and
    /// derives its credentials when it answers ([`Venue::unconnected`]).
    client: RwLock<Option<Client<Authenticated<Normal>>>>,
    signer: PrivateKeySigner,
    funder: Address,
    cfg: VenueConfig,
    limiter: DefaultDirectRateLimiter,
    /// Market rules by token: one `/book` call per market and minute, not one per order.
    rules: Mutex<HashMap<TokenId, (std::time::Instant, MarketRules, SdkTickSize)>>,
    /// When the CLOB last answered, for `/health`.
    reach: Arc<Reachability>,
    /// Deriving the credentials again after a lookup or a cancel was refused them (401).
    rederivation: Rederivation,
}

/// How long a market's tick, minimum size and exchange are trusted (the CLOB changes a market's
/// tick when its price nears 0 or 1).
const RULES_TTL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Venue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Venue").field("signer", &self.signer.address()).field("funder", &self.funder).finish()
    }
}

impl Venue {
    /// The signer's address for a key, without connecting.
    ///
    /// # Errors
    /// When the key is not a valid secp256k1 key.
    pub fn signer_address(private_key: &str) -> Result<Address, VenueError> {
        PrivateKeySigner::from_str(private_key)
            .map(|s| s.address())
            .map_err(|_| VenueError::Setup("PRIVATE_KEY is not a valid private key".into()))
    }

    /// Derives (or creates) the API credentials and returns a connection ready to trade.
    ///
    /// # Errors
    /// Setup mistakes (explained), or the CLOB unreachable or refusing.
    pub async fn connect(cfg: VenueConfig) -> Result<Self, VenueError> {
        let venue = Self::unconnected(cfg)?;
        venue.reauthenticate().await?;
        Ok(venue)
    }

    /// A connection whose API credentials are not derived yet: every call fails with
    /// [`VenueError::Unconnected`] (nothing leaves) until [`Venue::reauthenticate`] succeeds. For a
    /// live daemon that starts while the CLOB does not answer.
    ///
    /// # Errors
    /// Setup mistakes (explained).
    pub fn unconnected(cfg: VenueConfig) -> Result<Self, VenueError> {
        let signer = PrivateKeySigner::from_str(cfg.private_key.expose_secret())
            .map_err(|_| VenueError::Setup("PRIVATE_KEY is not a valid private key".into()))?
            .with_chain_id(Some(POLYGON));
        let funder = resolve_funder(cfg.sig, signer.address(), cfg.funder).map_err(VenueError::Setup)?;
        let rps = NonZeroU32::new(cfg.requests_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            client: RwLock::new(None),
            signer,
            funder,
            limiter: RateLimiter::direct(Quota::per_second(rps)),
            cfg,
            rules: Mutex::default(),
            reach: Arc::new(Reachability::since(crate::store::now_ms())),
            rederivation: Rederivation::default(),
        })
    }

    /// Whether the API credentials are derived (calls can be made).
    #[must_use]
    pub fn connected(&self) -> bool {
        match self.client.read() {
            Ok(c) => c.is_some(),
            Err(p) => p.into_inner().is_some(),
        }
    }

    async fn authenticate(
        cfg: &VenueConfig,
        signer: &PrivateKeySigner,
        funder: Address,
    ) -> Result<Client<Authenticated<Normal>>, VenueError> {
        let secrets = [cfg.private_key.expose_secret()];
        let client = crate::clob::public::sdk_client(cfg).map_err(|e| sdk_error(&e, &secrets))?;
        let mut b = client.authentication_builder(signer).signature_type(cfg.sig.sdk());
        if cfg.sig != SigType::Eoa {
            b = b.funder(funder);
        }
        bounded(cfg.timeout, &secrets, b.authenticate()).await
    }

    /// Derives the API credentials (again, after a 401; or at last, for a connection started
    /// [`Venue::unconnected`]).
    ///
    /// # Errors
    /// When the CLOB refuses again or cannot be reached.
    pub async fn reauthenticate(&self) -> Result<(), VenueError> {
        let r = Self::authenticate(&self.cfg, &self.signer, self.funder).await;
        // A refusal (401) or no answer shows on `/health`, as for any other call.
        self.reach.record(&r, crate::store::now_ms());
        let c = r?;
        match self.client.write() {
            Ok(mut w) => *w = Some(c),
            Err(p) => *p.into_inner() = Some(c),
        }
        self.rederivation.installed();
        Ok(())
    }

    fn client(&self) -> Result<Client<Authenticated<Normal>>, VenueError> {
        let c = match self.client.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        c.ok_or(VenueError::Unconnected)
    }

    /// The wallet that pays and receives (the `maker` of our orders and fills).
    #[must_use]
    pub const fn funder(&self) -> Address {
        self.funder
    }

    /// The signing address.
    #[must_use]
    pub fn signer(&self) -> Address {
        self.signer.address()
    }

    async fn call<T>(&self, fut: impl Future<Output = polymarket_client_sdk_v2::Result<T>>) -> Result<T, VenueError> {
        self.limiter.until_ready().await;
        self.call_paced(fut).await
    }

    /// A call whose turn under the request pace was already taken ([`Venue::pace`]).
    async fn call_paced<T>(
        &self,
        fut: impl Future<Output = polymarket_client_sdk_v2::Result<T>>,
    ) -> Result<T, VenueError> {
        let r = bounded(self.cfg.timeout, &[self.cfg.private_key.expose_secret()], fut).await;
        self.reach.record(&r, crate::store::now_ms());
        r
    }

    /// When the CLOB last answered and whether it accepts our credentials.
    #[must_use]
    pub fn reachability(&self) -> Arc<Reachability> {
        self.reach.clone()
    }

    /// The CLOB's protocol version (2 since 2026-04-28).
    ///
    /// # Errors
    /// When the CLOB cannot be reached.
    pub async fn version(&self) -> Result<u32, VenueError> {
        let c = self.client()?;
        self.call(c.version()).await
    }

    /// Forgets `token`'s cached rules: the CLOB refused an order for its tick (the market's tick
    /// changed within the minute its rules are cached, as it does when a price nears 0 or 1), so the next order reads
    /// them again rather than being refused the same way for the rest of the minute.
    pub fn forget_rules(&self, token: TokenId) {
        if let Ok(mut m) = self.rules.lock() {
            m.remove(&token);
        }
    }

    /// A market's tick, minimum size and exchange, from its order book; the SDK's own caches are
    /// primed so building and signing make no further calls.
    ///
    /// # Errors
    /// When the CLOB cannot be reached or knows no such token.
    pub async fn market_rules(&self, token: TokenId) -> Result<MarketRules, VenueError> {
        let c = self.client()?;
        let cached = self.rules.lock().ok().and_then(|m| m.get(&token).copied());
        if let Some((at, rules, sdk_tick)) = cached
            && at.elapsed() < RULES_TTL
        {
            // The SDK's own caches may be new (credentials derived again): prime them again.
            c.set_tick_size(token, sdk_tick);
            c.set_neg_risk(token, rules.neg_risk);
            return Ok(rules);
        }
        let req = OrderBookSummaryRequest::builder().token_id(token).build();
        let book = self.call(c.order_book(&req)).await?;
        let tick_micros = decimal_to_micros(book.tick_size.as_decimal()).unwrap_or(0);
        let tick = TickSize::from_micros(tick_micros)
            .ok_or_else(|| VenueError::Build(format!("unknown tick size {}", book.tick_size.as_decimal())))?;
        c.set_tick_size(token, book.tick_size);
        c.set_neg_risk(token, book.neg_risk);
        let min_size = decimal_to_micros(book.min_order_size)
            .ok_or_else(|| VenueError::Build(format!("unreadable minimum order size {}", book.min_order_size)))?;
        let rules = MarketRules { tick, min_size: Shares(min_size), neg_risk: book.neg_risk };
        if let Ok(mut m) = self.rules.lock() {
            m.insert(token, (std::time::Instant::now(), rules, book.tick_size));
        }
        Ok(rules)
    }

    /// The order type every order is sent with.
    #[must_use]
    pub const fn order_kind(&self) -> OrderKind {
        self.cfg.order_kind
    }

    /// Builds and signs our order: `shares` at `limit`, salted with `salt` (derived from the fill).
    /// `amounts` replaces the builder's maker and taker amounts: market orders (FAK/FOK) must carry
    /// a whole-cent pUSD side, which the SDK's builder does not ensure (see `clob::amounts`).
    ///
    /// # Errors
    /// When the SDK refuses the order or signing fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign(
        &self,
        token: TokenId,
        side: Side,
        shares: Shares,
        limit: Price,
        salt: u64,
        neg_risk: bool,
        amounts: Option<crate::clob::amounts::OrderAmounts>,
    ) -> Result<StoredOrder, VenueError> {
        let c = self.client()?;
        let mut b = c
            .limit_order()
            .token_id(token)
            .side(if side == Side::Buy { SdkSide::Buy } else { SdkSide::Sell })
            .price(micros_to_decimal(limit.0))
            .size(micros_to_decimal(shares.0))
            .order_type(self.cfg.order_kind.sdk())
            .defer_exec(true);
        if self.cfg.order_kind == OrderKind::Gtd {
            let secs = i64::try_from(self.cfg.gtd_expiry_s).unwrap_or(i64::MAX);
            b = b.expiration(chrono_now() + chrono::Duration::seconds(secs));
        }
        // Local work (the rules were primed by `market_rules`): bounded, but not paced like a call.
        let mut signable = bounded(self.cfg.timeout, &[self.cfg.private_key.expose_secret()], b.build())
            .await
            .map_err(|e| VenueError::Build(e.to_string()))?;
        match &mut signable.payload {
            OrderPayload::V2(p) => {
                p.order.salt = U256::from(salt);
                if let Some(a) = amounts {
                    let (maker, taker) = a.maker_taker(side);
                    let units = |v: i64| {
                        u64::try_from(v).map(U256::from).map_err(|_| VenueError::Build(format!("negative amount {v}")))
                    };
                    p.order.makerAmount = units(maker)?;
                    p.order.takerAmount = units(taker)?;
                }
            }
            other => return Err(OrderError::NotV2(other.version()).into()),
        }
        let signed = bounded(self.cfg.timeout, &[self.cfg.private_key.expose_secret()], c.sign(&self.signer, signable))
            .await
            .map_err(|e| VenueError::Build(e.to_string()))?;
        Ok(StoredOrder::from_signed(&signed, neg_risk)?)
    }

    /// Waits for a request's turn under the pace the CLOB allows. An order takes its turn before
    /// its last check of the trading gate, so a halt during a long wait for a turn still stops it.
    pub async fn pace(&self) {
        self.limiter.until_ready().await;
    }

    /// Sends a stored signed order once, its turn taken ([`Venue::pace`]), and says what the answer
    /// means. A timeout or a broken connection is [`PostOutcome::Unknown`]: the caller looks the
    /// order up.
    pub async fn post(&self, order: &StoredOrder) -> PostOutcome {
        let c = match self.client() {
            Ok(c) => c,
            // Nothing left: the same signed order is sent once the credentials are derived.
            Err(e) => return PostOutcome::Retry { code: "clob_unavailable", message: e.to_string(), wait_ms: None },
        };
        let signed = match order.to_signed(c.credentials().key()) {
            Ok(s) => s,
            Err(e) => {
                return PostOutcome::Rejected { code: "invalid_order", message: e.to_string(), counts_as_error: true };
            }
        };
        match self.call_paced(c.post_order(signed)).await {
            Ok(r) => {
                let status = status_word(&r.status);
                if status == "unknown" {
                    tracing::warn!(status = ?r.status, "the CLOB answered an order with a status we do not know");
                }
                classify_answer(r.success, r.error_msg.as_deref(), status, r.making_amount, r.taking_amount)
            }
            Err(VenueError::Status { status, message }) => classify_status(status, &message),
            Err(e) => PostOutcome::Unknown { message: e.to_string() },
        }
    }

    /// Takes our resting order `order_id` off the book. Returns whether the exchange cancelled it
    /// (false: it was no longer open, already matched, expired or cancelled; a lookup says which).
    ///
    /// # Errors
    /// When the CLOB cannot answer (the order may still rest: asked again later).
    pub async fn cancel(&self, order_id: &str) -> Result<bool, VenueError> {
        let seen = self.rederivation.generation();
        match self.cancel_once(order_id).await {
            Err(e) if self.rederive_after(&e, seen).await => self.cancel_once(order_id).await,
            answer => answer,
        }
    }

    async fn cancel_once(&self, order_id: &str) -> Result<bool, VenueError> {
        let c = self.client()?;
        let answer = self.call(c.cancel_order(order_id)).await?;
        Ok(answer.canceled.iter().any(|id| id.eq_ignore_ascii_case(order_id)))
    }

    /// Whether `e`, a refusal of our credentials (401) for a call sent with generation `seen`,
    /// had them derived again (by this call or another), so the call may be asked once more. Only
    /// a POST derived them before: while halted none is sent, and every cancel owed and every
    /// lookup would fail until its order expired.
    async fn rederive_after(&self, e: &VenueError, seen: u64) -> bool {
        if !matches!(e, VenueError::Status { status: 401, .. }) {
            return false;
        }
        self.rederivation
            .after_refusal(seen, || async {
                tracing::warn!("the CLOB refused our API credentials on a lookup or cancel; deriving them again");
                self.reauthenticate().await.is_ok()
            })
            .await
    }

    /// What became of an order, by its id.
    ///
    /// # Errors
    /// When the CLOB cannot answer (the order's fate stays unknown).
    pub async fn lookup(&self, order_id: &str) -> Result<FoundOrder, VenueError> {
        let seen = self.rederivation.generation();
        match self.lookup_once(order_id).await {
            Err(e) if self.rederive_after(&e, seen).await => self.lookup_once(order_id).await,
            answer => answer,
        }
    }

    async fn lookup_once(&self, order_id: &str) -> Result<FoundOrder, VenueError> {
        let c = self.client()?;
        match self.call(c.order(order_id)).await {
            Ok(o) => {
                let status = status_word(&o.status);
                if status == "unknown" {
                    // A status we do not know is not a final one: looked up again, and the chain
                    // decides if it never becomes one.
                    tracing::warn!(order = order_id, status = ?o.status, "the CLOB reports a status we do not know; looking again");
                }
                Ok(FoundOrder { state: classify_lookup(status, o.size_matched), price: o.price })
            }
            Err(VenueError::Status { status: 404, .. }) => {
                Ok(FoundOrder { state: LookupOutcome::NotFound, price: Decimal::ZERO })
            }
            Err(e) => Err(e),
        }
    }

    /// The CLOB's clock, unix seconds.
    ///
    /// # Errors
    /// When the CLOB cannot be reached.
    pub async fn server_time(&self) -> Result<i64, VenueError> {
        let c = self.client()?;
        self.call(c.server_time()).await
    }

    /// pUSD balance and the allowances the exchanges have, as the CLOB sees them.
    ///
    /// # Errors
    /// When the CLOB cannot be reached or refuses.
    pub async fn collateral(&self) -> Result<(Decimal, HashMap<Address, String>), VenueError> {
        let c = self.client()?;
        let req = BalanceAllowanceRequest::builder().asset_type(AssetType::Collateral).build();
        let r = self.call(c.balance_allowance(req)).await?;
        Ok((r.balance, r.allowances))
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// An order status in the words `classify_answer` and `classify_lookup` take: the SDK's named
/// statuses, and one it does not name (the documented `ORDER_STATUS_`-prefixed form, say) read by
/// [`crate::clob::outcome::other_status`]; `"unknown"` for anything else.
fn status_word(status: &OrderStatusType) -> &'static str {
    match status {
        OrderStatusType::Live => "live",
        OrderStatusType::Delayed => "delayed",
        OrderStatusType::Matched => "matched",
        OrderStatusType::Canceled => "canceled",
        OrderStatusType::Unmatched => "unmatched",
        OrderStatusType::Unknown(s) => crate::clob::outcome::other_status(s),
        _ => "unknown",
    }
}
