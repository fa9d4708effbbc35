//! Target wallets: one [`WalletWatcher`] actor per enabled target, and the [`Registry`] that starts,
//! stops and reconfigures them as `wallets.json` changes (hot reload) and routes fills to them
//! (in `registry`).

use actix::{Actor, Addr, Context, Handler, Message, MessageResult};

use crate::actors::copier::{Copier, Copy, Unwaited};
use crate::actors::notifier::{Event, Notifier};
use crate::config::Target;
use crate::store::PendingFill;

mod registry;
mod stranded;
pub use registry::{HandedOn, Recover, Registry};

/// Newly journaled fills, from the feed (or recovery at start).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NewFills(pub Vec<PendingFill>);

/// One fill for one watcher, with its target's label and rules as they were when the registry took
/// it: an edit of `wallets.json` made while the fill waited in the hand-off applies to later fills,
/// not to this one.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct WatchedFill(Copy);

/// New settings for a watcher.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Reconfigure(Target);

/// Re-read wallets.json.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reload;

/// The targets, their stats and whether they are paused.
#[derive(Debug, Message)]
#[rtype(result = "Vec<TargetInfo>")]
pub struct ListTargets;

/// One watched target as the operator sees it.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// The target.
    pub target: Target,
    /// Fills it had since the daemon started.
    pub fills_seen: u64,
    /// Paused by the operator.
    pub paused: bool,
}

/// Pause or unpause one target, named by label or address; replies with its label, or why not.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, String>")]
pub struct SetTargetPaused {
    /// Label or address.
    pub who: String,
    /// Pause (true) or unpause.
    pub paused: bool,
    /// Who asked.
    pub by: String,
}

/// Watches one target: holds its rules and stats and forwards its fills to the copier.
#[derive(Debug)]
pub struct WalletWatcher {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    /// Whether the fills' detection is reported (see [`Details`]).
    report_detected: bool,
    target: Target,
    copier: Addr<Copier>,
    notifier: Addr<Notifier>,
    fills_seen: u64,
}

impl Actor for WalletWatcher {
    type Context = Context<Self>;
}

impl Handler<WatchedFill> for WalletWatcher {
    type Result = ();

    /// Reports the fill and sends it to be copied under the rules it arrived with.
    fn handle(&mut self, WatchedFill(c): WatchedFill, _: &mut Context<Self>) {
        crate::fault::panic_at("panic_in_watcher");
        self.fills_seen += 1;
        if c.pending.intent.is_none() && self.report_detected {
            self.notifier.do_send(Event::FillDetected { fill: c.pending.fill.clone(), label: c.label.clone() });
        }
        self.copier.do_send(Unwaited(c));
    }
}

impl Handler<Reconfigure> for WalletWatcher {
    type Result = ();

    /// Takes the new rules; stats are kept.
    fn handle(&mut self, Reconfigure(t): Reconfigure, _: &mut Context<Self>) {
        self.target = t;
    }
}

/// Fills seen by a watcher.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
struct Stats;

impl Handler<Stats> for WalletWatcher {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.fills_seen)
    }
}
