//! A signed V2 order as we keep it: stored with the intent before it is sent, re-sent byte for byte
//! after a crash (same hash, so it can never fill twice), and looked up by its hash.

use std::borrow::Cow;
use std::str::FromStr;

use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use polymarket_client_sdk_v2::auth::ApiKey;
use polymarket_client_sdk_v2::clob::types::{OrderPayload, OrderSignature, OrderV2, SignedOrder};
use serde::{Deserialize, Serialize};

use crate::clob::account::POLYGON;
use crate::domain::FillId;

/// Largest integer a JSON number carries exactly (the CLOB reads `salt` as a JSON number).
const JS_SAFE_MAX: u64 = (1 << 53) - 1;

/// The salt of our copy of `fill`: a hash of the fill's identity, so the same fill always gives the
/// same order and a copy built twice cannot be two different orders.
#[must_use]
pub fn salt_for(fill: &FillId) -> u64 {
    let mut buf = [0u8; 68];
    buf[..32].copy_from_slice(fill.tx_hash.as_slice());
    buf[32..64].copy_from_slice(fill.order_hash.as_slice());
    buf[64..].copy_from_slice(&fill.occurrence.to_be_bytes());
    let h = keccak256(buf);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    // Never 0: a zero salt reads as "unset" to some tools.
    (u64::from_be_bytes(first) & JS_SAFE_MAX).max(1)
}

/// The EIP-712 domain orders are signed under: the V2 exchange, or the NegRisk V2 exchange.
#[must_use]
pub fn order_domain(neg_risk: bool) -> Option<Eip712Domain> {
    let exchange = polymarket_client_sdk_v2::contract_config(POLYGON, neg_risk)?.exchange_v2?;
    Some(Eip712Domain {
        name: Some(Cow::Borrowed("Polymarket CTF Exchange")),
        version: Some(Cow::Borrowed("2")),
        chain_id: Some(U256::from(POLYGON)),
        verifying_contract: Some(exchange),
        ..Eip712Domain::default()
    })
}

/// Whether `signature` is `signer`'s over `order_id` (a wrapped deposit-wallet signature is not
/// checked here: the exchange checks it through EIP-1271).
///
/// # Errors
/// [`OrderError::IdMismatch`] when it recovers to another address, or to none.
fn signed_over(signature: &OrderSignature, order_id: B256, signer: Address) -> Result<(), OrderError> {
    let OrderSignature::Ecdsa(sig) = signature else { return Ok(()) };
    let recovered = sig.recover_address_from_prehash(&order_id);
    if recovered.as_ref().ok() == Some(&signer) {
        return Ok(());
    }
    let recovered = recovered.map_or_else(|e| e.to_string(), |a| a.to_string());
    Err(OrderError::IdMismatch { signer, recovered })
}

/// Whether an order of each exchange (standard, neg-risk) was seen signed over the id we compute
/// ([`StoredOrder::from_signed`]).
static DOMAIN_CHECKED: [std::sync::atomic::AtomicBool; 2] =
    [std::sync::atomic::AtomicBool::new(false), std::sync::atomic::AtomicBool::new(false)];

/// Everything needed to send the same signed order again, as stored in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOrder {
    /// The order hash: the CLOB's order id.
    pub order_id: B256,
    /// Signed for the NegRisk exchange.
    pub neg_risk: bool,
    /// Fill-derived salt.
    pub salt: u64,
    /// Funder.
    pub maker: Address,
    /// Signing address.
    pub signer: Address,
    /// Token.
    pub token_id: U256,
    /// What we give (pUSD for a BUY, shares for a SELL), base units.
    pub maker_amount: U256,
    /// What we get.
    pub taker_amount: U256,
    /// 0 BUY, 1 SELL.
    pub side: u8,
    /// 0..=3.
    pub signature_type: u8,
    /// Signing time, unix ms.
    pub timestamp: U256,
    /// Unsigned expiry, unix seconds (0 unless GTD).
    pub expiration: U256,
    /// Signed metadata word.
    pub metadata: B256,
    /// Signed builder code.
    pub builder: B256,
    /// 65-byte ECDSA signature, 0x-hex.
    pub signature: String,
    /// FAK, FOK or GTD.
    pub order_type: String,
}

