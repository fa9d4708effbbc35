//! The [`Registry`]: starts, stops and reconfigures one watcher per enabled target as
//! `wallets.json` changes (hot reload), routes each new fill to its target's watcher, and answers
//! the operator's questions about targets (list, pause).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use actix::{Actor, ActorFutureExt, Addr, Context, Handler, Message, ResponseFuture, WrapFuture};
use alloy::primitives::Address;
use rust_decimal::Decimal;
use tokio::sync::watch;
use tracing::{error, info};

use super::{
    ListTargets, NewFills, Reconfigure, Reload, SetTargetPaused, Stats, TargetInfo, WalletWatcher, WatchedFill,
};
use crate::actors::copier::admission::{Admission, Admitted};
use crate::actors::copier::{Copier, Copy, Refuse, Unwaited};
use crate::actors::handoff::Handoff;
use crate::actors::notifier::{Details, Event, Notifier};
use crate::actors::store::{SetPaused, StoreActor};
use crate::config::{Target, Wallets};
use crate::domain::addr_lower;
use crate::risk::DenyReason;
use crate::risk::{CopyRules, SizingRule};
use crate::store::PendingFill;

/// Owns the watchers and the current target list.
#[derive(Debug)]
pub struct Registry {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    path: PathBuf,
    watchers: HashMap<Address, (Target, Addr<WalletWatcher>)>,
    copier: Addr<Copier>,
    notifier: Addr<Notifier>,
    store: Addr<StoreActor>,
    /// The feed's filter follows this list.
    targets_tx: watch::Sender<Vec<Address>>,
    /// The wallets whose fills are copied at their first pending sighting.
    pending_tx: watch::Sender<HashSet<Address>>,
    /// The trigger of targets that name none.
    default_trigger: crate::config::settings::Trigger,
    /// Targets the operator paused (persisted in the journal).
    paused: HashSet<Address>,
    /// The problems of the last refused edit: the same refusal (an editor saving twice, a
    /// SIGHUP after the file change) is announced once.
    last_refused: Option<Vec<crate::config::Problem>>,
    /// New fills on their way to their watchers, in widening slices (see [`Handoff`]).
    handoff: Handoff<Route>,
    /// Which detail events are sent.
    details: Details,
    /// Every label a wallet had in the files read, to name wallets no longer listed.
    labels: HashMap<Address, String>,
    /// Where a refused edit shows (`/health`) until a good one is read.
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Reads of wallets.json started, and the newest whose result was taken: reads run side by
    /// side, and one that finishes after a newer one must not put an older file back.
    reads: (u64, u64),
}

/// Where a new fill goes: its target's watcher, or (an intent of a target no longer watched)
/// straight to the copier.
#[derive(Debug)]
enum Route {
    Watcher(Addr<WalletWatcher>, Copy),
    Copier(Copy),
}

/// Hands a fill on with its slot among the copies waiting for a decision.
fn deliverer(copier: Addr<Copier>) -> impl Fn(Route, Option<Admitted>) + 'static {
    move |r, slot| match r {
        Route::Watcher(w, mut c) => {
            c.admitted = slot;
            w.do_send(WatchedFill(c));
        }
        Route::Copier(mut c) => {
            c.admitted = slot;
            copier.do_send(Unwaited(c));
        }
    }
}

impl Registry {
    /// A registry for `wallets`, read from `path`, publishing the watched addresses to `targets_tx`.
    #[must_use]
    pub fn new(
        path: PathBuf,
        copier: Addr<Copier>,
        notifier: Addr<Notifier>,
        store: Addr<StoreActor>,
        targets_tx: watch::Sender<Vec<Address>>,
    ) -> Self {
        let handoff = Handoff::new(deliverer(copier.clone()), Some(Admission::for_daemon(None)));
        Self {
            _vital: crate::actors::vital::Vital::new("the targets' registry"),
            path,
            watchers: HashMap::new(),
            copier,
            notifier,
            store,
            targets_tx,
            pending_tx: watch::channel(HashSet::new()).0,
            default_trigger: crate::config::settings::Trigger::Confirmed,
            paused: HashSet::new(),
            last_refused: None,
            handoff,
            details: Details::ALL,
            labels: HashMap::new(),
            metrics: None,
            reads: (0, 0),
        }
    }

