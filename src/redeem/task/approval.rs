//! The one-time approval a redemption needs (the adapter or the Router as an operator of our
//! tokens), read in the latest block. An approval not mined within the wait is remembered and
//! followed like a redemption: sent again when the node lost it, signed again with higher fees
//! when the base fee passes its fee cap, and never a second approval while one may still be
//! mined. Waiting spends no attempt of the redemption's budget; neither does a failed lookup while
//! waiting. Approvals move no money, so memory is enough: after a restart the approval is read on
//! chain again and, if it was never mined, signed anew.

use std::collections::HashMap;

use alloy::primitives::Address;
use tracing::{info, warn};

use super::Redeemer;
use crate::redeem::calls;
use crate::redeem::chain::{Chain, ChainError, Landed, Signed};

/// Approvals sent and not yet seen in effect, by (book, operator).
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
            match self.follow_approval(chain, &tx).await {
                Ok(Followed::Waiting(new)) => {
                    if let Some(new) = new {
                        sent.insert(key, new);
                    }
                    return Ok(Approval::Waiting);
                }
                Ok(Followed::Gone) => {
                    sent.remove(&key);
                }
                Err(e) => {
                    warn!(cause = %e, tx = %tx.hash, "following an approval failed; next round tries again");
                    return Ok(Approval::Waiting);
                }
            }
        }
        let (to, data) = chain.as_funder(self.funder, self.safe, book, calls::approve(operator)).await?;
        let tx = chain.sign(to, data).await?;
        chain.send(&tx.raw).await?;
        sent.insert(key, tx.clone());
        match self.mined(chain, tx.hash).await? {
            Landed::Success(_) if chain.approved(book, self.funder, operator).await? => {
                sent.remove(&key);
                Ok(Approval::Ready)
            }
            // Mined in a block the node's latest state does not show yet, or not mined yet.
            Landed::Success(_) | Landed::Pending | Landed::Unknown => Ok(Approval::Waiting),
            Landed::Reverted => {
                sent.remove(&key);
                Err(ChainError::Rpc(format!("the approval {:#x} reverted", tx.hash)))
            }
        }
    }

    /// Where a remembered approval stands, sent again or re-priced when it has to be.
    async fn follow_approval(&self, chain: &Chain, tx: &Signed) -> Result<Followed, ChainError> {
        match chain.landed(tx.hash).await? {
            Landed::Success(_) => Ok(Followed::Waiting(None)),
            Landed::Reverted => Ok(Followed::Gone),
            Landed::Pending if chain.priced_out(&tx.raw).await? => self.reprice_approval(chain, tx).await,
            Landed::Pending => Ok(Followed::Waiting(None)),
            Landed::Unknown => match chain.send(&tx.raw).await {
                Ok(()) => Ok(Followed::Waiting(None)),
                // Its nonce went to another transaction: it can never be mined.
                Err(e) if e.to_string().contains("nonce") => Ok(Followed::Gone),
                Err(_) if chain.priced_out(&tx.raw).await? => self.reprice_approval(chain, tx).await,
                Err(e) => Err(e),
            },
        }
    }

    async fn reprice_approval(&self, chain: &Chain, tx: &Signed) -> Result<Followed, ChainError> {
        let new = chain.reprice(&tx.raw).await?;
        info!(old = %tx.hash, new = %new.hash, "approval re-priced: the base fee passed its fee cap");
        chain.send(&new.raw).await?;
        Ok(Followed::Waiting(Some(new)))
    }

    /// A Safe funder: whether an approval it sent may still be mined (the Safe's nonce is then
    /// taken, and no other Safe transaction may be signed). Each is followed on the way.
    pub(super) async fn approval_pending(&self, chain: &Chain, sent: &mut SentApprovals) -> bool {
        let keys: Vec<_> = sent.keys().copied().collect();
        let mut pending = false;
        for (book, operator) in keys {
            pending |= !matches!(self.ensure_approved(chain, book, operator, sent).await, Ok(Approval::Ready));
        }
        pending
    }
}

/// A remembered approval, followed.
enum Followed {
    /// It may still be mined (with the re-priced transaction that now stands for it, if any).
    Waiting(Option<Signed>),
    /// It can never be mined: a new one is signed.
    Gone,
}
