//! The redemption loop: every `redeem.check_every_s`, finish what an earlier round (or run) sent,
//! then redeem each resolved market whose winning tokens our funder still holds. Each redemption
//! is journaled before anything is signed, its signed transaction before it is sent, and after a
//! restart it is looked up by hash and, if the node never saw it, the very same bytes are sent
//! again: one redemption can never become two. A revert is retried after a doubling pause within a
//! budget, then reported for the operator.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::Addr;
use alloy::primitives::{Address, B256, U256};
use tracing::{info, warn};

mod approval;
mod follow;

use self::approval::{Approval, SentApprovals};
use super::chain::Chain;
use super::{Held, Plan, calls, plan, retry_after_ms};
use crate::actors::notifier::{Event, Notifier};
use crate::actors::store::{
    OpenRedemptions, PlanRedemption, RedeemedSince, RedemptionExists, RedemptionSigned, RedemptionStatus,
    ReplanRedemption, ResolvedTokens, StoreActor,
};
use crate::domain::{Shares, Usdc};
use crate::store::{RedeemStatus, RedemptionRow, now_ms};

/// How one redemption is made.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// A CTF market through its collateral adapter (the whole balance of both outcomes).
    Adapter {
        /// The neg-risk adapter.
        neg_risk: bool,
    },
    /// An Exchange V3 position through the Router (an explicit amount of one outcome).
    Router {
        /// The position (token) id.
        position: crate::domain::TokenId,
        /// Shares held.
        shares: Shares,
    },
}