/// Why a stored order cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// Not a V2 order (the SDK built something else).
    #[error("the CLOB asked for a version {0} order; polycopy sends V2 orders only")]
    NotV2(u32),
    /// No contract known for the domain.
    #[error("no V2 exchange is known for chain {POLYGON} (neg_risk = {0})")]
    NoDomain(bool),
    /// A wrapped (deposit wallet) signature or a corrupt one.
    #[error("unusable signature: {0}")]
    Signature(String),
    /// A stored field that cannot be read back.
    #[error("corrupt stored order: {0}")]
    Corrupt(String),
    /// The signature is not over the order id we computed: our id is not the exchange's, and an
    /// order sent with it could be neither looked up nor matched to its fill on chain.
    #[error(
        "the order's signature does not recover to its signer {signer} over the order id we compute ({recovered} \
         instead): our EIP-712 domain differs from the one the order was signed for; nothing is sent"
    )]
    IdMismatch {
        /// The order's signer.
        signer: Address,
        /// Whom the signature recovers to over our id.
        recovered: String,
    },
}

impl StoredOrder {
    /// A FAK order of token 7 for tests: `shares` for `pusd` (base units) on `side`, unsigned.
    #[cfg(test)]
    #[must_use]
    pub fn for_test(side: crate::domain::Side, shares: u64, pusd: u64) -> Self {
        let buy = side == crate::domain::Side::Buy;
        let (maker_amount, taker_amount) =
            if buy { (U256::from(pusd), U256::from(shares)) } else { (U256::from(shares), U256::from(pusd)) };
        Self {
            order_id: B256::ZERO,
            neg_risk: false,
            salt: 1,
            maker: Address::ZERO,
            signer: Address::ZERO,
            token_id: U256::from(7),
            maker_amount,
            taker_amount,
            side: u8::from(!buy),
            signature_type: 0,
            timestamp: U256::ZERO,
            expiration: U256::ZERO,
            metadata: B256::ZERO,
            builder: B256::ZERO,
            signature: String::new(),
            order_type: "FAK".into(),
        }
    }

    /// Captures a signed order.
    ///
    /// # Errors
    /// When it is not a V2 order or has no known domain.
    pub fn from_signed(o: &SignedOrder, neg_risk: bool) -> Result<Self, OrderError> {
        let OrderPayload::V2(p) = &o.payload else { return Err(OrderError::NotV2(o.payload.version())) };
        let domain = order_domain(neg_risk).ok_or(OrderError::NoDomain(neg_risk))?;
        let v = &p.order;
        let order_id = v.eip712_signing_hash(&domain);
        // The id is ours to compute (the SDK signs with its own domain): checked against the
        // signature before the order is stored or sent, so an exchange's new domain the SDK knows
        // and we do not stops every order, rather than leaving each one unresolvable. A domain is
        // the same for every order of an exchange: checked until one order of each passes, then
        // no more (a signature's recovery costs about 220 µs on the way of every copy).
        let checked = &DOMAIN_CHECKED[usize::from(neg_risk)];
        if !checked.load(std::sync::atomic::Ordering::Relaxed) {
            signed_over(&o.signature, order_id, v.signer)?;
            checked.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Self {
            order_id,
            neg_risk,
            salt: u64::try_from(v.salt).map_err(|_| OrderError::Corrupt("salt above 64 bits".into()))?,
            maker: v.maker,
            signer: v.signer,
            token_id: v.tokenId,
            maker_amount: v.makerAmount,
            taker_amount: v.takerAmount,
            side: v.side,
            signature_type: v.signatureType,
            timestamp: v.timestamp,
            expiration: p.expiration,
            metadata: v.metadata,
            builder: v.builder,
            signature: o.signature.to_string(),
            order_type: o.order_type.to_string(),
        })
    }

    /// The CLOB order id, `0x`-hex.
    #[must_use]
    pub fn id_hex(&self) -> String {
        format!("{:#x}", self.order_id)
    }

