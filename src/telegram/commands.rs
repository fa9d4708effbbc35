//! Commands from the authorized chats: one enum drives parsing, `/help` and the command menu. Each
//! handler asks the actors or the journal and replies through the outbox (so replies are paced too).
//! Messages from any other chat get no answer at all; they are logged with the chat id and counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Addr;
use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, UpdateKind};
use teloxide::utils::command::BotCommands;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::actors::notifier::short_token;
use crate::actors::risk_supervisor::{GetBreakerState, RiskSupervisor, SetTrading};
use crate::actors::store::{GetPnlByDay, GetStatus, GetTrades, MarketNames, StoreActor};
use crate::actors::watcher::{ListTargets, Registry, SetTargetPaused};
use crate::chain::FeedStatus;
use crate::config::env::scrub;
use crate::metrics::Metrics;
use crate::report::{self, Period};
use crate::store::now_ms;
use crate::telegram::outbox::{Class, Outgoing};
use crate::telegram::schedule::build_report;

/// The bot's commands. Each variant's doc comment is its one-line description in `/help` and in
/// Telegram's command menu (`/help` is built from that list, not from this comment).
#[derive(BotCommands, Clone, Debug, PartialEq, Eq)]
#[command(rename_rule = "lowercase")]
pub enum Command {
    /// what this bot does
    Start,
    /// mode, breaker, chain lag, targets, exposure, today's P&L
    Status,
    /// open positions
    Positions,
    /// last n copied or rejected fills: /trades [n]
    Trades(String),
    /// realized P&L per day: /pnl [days]
    Pnl(String),
    /// targets with their stats
    Wallets,
    /// targets with their stats (same as /wallets)
    Targets,
    /// stop copying one target: /pause <label|address>
    Pause(String),
    /// copy a paused target again: /unpause <label|address>
    Unpause(String),
    /// stop all new orders now: /halt [reason]
    Halt(String),
    /// clear the breaker (asks to confirm)
    Resume,
    /// sell positions at market, even while halted (asks to confirm): /close <market|all>
    Close(String),
    /// no more buys into one market, exits still copied: /pausemarket <market>
    PauseMarket(String),
    /// buy into a paused market again: /resumemarket <market>
    ResumeMarket(String),
    /// the report with its chart: /report [daily|weekly|monthly]
    Report(String),
    /// money: pUSD available (live), positions' cost and value, realized P&L
    Balance,
    /// version, mode and uptime
    Version,
    /// this list
    Help,
}

/// What the handlers talk to.
#[derive(Clone)]
pub struct Ops {
    /// The journal.
    pub store: Addr<StoreActor>,
    /// The breaker's owner.
    pub risk: Addr<RiskSupervisor>,
    /// The targets.
    pub registry: Addr<Registry>,
    /// Chain progress.
    pub feed: watch::Receiver<FeedStatus>,
    /// Paper or live.
    pub paper: bool,
    /// Where replies go.
    pub out: crate::telegram::Queue,
    /// Counters (unauthorized attempts).
    pub metrics: Arc<Metrics>,
    /// While this file exists, resume is refused.
    pub stop_file: std::path::PathBuf,
    /// The hard limits, shown against today's figures.
    pub limits: crate::risk::Limits,
    /// When the daemon started, unix ms.
    pub started_ms: i64,
    /// The CLOB connection (live only): where the pUSD balance is asked.
    pub venue: Option<Arc<crate::clob::venue::Venue>>,
    /// Closes offered and waiting for their button.
    pub closes: crate::telegram::operator::PendingCloses,
}

/// The /resume confirmation button: `resume:<since_ms of the halt it was offered for>:<offered at ms>`.
const RESUME_PREFIX: &str = "resume:";
/// A confirmation button older than this is refused (the situation may have changed).
const BUTTON_TTL_MS: i64 = 10 * 60 * 1000;