/// The contracts a redemption talks to.
#[derive(Debug, Clone)]
pub struct Contracts {
    /// Conditional Tokens (approvals, balances).
    pub ctf: Address,
    /// Exchange V3's PositionManager (V3 balances and the Router's approval).
    pub position_manager: Address,
    /// Exchange V3's Router (redeems V3 positions).
    pub router: Address,
    /// The exchanges of the V3 generation.
    pub v3_exchanges: Vec<Address>,
    /// pUSD, the collateral the adapters pay.
    pub pusd: Address,
    /// The standard collateral adapter.
    pub standard_adapter: Address,
    /// The neg-risk collateral adapter.
    pub neg_risk_adapter: Address,
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct RedeemConfig {
    /// Between rounds.
    pub every: Duration,
    /// Attempts before a redemption is left to the operator.
    pub attempts: u32,
    /// The pause after the first failed attempt (doubling after each next one).
    pub retry_base: Duration,
    /// How long a round waits for a transaction to be mined before leaving it to the next.
    pub confirm_wait: Duration,
    /// The addresses.
    pub contracts: Contracts,
}

/// Who redeems.
pub struct Redeemer {
    /// The journal.
    pub store: Addr<StoreActor>,
    /// Where outcomes are reported.
    pub notifier: Addr<Notifier>,
    /// Live: our signer on the node; `None` in paper mode (redemptions are simulated).
    pub chain: Option<Chain>,
    /// The wallet that holds the tokens.
    pub funder: Address,
    /// The funder is a Gnosis Safe owned by our signer.
    pub safe: bool,
    /// Settings.
    pub cfg: RedeemConfig,
    /// Counts rounds.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Live: the Data API, whose `redeemable` flag cross-checks the journal's resolutions.
    pub data_api: Option<String>,
    /// Rounds in a row each redemption could not be prepared because the node failed.
    pub node_failures: std::sync::Mutex<HashMap<i64, u32>>,
    /// The trading state: halted, nothing new is signed.
    pub gate: crate::risk::TradingGate,
    /// Approvals (book, operator) found reverted while followed, not yet counted against the
    /// redemption that needs them (see `ensure_approved`).
    pub reverted_approvals: std::sync::Mutex<std::collections::HashSet<(Address, Address)>>,
    /// Redemptions whose nonce this run found used with no receipt of theirs, and since when.
    pub nonce_used_since: std::sync::Mutex<HashMap<i64, std::time::Instant>>,
}

/// Rounds in a row a node failure holds a redemption up before the operator is told (once).
const NODE_FAILURES_TOLD_AFTER: u32 = 3;

impl Redeemer {
    /// Runs rounds until cancelled.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.cfg.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut memory = Memory::default();
        loop {
            tick.tick().await;
            if let Err(e) = self.round(&mut memory).await {
                warn!(cause = %e, "redemption round failed; trying again next round");
                self.metrics.redeem_round_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.metrics.redeem_rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One round, with what earlier rounds of this run learned.
    async fn round(&self, memory: &mut Memory) -> Result<(), String> {
        let Memory { worthless, done, waiting, approvals, halt_said, cross_check_said } = memory;
        let Some(chain) = &self.chain else { return self.paper_round().await };
        // Halted, nothing new is signed with the key (no approval, no redemption): what was sent
        // before is still followed to its end and booked, as an order in flight is.
        let halted = self.gate.is_closed();
        if approvals.is_none() {
            *approvals = self.journaled_approvals().await;
        }
        let Some(approvals) = approvals.as_mut() else {
            return Err("the approvals sent before are not known yet".into());
        };
        // A Safe funder's transactions each carry the Safe's next nonce: while one is not mined,
        // another signed now would take the same nonce and revert, spending an attempt.
        let approval_pending = !halted && self.approval_pending(chain, approvals).await;
        let mut safe_busy = self.safe && approval_pending;
        for row in self.open().await? {
            if matches!(row.status, RedeemStatus::Signed | RedeemStatus::Sent) {
                safe_busy |= self.follow(chain, &row).await == InFlight::Yes && self.safe;
            }
        }
        if halted {
            if !std::mem::replace(halt_said, true) {
                info!("trading is halted: no redemption or approval is signed until it resumes");
            }
            return Ok(());
        }
        *halt_said = false;
        let mut resolved = ask(self.store.send(ResolvedTokens).await)?;
        self.cross_check(&resolved, worthless, cross_check_said).await;
        done.retain(|_, at| at.elapsed() < DONE_FOR);
        // Booked redeemed lately (by this run or the one before a restart): not read again for a
        // while. A node behind the block of the receipt (a load balancer's backend) would still
        // show the shares, and a second redemption would be sent, pay nothing, and be taken for a
        // wrong adapter.
        let lately = now_ms() - i64::try_from(DONE_FOR.as_millis()).unwrap_or(i64::MAX);
        let redeemed: HashSet<B256> = ask(self.store.send(RedeemedSince(lately)).await)?.into_iter().collect();
        // A V3 redemption is journaled under its position's id (the router redeems a position).
        resolved.retain(|r| {
            !done.contains_key(&r.condition_id)
                && !redeemed.contains(&r.condition_id)
                && !redeemed.contains(&B256::from(r.token_id))
        });
        let (held, unread) = self.holdings(chain, resolved).await;
        for (condition_id, hs) in by_condition(&held) {
            if !unread.contains(&condition_id) && hs.iter().all(|h| h.payout.0 == 0 || h.shares.0 == 0) {
                done.insert(condition_id, std::time::Instant::now());
            }
        }
        let open = self.open().await?;
        for p in plan(&held) {
            match p {
                Plan::Worthless { condition_id, shares } => {
                    if worthless.insert(condition_id) {
                        info!(market = %condition_id, %shares, "resolved against us: worth nothing, no transaction spent on it");
                    }
                }
                Plan::Redeem { condition_id, v3, neg_risk, tokens, shares, expected } => {
                    // Gamma may show the result before the oracle has reported it on chain: a
                    // redemption would revert and spend an attempt of the budget. Not tried until
                    // then (a node that cannot say is no reason to wait: the attempt decides).
                    if !v3 && matches!(chain.payout_reported(self.cfg.contracts.ctf, condition_id).await, Ok(false)) {
                        if waiting.insert(condition_id) {
                            info!(market = %condition_id, "resolved on Gamma, not yet on chain: redeemed once the result is reported");
                        }
                        continue;
                    }
                    let route = match (v3, tokens.first()) {
                        (true, Some(t)) => Route::Router { position: *t, shares },
                        _ => Route::Adapter { neg_risk },
                    };
                    if safe_busy {
                        continue;
                    }
                    let Some(row) = self.due(&open, condition_id, tokens, shares, expected).await? else {
                        continue;
                    };
                    safe_busy |= self.attempt(chain, &row, route, approvals).await == InFlight::Yes && self.safe;
                }
            }
        }
        if unread.is_empty() {
            Ok(())
        } else {
            Err(format!("{} market(s) could not be read; the others were tried", unread.len()))
        }
    }

    /// What the funder holds on chain of each resolved token, and through which book. A token
    /// that cannot be read leaves its whole market out of this round (returned apart): one node
    /// error costs that market a round, never the others.
    async fn holdings(&self, chain: &Chain, resolved: Vec<crate::store::Resolved>) -> (Vec<Held>, HashSet<B256>) {
        let c = &self.cfg.contracts;
        let mut held = Vec::with_capacity(resolved.len());
        let mut unread = HashSet::new();
        for r in resolved {
            if unread.contains(&r.condition_id) {
                continue;
            }
            let v3 = r.exchange.is_some_and(|e| c.v3_exchanges.contains(&e));
            let book = if v3 { c.position_manager } else { c.ctf };
            let read = chain.balance_1155(book, self.funder, r.token_id).await.map_err(|e| e.to_string());
            let read =
                read.and_then(|b| i64::try_from(b).map_err(|_| format!("a balance of {b} is beyond any position")));
            let shares = match read {
                Ok(b) => Shares(b),
                Err(cause) => {
                    warn!(market = %r.condition_id, token = %r.token_id, %cause, "reading a resolved position failed; next round");
                    unread.insert(r.condition_id);
                    continue;
                }
            };
            held.push(Held {
                token_id: r.token_id,
                condition_id: r.condition_id,
                neg_risk: r.neg_risk,
                payout: r.payout,
                shares,
                v3,
            });
        }
        held.retain(|h| !unread.contains(&h.condition_id));
        (held, unread)
    }

    /// The redemption of `condition_id` to try now: its open row when due for a retry or planned
    /// and never signed (stopped before), a new planned one when it has none, or `None` while one
    /// is in flight or waiting for its retry.
    async fn due(
        &self,
        open: &[RedemptionRow],
        condition_id: B256,
        tokens: Vec<crate::domain::TokenId>,
        shares: Shares,
        expected: Usdc,
    ) -> Result<Option<RedemptionRow>, String> {
        match open.iter().find(|r| r.condition_id == condition_id) {
            Some(r)
                if (r.status == RedeemStatus::Reverted && r.next_try_ms <= now_ms())
                    || r.status == RedeemStatus::Planned =>
            {
                // What is held may have changed since the last attempt (a SELL settled late, the
                // auto-redeemer took part): judged against the old plan, a retry paying what is
                // held now would be taken for a wrong contract.
                let mut r = r.clone();
                if (r.shares, r.expected) != (shares, expected) {
                    ask(self.store.send(ReplanRedemption { id: r.id, shares, expected }).await)?;
                    info!(market = %condition_id, %shares, %expected, "redemption planned again for what is held now");
                    (r.shares, r.expected) = (shares, expected);
                }
                Ok(Some(r))
            }
            Some(_) => Ok(None),
            None => {
                let planned = PlanRedemption { condition_id, tokens, shares, expected, status: RedeemStatus::Planned };
                let id = ask(self.store.send(planned).await)?;
                Ok(Some(RedemptionRow {
                    id,
                    condition_id,
                    tokens: Vec::new(),
                    shares,
                    expected,
                    status: RedeemStatus::Planned,
                    tx_hash: None,
                    raw_tx: None,
                    replaced: Vec::new(),
                    attempts: 0,
                    next_try_ms: 0,
                }))
            }
        }
    }

    /// Says (once per token) when the Data API calls a position redeemable that the journal has not
    /// seen resolve: Gamma lagging, or tokens bought outside polycopy (`reconcile` shows them).
    /// A failing Data API is said once (until it works again): silent, it would turn this safety
    /// net off for good without anyone knowing.
    async fn cross_check(&self, resolved: &[crate::store::Resolved], told: &mut HashSet<B256>, failed_said: &mut bool) {
        let Some(url) = &self.data_api else { return };
        let listed = match crate::market::data_api::positions(url, self.funder).await {
            Ok(listed) => listed,
            Err(e) => {
                if !std::mem::replace(failed_said, true) {
                    warn!(cause = %e, "the Data API's positions could not be read: redeemable positions the journal has not seen resolve are not looked for until it answers");
                }
                return;
            }
        };
        *failed_said = false;
        for (token, p) in listed {
            // A lost market's tokens pay nothing: there is nothing to redeem, and nothing to say.
            let (shares, redeemable) = (p.size, p.redeemable && !p.lost());
            let key = B256::from(token);
            if redeemable && shares.0 > 0 && !resolved.iter().any(|r| r.token_id == token) && told.insert(key) {
                self.notifier.do_send(Event::Warning {
                    code: "redeemable",
                    message: format!(
                        "the Data API lists {shares} shares of {} as redeemable, but the journal has not seen that \
                         market resolve (Gamma lagging, or bought outside polycopy): run `polycopy reconcile`",
                        crate::actors::notifier::short_token(&token.to_string())
                    ),
                });
            }
        }
    }

    async fn open(&self) -> Result<Vec<RedemptionRow>, String> {
        ask(self.store.send(OpenRedemptions).await)
    }

    /// Approves the redeeming contract once, then signs, journals and sends the redemption.
    async fn attempt(
        &self,
        chain: &Chain,
        row: &RedemptionRow,
        route: Route,
        approvals: &mut SentApprovals,
    ) -> InFlight {
        let c = &self.cfg.contracts;
        let (book, target, call) = match route {
            Route::Adapter { neg_risk } => {
                let adapter = if neg_risk { c.neg_risk_adapter } else { c.standard_adapter };
                (c.ctf, adapter, calls::redeem(c.pusd, row.condition_id))
            }
            Route::Router { position, shares } => {
                let amount = U256::from(u64::try_from(shares.0).unwrap_or(0));
                (c.position_manager, c.router, calls::router_redeem(position, amount))
            }
        };
        match self.ensure_approved(chain, book, target, approvals).await {
            Ok(Approval::Ready) => {}
            Ok(Approval::Waiting) => {
                info!(market = %row.condition_id, operator = %target, "the approval is not mined yet: the redemption waits for it");
                // A Safe's approval that is not mined yet holds the Safe's nonce.
                return if self.safe { InFlight::Yes } else { InFlight::No };
            }
            Err(e) => {
                // This attempt counts the revert: it is not counted again by the next one.
                if matches!(e, crate::redeem::chain::ChainError::Reverted(_))
                    && let Ok(mut r) = self.reverted_approvals.lock()
                {
                    r.remove(&(book, target));
                }
                self.failed_or_later(row, &e, &format!("approving {target:#x}: {e}")).await;
                return if self.safe { InFlight::Yes } else { InFlight::No };
            }
        }
        let signed = match chain.as_funder(self.funder, self.safe, target, call).await {
            Ok((to, data)) => chain.sign(to, data).await,
            Err(e) => Err(e),
        };
        let signed = match signed {
            Ok(s) => s,
            Err(e) => {
                self.failed_or_later(row, &e, &e.to_string()).await;
                return InFlight::No;
            }
        };
        // Node failures are counted in a row: one that passed starts the count again.
        self.node_rounds_passed(row.id);
        // Durable before it leaves: from here on this redemption is exactly this transaction.
        if let Err(e) = ask(self
            .store
            .send(RedemptionSigned { id: row.id, tx_hash: signed.hash, raw_tx: signed.raw.clone() })
            .await)
        {
            warn!(cause = %e, "journaling the signed redemption failed: not sent");
            return InFlight::No;
        }
        crate::fault::abort_at("abort_after_redeem_signed");
        // The journal forgot the transactions an earlier attempt replaced: so does the row followed,
        // or an old attempt's revert would be booked against this one, which would never be sent.
        let signed_row = RedemptionRow {
            tx_hash: Some(signed.hash),
            raw_tx: Some(signed.raw),
            status: RedeemStatus::Signed,
            replaced: Vec::new(),
            ..row.clone()
        };
        self.follow(chain, &signed_row).await
    }

    /// A failure before anything was sent: one that says something about the redemption (it
    /// would revert, an approval reverted) counts as an attempt; a node that did not answer, or a
    /// key out of POL, does not spend the budget, and the next round tries again (an outage would
    /// otherwise fail every market tried meanwhile for good).
    async fn failed_or_later(&self, row: &RedemptionRow, e: &crate::redeem::chain::ChainError, why: &str) {
        use crate::redeem::chain::ChainError;
        // A halt raised during the round: tried again once trading resumes, nothing counted.
        if let ChainError::Halted = e {
            info!(market = %row.condition_id, "trading was halted: the redemption waits for it to resume");
            return;
        }
        // A key out of POL heals once it is topped up: like a node failure it spends no attempt
        // (it would otherwise fail for good every market tried meanwhile), and it is said.
        if let ChainError::Rpc(_) | ChainError::NoGas { .. } = e {
            warn!(market = %row.condition_id, cause = %why, "the node did not answer for a redemption: tried again next round, no attempt counted");
            let rounds = self.node_round_failed(row.id);
            // Not silent for long: a failure that does not pass (a funder that is not the Safe
            // configured, a node that never answers) is said once.
            if rounds == NODE_FAILURES_TOLD_AFTER {
                self.notifier.do_send(Event::Error {
                    message: format!(
                        "redemption of market {:#x} ({} pUSD) could not be prepared for {rounds} rounds: {why}. Tried \
                         again every round without spending attempts; check POLYGON_RPC_URL, the funder settings \
                         and the signing key's POL",
                        row.condition_id, row.expected
                    ),
                });
            }
            return;
        }
        self.failed(row, why).await;
    }

    /// Counts one more round in a row in which the node held up redemption `id`; returns the count.
    pub(super) fn node_round_failed(&self, id: i64) -> u32 {
        self.node_failures.lock().map_or(0, |mut m| {
            let n = m.entry(id).or_insert(0);
            *n += 1;
            *n
        })
    }

    /// The node took redemption `id`'s step: its rounds are counted in a row again.
    pub(super) fn node_rounds_passed(&self, id: i64) {
        if let Ok(mut m) = self.node_failures.lock() {
            m.remove(&id);
        }
    }

    /// Counts a failed attempt: retried after a pause within the budget, then left to the operator.
    async fn failed(&self, row: &RedemptionRow, why: &str) {
        let attempts = row.attempts + 1;
        if attempts >= self.cfg.attempts {
            self.set(row, RedeemStatus::Failed, why, attempts, 0).await;
            self.notifier.do_send(Event::Error {
                message: format!(
                    "redemption of market {:#x} ({} shares, {} pUSD) failed {attempts} times, the last: {why}. \
                     Not tried again: redeem it on polymarket.com (RUNBOOK, \"Redemption failed\")",
                    row.condition_id, row.shares, row.expected
                ),
            });
            return;
        }
        let pause = retry_after_ms(i64::try_from(self.cfg.retry_base.as_millis()).unwrap_or(60_000), attempts - 1);
        self.set(row, RedeemStatus::Reverted, why, attempts, now_ms() + pause).await;
        self.notifier.do_send(Event::Error {
            message: format!(
                "redemption of market {:#x} failed (attempt {attempts} of {}): {why}; tried again in about {} s (at the \
                 first round after {} s)",
                row.condition_id,
                self.cfg.attempts,
                (pause / 1000).max(i64::try_from(self.cfg.every.as_secs()).unwrap_or(i64::MAX)),
                pause / 1000
            ),
        });
    }

    async fn set(&self, row: &RedemptionRow, status: RedeemStatus, message: &str, attempts: u32, next_try_ms: i64) {
        let m = RedemptionStatus { id: row.id, status, message: message.to_owned(), attempts, next_try_ms };
        if let Err(e) = ask(self.store.send(m).await) {
            warn!(cause = %e, "journaling a redemption's status failed");
            // Not only logged: the row keeps its old status, so the next round may book or report
            // this redemption again until the journal takes writes.
            self.notifier.do_send(Event::Error {
                message: format!(
                    "journal write failed (redemption of market {:#x} as {}): {e}. It may be reported again until \
                     the journal takes writes (see RUNBOOK, Database locked or corrupted)",
                    row.condition_id,
                    status.as_str()
                ),
            });
        }
    }

    /// Paper: the same lifecycle without a chain: each resolved winning position is redeemed once,
    /// in the journal, at its payout.
    async fn paper_round(&self) -> Result<(), String> {
        let resolved = ask(self.store.send(ResolvedTokens).await)?;
        let mut by_market: std::collections::BTreeMap<B256, (Shares, Usdc, Vec<crate::domain::TokenId>)> =
            std::collections::BTreeMap::new();
        for r in resolved.iter().filter(|r| r.payout.0 > 0 && r.settled.0 > 0) {
            let e = by_market.entry(r.condition_id).or_default();
            e.0 = Shares(e.0.0 + r.settled.0);
            e.1 = Usdc(e.1.0 + crate::domain::mul_price_floor(r.settled, r.payout));
            e.2.push(r.token_id);
        }
        for (condition_id, (shares, expected, tokens)) in by_market {
            if ask(self.store.send(RedemptionExists(condition_id)).await)? {
                continue;
            }
            ask(self
                .store
                .send(PlanRedemption { condition_id, tokens, shares, expected, status: RedeemStatus::Paper })
                .await)?;
            self.notifier.do_send(Event::Redeemed { condition: condition_id, shares, payout: expected, tx: None });
        }
        Ok(())
    }
}

/// Whether a redemption's transaction may still be mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Yes,
    No,
}

/// How long a market read with nothing to redeem is not read again: shares that still arrive
/// (a match settling late) are then redeemed within the hour.
const DONE_FOR: Duration = Duration::from_secs(3_600);

/// What the rounds of one run remember.
#[derive(Debug, Default)]
struct Memory {
    /// Markets said to be worth nothing (said once, or tokens the Data API lists, said once).
    worthless: HashSet<B256>,
    /// Markets read with nothing left to redeem (no paying share on chain), and when: not read
    /// again for [`DONE_FOR`]. The journal's resolved markets only grow, so re-reading them all
    /// every round would end in rounds that never finish on a rate-limited node.
    done: std::collections::HashMap<B256, std::time::Instant>,
    /// Markets resolved on Gamma whose result the chain does not have yet (said once).
    waiting: HashSet<B256>,
    /// Approvals sent and not yet in effect; `None` until read from the journal.
    approvals: Option<SentApprovals>,
    /// The halt was said to hold redemptions up (said once per halt).
    halt_said: bool,
    /// The Data API's cross-check was said to fail (said again only after it worked once).
    cross_check_said: bool,
}

/// The positions read, by market.
fn by_condition(held: &[Held]) -> std::collections::BTreeMap<B256, Vec<&Held>> {
    let mut out: std::collections::BTreeMap<B256, Vec<&Held>> = std::collections::BTreeMap::new();
    for h in held {
        out.entry(h.condition_id).or_default().push(h);
    }
    out
}

fn ask<T, E: std::fmt::Display>(r: Result<Result<T, E>, actix::MailboxError>) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
