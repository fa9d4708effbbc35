//! One copy's decision: refuse it early (stale, unsupported venue, closed market), size it on the
//! target's rules, or pass a recovered intent as it was; then ask the risk supervisor.

use std::sync::Arc;

use actix::Addr;

use super::{CopierConfig, Copy, target_balance_before};
use crate::actors::notifier::{Event, Notifier};
use crate::actors::risk_supervisor::{BuyOpen, Decision, Evaluate, GetPosition, Placing, RiskSupervisor};
use crate::actors::store::{CopiedShares, LeaveToBlock, RecordRefusal, StoreActor};
use crate::chain::Reads;
use crate::domain::{OrderIntent, Shares, Side, TargetFill};
use crate::market::{MarketDirectory, MarketInfo, MarketRef};
use crate::risk::market::check_market;
use crate::risk::sizing::{Sized, SizingContext, check_fresh};
use crate::risk::{DenyReason, size_copy};
use crate::store::LeftToBlock;

/// What one copy's decision needs from the copier, taken along so that it runs beside it.
pub(super) struct CopyTask {
    /// The copier's settings.
    pub cfg: Arc<CopierConfig>,
    /// Balance reads (a SELL's target balance before its fill).
    pub rpc: Option<Arc<Reads>>,
    /// Market metadata (closed markets, end dates).
    pub markets: Option<Arc<MarketDirectory>>,
    /// The journal: refusals are recorded there.
    pub store: Addr<StoreActor>,
    /// The risk supervisor, which approves or refuses every intent.
    pub risk: Addr<RiskSupervisor>,
    /// Where refusals and sized copies are reported.
    pub notifier: Addr<Notifier>,
    /// Targets' exits already said to be refused as stale, by target and token.
    pub stale_exits_told: super::StaleExitsTold,
}

impl CopyTask {
    /// Decides `m`: a refusal is journaled and reported; an intent goes to the risk supervisor.
    pub(super) async fn decide(self, m: Copy) -> Decision {
        // A test holds every copy undecided (a slow node, say) to fill the copier's slots.
        crate::fault::hold_at("hold_before_sizing").await;
        let fill = &m.pending.fill;
        // A stale fill is refused before any network lookup (market metadata, balances).
        let stale = if m.pending.intent.is_none() {
            check_fresh(fill, self.cfg.max_copy_delay_s, crate::store::now_ms()).err()
        } else {
            None
        };
        let info = match (&self.markets, &stale) {
            // Boxed, as the balance read: their states would otherwise make every copy's task
            // several KB, copied on each move (a profile showed it in memmove).
            (Some(d), None) => Box::pin(d.get(fill.token_id)).await,
            _ => None,
        };
        let market = info.as_ref().map(MarketInfo::reference);
        if let Some(intent) = m.pending.intent.clone() {
            return self.evaluate(&m, intent, true, market).await;
        }
        let now_ms = crate::store::now_ms();
        let c = &self.cfg;
        let min_shares = info.as_ref().map_or(Shares::ZERO, |i| i.min_size);
        let sized = match stale
            .or_else(|| self.v3_refusal(fill))
            .map_or_else(|| check_market(fill.side, info.as_ref(), c.skip_closed, c.min_minutes_to_end, now_ms), Err)
        {
            Err(r) => Err(r),
            Ok(()) => self.size(&m, min_shares).await,
        };
        match sized {
            Err(reason) if self.capped_only(&m, &reason, min_shares) => {
                self.leave_to_block(&m, reason, min_shares, market).await
            }
            // A SELL seen in the pool while a BUY of its token, seen just before, was being left
            // to its block: the chain orders the two, as it would have had the BUY been left
            // there before the SELL was seen.
            Err(DenyReason::NoPosition) if fill.block_number == 0 && fill.side == Side::Sell => {
                self.leave_to_block(&m, DenyReason::NoPosition, min_shares, market).await
            }
            Err(reason) => self.refuse_unless_placing(&m, reason, market).await,
            Ok(sized) => self.copy_sized(&m, sized, market).await,
        }
    }

    /// Refuses `m`, unless the same fill, copied before, was approved (its order waits for a
    /// slot, its intent not journaled yet): that copy decides; refused here, this one would mark
    /// the fill refused under it, and its order would never be sent.
    async fn refuse_unless_placing(&self, m: &Copy, reason: DenyReason, market: Option<MarketRef>) -> Decision {
        if self.risk.send(Placing(m.pending.row)).await.unwrap_or(false) {
            return Decision::AlreadyPlacing;
        }
        self.reject(m, reason, market)
    }

    /// Hands a sized copy to the risk supervisor.
    async fn copy_sized(&self, m: &Copy, sized: Sized, market: Option<MarketRef>) -> Decision {
        let fill = &m.pending.fill;
        if fill.side == Side::Buy
            && let Ok(mut told) = self.stale_exits_told.lock()
        {
            // The target is in again: its next stale exit is said again.
            told.remove(&(fill.wallet, fill.token_id));
        }
        let intent = OrderIntent::for_fill(fill, m.pending.row, sized.shares, sized.limit_price);
        if self.cfg.report_sized {
            self.notifier.do_send(Event::Sized { label: m.label.clone(), intent: intent.clone() });
        }
        self.evaluate(m, intent, false, market).await
    }

