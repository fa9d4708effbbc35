//! The replies of the commands that read (status, positions, trades, P&L, balance, reports) and of
//! `/halt`, each built from the actors' and the journal's answers.

use std::time::Duration;

use crate::actors::notifier::short_token;
use crate::actors::risk_supervisor::{GetBreakerState, HaltAsked, SetTrading};
use crate::actors::store::{GetBreaker, GetPnlByDay, GetStatus, GetTrades, MarketNames, NoteHaltAsked, SetBreaker};
use crate::actors::watcher::{ListTargets, SetTargetPaused};
use crate::report::{self, Period};
use crate::risk::BreakerState;
use crate::store::now_ms;
use crate::telegram::commands::Ops;
use crate::telegram::schedule::build_report;

/// A reply: text, maybe buttons, maybe a picture.
pub(super) struct Reply {
    /// The message.
    pub text: String,
    /// Inline buttons: label and callback data.
    pub buttons: Vec<(String, String)>,
    /// A chart, as PNG.
    pub photo: Option<Vec<u8>>,
}

impl Reply {
    /// A reply of text only.
    pub fn text(text: String) -> Self {
        Self { text, buttons: Vec::new(), photo: None }
    }
}

/// The optional number argument of `/trades` and `/pnl`: `default` when absent, else 1..=`max`.
fn number(arg: &str, default: u32, max: u32, usage: &str) -> Result<u32, String> {
    let a = arg.trim();
    if a.is_empty() {
        return Ok(default);
    }
    match a.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("usage: {usage} (a number from 1 to {max})")),
    }
}

/// Longest a command's reply waits for each answer of an actor or the journal: one busy or stuck
/// is said to be unavailable, never met with silence (each command runs on its own task, so
/// nothing else waits).
pub(super) const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// `request`'s answer within [`ANSWER_WAIT`].
pub(super) async fn answered<T>(
    request: impl Future<Output = Result<T, actix::MailboxError>>,
) -> Result<T, actix::MailboxError> {
    crate::actors::within(ANSWER_WAIT, request).await
}

/// The answer when an actor or the journal did not answer.
pub(super) fn unavailable(what: &str) -> Reply {
    Reply::text(format!("{what} is unavailable right now; try again"))
}

/// `/status`: mode, trading state, chain lag, targets, exposure, today's P&L, the last fill.
pub(super) async fn status(ops: &Ops) -> Reply {
    // Asked together: the reply waits for the slowest, not for the sum.
    let (Ok(Ok(st)), Ok(b), Ok(targets), day, markets) = tokio::join!(
        answered(ops.store.send(GetStatus)),
        answered(ops.risk.send(GetBreakerState)),
        answered(ops.registry.send(ListTargets)),
        answered(ops.risk.send(crate::actors::risk_supervisor::GetPnlToday)),
        answered(ops.store.send(crate::actors::store::PausedMarkets)),
    ) else {
        return unavailable("the status");
    };
    let f = ops.feed.borrow().clone();
    let breaker = if b.tripped {
        format!("TRIPPED ({}) by {}: {}", b.code, b.by, b.reason)
    } else if b.reducing {
        format!("REDUCING ({}) by {}: {}: only exits are copied", b.code, b.by, b.reason)
    } else {
        "ok, trading active".into()
    };
    let paused = targets.iter().filter(|t| t.paused).count();
    let l = &ops.limits;
    let daily = day.ok().map_or_else(
        || format!("daily loss limit {} USDC", l.daily_loss_limit_usdc),
        |pnl| crate::risk::day::daily_loss_line(pnl, l.daily_loss_limit_usdc),
    );
    let last = st.last_fill.as_ref().map_or_else(
        || "none yet".to_owned(),
        |f| format!("{} {} {} at {} → {}", f.side, f.target_shares, short_token(&f.token_id), f.target_price, f.status),
    );
    let markets = match markets {
        Ok(Ok(list)) if !list.is_empty() => format!(
            "\nmarkets PAUSED (no buys, exits copied): {}",
            list.iter().map(|m| m.selector.to_string()).collect::<Vec<_>>().join(", ")
        ),
        _ => String::new(),
    };
    let problems = problems(ops, &f);
    let (flying, held) = ops.metrics.in_flight();
    let in_flight = if flying > 0 {
        format!("\norders in flight {flying} (their BUYs hold {held} USDC of the caps)")
    } else {
        String::new()
    };
    Reply::text(format!(
        "mode {}{problems}\nbreaker {breaker}\nchain head {}, processed {} (lag {} blocks)\ntargets {} watched, {paused} paused{markets}\n\
         exposure {} USDC of {} USDC allowed{in_flight}\nP&L today {} USDC realized; open positions {} USDC unrealized against cost at the last marks\n\
         {daily}\nlast fill {last}",
        if ops.paper { "PAPER" } else { "LIVE" },
        f.head,
        f.processed,
        f.head.saturating_sub(f.processed),
        targets.len(),
        st.exposure_usdc,
        l.max_total_exposure_usdc,
        st.realized_today_usdc,
        st.unrealized_usdc,
    ))
}

