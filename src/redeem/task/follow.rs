//! Following a redemption's transaction until it lands: sent again, identical, when the node does
//! not know it; signed again with higher fees and the same nonce when the base fee has passed its
//! fee cap (no block would take it until the base fee fell); and booked by whichever of its
//! transactions was mined. They share one nonce, so at most one of them ever is.

use std::time::Duration;

use alloy::primitives::B256;
use tracing::{info, warn};

use super::{InFlight, Redeemer, ask};
use crate::actors::notifier::Event;
use crate::actors::store::RedemptionRepriced;
use crate::redeem::chain::{Chain, ChainError, Landed};
use crate::store::{RedeemStatus, RedemptionRow};

impl Redeemer {
    /// Sends (again) a journaled transaction the node does not know, re-prices one the base fee
    /// priced out, and books how it landed. Whether it may still be mined.
    pub(super) async fn follow(&self, chain: &Chain, row: &RedemptionRow) -> InFlight {
        let (Some(hash), Some(raw)) = (row.tx_hash, row.raw_tx.as_deref()) else { return InFlight::No };
        for earlier in &row.replaced {
            if let Ok(l @ (Landed::Success | Landed::Reverted)) = chain.landed(*earlier).await {
                return self.book(row, *earlier, l).await;
            }
        }
        match chain.landed(hash).await {
            Ok(Landed::Unknown) => match chain.send(raw).await {
                Ok(()) => self.set(row, RedeemStatus::Sent, "sent", row.attempts, 0).await,
                // Its nonce went to another transaction (none of ours was mined): it never can be.
                Err(e) if e.to_string().contains("nonce") => {
                    self.set(row, RedeemStatus::Dropped, &e.to_string(), row.attempts, 0).await;
                    return InFlight::No;
                }
                // Refused: the node does not hold it (underpriced, say). Its nonce is free unless a
                // transaction it replaced still waits for a block.
                Err(e) => {
                    warn!(cause = %e, tx = %hash, "sending the journaled redemption failed; next round tries again");
                    return if row.replaced.is_empty() { InFlight::No } else { InFlight::Yes };
                }
            },
            Ok(_) => {}
            Err(e) => {
                warn!(cause = %e, tx = %hash, "looking up a redemption failed; next round tries again");
                return InFlight::Yes;
            }
        }
        match self.mined(chain, hash).await {
            Ok(l @ (Landed::Success | Landed::Reverted)) => self.book(row, hash, l).await,
            Ok(_) | Err(_) => self.still_pending(chain, row, raw).await,
        }
    }

    /// Books a mined transaction of the redemption: redeemed, or an attempt that reverted.
    async fn book(&self, row: &RedemptionRow, hash: B256, landed: Landed) -> InFlight {
        if landed == Landed::Success {
            self.set(row, RedeemStatus::Redeemed, "mined", row.attempts, 0).await;
            self.notifier.do_send(Event::Redeemed {
                condition: row.condition_id,
                shares: row.shares,
                payout: row.expected,
                tx: Some(hash),
            });
        } else {
            self.failed(row, &format!("transaction {hash:#x} reverted")).await;
        }
        InFlight::No
    }

    /// Not mined within the wait. When the base fee has passed its fee cap, it is signed again with
    /// higher fees, journaled, then sent; otherwise it waits for the next round.
    async fn still_pending(&self, chain: &Chain, row: &RedemptionRow, raw: &str) -> InFlight {
        if matches!(chain.priced_out(raw).await, Ok(true)) {
            match chain.reprice(raw).await {
                Ok(new) => {
                    let journaled = RedemptionRepriced { id: row.id, tx_hash: new.hash, raw_tx: new.raw.clone() };
                    if let Err(e) = ask(self.store.send(journaled).await) {
                        warn!(cause = %e, "journaling a re-priced redemption failed: not sent");
                        return InFlight::Yes;
                    }
                    info!(market = %row.condition_id, old = %row.tx_hash.unwrap_or_default(), new = %new.hash,
                        "redemption re-priced: the base fee passed its fee cap");
                    return match chain.send(&new.raw).await {
                        Ok(()) => {
                            self.set(row, RedeemStatus::Sent, "re-priced and sent", row.attempts, 0).await;
                            InFlight::Yes
                        }
                        Err(e) => {
                            warn!(cause = %e, tx = %new.hash, "sending the re-priced redemption failed; next round tries again");
                            InFlight::Yes
                        }
                    };
                }
                Err(e) => warn!(cause = %e, "re-pricing a redemption failed; it waits for the base fee to fall"),
            }
        }
        self.set(row, RedeemStatus::Sent, "sent, not mined yet", row.attempts, 0).await;
        InFlight::Yes
    }

    /// Waits (at most `confirm_wait`) for `hash` to be mined.
    pub(super) async fn mined(&self, chain: &Chain, hash: B256) -> Result<Landed, ChainError> {
        let until = tokio::time::Instant::now() + self.cfg.confirm_wait;
        loop {
            let l = chain.landed(hash).await?;
            if matches!(l, Landed::Success | Landed::Reverted) || tokio::time::Instant::now() >= until {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
