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
use crate::domain::{Usdc, u256_to_micros};
use crate::redeem::chain::{Chain, ChainError, Landed};
use crate::store::{RedeemStatus, RedemptionRow};

impl Redeemer {
    /// The node refused the journaled transaction of `row` again: sent again each round (it holds
    /// the nonce, and may be mined once the node takes it), but not silently for ever: a refusal
    /// that does not pass (a tip below the network's minimum, say) is told once.
    fn refused_again(&self, row: &RedemptionRow, hash: B256, e: &ChainError) {
        let rounds = self.node_round_failed(row.id);
        if rounds == super::NODE_FAILURES_TOLD_AFTER {
            self.notifier.do_send(Event::Error {
                message: format!(
                    "the node refused the signed redemption of market {:#x} ({} pUSD, transaction {hash:#x}) {rounds} \
                     rounds in a row: {}. It is sent again every round; check POLYGON_RPC_URL and the gas settings \
                     (RUNBOOK, \"Redemption failed\")",
                    row.condition_id,
                    row.expected,
                    crate::config::env::redact(&e.to_string())
                ),
            });
        }
    }

    /// Sends (again) a journaled transaction the node does not know, re-prices one the base fee
    /// priced out, and books how it landed. Whether it may still be mined.
    pub(super) async fn follow(&self, chain: &Chain, row: &RedemptionRow) -> InFlight {
        let (Some(hash), Some(raw)) = (row.tx_hash, row.raw_tx.as_deref()) else { return InFlight::No };
        match self.earlier(chain, row).await {
            Earlier::Mined(h, l) => return self.book(row, h, l).await,
            Earlier::Unread => return InFlight::Yes,
            Earlier::Waiting | Earlier::Gone => {}
        }
        match chain.landed(hash).await {
            Ok(Landed::Unknown) => match chain.send(raw).await {
                Ok(()) => {
                    self.node_rounds_passed(row.id);
                    self.set(row, RedeemStatus::Sent, "sent", row.attempts, 0).await;
                }
                // Halted: held as it is, journaled, until trading resumes (its nonce stays ours).
                Err(ChainError::Halted) => {
                    // Said once per halt by the round; this row's part is for the debug log.
                    tracing::debug!(market = %row.condition_id, tx = %hash, "trading is halted: the signed redemption is sent once it resumes");
                    return InFlight::Yes;
                }
                Err(e) if e.to_string().contains("nonce") => {
                    // Its nonce was used: by this very transaction (a node behind a load balancer
                    // may miss its receipt that another already has: asked again, for as long as
                    // a confirmation may take), by one it replaced, or by another one, and then
                    // none of ours can ever be mined.
                    if let Ok(l @ (Landed::Success(_) | Landed::Reverted)) = self.mined(chain, hash).await {
                        return self.book(row, hash, l).await;
                    }
                    return match self.earlier(chain, row).await {
                        Earlier::Mined(h, l) => self.book(row, h, l).await,
                        Earlier::Unread | Earlier::Waiting => InFlight::Yes,
                        // A node behind a load balancer can miss a receipt for longer than one
                        // round's wait: dropped only once the nonce has been used for a while with
                        // no receipt of ours, or a redemption that paid would be reported dropped
                        // and its market planned again.
                        Earlier::Gone if !self.nonce_used_for_long(row.id) => {
                            warn!(tx = %hash, "the redemption's nonce is used and its receipt not found yet; looked for again next round");
                            InFlight::Yes
                        }
                        Earlier::Gone => {
                            self.forget_nonce_used(row.id);
                            self.set(row, RedeemStatus::Dropped, &e.to_string(), row.attempts, 0).await;
                            InFlight::No
                        }
                    };
                }
                // Refused: the node does not hold it (underpriced, say). Its nonce is free unless a
                // transaction it replaced still waits in the pool.
                Err(e) => {
                    warn!(cause = %e, tx = %hash, "sending the journaled redemption failed; next round tries again");
                    self.refused_again(row, hash, &e);
                    // Refused because the base fee passed its fee cap (between signing and sending,
                    // or after the node dropped it): sent again, it would be refused for ever.
                    if matches!(chain.priced_out(raw).await, Ok(true)) {
                        return self.still_pending(chain, row, raw).await;
                    }
                    return match self.earlier(chain, row).await {
                        Earlier::Gone => InFlight::No,
                        Earlier::Mined(h, l) => self.book(row, h, l).await,
                        Earlier::Unread | Earlier::Waiting => InFlight::Yes,
                    };
                }
            },
            Ok(_) => {}
            Err(e) => {
                warn!(cause = %e, tx = %hash, "looking up a redemption failed; next round tries again");
                return InFlight::Yes;
            }
        }
        match self.mined(chain, hash).await {
            Ok(l @ (Landed::Success(_) | Landed::Reverted)) => self.book(row, hash, l).await,
            Ok(_) | Err(_) => self.still_pending(chain, row, raw).await,
        }
    }

