//! The node side of a redemption: reads (balances, approvals, the Safe's nonce), gas, and sending
//! a transaction we signed ourselves, so the signed bytes can be journaled before they leave and
//! sent again, identical, after a crash.

use std::time::Duration;

use alloy::consensus::{SignableTransaction as _, TxEip1559, TxEnvelope};
use alloy::eips::BlockId;
use alloy::eips::eip2718::Encodable2718 as _;
use alloy::network::TxSignerSync as _;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{DynProvider, Provider as _, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;

use super::calls;

/// The most a node accepts a transaction's fee to reach (gas limit times fee cap): 1 POL.
const FEE_CAP_WEI: u128 = 1_000_000_000_000_000_000;

/// Longest one node call may take.
const CALL_WAIT: Duration = Duration::from_secs(15);

/// Why a node call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node did not answer in time or refused the call.
    #[error("{0}")]
    Rpc(String),
    /// The call would revert (gas estimation said so).
    #[error("it would revert: {0}")]
    WouldRevert(String),
    /// Trading is halted: nothing is signed or sent (no attempt spent, nothing to tell: the halt was).
    #[error("trading is halted: nothing is signed or sent until it resumes")]
    Halted,
    /// A transaction of ours was mined and reverted (it says something about the call: counted
    /// as an attempt, unlike a node that did not answer).
    #[error("{0}")]
    Reverted(String),
    /// Not enough POL to pay for gas.
    #[error("not enough POL for gas: {have} wei held, about {need} wei needed")]
    NoGas {
        /// Held by the signer.
        have: U256,
        /// The estimate at the current price.
        need: U256,
    },
}

/// A transaction signed and ready to send.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Its hash.
    pub hash: B256,
    /// Its bytes, hex.
    pub raw: String,
}

/// How a sent transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Mined and succeeded, with what its receipt says it moved.
    Success(Mined),
    /// Mined and reverted.
    Reverted,
    /// Known to the node, not mined yet.
    Pending,
    /// The node does not know it.
    Unknown,
}

/// What a mined transaction's receipt says it moved: its ERC-20 `Transfer` events. Kept from the
/// same read that found it mined, so booking it never waits on a second read of the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mined {
    transfers: Vec<(Address, Address, U256)>,
    block: Option<u64>,
}

impl Mined {
    /// A receipt's transfers, as (token, recipient, amount), and the block it was mined in.
    #[must_use]
    pub fn new(transfers: Vec<(Address, Address, U256)>, block: Option<u64>) -> Self {
        Self { transfers, block }
    }

    /// The block it was mined in, when the receipt says.
    #[must_use]
    pub const fn block(&self) -> Option<u64> {
        self.block
    }

    /// How much of `token` it paid `to`, summed over its `Transfer` events.
    #[must_use]
    pub fn paid(&self, token: Address, to: Address) -> U256 {
        self.transfers
            .iter()
            .filter(|(t, r, _)| *t == token && *r == to)
            .fold(U256::ZERO, |sum, (_, _, v)| sum.saturating_add(*v))
    }
}

/// Our signer on the node.
pub struct Chain {
    provider: DynProvider,
    signer: PrivateKeySigner,
    chain_id: u64,
    /// The trading state: halted, nothing is signed (checked at the one place that signs).
    gate: Option<crate::risk::TradingGate>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("signer", &self.signer.address()).field("chain_id", &self.chain_id).finish()
    }
}

/// Whether a node's error says the call itself reverts (an error answer naming a revert, or
/// carrying revert data), rather than that the node could not answer.
fn is_revert(e: &alloy::transports::TransportError) -> bool {
    e.as_error_resp().is_some_and(|p| {
        // Geth and Erigon answer code 3 with the revert data; others -32000 or -32015 with the
        // reason in the message.
        p.code == 3 || p.message.to_ascii_lowercase().contains("revert")
    })
}