    /// Publishes the wallets whose trigger is `pending` (their own, else `default`) to `tx`.
    #[must_use]
    pub fn with_triggers(
        mut self,
        default: crate::config::settings::Trigger,
        tx: watch::Sender<HashSet<Address>>,
    ) -> Self {
        self.default_trigger = default;
        self.pending_tx = tx;
        self
    }

    /// Shows a refused edit of wallets.json, and the copies waiting, in `metrics` (and so in
    /// `/health`). Called before any fill is handed on.
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.handoff = Handoff::new(deliverer(self.copier.clone()), Some(Admission::for_daemon(Some(metrics.clone()))));
        self.metrics = Some(metrics);
        self
    }

    fn set_refused(&self, refused: bool) {
        if let Some(m) = &self.metrics {
            m.wallets_refused.store(refused, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Sends only the detail events someone reads (else all of them).
    #[must_use]
    pub const fn with_details(mut self, details: Details) -> Self {
        self.details = details;
        self
    }

    /// Starts with these targets paused.
    #[must_use]
    pub fn with_paused(mut self, paused: HashSet<Address>) -> Self {
        self.paused = paused;
        self
    }

    /// Applies a validated target list: starts, stops and reconfigures watchers. Returns the names of
    /// (added, removed, changed) targets.
    pub fn apply(&mut self, wallets: &Wallets) -> (Vec<String>, Vec<String>, Vec<String>) {
        let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        let wanted: HashMap<Address, &Target> = wallets.enabled().map(|t| (t.address, t)).collect();
        self.labels.extend(wallets.targets.iter().map(|t| (t.address, t.label.clone())));
        self.watchers.retain(|addr, (t, _)| {
            let keep = wanted.contains_key(addr);
            if !keep {
                removed.push(t.label.clone());
            }
            keep // dropping the last Addr stops the watcher
        });
        for (addr, t) in wanted {
            match self.watchers.get_mut(&addr) {
                Some((old, w)) => {
                    if old != t {
                        changed.push(t.label.clone());
                        *old = t.clone();
                        w.do_send(Reconfigure(t.clone()));
                    }
                }
                None => {
                    added.push(t.label.clone());
                    let w = WalletWatcher {
                        _vital: crate::actors::vital::Vital::new("a target's watcher"),
                        report_detected: self.details.fill_detected,
                        target: t.clone(),
                        copier: self.copier.clone(),
                        notifier: self.notifier.clone(),
                        fills_seen: 0,
                    }
                    .start();
                    self.watchers.insert(addr, (t.clone(), w));
                }
            }
        }
        let mut addrs: Vec<Address> = self.watchers.keys().copied().collect();
        addrs.sort();
        let running = self.watchers.values().map(|(t, _)| (t.address, t.label.clone())).collect();
        self.store.do_send(crate::actors::store::SetRunningTargets(running));
        self.targets_tx.send_replace(addrs);
        let on_pending = self
            .watchers
            .values()
            .filter(|(t, _)| t.trigger.unwrap_or(self.default_trigger) == crate::config::settings::Trigger::Pending)
            .map(|(t, _)| t.address)
            .collect();
        self.pending_tx.send_replace(on_pending);
        (added, removed, changed)
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.warn_if_stranded(ctx);
    }
}

impl Registry {
    /// Warns when positions copied from wallets no longer watched are open (their exits are not
    /// read): at start, and after a reload.
    fn warn_if_stranded(&self, ctx: &mut Context<Self>) {
        use actix::AsyncContext as _;
        let watched = self.watchers.keys().copied().collect();
        let check =
            super::stranded::warn_if_stranded(self.store.clone(), self.notifier.clone(), watched, self.labels.clone());
        ctx.spawn(check.into_actor(self));
    }
}

/// Fills journaled before the last stop, copied (or resolved) before anything new: replies once
/// every one of them was decided.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Recover(pub Vec<PendingFill>);

impl Registry {
    /// Refused through the copier, which leaves a fill a copy decides to that copy.
    fn reject(&self, p: PendingFill, label: String, reason: DenyReason) {
        self.copier.do_send(Refuse { pending: p, label, reason });
    }

    /// The copy of `p` and the watcher it belongs to; `None` (journaled and reported) when it is
    /// not copied: a BUY of a paused target, or a target no longer watched. A paused target's
    /// exits are still copied (sized on its own copies), so what was copied from it is not left
    /// behind, as in a paused market. An intent journaled before a crash is always copied, watched
    /// or not: its order may be at the exchange and must be resolved. `at_start`: part of recovery
    /// at start (see [`Copy::at_start`]).
    fn destination(&self, p: PendingFill, at_start: bool) -> Option<(Copy, Option<Addr<WalletWatcher>>)> {
        match self.watchers.get(&p.fill.wallet) {
            Some((t, _))
                if self.paused.contains(&p.fill.wallet)
                    && p.intent.is_none()
                    && p.fill.side == crate::domain::Side::Buy =>
            {
                self.reject(p, t.label.clone(), DenyReason::Paused);
                None
            }
            Some((t, w)) => Some((
                Copy { pending: p, label: t.label.clone(), rules: t.rules.clone(), at_start, admitted: None },
                Some(w.clone()),
            )),
            None if p.intent.is_some() => {
                let label = if p.fill.wallet == crate::domain::OPERATOR {
                    "close".to_owned()
                } else {
                    addr_lower(&p.fill.wallet)
                };
                // Rules are not applied to a recovered intent: it was approved before the crash.
                let rules = CopyRules::new(SizingRule::Multiplier(Decimal::ONE));
                Some((Copy { pending: p, label, rules, at_start, admitted: None }, None))
            }
            None => {
                let label = addr_lower(&p.fill.wallet);
                self.reject(p, label, DenyReason::WalletInactive);
                None
            }
        }
    }
}

impl Handler<NewFills> for Registry {
    type Result = ResponseFuture<()>;

    /// Routes each fill to its target's watcher; a fill of a target no longer watched is not copied.
    /// Answers once every fill was handed on (the feed's back-pressure).
    fn handle(&mut self, NewFills(fills): NewFills, _: &mut Context<Self>) -> Self::Result {
        let routes = fills
            .into_iter()
            .filter_map(|p| match self.destination(p, false)? {
                (c, Some(w)) => Some(Route::Watcher(w, c)),
                (c, None) => Some(Route::Copier(c)),
            })
            .collect();
        Box::pin(self.handoff.push(routes))
    }
}

/// Replies once every fill handed to the registry went on to its watcher (shutdown waits for it
/// before it waits for the copier).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HandedOn;

impl Handler<HandedOn> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: HandedOn, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.handoff.drained())
    }
}