    /// How the transactions this one replaced stand: one mined decides the redemption, and a
    /// lookup that fails decides nothing (a receipt not found is not proof it was not mined).
    async fn earlier(&self, chain: &Chain, row: &RedemptionRow) -> Earlier {
        let mut waiting = false;
        for earlier in &row.replaced {
            match chain.landed(*earlier).await {
                Ok(l @ (Landed::Success(_) | Landed::Reverted)) => return Earlier::Mined(*earlier, l),
                Ok(Landed::Pending) => waiting = true,
                Ok(Landed::Unknown) => {}
                Err(e) => {
                    warn!(cause = %e, tx = %earlier, "looking up a replaced redemption failed; next round tries again");
                    return Earlier::Unread;
                }
            }
        }
        if waiting { Earlier::Waiting } else { Earlier::Gone }
    }

    /// Books a mined transaction of the redemption: redeemed, an attempt that reverted, or one that
    /// paid less than planned (left to the operator). What it paid comes from the receipt that
    /// showed it mined, so a mined redemption is booked in the round that finds it.
    async fn book(&self, row: &RedemptionRow, hash: B256, landed: Landed) -> InFlight {
        self.forget_nonce_used(row.id);
        let Landed::Success(mined) = landed else {
            self.failed(row, &format!("transaction {hash:#x} reverted")).await;
            return InFlight::No;
        };
        // More than an i64 of micro-pUSD is not short of any plan.
        let paid = Usdc(u256_to_micros(mined.paid(self.cfg.contracts.pusd, self.funder)).unwrap_or(i64::MAX));
        if paid < row.expected {
            // Mined and paid less than planned: another transaction would not pay more (the tokens
            // are burned, or a wrong contract left them where they are and would again), so the
            // row is left to a person, as a spent budget is.
            let why = format!("mined (tx {hash:#x}) but paid {paid} of {} pUSD", row.expected);
            self.set(row, RedeemStatus::Failed, &why, row.attempts, 0).await;
            self.notifier.do_send(Event::Error {
                message: format!(
                    "redemption of market {:#x} was mined (tx {hash:#x}) but paid {paid} pUSD, not the {} planned. \
                     Not tried again: check the adapter and pUSD addresses (RUNBOOK, \"Redemption paid less than \
                     planned\")",
                    row.condition_id, row.expected
                ),
            });
            return InFlight::No;
        }
        // The hash that was mined, which may be one a re-pricing replaced rather than the row's last.
        self.set(row, RedeemStatus::Redeemed, &format!("mined in tx {hash:#x}"), row.attempts, 0).await;
        self.notifier.do_send(Event::Redeemed {
            condition: row.condition_id,
            shares: row.shares,
            payout: paid,
            tx: Some(hash),
        });
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
                    crate::fault::abort_at("abort_after_redeem_repriced");
                    return match chain.send(&new.raw).await {
                        Ok(()) => {
                            self.node_rounds_passed(row.id);
                            self.set(row, RedeemStatus::Sent, "re-priced and sent", row.attempts, 0).await;
                            InFlight::Yes
                        }
                        Err(e) => {
                            warn!(cause = %e, tx = %new.hash, "sending the re-priced redemption failed; next round tries again");
                            InFlight::Yes
                        }
                    };
                }
                Err(e) => {
                    warn!(cause = %e, "the redemption was not re-priced; it waits (for the base fee to fall, or for trading to resume)")
                }
            }
        }
        self.set(row, RedeemStatus::Sent, "sent, not mined yet", row.attempts, 0).await;
        InFlight::Yes
    }

    /// Whether redemption `id`'s nonce has been found used, with no receipt of ours, for
    /// [`NONCE_USED_WAITS`] confirmation waits since this run first found it so.
    fn nonce_used_for_long(&self, id: i64) -> bool {
        let Ok(mut since) = self.nonce_used_since.lock() else { return false };
        let first = *since.entry(id).or_insert_with(std::time::Instant::now);
        first.elapsed() >= self.cfg.confirm_wait.saturating_mul(NONCE_USED_WAITS)
    }

    fn forget_nonce_used(&self, id: i64) {
        if let Ok(mut since) = self.nonce_used_since.lock() {
            since.remove(&id);
        }
    }

    /// Waits (at most `confirm_wait`) for `hash` to be mined.
    pub(super) async fn mined(&self, chain: &Chain, hash: B256) -> Result<Landed, ChainError> {
        let until = tokio::time::Instant::now() + self.cfg.confirm_wait;
        loop {
            let l = chain.landed(hash).await?;
            if matches!(l, Landed::Success(_) | Landed::Reverted) || tokio::time::Instant::now() >= until {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Confirmation waits a redemption's nonce is found used with no receipt before it is taken as
/// dropped (ten minutes at the default wait).
const NONCE_USED_WAITS: u32 = 10;

/// How the transactions a redemption's current one replaced stand.
enum Earlier {
    /// One was mined (succeeded or reverted): it is the redemption's.
    Mined(B256, Landed),
    /// None mined; one still waits in the node's pool.
    Waiting,
    /// None mined or known to the node (or there were none).
    Gone,
    /// A lookup failed.
    Unread,
}
