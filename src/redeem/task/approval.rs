//! The one-time approval a redemption needs (the adapter or the Router as an operator of our
//! tokens). An approval not mined within the wait is remembered and waited for: no second one is
//! signed and no attempt of the redemption's budget is spent on it, and it is signed again with
//! higher fees, like a redemption, when the base fee passes its fee cap. Approvals move no money,
//! so memory is enough: after a restart a second approval at worst costs its gas.

use std::collections::HashMap;

use alloy::primitives::Address;
use tracing::info;

use super::Redeemer;
use crate::redeem::calls;
use crate::redeem::chain::{Chain, ChainError, Landed, Signed};

/// Approvals sent and not yet seen to take effect, by (book, operator).
pub(super) type SentApprovals = HashMap<(Address, Address), Signed>;

/// Where an operator's approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Approval {
    /// In effect: the redemption may be signed.
    Ready,
    /// Sent, not mined yet: the redemption waits for it.
    Waiting,
}

impl Redeemer {
    /// Makes `operator` an approved operator of our tokens on `book` (once).
    pub(super) async fn ensure_approved(
        &self,
        chain: &Chain,
        book: Address,
        operator: Address,
        sent: &mut SentApprovals,
    ) -> Result<Approval, ChainError> {
        let key = (book, operator);
        if chain.approved(book, self.funder, operator).await? {
            sent.remove(&key);
            return Ok(Approval::Ready);
        }
        if let Some(tx) = sent.get(&key).cloned() {
            match chain.landed(tx.hash).await? {
                Landed::Pending => {
                    if chain.priced_out(&tx.raw).await? {
                        let new = chain.reprice(&tx.raw).await?;
                        info!(old = %tx.hash, new = %new.hash, "approval re-priced: the base fee passed its fee cap");
                        chain.send(&new.raw).await?;
                        sent.insert(key, new);
                    }
                    return Ok(Approval::Waiting);
                }
                // Mined: the next read of the approval sees it (the node read was a block behind).
                Landed::Success => return Ok(Approval::Waiting),
                Landed::Reverted | Landed::Unknown => {
                    sent.remove(&key);
                }
            }
        }
        let (to, data) = chain.as_funder(self.funder, self.safe, book, calls::approve(operator)).await?;
        let tx = chain.sign(to, data).await?;
        chain.send(&tx.raw).await?;
        sent.insert(key, tx.clone());
        match self.mined(chain, tx.hash).await? {
            Landed::Success => {
                sent.remove(&key);
                Ok(Approval::Ready)
            }
            Landed::Reverted => {
                sent.remove(&key);
                Err(ChainError::Rpc(format!("the approval {:#x} reverted", tx.hash)))
            }
            Landed::Pending | Landed::Unknown => Ok(Approval::Waiting),
        }
    }
}