impl Handler<Recover> for Registry {
    type Result = ResponseFuture<usize>;

    /// Copies each recovered fill and replies when all were decided, so the daemon starts its feed
    /// only after every order an earlier run may have sent is resolved.
    fn handle(&mut self, Recover(fills): Recover, _: &mut Context<Self>) -> Self::Result {
        let decided: Vec<_> =
            fills.into_iter().filter_map(|p| self.destination(p, true)).map(|(c, _)| self.copier.send(c)).collect();
        Box::pin(async move { futures_util::future::join_all(decided).await.len() })
    }
}

impl Handler<Reload> for Registry {
    type Result = actix::ResponseActFuture<Self, ()>;

    /// Re-reads wallets.json; a valid file is applied, an invalid one is reported and ignored.
    /// Reading and validating run on a blocking thread: a large file must not hold up the actors
    /// (halts, `/health`, fills) while it is parsed.
    fn handle(&mut self, _: Reload, _: &mut Context<Self>) -> Self::Result {
        use actix::{ActorFutureExt as _, WrapFuture as _};
        let path = self.path.clone();
        self.reads.0 += 1;
        let this_read = self.reads.0;
        let read = tokio::task::spawn_blocking(move || Wallets::load(&path));
        Box::pin(read.into_actor(self).map(move |loaded, act, ctx| match loaded {
            _ if this_read < act.reads.1 => info!("a read of wallets.json finished after a newer one: left aside"),
            Err(e) => error!(cause = %e, "wallets.json reload task failed"),
            Ok(Err(problems)) if act.last_refused.as_ref() == Some(&problems) => {
                act.reads.1 = this_read;
                info!("wallets.json read again, still with the same problems: already reported");
            }
            Ok(Err(problems)) => {
                act.reads.1 = this_read;
                act.set_refused(true);
                act.last_refused = Some(problems.clone());
                // Reported to every chat: a secret this process knows never goes with it.
                let problems = problems
                    .into_iter()
                    .map(|p| crate::config::Problem {
                        entry: p.entry.as_deref().map(crate::config::env::redact),
                        field: crate::config::env::redact(&p.field),
                        message: crate::config::env::redact(&p.message),
                        ..p
                    })
                    .collect();
                act.notifier.do_send(Event::WalletsRejected(problems));
            }
            Ok(Ok(w)) => {
                act.reads.1 = this_read;
                act.set_refused(false);
                act.last_refused = None;
                let (added, removed, changed) = act.apply(&w);
                if added.is_empty() && removed.is_empty() && changed.is_empty() {
                    info!("wallets.json reloaded: no change");
                } else {
                    let removed_some = !removed.is_empty();
                    act.notifier.do_send(Event::WalletsReloaded { added, removed, changed });
                    if removed_some {
                        act.warn_if_stranded(ctx);
                    }
                }
            }
        }))
    }
}