/// Long-polls for updates until the process ends.
pub async fn run(bot: Bot, ops: Ops, chats: HashSet<i64>, poll_timeout_s: u32, username: String, token: String) {
    let mut offset: i32 = 0;
    let mut backoff = Duration::from_millis(500);
    let mut username = username;
    loop {
        // Unknown when Telegram was down at start: "/cmd@ourbot" needs our name to be recognised.
        if username.is_empty()
            && let Ok(me) = bot.get_me().await
        {
            username = me.username().to_owned();
            info!(bot = %username, "Telegram answers: bot name known");
        }
        let req = bot
            .get_updates()
            .offset(offset)
            .timeout(poll_timeout_s)
            .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        match req.await {
            Ok(updates) => {
                backoff = Duration::from_millis(500);
                for u in updates {
                    offset = i32::try_from(u.id.0).unwrap_or(i32::MAX).saturating_add(1);
                    handle_update(&bot, &ops, &chats, &username, u.kind, &token).await;
                }
            }
            Err(teloxide::RequestError::RetryAfter(s)) => tokio::time::sleep(s.duration()).await,
            Err(e) => {
                warn!(cause = scrub(&e.to_string(), &[&token]), "Telegram getUpdates failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn unauthorized(ops: &Ops, chat: i64, what: &str) {
    ops.metrics.telegram_unauthorized.fetch_add(1, Ordering::Relaxed);
    warn!(chat, what, "Telegram update from an unauthorized chat ignored (no reply)");
}

async fn handle_update(bot: &Bot, ops: &Ops, chats: &HashSet<i64>, username: &str, kind: UpdateKind, token: &str) {
    match kind {
        UpdateKind::Message(msg) => {
            let chat = msg.chat.id.0;
            let Some(text) = msg.text() else { return };
            if !chats.contains(&chat) {
                return unauthorized(ops, chat, "message");
            }
            if !text.starts_with('/') {
                return;
            }
            // Command names are case-insensitive for people ("/STATUS"); arguments are kept as typed.
            let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            let normalized =
                if rest.is_empty() { word.to_lowercase() } else { format!("{} {rest}", word.to_lowercase()) };
            let reply = match Command::parse(&normalized, username) {
                Ok(cmd) => {
                    info!(chat, command = ?cmd, "Telegram command");
                    execute(ops, chat, cmd).await
                }
                // In a group, a command for another bot is none of our business: no answer at all.
                Err(teloxide::utils::command::ParseError::WrongBotName(_)) => return,
                Err(_) => Reply::text(format!("unknown command or bad arguments: {}\n/help lists the commands", word)),
            };
            send(ops, chat, reply).await;
        }
        UpdateKind::CallbackQuery(q) => {
            let chat = q.message.as_ref().map(|m| m.chat().id.0);
            let Some(chat) = chat.filter(|c| chats.contains(c)) else {
                return unauthorized(ops, chat.unwrap_or(q.from.id.0 as i64), "button");
            };
            let data = q.data.as_deref().unwrap_or("");
            let pressed = if let Some(bound) = data.strip_prefix(RESUME_PREFIX) {
                Some(confirm_resume(ops, bound).await)
            } else if let Some(nonce) = data.strip_prefix(crate::telegram::operator::CLOSE_PREFIX) {
                Some(crate::telegram::operator::confirm_close(ops, nonce).await)
            } else {
                None
            };
            let answer = match pressed {
                Some(text) if text.starts_with("this button") || text.starts_with("not ") => {
                    send(ops, chat, Reply::text(text)).await;
                    "refused"
                }
                Some(text) => {
                    send(ops, chat, Reply::text(text)).await;
                    // A button is used once: remove it from the message it was on.
                    if let Some(m) = q.message.as_ref()
                        && let Err(e) = bot.edit_message_reply_markup(m.chat().id, m.id()).await
                    {
                        warn!(cause = scrub(&e.to_string(), &[token]), "removing the used button failed");
                    }
                    "done"
                }
                None => "unknown button",
            };
            if let Err(e) = bot.answer_callback_query(q.id).text(answer).await {
                warn!(cause = scrub(&e.to_string(), &[token]), "answerCallbackQuery failed");
            }
        }
        _ => {}
    }
}

/// Carries out a pressed "Resume trading" button, bound to the halt it was offered for.
async fn confirm_resume(ops: &Ops, bound: &str) -> String {
    let (since, offered) = bound.split_once(':').unwrap_or((bound, "0"));
    let (since, offered) = (since.parse::<i64>().unwrap_or(-1), offered.parse::<i64>().unwrap_or(0));
    if now_ms() - offered > BUTTON_TTL_MS {
        return "this button has expired: send /resume again".into();
    }
    let Ok(now) = ops.risk.send(GetBreakerState).await else {
        return "the risk supervisor is unavailable right now; try again".into();
    };
    if !(now.tripped || now.reducing) {
        return "not halted: nothing to resume".into();
    }
    if now.since_ms != since {
        return format!(
            "not resumed: this button was for an earlier halt; trading is now {} ({}) by {}: {}. Send /resume again",
            now.trading().as_str(),
            now.code,
            now.by,
            now.reason
        );
    }
    if let Some(why) = stop_file_blocks(ops) {
        return why;
    }
    ops.risk.do_send(SetTrading { halt: false, code: "manual", reason: String::new(), by: "telegram".into() });
    format!("resumed: trading active again (was {}: {})", now.code, now.reason)
}

/// Why resuming is refused while the emergency stop file exists (the CLI refuses the same way).
fn stop_file_blocks(ops: &Ops) -> Option<String> {
    ops.stop_file.exists().then(|| {
        format!(
            "not resumed: the emergency stop file {} is present; remove it on the server first, then /resume",
            ops.stop_file.display()
        )
    })
}

/// `/help`: one line per command, from the same list as Telegram's menu.
fn help_text() -> String {
    let lines: Vec<String> =
        Command::bot_commands().iter().map(|c| format!("{} — {}", c.command, c.description)).collect();
    format!("polycopy commands:\n{}", lines.join("\n"))
}

/// A reply: text, maybe buttons, maybe a picture.
struct Reply {
    text: String,
    buttons: Vec<(String, String)>,
    photo: Option<Vec<u8>>,
}

impl Reply {
    fn text(text: String) -> Self {
        Self { text, buttons: Vec::new(), photo: None }
    }
}

async fn send(ops: &Ops, chat: i64, r: Reply) {
    let m = Outgoing {
        kind: "reply",
        text: r.text,
        silent: false,
        class: Class::Direct,
        chat: Some(chat),
        buttons: r.buttons,
        photo: r.photo,
        html: false,
        tally: crate::telegram::outbox::Tally::default(),
    };
    if !ops.out.push(m).await {
        warn!("Telegram delivery stopped; reply dropped");
    }
}

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

async fn execute(ops: &Ops, chat: i64, cmd: Command) -> Reply {
    let _ = chat;
    let unavailable = |what: &str| Reply::text(format!("{what} is unavailable right now; try again"));
    match cmd {
        Command::Help => Reply::text(help_text()),
        Command::Start => Reply::text(format!(
            "polycopy copies the trades of the wallets in wallets.json ({} mode) and reports each one here. \
             Only this chat's members can command it.\n\n{}",
            if ops.paper { "PAPER" } else { "LIVE" },
            help_text()
        )),
        Command::Status => {
            let (Ok(Ok(st)), Ok(b), Ok(targets)) = (
                ops.store.send(GetStatus).await,
                ops.risk.send(GetBreakerState).await,
                ops.registry.send(ListTargets).await,
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
            let day = ops.risk.send(crate::actors::risk_supervisor::GetPnlToday).await.ok();
            let daily = day.map_or_else(
                || format!("daily loss limit {} USDC", l.daily_loss_limit_usdc),
                |pnl| crate::risk::day::daily_loss_line(pnl, l.daily_loss_limit_usdc),
            );
            let last = st.last_fill.as_ref().map_or_else(
                || "none yet".to_owned(),
                |f| {
                    format!(
                        "{} {} {} at {} → {}",
                        f.side,
                        f.target_shares,
                        short_token(&f.token_id),
                        f.target_price,
                        f.status
                    )
                },
            );
            let markets = match ops.store.send(crate::actors::store::PausedMarkets).await {
                Ok(Ok(list)) if !list.is_empty() => format!(
                    "\nmarkets PAUSED (no buys, exits copied): {}",
                    list.iter().map(|m| m.selector.to_string()).collect::<Vec<_>>().join(", ")
                ),
                _ => String::new(),
            };
            Reply::text(format!(
                "mode {}\nbreaker {breaker}\nchain head {}, processed {} (lag {} blocks)\ntargets {} watched, {paused} paused{markets}\n\
                 exposure {} USDC of {} USDC allowed\nP&L today {} USDC realized, {} USDC unrealized at the last marks\n\
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
        Command::Positions => {
            let Ok(Ok(st)) = ops.store.send(GetStatus).await else { return unavailable("the journal") };
            if st.positions.is_empty() {
                return Reply::text("no open positions".into());
            }
            let names = ops.store.send(MarketNames).await.ok().and_then(Result::ok).unwrap_or_default();
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
        Command::Trades(arg) => {
            let n = match number(&arg, 10, 50, "/trades [n]") {
                Ok(n) => n,
                Err(u) => return Reply::text(u),
            };
            let Ok(Ok(rows)) = ops.store.send(GetTrades(n)).await else { return unavailable("the journal") };
            if rows.is_empty() {
                return Reply::text("no fills yet".into());
            }
            let labels: std::collections::HashMap<String, String> = ops
                .registry
                .send(ListTargets)
                .await
                .map(|ts| {
                    ts.into_iter().map(|t| (crate::domain::addr_lower(&t.target.address), t.target.label)).collect()
                })
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
        Command::Pnl(arg) => {
            let days = match number(&arg, 7, 90, "/pnl [days]") {
                Ok(n) => n,
                Err(u) => return Reply::text(u),
            };
            let Ok(Ok(rows)) = ops.store.send(GetPnlByDay { days, now_ms: now_ms() }).await else {
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
        Command::Wallets | Command::Targets => match crate::telegram::targets::reply(ops).await {
            Some(text) => Reply::text(text),
            None => unavailable("the target list"),
        },
        Command::Pause(who) | Command::Unpause(who) if who.trim().is_empty() => {
            Reply::text("usage: /pause <label|address> or /unpause <label|address>".into())
        }
        Command::Pause(who) => {
            match ops.registry.send(SetTargetPaused { who, paused: true, by: "telegram".into() }).await {
                Ok(Ok(label)) => {
                    Reply::text(format!("paused {label}: its fills are not copied until /unpause {label}"))
                }
                Ok(Err(why)) => Reply::text(why),
                Err(_) => unavailable("the target list"),
            }
        }
        Command::Unpause(who) => {
            match ops.registry.send(SetTargetPaused { who, paused: false, by: "telegram".into() }).await {
                Ok(Ok(label)) => Reply::text(format!("copying {label} again")),
                Ok(Err(why)) => Reply::text(why),
                Err(_) => unavailable("the target list"),
            }
        }
        Command::Halt(reason) => {
            let reason = if reason.trim().is_empty() {
                "halted from Telegram".to_owned()
            } else {
                crate::config::env::redact(reason.trim())
            };
            // Already halted: the first halt's reason stays; say so rather than pretend to store this one.
            if let Ok(b) = ops.risk.send(GetBreakerState).await
                && b.tripped
            {
                return Reply::text(format!(
                    "already halted ({}) by {}: {}. That reason stays; /resume to clear",
                    b.code, b.by, b.reason
                ));
            }
            match ops
                .risk
                .send(SetTrading { halt: true, code: "manual", reason: reason.clone(), by: "telegram".into() })
                .await
            {
                Ok(()) => Reply::text(format!("HALTED: no new orders ({reason}). /resume to clear")),
                Err(_) => unavailable("the risk supervisor"),
            }
        }
        Command::Resume => match ops.risk.send(GetBreakerState).await {
            Ok(b) if (b.tripped || b.reducing) && ops.stop_file.exists() => {
                Reply::text(stop_file_blocks(ops).unwrap_or_default())
            }
            Ok(b) if b.tripped || b.reducing => Reply {
                text: format!(
                    "trading is {} ({}) by {}: {}\nresume trading?",
                    b.trading().as_str(),
                    b.code,
                    b.by,
                    b.reason
                ),
                buttons: vec![("Resume trading".into(), format!("{RESUME_PREFIX}{}:{}", b.since_ms, now_ms()))],
                photo: None,
            },
            Ok(_) => Reply::text("not halted: trading is active".into()),
            Err(_) => unavailable("the risk supervisor"),
        },
        Command::Balance => balance(ops).await,
        Command::Close(arg) => {
            let (text, buttons) = crate::telegram::operator::offer_close(ops, &arg).await;
            Reply { text, buttons, photo: None }
        }
        Command::PauseMarket(arg) => Reply::text(crate::telegram::operator::set_paused(ops, &arg, true).await),
        Command::ResumeMarket(arg) => Reply::text(crate::telegram::operator::set_paused(ops, &arg, false).await),
        Command::Version => Reply::text(format!(
            "polycopy {} in {} mode, up {}",
            env!("CARGO_PKG_VERSION"),
            if ops.paper { "PAPER" } else { "LIVE" },
            uptime(now_ms() - ops.started_ms)
        )),
        Command::Report(arg) => {
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
    }
}

/// `/balance`: what the account holds. Live: the pUSD the CLOB says the funder has; both modes: the
/// open positions' cost and unrealized P&L, and all realized P&L in the journal.
async fn balance(ops: &Ops) -> Reply {
    let Ok(Ok(st)) = ops.store.send(GetStatus).await else {
        return Reply::text("the journal is unavailable right now; try again".into());
    };
    let realized: i64 = match ops.store.send(GetPnlByDay { days: 36_500, now_ms: now_ms() }).await {
        Ok(Ok(rows)) => rows.iter().map(|(_, p)| p.0).sum(),
        _ => 0,
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
        "{cash}\nopen positions: cost {} USDC, unrealized {} USDC at the last marks\nrealized P&L, all time: {} USDC",
        st.exposure_usdc,
        st.unrealized_usdc,
        crate::domain::format_micros(realized)
    ))
}

/// "3 d 4 h", "5 h 2 min", "42 s".
fn uptime(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}