    /// The same signed order, ready to post again for `owner` (our API key).
    ///
    /// # Errors
    /// On a corrupt stored signature.
    pub fn to_signed(&self, owner: ApiKey) -> Result<SignedOrder, OrderError> {
        let mut v = OrderV2::default();
        v.salt = U256::from(self.salt);
        v.maker = self.maker;
        v.signer = self.signer;
        v.tokenId = self.token_id;
        v.makerAmount = self.maker_amount;
        v.takerAmount = self.taker_amount;
        v.side = self.side;
        v.signatureType = self.signature_type;
        v.timestamp = self.timestamp;
        v.metadata = self.metadata;
        v.builder = self.builder;
        let sig = Signature::from_str(&self.signature).map_err(|e| OrderError::Signature(e.to_string()))?;
        // Re-sent exactly as it was first sent: an unreadable type is an error, never a default.
        let order_type = crate::clob::OrderKind::parse(&self.order_type)
            .map_err(|e| OrderError::Corrupt(format!("order type {e}")))?
            .sdk();
        Ok(SignedOrder::builder()
            .payload(OrderPayload::new(v, self.expiration))
            .signature(sig)
            .order_type(order_type)
            .owner(owner)
            .post_only(false)
            .defer_exec(true)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::b256;

    #[test]
    fn salt_is_stable_per_fill_distinct_across_fills_and_json_safe() {
        let f = |o: u8, n: u32| FillId {
            tx_hash: b256!("00000000000000000000000000000000000000000000000000000000000000aa"),
            order_hash: B256::repeat_byte(o),
            occurrence: n,
        };
        assert_eq!(salt_for(&f(1, 0)), salt_for(&f(1, 0)));
        assert_ne!(salt_for(&f(1, 0)), salt_for(&f(2, 0)));
        assert_ne!(salt_for(&f(1, 0)), salt_for(&f(1, 1)));
        for o in 0..=255u8 {
            let s = salt_for(&f(o, 0));
            assert!(s > 0 && s <= JS_SAFE_MAX);
        }
    }

    /// An order of token 1001 signed by the test key over `neg_risk`'s domain, sent as FOK.
    fn signed_test_order(neg_risk: bool) -> SignedOrder {
        use alloy::signers::SignerSync as _;
        use polymarket_client_sdk_v2::clob::types::OrderType;
        let key: alloy::signers::local::PrivateKeySigner =
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".parse().unwrap();
        let mut v = OrderV2::default();
        v.salt = U256::from(42u64);
        v.maker = key.address();
        v.signer = key.address();
        v.tokenId = U256::from(1001u64);
        v.makerAmount = U256::from(5_100_000u64);
        v.takerAmount = U256::from(10_000_000u64);
        v.timestamp = U256::from(1_700_000_000_000u64);
        let sig = key.sign_hash_sync(&v.eip712_signing_hash(&order_domain(neg_risk).unwrap())).unwrap();
        SignedOrder::builder()
            .payload(OrderPayload::new(v, U256::ZERO))
            .signature(sig)
            .order_type(OrderType::FOK)
            .owner(ApiKey::nil())
            .post_only(false)
            .defer_exec(true)
            .build()
    }

    /// What is stored is what is sent again: the re-built order serializes to the same body,
    /// signature and order type included.
    #[test]
    fn a_stored_order_is_sent_again_byte_for_byte() {
        let owner = ApiKey::nil();
        let signed = signed_test_order(false);
        let stored = StoredOrder::from_signed(&signed, false).unwrap();
        let json = serde_json::to_string(&stored).unwrap();
        let back: StoredOrder = serde_json::from_str(&json).unwrap();
        let again = back.to_signed(owner).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&signed).unwrap());
        let mut bad = back;
        bad.order_type = "GTC".into();
        assert!(bad.to_signed(owner).is_err(), "never silently re-sent as another type");
    }

    /// An order signed over another domain than ours (here the other exchange's): refused before
    /// it is stored, since its id would not be the exchange's.
    #[test]
    fn an_order_signed_over_another_domain_is_refused() {
        let signed = signed_test_order(true);
        let (neg, std) = (order_domain(true).unwrap(), order_domain(false).unwrap());
        let OrderPayload::V2(p) = &signed.payload else { panic!("v2") };
        let signer = p.order.signer;
        assert!(signed_over(&signed.signature, p.order.eip712_signing_hash(&neg), signer).is_ok(), "its own domain");
        let err = signed_over(&signed.signature, p.order.eip712_signing_hash(&std), signer).unwrap_err();
        assert!(matches!(err, OrderError::IdMismatch { .. }), "{err}");
    }

    #[test]
    fn domains_are_the_two_v2_exchanges() {
        let std = order_domain(false).unwrap();
        let neg = order_domain(true).unwrap();
        assert_eq!(
            std.verifying_contract,
            Some(alloy::primitives::address!("E111180000d2663C0091e4f400237545B87B996B"))
        );
        assert_eq!(
            neg.verifying_contract,
            Some(alloy::primitives::address!("e2222d279d744050d28e00520010520000310F59"))
        );
    }
}
