//! The one-time approval a redemption needs (the adapter or the Router as an operator of our
//! tokens), read in the latest block. An approval is journaled before it is sent and followed
//! like a redemption until it is in effect: sent again when the node lost it, signed again with
//! higher fees when the base fee passes its fee cap, and never a second approval while one may
//! still be mined, across restarts too. Waiting spends no attempt of the redemption's budget;
//! neither does a failed lookup while waiting.

use std::collections::HashMap;

use alloy::primitives::Address;
use tracing::{info, warn};

use super::{Redeemer, ask};
use crate::actors::store::{ApprovalSettled, ApprovalSigned};
use crate::redeem::calls;
use crate::redeem::chain::{Chain, ChainError, Landed, Signed};
use crate::store::SentApproval;

/// How deep a mined approval still not in effect must be before it counts as gone (about a
/// minute of Polygon blocks): a lagging node never makes us sign a second one.
const NOT_IN_EFFECT_AFTER_BLOCKS: u64 = 32;

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
            self.forget_approval(sent, key).await;
            return Ok(Approval::Ready);
        }
        // One found reverted by an earlier follow (the round's check of pending approvals, whose
        // errors count against nothing): counted now, by the redemption that needs it.
        if self.reverted_approvals.lock().is_ok_and(|mut r| r.remove(&key)) {
            return Err(ChainError::Reverted(format!("the approval for {operator:#x} reverted")));
        }
        if let Some(tx) = sent.get(&key).cloned() {
            match self.follow_approval(chain, &tx).await {
                Ok(Followed::Waiting) => return Ok(Approval::Waiting),
                Ok(Followed::PricedOut) => {
                    if let Err(e) = self.reprice_approval(chain, key, &tx, sent).await {
                        warn!(cause = %e, tx = %tx.hash, "re-pricing an approval failed; next round tries again");
                    }
                    return Ok(Approval::Waiting);
                }
                Ok(Followed::Gone) => self.forget_approval(sent, key).await,
                // Counted against the redemption that needs it, like one that reverts while it is
                // waited for: signing another at once, every round, would pay for each.
                Ok(Followed::Reverted) => {
                    self.forget_approval(sent, key).await;
                    if let Ok(mut r) = self.reverted_approvals.lock() {
                        r.insert(key);
                    }
                    return Err(ChainError::Reverted(format!("the approval {:#x} reverted", tx.hash)));
                }
                Err(e) => {
                    warn!(cause = %e, tx = %tx.hash, "following an approval failed; next round tries again");
                    return Ok(Approval::Waiting);
                }
            }
        }
        let (to, data) = chain.as_funder(self.funder, self.safe, book, calls::approve(operator)).await?;
        let tx = chain.sign(to, data).await?;
        if !self.remember_approval(sent, key, &tx).await {
            return Ok(Approval::Waiting);
        }
        chain.send(&tx.raw).await?;
        match self.mined(chain, tx.hash).await? {
            Landed::Success(_) if chain.approved(book, self.funder, operator).await? => {
                self.forget_approval(sent, key).await;
                Ok(Approval::Ready)
            }
            // Mined in a block the node's latest state does not show yet, or not mined yet.
            Landed::Success(_) | Landed::Pending | Landed::Unknown => Ok(Approval::Waiting),
            Landed::Reverted => {
                self.forget_approval(sent, key).await;
                // Counted as an attempt: signing it again each round would pay for it each time.
                Err(ChainError::Reverted(format!("the approval {:#x} reverted", tx.hash)))
            }
        }
    }

    /// Where a remembered approval stands; sent again when the node lost it.
    async fn follow_approval(&self, chain: &Chain, tx: &Signed) -> Result<Followed, ChainError> {
        match chain.landed(tx.hash).await? {
            // Mined and not in effect (checked first). A node whose latest state lags behind its
            // receipts says so for a block or two; deep in the chain, it was revoked since, or made
            // for another funder or contract, and waiting would wait for ever: a new one is signed.
            Landed::Success(m) => {
                let deep = match m.block() {
                    Some(b) => chain.head().await?.saturating_sub(b) >= NOT_IN_EFFECT_AFTER_BLOCKS,
                    None => false,
                };
                Ok(if deep { Followed::Gone } else { Followed::Waiting })
            }
            Landed::Reverted => Ok(Followed::Reverted),
            Landed::Pending if chain.priced_out(&tx.raw).await? => Ok(Followed::PricedOut),
            Landed::Pending => Ok(Followed::Waiting),
            Landed::Unknown => match chain.send(&tx.raw).await {
                Ok(()) => Ok(Followed::Waiting),
                // Its nonce went to another transaction: it can never be mined.
                Err(e) if e.to_string().contains("nonce") => Ok(Followed::Gone),
                Err(_) if chain.priced_out(&tx.raw).await? => Ok(Followed::PricedOut),
                Err(e) => Err(e),
            },
        }
    }

    /// Signs the approval again with higher fees and the same nonce, journals it, then sends it.
    async fn reprice_approval(
        &self,
        chain: &Chain,
        key: (Address, Address),
        tx: &Signed,
        sent: &mut SentApprovals,
    ) -> Result<(), ChainError> {
        let new = chain.reprice(&tx.raw).await?;
        if self.remember_approval(sent, key, &new).await {
            info!(old = %tx.hash, new = %new.hash, "approval re-priced: the base fee passed its fee cap");
            chain.send(&new.raw).await?;
        }
        Ok(())
    }

    /// Journals `tx` as the approval of `key`, then remembers it. Whether it was journaled: an
    /// approval the journal does not hold is not sent, or a restart would sign a second one.
    async fn remember_approval(&self, sent: &mut SentApprovals, key: (Address, Address), tx: &Signed) -> bool {
        let (book, operator) = key;
        let row = SentApproval { book, operator, tx_hash: tx.hash, raw_tx: tx.raw.clone() };
        if let Err(e) = ask(self.store.send(ApprovalSigned(row)).await) {
            warn!(cause = %e, "journaling an approval failed: not sent; next round tries again");
            return false;
        }
        sent.insert(key, tx.clone());
        true
    }

    /// Forgets the approval of `key`: in effect, or never to be mined. A journal that cannot
    /// forget it only makes the next start read it on chain once more.
    async fn forget_approval(&self, sent: &mut SentApprovals, key: (Address, Address)) {
        if sent.remove(&key).is_some() {
            let (book, operator) = key;
            if let Err(e) = ask(self.store.send(ApprovalSettled { book, operator }).await) {
                warn!(cause = %e, "forgetting a settled approval in the journal failed");
            }
        }
    }

    /// The approvals journaled by earlier runs; `None` when the journal cannot say (asked again
    /// next round: until then nothing is signed that may need them).
    pub(super) async fn journaled_approvals(&self) -> Option<SentApprovals> {
        match ask(self.store.send(crate::actors::store::SentApprovals).await) {
            Ok(rows) => Some(
                rows.into_iter().map(|a| ((a.book, a.operator), Signed { hash: a.tx_hash, raw: a.raw_tx })).collect(),
            ),
            Err(e) => {
                warn!(cause = %e, "reading the journaled approvals failed; next round tries again");
                None
            }
        }
    }

    /// Whether an approval sent may still be mined. Each is followed on the way (sent again,
    /// re-priced): a priced-out approval holds the signer's nonce, and everything it sends after
    /// it waits behind it. A Safe funder's also holds the Safe's nonce.
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
    /// It may still be mined.
    Waiting,
    /// The base fee passed its fee cap: no block takes it until it is signed again.
    PricedOut,
    /// It can never be mined: a new one is signed.
    Gone,
    /// It was mined and reverted: the attempt that needed it failed.
    Reverted,
}