    /// Whether `reason` refused a sighting's BUY only because of `detection.pending_max_order_usdc`:
    /// sized on the target's own rules, as its mined fill will be, it passes. Only BUYs are
    /// capped, and the cap can only make a copy too small.
    fn capped_only(&self, m: &Copy, reason: &DenyReason, market_min_shares: Shares) -> bool {
        let (fill, c) = (&m.pending.fill, &self.cfg);
        if fill.block_number != 0
            || c.pending_max_order_usdc.0 == 0
            || fill.side != Side::Buy
            || !matches!(reason, DenyReason::BelowMinimum { .. })
        {
            return false;
        }
        let ctx = SizingContext {
            our_position: Shares::ZERO,
            target_balance_before: None,
            max_slippage_bps: c.max_slippage_bps,
            min_order_usdc: c.min_order_usdc,
            market_min_shares,
            max_copy_delay_s: c.max_copy_delay_s,
            now_ms: crate::store::now_ms(),
        };
        size_copy(fill, &m.rules, &ctx).is_ok()
    }

    /// A sighting's copy that the pending cap alone made too small is not refused (its block
    /// would find the refusal on the fill's row, and the trade would never be copied): the fill
    /// is left to its block, which hands it on to be copied on the target's own rules. Its block
    /// journaled while it was sized: the mined fill is copied now. The journal failing: refused.
    async fn leave_to_block(
        &self,
        m: &Copy,
        reason: DenyReason,
        min_shares: Shares,
        market: Option<MarketRef>,
    ) -> Decision {
        let sell = m.pending.fill.side == Side::Sell;
        let left = self
            .store
            .send(LeaveToBlock(m.pending.row, sell))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match left {
            Ok(LeftToBlock::Waits) => {
                tracing::info!(fill = m.pending.row, %reason, "a copy of a fill seen in the pool: its block decides it");
                // A test acts between the fill left to its block and this copy's end.
                crate::fault::hold_at("hold_after_left_to_block").await;
                Decision::WaitsForBlock
            }
            // Nothing to refuse, and nothing placed by this copy: the fill was taken back
            // (orphaned; its block revives it), or its block handed it on already (mined after it
            // was orphaned, a reorg's rescan), or it has an intent. Whatever waits for this copy
            // (its mined fill's copy, a refusal of it) decides it now; an intent keeps it once.
            Ok(LeftToBlock::Not) if !sell => Decision::WaitsForBlock,
            Ok(LeftToBlock::Not) => self.refuse_unless_placing(m, reason, market).await,
            Ok(LeftToBlock::Late) => {
                let decision = self.refuse_unless_placing(m, reason, market).await;
                if !matches!(decision, Decision::Rejected(_)) {
                    return decision;
                }
                let fill = &m.pending.fill;
                let message = format!(
                    "{} sold token {} right after buying it (both seen in the pool, then mined while the exit was \
                     sized): its BUY is copied at its block, its exit could not be. We may hold shares the target has \
                     sold: check /positions, and close them if so",
                    m.label, fill.token_id
                );
                tracing::warn!("{message}");
                self.notifier.do_send(Event::Alert { message });
                decision
            }
            Ok(LeftToBlock::Mined(mined)) => {
                let m = Copy {
                    pending: *mined,
                    label: m.label.clone(),
                    rules: m.rules.clone(),
                    at_start: m.at_start,
                    admitted: None,
                };
                match self.size(&m, min_shares).await {
                    Err(r) => self.refuse_unless_placing(&m, r, market).await,
                    Ok(sized) => self.copy_sized(&m, sized, market).await,
                }
            }
            Err(cause) => {
                tracing::warn!(%cause, "the journal did not leave the fill to its block: the copy is refused");
                self.refuse_unless_placing(m, reason, market).await
            }
        }
    }

    /// Live orders are signed for CLOB V2 only: a fill on an Exchange V3 market is refused clearly.
    fn v3_refusal(&self, fill: &TargetFill) -> Option<DenyReason> {
        (self.cfg.refuse_v3 && self.cfg.positions.v3_exchanges.contains(&fill.exchange)).then(|| DenyReason::Venue {
            code: "v3_unsupported",
            message: "an Exchange V3 market: live orders there are not supported yet (exits are sized, positions \
                      reconciled and redeemed)"
                .into(),
        })
    }