/// What `/health` would flag of the chain feed, the CLOB (live) and wallets.json, one line each,
/// first in `/status`: the figures below it (a lag of 0 blocks) read as fine while nothing is read.
fn problems(ops: &Ops, feed: &crate::chain::FeedStatus) -> String {
    use crate::health::Level;
    let now = now_ms();
    let mut checks = vec![crate::health::chain_check(feed, ops.confirmations, (now, ops.started_ms), &ops.health)];
    if let Some(v) = &ops.venue {
        checks.push(crate::health::clob_check(&v.reachability().snapshot(), now, ops.health.clob_stale_s));
    }
    let mut out = String::new();
    for c in checks.iter().filter(|c| c.status != Level::Healthy) {
        let level = if c.status == Level::Unhealthy { "UNHEALTHY" } else { "degraded" };
        out.push_str(&format!("\n⚠ {} {level}: {}", c.name, crate::config::env::redact(&c.detail)));
    }
    if ops.metrics.wallets_refused.load(std::sync::atomic::Ordering::Relaxed) {
        out.push_str(
            "\n⚠ wallets.json was refused at its last edit: the previous targets run on (check-config says why)",
        );
    }
    out
}

/// `/positions`: each open position with its cost and its mark.
pub(super) async fn positions(ops: &Ops) -> Reply {
    let Ok(Ok(st)) = answered(ops.store.send(GetStatus)).await else { return unavailable("the journal") };
    if st.positions.is_empty() {
        return Reply::text("no open positions".into());
    }
    let shown: Vec<String> = st.positions.iter().map(|p| p.token_id.clone()).collect();
    let names = answered(ops.store.send(MarketNames(shown))).await.ok().and_then(Result::ok).unwrap_or_default();
    let lines: Vec<String> = st
        .positions
        .iter()
        .map(|p| {
            let name = p
                .token_id
                .parse::<crate::domain::TokenId>()
                .ok()
                .and_then(|t| names.get(&t).cloned())
                .unwrap_or_else(|| format!("token {}", short_token(&p.token_id)));
            let marked = match (&p.mark, &p.unrealized_usdc) {
                (Some(m), Some(u)) => format!(", mark {m}, P&L {u} USDC"),
                _ => ", not marked yet".to_owned(),
            };
            format!("• {name}\n  {} sh at avg {} (cost {} USDC){marked}", p.shares, p.avg_price, p.cost_usdc)
        })
        .collect();
    Reply::text(format!(
        "{} open positions, exposure {} USDC, unrealized {} USDC at the last marks\n{}",
        lines.len(),
        st.exposure_usdc,
        st.unrealized_usdc,
        lines.join("\n")
    ))
}