async fn bounded<T, E: std::fmt::Display>(f: impl IntoFuture<Output = Result<T, E>>) -> Result<T, ChainError> {
    match tokio::time::timeout(CALL_WAIT, f.into_future()).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ChainError::Rpc(node_said(&e))),
        Err(_) => Err(ChainError::Rpc(format!("no answer within {} s", CALL_WAIT.as_secs()))),
    }
}

/// Whether a node's refusal says it holds these bytes already (go-ethereum "already known",
/// Nethermind "AlreadyKnown", others "already imported"): sent, not refused.
fn already_known(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    ["already known", "alreadyknown", "already imported"].iter().any(|k| e.contains(k))
}

/// The fee cap for `gas` at a wanted `max_fee`, kept under the 1 POL nodes refuse past (a
/// transaction signed over it would be refused on every send, for ever); a node error (no attempt
/// counted: the next round tries at the gas price then) when even the current `price` would pass it.
fn capped_fee(gas: u64, max_fee: u128, price: u128) -> Result<u128, ChainError> {
    let cap = FEE_CAP_WEI / u128::from(gas.max(1));
    if price > cap {
        return Err(ChainError::Rpc(format!(
            "the gas price ({price} wei) would take {gas} gas past the nodes' 1 POL cap: waiting for it to fall"
        )));
    }
    Ok(max_fee.min(cap))
}

/// A node's error as text without the secrets this process knows: the HTTP transport names its
/// URL on a connection failure, and an RPC URL carries its API key in the path.
fn node_said(e: &dyn std::fmt::Display) -> String {
    crate::config::env::redact(&e.to_string())
}

impl Chain {
    /// A connection to `url` sending as `signer` on chain `chain_id`.
    ///
    /// # Errors
    /// When the URL is not valid.
    pub fn new(url: &str, signer: PrivateKeySigner, chain_id: u64) -> Result<Self, ChainError> {
        let url = url.parse().map_err(|e| ChainError::Rpc(format!("the RPC URL is not valid: {e}")))?;
        Ok(Self { provider: ProviderBuilder::new().connect_http(url).erased(), signer, chain_id, gate: None })
    }

    /// The signing address (it pays the gas).
    #[must_use]
    pub fn signer(&self) -> Address {
        self.signer.address()
    }

    /// A word-sized answer of a view call on the pending state (alloy's default: what is sent
    /// counts, as for a nonce).
    async fn word(&self, to: Address, data: Bytes) -> Result<U256, ChainError> {
        self.word_at(to, data, BlockId::pending()).await
    }

    /// A word-sized answer of a view call at block `at`.
    async fn word_at(&self, to: Address, data: Bytes, at: BlockId) -> Result<U256, ChainError> {
        let tx = TransactionRequest::default().to(to).input(data.into());
        let out = bounded(self.provider.call(tx).block(at)).await?;
        if out.len() < 32 {
            return Err(ChainError::Rpc(format!("the call to {to:#x} answered {} bytes", out.len())));
        }
        Ok(U256::from_be_slice(&out[..32]))
    }

    /// Whether Conditional Tokens at `ctf` has the result of `condition` (its payout denominator is
    /// set): until then a redemption reverts, whatever Gamma says.
    ///
    /// # Errors
    /// When the node does not answer or the contract has no such function.
    pub async fn payout_reported(&self, ctf: Address, condition: B256) -> Result<bool, ChainError> {
        Ok(self.word(ctf, calls::payout_denominator(condition)).await? > U256::ZERO)
    }

    /// ERC-1155 balance of `owner` in `token` on `contract`.
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn balance_1155(&self, contract: Address, owner: Address, token: U256) -> Result<U256, ChainError> {
        use alloy::sol_types::SolCall as _;
        let data = crate::chain::abi::balanceOfCall { owner, id: token }.abi_encode();
        self.word(contract, data.into()).await
    }

    /// ERC-20 balance.
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn balance_20(&self, token: Address, owner: Address) -> Result<U256, ChainError> {
        self.word(token, calls::erc20_balance(owner)).await
    }