    /// Sizes the copy on the target's rules. Only a SELL is sized on our position (and waits for a
    /// BUY of the token in flight) and on the target's balance before its fill.
    async fn size(&self, m: &Copy, market_min_shares: Shares) -> Result<Sized, DenyReason> {
        let fill = &m.pending.fill;
        let cfg = &self.cfg;
        if fill.side == Side::Sell && !m.rules.copy_sells {
            // Said before any wait: a SELL holds its token's queue while it is sized, and the
            // wait for a BUY of the token in flight may take minutes.
            return Err(DenyReason::SellsDisabled);
        }
        let (our_position, target_balance_before) = if fill.side == Side::Sell {
            let ask = GetPosition { token: fill.token_id, at_start: m.at_start };
            let held = self.risk.send(ask).await.unwrap_or(Shares::ZERO);
            let ours = self.copied(fill, held).await?;
            // Nothing to sell: no balance read on the node (most of a target's exits are of
            // positions we never copied).
            if ours.0 <= 0 {
                return Err(DenyReason::NoPosition);
            }
            (ours, Box::pin(target_balance_before(cfg, self.rpc.as_deref(), &self.store, &m.pending)).await)
        } else {
            (Shares::ZERO, None)
        };
        // Freshness is judged after the waits above (a SELL may wait up to two minutes for a BUY
        // of its token): an exit that went stale meanwhile is refused, not approved.
        let now_ms = crate::store::now_ms();
        let ctx = SizingContext {
            our_position,
            target_balance_before,
            max_slippage_bps: cfg.max_slippage_bps,
            min_order_usdc: cfg.min_order_usdc,
            market_min_shares,
            max_copy_delay_s: cfg.max_copy_delay_s,
            now_ms,
        };
        // A fill seen only pending (no block yet) may never happen: its own, tighter cap.
        if fill.block_number == 0 && cfg.pending_max_order_usdc.0 > 0 {
            let mut rules = m.rules.clone();
            let cap = rules.max_order_usdc.map_or(cfg.pending_max_order_usdc, |c| c.min(cfg.pending_max_order_usdc));
            rules.max_order_usdc = Some(cap);
            size_copy(fill, &rules, &ctx)
        } else {
            size_copy(fill, &m.rules, &ctx)
        }
    }

    /// What a target's exit may sell: the shares its own copies hold, at most what we hold and no
    /// SELL in flight has claimed. Another target's copies of the same outcome are left to that
    /// target's exits, so when the journal cannot say, the exit is refused rather than sized on
    /// our whole position.
    async fn copied(&self, fill: &TargetFill, held: Shares) -> Result<Shares, DenyReason> {
        let ask = CopiedShares { wallet: fill.wallet, token: fill.token_id };
        match self.store.send(ask).await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(copied) => Ok(held.min(copied)),
            Err(cause) => {
                tracing::error!(%cause, "the shares this target's copies hold are not known: its exit is not copied");
                Err(DenyReason::CopiesUnknown { cause })
            }
        }
    }

    /// Journals and reports a refused copy.
    fn reject(&self, m: &Copy, reason: DenyReason, market: Option<MarketRef>) -> Decision {
        self.store.do_send(RecordRefusal { row: m.pending.row, code: reason.code(), detail: reason.to_string() });
        let fill = &m.pending.fill;
        // Stale before or after its wait for a BUY in flight: said once per target and token.
        if matches!(reason, DenyReason::Stale { .. })
            && fill.side == Side::Sell
            && self.stale_exits_told.lock().is_ok_and(|mut told| told.insert((fill.wallet, fill.token_id)))
        {
            let (store, notifier, label, fill) =
                (self.store.clone(), self.notifier.clone(), m.label.clone(), fill.clone());
            let told = self.stale_exits_told.clone();
            let risk = self.risk.clone();
            actix::spawn(async move {
                let ask = CopiedShares { wallet: fill.wallet, token: fill.token_id };
                if let Ok(Ok(held)) = store.send(ask).await
                    && held.0 > 0
                {
                    let message = super::stale_exit_alert(&label, &fill.token_id, Some(held));
                    tracing::warn!("{message}");
                    notifier.do_send(Event::Alert { message });
                } else if risk.send(BuyOpen(fill.token_id)).await.unwrap_or(false) {
                    // Nothing booked yet, but a BUY of ours of the token may still fill: should it,
                    // we hold what the target has left, and nothing else will say so.
                    let message = super::stale_exit_alert(&label, &fill.token_id, None);
                    tracing::warn!("{message}");
                    notifier.do_send(Event::Alert { message });
                } else if let Ok(mut told) = told.lock() {
                    // Nothing said: a later stale exit, once its copies hold some, is.
                    told.remove(&(fill.wallet, fill.token_id));
                }
            });
        }
        self.notifier.do_send(Event::Rejected {
            fill: m.pending.fill.clone(),
            label: m.label.clone(),
            reason: reason.clone(),
            market,
        });
        Decision::Rejected(reason)
    }

    /// Asks the risk supervisor to approve `intent` (`recovered`: journaled before a restart).
    async fn evaluate(&self, m: &Copy, intent: OrderIntent, recovered: bool, market: Option<MarketRef>) -> Decision {
        let e = Evaluate {
            counted_at_ms: None,
            intent,
            fill: m.pending.fill.clone(),
            label: m.label.clone(),
            max_trades_per_hour: m.rules.max_trades_per_hour,
            min_trade_interval_s: m.rules.min_trade_interval_s,
            recovered,
            at_start: m.at_start,
            market,
            journaled: m.pending.journaled,
            booked: if recovered { m.pending.booked } else { None },
            halts_seen: None,
        };
        self.risk.send(e).await.unwrap_or_else(|e| Decision::Failed(e.to_string()))
    }
}