/// `/trades [n]`: the last fills, ours beside the target's.
pub(super) async fn trades(ops: &Ops, arg: &str) -> Reply {
    let n = match number(arg, 10, 50, "/trades [n]") {
        Ok(n) => n,
        Err(u) => return Reply::text(u),
    };
    let Ok(Ok(rows)) = answered(ops.store.send(GetTrades(n))).await else {
        return unavailable("the journal");
    };
    if rows.is_empty() {
        return Reply::text("no fills yet".into());
    }
    let labels: std::collections::HashMap<String, String> = answered(ops.registry.send(ListTargets))
        .await
        .map(|ts| ts.into_iter().map(|t| (crate::domain::addr_lower(&t.target.address), t.target.label)).collect())
        .unwrap_or_default();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let who = labels.get(&r.wallet).cloned().unwrap_or_else(|| short_token(&r.wallet));
            let market = r.market.clone().unwrap_or_else(|| format!("token {}", short_token(&r.token_id)));
            let ours = match (&r.shares, &r.price, &r.usdc) {
                (Some(s), Some(p), Some(u)) => format!("ours {s} at {p} = {u} USDC"),
                _ => format!("{}: {}", r.status, r.reason.clone().unwrap_or_default()),
            };
            format!(
                "{} {who} {} {} at {} · {market}\n  {ours}",
                report::time_of_day(r.seen_at_ms),
                r.side,
                r.target_shares,
                r.target_price,
            )
        })
        .collect();
    Reply::text(lines.join("\n"))
}

/// `/pnl [days]`: realized P&L per day.
pub(super) async fn pnl(ops: &Ops, arg: &str) -> Reply {
    let days = match number(arg, 7, 90, "/pnl [days]") {
        Ok(n) => n,
        Err(u) => return Reply::text(u),
    };
    let Ok(Ok(rows)) = answered(ops.store.send(GetPnlByDay { days, now_ms: now_ms() })).await else {
        return unavailable("the journal");
    };
    let total: i64 = rows.iter().map(|(_, p)| p.0).sum();
    let lines: Vec<String> = rows.iter().map(|(day, p)| format!("{} {}", report::date(*day), p)).collect();
    Reply::text(format!(
        "realized P&L, last {days} days: {} USDC\n{}",
        crate::domain::format_micros(total),
        lines.join("\n")
    ))
}

/// `/halt [reason]`: halts trading, unless it already is (the first halt's reason stays). The
/// gate closes first; the halt is then written to the journal directly, as the control socket's
/// is, so a risk supervisor that does not answer (often why one halts) can neither lose it at the
/// next restart nor leave the operator without an answer: every wait is bounded.
pub(super) async fn halt(ops: &Ops, reason: &str) -> Reply {
    // Read first: when nothing answers below, an already-closed gate says a halt stands, whose
    // cause must not be overwritten with `manual` (as the control socket does).
    let gate_before = ops.gate.trading();
    // From this instant nothing new is sent, before any round trip to the risk supervisor.
    ops.gate.close();
    let under_way = crate::control::under_way_note(ops.gate.posts_under_way());
    let answer_by = tokio::time::Instant::now() + Duration::from_secs(2);
    // After a resume that came before it (and may have opened the gate again), never before.
    let _turn = tokio::time::timeout_at(answer_by, ops.trading_turn.lock()).await;
    let reason = if reason.trim().is_empty() {
        "halted from Telegram".to_owned()
    } else {
        crate::control::halt_reason(reason.trim())
    };
    // Already halted: the first halt's reason stays; say so rather than pretend to store this one.
    // A supervisor that does not answer: the journal's breaker says it (its cause, a journal or
    // credentials failure say, must not be overwritten with `manual`).
    let ask = Duration::from_millis(300);
    let before = match tokio::time::timeout(ask, ops.risk.send(GetBreakerState)).await {
        Ok(Ok(b)) => b,
        _ => match tokio::time::timeout_at(answer_by, ops.store.send(GetBreaker)).await {
            Ok(Ok(Ok(b))) => b,
            _ => crate::control::server::unread_breaker(gate_before),
        },
    };
    let at = now_ms();
    if before.tripped {
        let b = before;
        // The halt stands; its time is journaled (a close started before it stays stopped after
        // a restart, a resume button offered before it is refused).
        let _ = tokio::time::timeout_at(answer_by, ops.store.send(NoteHaltAsked(at))).await;
        ops.risk.do_send(HaltAsked { at_ms: at, reason: reason.clone(), by: "telegram".into() });
        return Reply::text(format!(
            "already halted ({}) by {}: {}. That reason stays; /resume to clear",
            b.code, b.by, b.reason
        ));
    }
    let state = BreakerState {
        tripped: true,
        code: "manual".into(),
        reason: reason.clone(),
        by: "telegram".into(),
        since_ms: at,
        reducing: false,
        halt_asked_ms: at,
    };
    let persisted =
        matches!(tokio::time::timeout_at(answer_by, ops.store.send(SetBreaker(state))).await, Ok(Ok(Ok(()))));
    ops.risk.do_send(SetTrading { halt: true, code: "manual", reason: reason.clone(), by: "telegram".into() });
    // Named: with several instances, the operator sees which one stopped.
    let mode = ops.mode_word();
    if persisted {
        Reply::text(format!("HALTED ({mode}): no new orders ({reason}){under_way}. /resume to clear"))
    } else {
        Reply::text(format!(
            "HALTED ({mode}): no new orders ({reason}){under_way}. The journal did not confirm the write in time; \
             the daemon writes it again. /resume to clear"
        ))
    }
}