    /// Whether `operator` may move `owner`'s tokens on `ctf`, in the latest block: an approval
    /// still in the pool does not count (it may never be mined).
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn approved(&self, ctf: Address, owner: Address, operator: Address) -> Result<bool, ChainError> {
        Ok(!self.word_at(ctf, calls::is_approved(owner, operator), BlockId::latest()).await?.is_zero())
    }

    /// The transaction that makes `call` (to `target`) as `funder`: directly from an EOA funder, or
    /// through the Safe `funder` with its owner's (our signer's) signature.
    ///
    /// # Errors
    /// When the Safe's nonce cannot be read.
    pub async fn as_funder(
        &self,
        funder: Address,
        safe: bool,
        target: Address,
        call: Bytes,
    ) -> Result<(Address, Bytes), ChainError> {
        if !safe {
            return Ok((target, call));
        }
        let nonce = self.word(funder, calls::safe_nonce()).await?;
        let hash = calls::safe_tx_hash(self.chain_id, funder, target, &call, nonce);
        let sig = self.signer.sign_hash_sync(&hash).map_err(|e| ChainError::Rpc(format!("signing: {e}")))?;
        Ok((funder, calls::safe_exec(target, call, sig.as_bytes())))
    }

    /// Estimates, checks the gas money and signs a transaction to `to` with `data`.
    ///
    /// # Errors
    /// [`ChainError::WouldRevert`] when the estimate says it would fail, [`ChainError::NoGas`] when
    /// the signer cannot pay for it, or a node failure.
    pub async fn sign(&self, to: Address, data: Bytes) -> Result<Signed, ChainError> {
        let from = self.signer.address();
        let req = TransactionRequest::default().from(from).to(to).input(data.clone().into());
        let gas = match tokio::time::timeout(CALL_WAIT, self.provider.estimate_gas(req).into_future()).await {
            Ok(Ok(g)) => g,
            // Only the node's answer that the call reverts is a revert; a node that failed to
            // answer (a timeout, 429, a header it did not have) says nothing about the call.
            Ok(Err(e)) if is_revert(&e) => return Err(ChainError::WouldRevert(node_said(&e))),
            Ok(Err(e)) => return Err(ChainError::Rpc(format!("gas estimate: {}", node_said(&e)))),
            Err(_) => return Err(ChainError::Rpc("gas estimate: no answer".into())),
        };
        let gas = gas.saturating_mul(5) / 4;
        let (price, tip) = self.fees().await?;
        let max_fee = capped_fee(gas, price.saturating_mul(2).max(tip + 1), price)?;
        let nonce = bounded(self.provider.get_transaction_count(from).pending()).await?;
        self.seal(TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip.min(max_fee),
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: alloy::eips::eip2930::AccessList::default(),
            input: data,
        })
        .await
    }

    /// The node's gas price and priority fee now.
    async fn fees(&self) -> Result<(u128, u128), ChainError> {
        let price = bounded(self.provider.get_gas_price()).await?;
        let tip = bounded(self.provider.get_max_priority_fee_per_gas()).await.unwrap_or(price / 10);
        Ok((price, tip))
    }

    /// This connection, signing nothing while `gate` says trading is halted.
    #[must_use]
    pub fn with_gate(mut self, gate: crate::risk::TradingGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Checks that the signer can pay `tx`'s gas at its fee cap, and signs it; nothing while halted
    /// (a halt raised in the middle of a round stops what is left of it, re-pricing included).
    async fn seal(&self, mut tx: TxEip1559) -> Result<Signed, ChainError> {
        if self.gate.as_ref().is_some_and(crate::risk::TradingGate::is_closed) {
            return Err(ChainError::Halted);
        }
        let have = bounded(self.provider.get_balance(self.signer.address())).await?;
        let need = U256::from(tx.gas_limit) * U256::from(tx.max_fee_per_gas);
        if have < need {
            return Err(ChainError::NoGas { have, need });
        }
        let sig = self.signer.sign_transaction_sync(&mut tx).map_err(|e| ChainError::Rpc(format!("signing: {e}")))?;
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        Ok(Signed { hash: *envelope.tx_hash(), raw: alloy::primitives::hex::encode_prefixed(envelope.encoded_2718()) })
    }

    /// Whether the chain's base fee has risen above the fee cap of the signed transaction `raw`:
    /// no block takes it until the base fee falls again.
    ///
    /// # Errors
    /// When the stored transaction cannot be read or the node does not answer.
    pub async fn priced_out(&self, raw: &str) -> Result<bool, ChainError> {
        let tx = eip1559(raw)?;
        let head = bounded(self.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)).await?;
        let base = head.and_then(|b| b.header.base_fee_per_gas).unwrap_or(0);
        Ok(u128::from(base) > tx.max_fee_per_gas)
    }

    /// The transaction `raw` again, same nonce and call, with fees that outbid it (a quarter more,
    /// above the 10% a node asks of a replacement) and cover today's gas price: whichever of the
    /// two is mined, the other can never be.
    ///
    /// # Errors
    /// When the stored transaction cannot be read, the signer cannot pay, or the node does not answer.
    pub async fn reprice(&self, raw: &str) -> Result<Signed, ChainError> {
        let old = eip1559(raw)?;
        let (price, tip) = self.fees().await?;
        let bump = |fee: u128| fee.saturating_mul(5) / 4 + 1;
        let max_fee = bump(old.max_fee_per_gas).max(price.saturating_mul(2));
        let tip = bump(old.max_priority_fee_per_gas).max(tip).min(max_fee);
        // Nodes refuse a transaction whose fee could pass 1 POL (go-ethereum's `--rpc.txfeecap`):
        // past it, the redemption waits for the base fee to fall instead.
        let fee = U256::from(old.gas_limit) * U256::from(max_fee);
        if fee > U256::from(FEE_CAP_WEI) {
            return Err(ChainError::Rpc(format!("re-pricing would bid up to {fee} wei, past the nodes' 1 POL cap")));
        }
        self.seal(TxEip1559 { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip, ..old }).await
    }

    /// Sends signed bytes; a node that already has them is fine. Nothing leaves while halted: a
    /// transaction signed just before the halt (or journaled signed by a daemon that stopped
    /// before sending it) waits, journaled, for trading to resume.
    ///
    /// # Errors
    /// When halted, or when the node refuses them (e.g. their nonce was used by another transaction).
    pub async fn send(&self, raw: &str) -> Result<(), ChainError> {
        if self.gate.as_ref().is_some_and(crate::risk::TradingGate::is_closed) {
            return Err(ChainError::Halted);
        }
        let bytes =
            alloy::primitives::hex::decode(raw).map_err(|e| ChainError::Rpc(format!("stored transaction: {e}")))?;
        match bounded(self.provider.send_raw_transaction(&bytes)).await {
            Ok(_) => Ok(()),
            Err(ChainError::Rpc(e)) if already_known(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The node's latest block number.
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn head(&self) -> Result<u64, ChainError> {
        bounded(self.provider.get_block_number()).await
    }

    /// Where transaction `hash` stands; mined, with its receipt's transfers.
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn landed(&self, hash: B256) -> Result<Landed, ChainError> {
        use alloy::sol_types::SolEvent as _;
        if let Some(r) = bounded(self.provider.get_transaction_receipt(hash)).await? {
            if !r.status() {
                return Ok(Landed::Reverted);
            }
            let transfers = r
                .inner
                .logs()
                .iter()
                .filter_map(|l| calls::Transfer::decode_log_data(l.data()).ok().map(|t| (l.address(), t.to, t.value)))
                .collect();
            return Ok(Landed::Success(Mined::new(transfers, r.block_number)));
        }
        Ok(if bounded(self.provider.get_transaction_by_hash(hash)).await?.is_some() {
            Landed::Pending
        } else {
            Landed::Unknown
        })
    }
}

/// The EIP-1559 transaction of a stored signed one (every transaction polycopy signs is one).
fn eip1559(raw: &str) -> Result<TxEip1559, ChainError> {
    use alloy::eips::eip2718::Decodable2718 as _;
    let bytes = alloy::primitives::hex::decode(raw).map_err(|e| ChainError::Rpc(format!("stored transaction: {e}")))?;
    let envelope = TxEnvelope::decode_2718(&mut bytes.as_slice())
        .map_err(|e| ChainError::Rpc(format!("stored transaction: {e}")))?;
    envelope
        .as_eip1559()
        .map(|s| s.tx().clone())
        .ok_or_else(|| ChainError::Rpc("stored transaction: not an EIP-1559 one".into()))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};

    use super::Mined;

    #[test]
    fn a_fee_cap_stays_under_one_pol_or_waits() {
        let gwei = 1_000_000_000u128;
        // (gas, wanted max fee, gas price) → the fee cap signed, or None: wait.
        let cases = [
            (250_000u64, 200 * gwei, 100 * gwei, Some(200 * gwei)),
            // 250k gas at 8,000 gwei would be 2 POL: capped at 4,000 gwei (1 POL).
            (250_000, 8_000 * gwei, 3_000 * gwei, Some(4_000 * gwei)),
            // The price alone passes the cap: nothing is signed.
            (250_000, 10_000 * gwei, 5_000 * gwei, None),
        ];
        for (gas, want, price, signed) in cases {
            assert_eq!(super::capped_fee(gas, want, price).ok(), signed, "{gas} {want} {price}");
        }
    }

    #[test]
    fn nodes_saying_they_hold_a_transaction_already_are_understood() {
        for (text, known) in [
            ("already known", true),
            ("AlreadyKnown", true),
            ("Transaction already imported", true),
            ("nonce too low", false),
        ] {
            assert_eq!(super::already_known(text), known, "{text}");
        }
    }

    #[test]
    fn only_an_answer_that_the_call_reverts_is_a_revert() {
        use alloy::transports::{RpcError, TransportErrorKind};
        // The node's error answer, as it comes off the wire.
        let answer = |code: i64, message: &'static str| -> alloy::transports::TransportError {
            RpcError::ErrorResp(serde_json::from_value(serde_json::json!({"code": code, "message": message})).unwrap())
        };
        // (error, a revert)
        let cases: Vec<(alloy::transports::TransportError, bool)> = vec![
            (answer(3, "execution reverted"), true),
            (answer(-32000, "execution reverted: payout not reported"), true),
            (answer(-32015, "VM Exception while processing transaction: revert"), true),
            (answer(-32000, "header not found"), false),
            (answer(429, "Too Many Requests"), false),
            (answer(-32005, "limit exceeded"), false),
            (TransportErrorKind::custom_str("connection refused"), false),
            (
                RpcError::Transport(TransportErrorKind::HttpError(alloy::transports::HttpError {
                    status: 503,
                    body: String::new(),
                })),
                false,
            ),
        ];
        for (e, revert) in cases {
            assert_eq!(super::is_revert(&e), revert, "{e}");
        }
    }

    #[test]
    fn what_a_receipt_paid_counts_only_that_token_to_that_address() {
        let (pusd, other_token) = (Address::with_last_byte(1), Address::with_last_byte(2));
        let (funder, someone) = (Address::with_last_byte(10), Address::with_last_byte(11));
        let u = U256::from;
        let cases: [(&str, Vec<(Address, Address, U256)>, U256); 5] = [
            ("no transfers", vec![], u(0)),
            ("one payout", vec![(pusd, funder, u(5_000_000))], u(5_000_000)),
            ("two payouts are summed", vec![(pusd, funder, u(2)), (pusd, funder, u(3))], u(5)),
            ("another token is not pUSD", vec![(other_token, funder, u(7)), (pusd, funder, u(1))], u(1)),
            ("paid to someone else", vec![(pusd, someone, u(9))], u(0)),
        ];
        for (case, transfers, want) in cases {
            assert_eq!(Mined::new(transfers, Some(1)).paid(pusd, funder), want, "{case}");
        }
        let huge = vec![(pusd, funder, U256::MAX), (pusd, funder, u(1))];
        assert_eq!(Mined::new(huge, None).paid(pusd, funder), U256::MAX, "saturates, never wraps");
    }
}
