//! The node's pending transactions: the pool, its subscriptions, and the checks a sighted
//! settlement needs (who sent it, whether it was mined).

use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;

use super::{ChainError, Rpc};

/// A pending transaction as the detection source reads it: (hash, from, to, input).
pub type PoolTx = (B256, Address, Address, Bytes);

/// A transaction's (hash, from, to, input), if it has a recipient.
#[must_use]
pub fn pool_tx(t: &alloy::rpc::types::Transaction) -> Option<PoolTx> {
    use alloy::consensus::Transaction as _;
    let to = t.to()?;
    Some((*t.inner.tx_hash(), t.inner.signer(), to, t.input().clone()))
}

impl Rpc {
    /// The node's pending transactions to one of `to` (`txpool_content`, its `pending` part):
    /// (hash, from, to, input) of each. A real pool holds thousands of transactions: only those
    /// to the watched contracts have their calldata decoded.
    ///
    /// # Errors
    /// On an RPC failure, or when the node does not expose its pool.
    pub async fn txpool_pending(&self, to: &[Address]) -> Result<Vec<PoolTx>, ChainError> {
        let p = self.provider()?;
        let v: serde_json::Value = self.call(p.raw_request("txpool_content".into(), ())).await?;
        let mut out = Vec::new();
        for by_nonce in v.get("pending").and_then(serde_json::Value::as_object).into_iter().flat_map(|m| m.values()) {
            for tx in in_nonce_order(by_nonce) {
                let field = |k: &str| tx.get(k).and_then(serde_json::Value::as_str);
                let Some(recipient) = field("to").and_then(|t| t.parse::<Address>().ok()).filter(|r| to.contains(r))
                else {
                    continue;
                };
                let (Some(hash), Some(from), Some(input)) = (
                    field("hash").and_then(|h| h.parse().ok()),
                    field("from").and_then(|f| f.parse().ok()),
                    field("input"),
                ) else {
                    continue;
                };
                if let Ok(input) = input.parse::<Bytes>() {
                    out.push((hash, from, recipient, input));
                }
            }
        }
        Ok(out)
    }

    /// Subscribes to pending transactions with their bodies (websocket endpoints that support it).
    ///
    /// # Errors
    /// On an RPC failure, or when the node does not offer full bodies.
    pub async fn subscribe_pending_full(
        &self,
    ) -> Result<alloy::pubsub::Subscription<alloy::rpc::types::Transaction>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_full_pending_transactions()).await
    }

    /// Subscribes to pending transactions' hashes (websocket endpoints).
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn subscribe_pending_hashes(&self) -> Result<alloy::pubsub::Subscription<B256>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_pending_transactions()).await
    }

    /// Transaction `hash` as (hash, from, to, input) and whether it is still pending; `None` when
    /// the node does not know it (dropped) or it has no recipient.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn transaction(&self, hash: B256) -> Result<Option<(PoolTx, bool)>, ChainError> {
        let p = self.provider()?;
        let tx = self.call(p.get_transaction_by_hash(hash)).await?;
        Ok(tx.and_then(|t| pool_tx(&t).map(|x| (x, t.block_number.is_none()))))
    }

    /// The block transaction `hash` was mined in: `None` when the node has no receipt.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn mined_in(&self, hash: B256) -> Result<Option<u64>, ChainError> {
        let p = self.provider()?;
        let r = self.call(p.get_transaction_receipt(hash)).await?;
        Ok(r.and_then(|r| r.block_number))
    }

    /// Whether transaction `hash` was mined and succeeded: `None` when the node has no receipt.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn receipt_status(&self, hash: B256) -> Result<Option<bool>, ChainError> {
        let p = self.provider()?;
        let r = self.call(p.get_transaction_receipt(hash)).await?;
        Ok(r.map(|r| r.status()))
    }
}

/// One sender's pending transactions (`txpool_content`'s map of nonce to transaction) in nonce
/// order, the order they are mined in: the keys are decimal strings, which sort "10" before "9".
fn in_nonce_order(by_nonce: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut txs: Vec<(u64, &serde_json::Value)> = by_nonce
        .as_object()
        .into_iter()
        .flat_map(|m| m.iter())
        .map(|(nonce, tx)| (nonce.parse().unwrap_or(u64::MAX), tx))
        .collect();
    txs.sort_by_key(|(nonce, _)| *nonce);
    txs.into_iter().map(|(_, tx)| tx).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_senders_transactions_come_in_nonce_order_not_in_the_order_of_their_keys() {
        let by_nonce =
            serde_json::json!({"10": {"n": 10}, "9": {"n": 9}, "100": {"n": 100}, "2": {"n": 2}, "x": {"n": -1}});
        let order: Vec<i64> = super::in_nonce_order(&by_nonce).iter().filter_map(|t| t["n"].as_i64()).collect();
        assert_eq!(order, vec![2, 9, 10, 100, -1], "a key that is not a number goes last");
    }
}