impl Handler<ListTargets> for Registry {
    type Result = actix::ResponseActFuture<Self, Vec<TargetInfo>>;

    /// Each watched target with the fills it saw since start and its paused flag.
    fn handle(&mut self, _: ListTargets, _: &mut Context<Self>) -> Self::Result {
        use actix::WrapFuture;
        let mut list: Vec<(Target, Addr<WalletWatcher>, bool)> =
            self.watchers.iter().map(|(a, (t, w))| (t.clone(), w.clone(), self.paused.contains(a))).collect();
        list.sort_by(|a, b| a.0.label.cmp(&b.0.label));
        Box::pin(
            async move {
                let mut out = Vec::with_capacity(list.len());
                for (target, w, paused) in list {
                    let fills_seen = w.send(Stats).await.unwrap_or(0);
                    out.push(TargetInfo { target, fills_seen, paused });
                }
                out
            }
            .into_actor(self),
        )
    }
}

impl Handler<SetTargetPaused> for Registry {
    type Result = actix::ResponseActFuture<Self, Result<String, String>>;

    /// Finds the target by label (any case) or address, records the change in the journal and only
    /// then applies it: a pause the journal did not take is refused, not kept in memory only.
    fn handle(&mut self, m: SetTargetPaused, _: &mut Context<Self>) -> Self::Result {
        let found = self.find(&m.who);
        let Some((address, label)) = found else {
            let who = m.who.trim().to_owned();
            return Box::pin(actix::fut::ready(Err(format!("no watched target named {who:?}; /wallets lists them"))));
        };
        let already = m.paused == self.paused.contains(&address);
        let paused = m.paused;
        let by = m.by.clone();
        let write = self.store.send(SetPaused { wallet: address, paused, by: m.by });
        Box::pin(write.into_actor(self).map(move |r, act, _| {
            if !matches!(r, Ok(Ok(_))) {
                return Err(format!(
                    "{label}: the journal did not record the change, so it is not applied; see /status"
                ));
            }
            if paused {
                act.paused.insert(address);
            } else {
                act.paused.remove(&address);
            }
            if already {
                Err(format!("{label} is already {}", if paused { "paused" } else { "active" }))
            } else {
                let what = if paused { "paused (its buys not copied, its exits still are)" } else { "copied again" };
                act.notifier.do_send(Event::Operator { message: format!("target {label} {what} by {by}") });
                Ok(label)
            }
        }))
    }
}

impl Registry {
    /// A watched target by address, else by label (any case): an address always names its own
    /// wallet, even when another target's label is spelled like it.
    fn find(&self, who: &str) -> Option<(Address, String)> {
        let who = who.trim();
        let targets = || self.watchers.values().map(|(t, _)| t);
        targets()
            .find(|t| addr_lower(&t.address) == who.to_ascii_lowercase())
            .or_else(|| targets().find(|t| t.label.eq_ignore_ascii_case(who)))
            .map(|t| (t.address, t.label.clone()))
    }
}