/// `/report [daily|weekly|monthly]`: the period's report with its chart.
pub(super) async fn report(ops: &Ops, arg: &str) -> Reply {
    let period = match arg.trim().to_ascii_lowercase().as_str() {
        "" | "daily" | "day" => Period::Daily,
        "weekly" | "week" => Period::Weekly,
        "monthly" | "month" => Period::Monthly,
        _ => return Reply::text("usage: /report [daily|weekly|monthly]".into()),
    };
    match build_report(&ops.store, &ops.registry, period).await {
        Some((text, png)) => Reply { text, buttons: Vec::new(), photo: png },
        None => unavailable("the report"),
    }
}

/// `/balance`: what the account holds. Live: the pUSD the CLOB says the funder has; both modes: the
/// open positions' cost and unrealized P&L, and all realized P&L in the journal.
pub(super) async fn balance(ops: &Ops) -> Reply {
    let Ok(Ok(st)) = answered(ops.store.send(GetStatus)).await else {
        return Reply::text("the journal is unavailable right now; try again".into());
    };
    let realized = match answered(ops.store.send(GetPnlByDay { days: 36_500, now_ms: now_ms() })).await {
        Ok(Ok(rows)) => {
            let sum = rows.iter().fold(0_i64, |acc, (_, p)| acc.saturating_add(p.0));
            format!("{} USDC", crate::domain::format_micros(sum))
        }
        // Never a made-up zero.
        _ => "unavailable (the journal did not answer)".to_owned(),
    };
    let cash = match &ops.venue {
        None => "PAPER mode: no wallet, no cash is simulated".to_owned(),
        Some(v) => match tokio::time::timeout(Duration::from_secs(5), v.collateral()).await {
            Ok(Ok((b, _))) => format!("{} pUSD available to {:#x}", crate::clob::doctor::balance_text(b), v.funder()),
            Ok(Err(e)) => format!("pUSD balance unavailable: {e}"),
            Err(_) => "pUSD balance unavailable: the CLOB did not answer within 5 s".to_owned(),
        },
    };
    Reply::text(format!(
        "{cash}\nopen positions: cost {} USDC, unrealized {} USDC at the last marks\nrealized P&L, all time: {realized}",
        st.exposure_usdc, st.unrealized_usdc,
    ))
}

/// "3 d 4 h", "5 h 2 min", "42 s".
pub(super) fn uptime(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `/pause` and `/unpause`: one target's fills are copied or not.
pub(super) async fn set_target_paused(ops: &Ops, who: String, paused: bool) -> Reply {
    match answered(ops.registry.send(SetTargetPaused { who, paused, by: "telegram".into() })).await {
        Ok(Ok(label)) if paused => Reply::text(format!(
            "paused {label}: its buys are not copied until /unpause {label}; its exits still are, so what was copied from it is not left behind"
        )),
        Ok(Ok(label)) => Reply::text(format!("copying {label} again")),
        Ok(Err(why)) => Reply::text(why),
        Err(actix::MailboxError::Timeout) => Reply::text(format!(
            "not confirmed within {} s: the change may still apply (/targets shows it)",
            ANSWER_WAIT.as_secs()
        )),
        Err(_) => unavailable("the target list"),
    }
}
