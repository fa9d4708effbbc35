//! Commands from the authorized chats: one enum drives parsing, `/help` and the command menu. Each
//! handler asks the actors or the journal and replies through the outbox (so replies are paced too).
//! Messages from any other chat get no answer at all; they are logged with the chat id and counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Addr;
use teloxide::prelude::*;
use teloxide::types::UpdateKind;
use teloxide::utils::command::BotCommands;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::actors::risk_supervisor::{GetBreakerState, ResumeFrom, RiskSupervisor};
use crate::actors::store::StoreActor;
use crate::actors::watcher::Registry;
use crate::chain::FeedStatus;
use crate::config::env::scrub;
use crate::metrics::Metrics;
use crate::store::now_ms;
use crate::telegram::outbox::{Class, Outgoing};
use crate::telegram::replies::{self, Reply, answered};

/// The bot's commands. Each variant's doc comment is its one-line description in `/help` and in
/// Telegram's command menu (`/help` is built from that list, not from this comment).
// The variants' doc comments are the menu's texts, with `[n]` and `<market>` as users type them.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
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
    /// stop copying one target's buys (its exits still are): /pause <label|address>
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
    /// `/health`'s thresholds: `/status` says what the health checks would of the feed and the CLOB.
    pub health: crate::config::settings::HealthSettings,
    /// Blocks a fill waits for (the feed's expected lag).
    pub confirmations: u64,
    /// When the daemon started, unix ms.
    pub started_ms: i64,
    /// The CLOB connection (live only): where the pUSD balance is asked.
    pub venue: Option<Arc<crate::clob::venue::Venue>>,
    /// Closes offered and waiting for their button.
    pub closes: crate::telegram::operator::PendingCloses,
    /// Closed by `/halt` before anything else, as the control socket does: nothing new leaves
    /// from that instant, whatever the risk supervisor is busy with.
    pub gate: crate::risk::TradingGate,
    /// Taken by the commands that change the trading state (`/halt`, the resume button) while
    /// they act: updates run side by side, and these must act in the order they came (a resume
    /// pressed just before a /halt must not land after it).
    pub trading_turn: Arc<tokio::sync::Mutex<()>>,
}

impl Ops {
    /// `PAPER` or `LIVE`, as offers and confirmations name the instance's money.
    #[must_use]
    pub const fn mode_word(&self) -> &'static str {
        if self.paper { "PAPER" } else { "LIVE" }
    }
}

/// The /resume confirmation button: `resume:<since_ms of the halt it was offered for>:<offered at
/// ms>:<the gate's count of halts>:<when the last halt was asked for, ms>`.
const RESUME_PREFIX: &str = "resume:";
/// The longest a confirmed resume waits for the risk supervisor: a halt after it must not queue
/// behind a resume that waits without end.
const RISK_WAIT: Duration = Duration::from_secs(2);
/// A confirmation button older than this is refused (the situation may have changed).
const BUTTON_TTL_MS: i64 = 10 * 60 * 1000;

/// Who may command the bot: the chats (`TELEGRAM_CHAT_ID`), and inside them the users
/// (`telegram.allowed_user_ids`; empty: every member).
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    /// Chats whose commands are obeyed and which get the reports.
    pub chats: HashSet<i64>,
    /// Users whose commands are obeyed in those chats (empty: anyone in them).
    pub users: HashSet<u64>,
}

impl Authorized {
    /// Whether a command from `user` (`None`: sent as a channel or an anonymous admin) is obeyed.
    #[must_use]
    pub fn user(&self, user: Option<u64>) -> bool {
        self.users.is_empty() || user.is_some_and(|u| self.users.contains(&u))
    }
}

/// Parses `text` as a command to this bot. While its name is unknown (Telegram was down at the
/// start), a "/cmd@name" cannot be told ours: the name is asked now, and if Telegram still cannot
/// say, only the commands safe to take from another bot's operator are taken as ours: /halt
/// (dropped, it could have been meant for us; a halt too many stops nothing that should run),
/// and /resume and /close, which ask for a button's confirmation that names this instance. Any
/// other one (a pause lifted, a market resumed, a report) may be another bot's in the same group,
/// and is dropped as not ours.
async fn parse_for_us(bot: &Bot, text: &str, username: &str) -> Result<Command, teloxide::utils::command::ParseError> {
    match Command::parse(text, username) {
        Err(teloxide::utils::command::ParseError::WrongBotName(_)) if username.is_empty() => {
            match tokio::time::timeout(super::polling::NAME_WAIT, bot.get_me()).await {
                Ok(Ok(me)) => Command::parse(text, me.username()),
                _ => {
                    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
                    let bare = word.split('@').next().unwrap_or(word);
                    let text = if rest.is_empty() { bare.to_owned() } else { format!("{bare} {rest}") };
                    match Command::parse(&text, username) {
                        Ok(c) if safe_unaddressed(&c) => Ok(c),
                        Ok(_) => {
                            info!(
                                command = bare,
                                "a command addressed by name was dropped: the bot's own name is not known yet"
                            );
                            Err(teloxide::utils::command::ParseError::WrongBotName(String::new()))
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        }
        other => other,
    }
}

/// Whether `c`, addressed to a bot whose name we cannot check, may be taken as ours (see
/// [`parse_for_us`]).
const fn safe_unaddressed(c: &Command) -> bool {
    matches!(c, Command::Halt(_) | Command::Resume | Command::Close(_))
}

/// An authorized group `old` is now `new`: its commands are obeyed and its messages go there, and
/// the operator is told (once) to name the new id in the settings.
fn group_moved(ops: &Ops, old: i64, new: i64) {
    if ops.out.moves.record(old, new) {
        let message = super::delivery::moved_notice(old, new);
        warn!("{message}");
        let _ = ops.out.try_push(Outgoing::text("warning", format!("WARNING: {message}"), Class::Alert, false));
    }
    ops.out.heard_from(old);
}

/// When an unauthorized update was last logged, unix ms: anyone can write to a bot, so the log
/// says so at most once a minute (the metric counts every one).
static UNAUTHORIZED_LOGGED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How old a command that resumes buying may be and still be carried out, seconds. Telegram keeps
/// a bot's updates for a day: one typed while the daemon was down arrives at its next start.
const RESUMPTION_MAX_AGE_S: i64 = 300;

/// The age in seconds of `cmd`, sent at `sent`, when it resumes buying without asking to confirm
/// (`/unpause`, `/resumemarket`) and is older than [`RESUMPTION_MAX_AGE_S`] at `now_ms`. Halts,
/// pauses and everything else run however late: stopping late is still what was asked, and
/// `/resume` and `/close` ask to confirm now.
fn stale_resumption(cmd: &Command, sent: chrono::DateTime<chrono::Utc>, now_ms: i64) -> Option<i64> {
    let resumes = matches!(cmd, Command::Unpause(_) | Command::ResumeMarket(_));
    let age_s = (now_ms - sent.timestamp_millis()) / 1000;
    (resumes && age_s > RESUMPTION_MAX_AGE_S).then_some(age_s)
}

fn unauthorized(ops: &Ops, chat: i64, what: &str) {
    let n = ops.metrics.telegram_unauthorized.fetch_add(1, Ordering::Relaxed) + 1;
    let now = crate::store::now_ms();
    let last = UNAUTHORIZED_LOGGED_MS.load(Ordering::Relaxed);
    if now - last >= 60_000
        && UNAUTHORIZED_LOGGED_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        warn!(
            chat,
            what,
            total = n,
            "Telegram update from an unauthorized chat ignored (no reply; logged at most once a minute)"
        );
    }
}

/// A message (or an edited one) in a chat: a command from an authorized sender is carried out
/// and answered. An edited command is carried out only when it is a `/halt` (stopping is always
/// safe, and a fixed typo must not leave trading running); any other is answered "send it again",
/// since an edit may change an old command into one never meant now.
async fn on_message(
    bot: &Bot,
    ops: &Ops,
    auth: &Authorized,
    username: &str,
    msg: teloxide::types::Message,
    edited: bool,
) {
    let chats = &auth.chats;
    let chat = msg.chat.id.0;
    // An authorized group upgraded to a supergroup: Telegram says so in the old chat and
    // in the new one. The new id is the group's from now on.
    let moved = match (msg.migrate_to_chat_id(), msg.migrate_from_chat_id()) {
        (Some(new), _) if chats.contains(&chat) => Some((chat, new.0)),
        (_, Some(old)) if chats.contains(&old.0) => Some((old.0, chat)),
        _ => None,
    };
    if let Some((old, new)) = moved {
        return group_moved(ops, old, new);
    }
    // Counted whatever it holds (a sticker, the bot added to a group), before anything is read.
    if !chats.contains(&chat) && ops.out.moves.from(chat).is_none() {
        return unauthorized(ops, chat, "message");
    }
    // Telegram delivers there again (the bot unblocked, rights given back).
    ops.out.heard_from(chat);
    // A channel's post forwarded into its discussion group is not a command from anyone here.
    if msg.is_automatic_forward() {
        return;
    }
    let Some(text) = msg.text() else { return };
    let Some(text) = command_text(text) else { return };
    // As a channel or an anonymous admin, the sender is no user (`from` is a placeholder).
    // Only a command counts as unauthorized: a group's chatter is none of our business.
    let sender = if msg.sender_chat.is_some() { None } else { msg.from.as_ref().map(|u| u.id.0) };
    if !auth.user(sender) {
        return unauthorized(ops, chat, "command from a user not in telegram.allowed_user_ids");
    }
    // Command names are case-insensitive for people ("/STATUS"); arguments are kept as typed.
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let word: String = word.chars().filter(|c| !crate::domain::is_hidden_or_control(*c)).collect();
    let word = word.as_str();
    let normalized = if rest.is_empty() { word.to_lowercase() } else { format!("{} {rest}", word.to_lowercase()) };
    let reply = match parse_for_us(bot, &normalized, username).await {
        Ok(cmd) if edited && !matches!(cmd, Command::Halt(_)) => {
            info!(chat, command = %word.to_lowercase(), "edited Telegram command not carried out");
            Reply::text(format!(
                "{} was edited, not sent: an edited command is not carried out (only /halt is). Send it again \
                 as a new message if you want it.",
                word.to_lowercase()
            ))
        }
        Ok(cmd) if let Some(age_s) = stale_resumption(&cmd, msg.date, now_ms()) => {
            info!(chat, command = %word.to_lowercase(), age_s, "Telegram command too old to act on");
            Reply::text(format!(
                "{} was sent {} min ago by Telegram's clock (while the daemon was not running, or this \
                 server's clock is ahead): not done, a late resumption could buy when you no longer mean \
                 it. Send it again if you still want it.",
                word.to_lowercase(),
                age_s / 60
            ))
        }
        Ok(cmd) => {
            // The name only: an argument (a halt's reason) may hold a pasted secret.
            info!(chat, command = %word.to_lowercase(), "Telegram command");
            execute(ops, cmd).await
        }
        // In a group, a command for another bot is none of our business: no answer at all.
        Err(teloxide::utils::command::ParseError::WrongBotName(_)) => return,
        Err(_) => Reply::text(format!("unknown command or bad arguments: {}\n/help lists the commands", word)),
    };
    send(ops, chat, reply).await;
}

/// One update from Telegram: a message, an edited one or a button pressed, from an authorized
/// chat and sender; anything else is counted and never answered.
pub(super) async fn handle_update(
    bot: &Bot,
    ops: &Ops,
    auth: &Authorized,
    username: &str,
    kind: UpdateKind,
    token: &str,
) {
    let chats = &auth.chats;
    match kind {
        UpdateKind::Message(msg) => on_message(bot, ops, auth, username, msg, false).await,
        // An operator who mistyped a command fixes it by editing the message, as Telegram invites.
        UpdateKind::EditedMessage(msg) => on_message(bot, ops, auth, username, msg, true).await,
        UpdateKind::CallbackQuery(q) => {
            let chat = q.message.as_ref().map(|m| m.chat().id.0);
            let Some(chat) = chat.filter(|c| chats.contains(c) || ops.out.moves.from(*c).is_some()) else {
                return unauthorized(ops, chat.unwrap_or(q.from.id.0 as i64), "button");
            };
            if !auth.user(Some(q.from.id.0)) {
                return unauthorized(ops, chat, "button pressed by a user not in telegram.allowed_user_ids");
            }
            let data = q.data.as_deref().unwrap_or("");
            let pressed = if let Some(bound) = data.strip_prefix(RESUME_PREFIX) {
                Some(confirm_resume(ops, bound).await)
            } else if let Some(nonce) = data.strip_prefix(crate::telegram::operator::CLOSE_PREFIX) {
                Some(crate::telegram::operator::confirm_close(ops, nonce).await)
            } else {
                None
            };
            let answer = match pressed {
                Some(Pressed::Refused(text)) => {
                    send(ops, chat, Reply::text(text)).await;
                    "refused"
                }
                Some(Pressed::Done(text)) => {
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

/// What a pressed button did, and the answer for its chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pressed {
    /// Carried out: the button is removed from its message.
    Done(String),
    /// Nothing done (expired, stale, refused or not confirmed): the button stays.
    Refused(String),
}

/// Carries out a pressed "Resume trading" button, bound to the halt it was offered for.
async fn confirm_resume(ops: &Ops, bound: &str) -> Pressed {
    use Pressed::Refused;
    let _turn = ops.trading_turn.lock().await;
    let mut parts = bound.split(':');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok());
    let (since, offered) = (next().unwrap_or(-1), next().unwrap_or(0));
    // A halt after the button was offered (a /halt, the CLI's, the stop file's; also one that
    // gives up waiting for this turn) makes the supervisor refuse this resume.
    let halts_seen = next().and_then(|h| u64::try_from(h).ok()).unwrap_or_else(|| ops.gate.halts());
    // The count is the process's own; the time of the last halt survives a restart.
    let last_halt_ms = next();
    if now_ms() - offered > BUTTON_TTL_MS {
        return Refused("this button has expired: send /resume again".into());
    }
    let Ok(Ok(now)) = tokio::time::timeout(RISK_WAIT, ops.risk.send(GetBreakerState)).await else {
        return Refused("the risk supervisor is unavailable right now; nothing was resumed. Try again".into());
    };
    if !(now.tripped || now.reducing) {
        return Refused("not halted: nothing to resume".into());
    }
    if now.since_ms != since {
        return Refused(format!(
            "not resumed: this button was for an earlier halt; trading is now {} ({}) by {}: {}. Send /resume again",
            now.trading().as_str(),
            now.code,
            now.by,
            now.reason
        ));
    }
    if let Some(why) = stop_file_blocks(ops) {
        return Refused(why);
    }
    let resume = ResumeFrom { since_ms: Some(since), halts_seen, last_halt_ms, by: "telegram".into() };
    match tokio::time::timeout(RISK_WAIT, ops.risk.send(resume)).await {
        Ok(Ok(true)) => Pressed::Done(format!("resumed: trading active again (was {}: {})", now.code, now.reason)),
        Ok(Ok(false)) => {
            Refused("not resumed: trading was halted again after this button was offered. Send /resume again".into())
        }
        // Queued, so it may still land (unless a halt comes first): never said to have failed.
        Ok(Err(_)) => Refused("the risk supervisor is unavailable right now; nothing was resumed. Try again".into()),
        Err(_) => Refused(
            "the risk supervisor did not confirm within 2 s; the resume is queued and lands unless trading is halted \
             again first: check /status"
                .into(),
        ),
    }
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

/// `/resume`: asks to confirm with a button bound to the state being cleared, or says why not.
async fn resume_offer(ops: &Ops) -> Reply {
    // Read before the state: a halt between the two reads voids the button, never hides in it.
    let halts = ops.gate.halts();
    match answered(ops.risk.send(GetBreakerState)).await {
        Ok(b) if (b.tripped || b.reducing) && ops.stop_file.exists() => {
            Reply::text(stop_file_blocks(ops).unwrap_or_default())
        }
        Ok(b) if b.tripped || b.reducing => Reply {
            text: format!(
                "{} trading is {} ({}) by {}: {}\nresume {} trading?",
                ops.mode_word(),
                b.trading().as_str(),
                b.code,
                b.by,
                b.reason,
                ops.mode_word()
            ),
            // Bound to the halt it resumes, the moment it was offered, the gate's count of halts
            // then and the time of the last halt: a halt after the offer voids it, also across
            // a restart.
            buttons: vec![(
                format!("Resume {} trading", ops.mode_word()),
                format!("{RESUME_PREFIX}{}:{}:{halts}:{}", b.since_ms, now_ms(), b.since_ms.max(b.halt_asked_ms)),
            )],
            photo: None,
        },
        Ok(_) => Reply::text("not halted: trading is active".into()),
        Err(_) => replies::unavailable("the risk supervisor"),
    }
}

/// The reply to one command from an authorized chat.
async fn execute(ops: &Ops, cmd: Command) -> Reply {
    match cmd {
        Command::Help => Reply::text(help_text()),
        Command::Start => Reply::text(format!(
            "polycopy copies the trades of the wallets in wallets.json ({} mode) and reports each one here. \
             Only this chat's members can command it.\n\n{}",
            if ops.paper { "PAPER" } else { "LIVE" },
            help_text()
        )),
        Command::Status => replies::status(ops).await,
        Command::Positions => replies::positions(ops).await,
        Command::Trades(arg) => replies::trades(ops, &arg).await,
        Command::Pnl(arg) => replies::pnl(ops, &arg).await,
        Command::Wallets | Command::Targets => match crate::telegram::targets::reply(ops).await {
            Some(text) => Reply::text(text),
            None => replies::unavailable("the target list"),
        },
        Command::Pause(who) | Command::Unpause(who) if who.trim().is_empty() => {
            Reply::text("usage: /pause <label|address> or /unpause <label|address>".into())
        }
        Command::Pause(who) => replies::set_target_paused(ops, who, true).await,
        Command::Unpause(who) => replies::set_target_paused(ops, who, false).await,
        Command::Halt(reason) => replies::halt(ops, &reason).await,
        Command::Resume => resume_offer(ops).await,
        Command::Balance => replies::balance(ops).await,
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
            replies::uptime(now_ms() - ops.started_ms)
        )),
        Command::Report(arg) => replies::report(ops, &arg).await,
    }
}

/// The command in a message's text, without the invisible marks some keyboards and pastes put
/// before it (a left-to-right mark, a zero-width space, a byte-order mark): a `/halt` typed so
/// must not be taken for chatter and silently ignored. `None` when the text is no command.
fn command_text(text: &str) -> Option<&str> {
    let text = text.trim_start_matches(|c: char| crate::domain::is_hidden_or_control(c) || c.is_whitespace());
    text.starts_with('/').then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_behind_invisible_marks_is_still_a_command() {
        // (text, the command found)
        let cases = [
            ("/halt lunch", Some("/halt lunch")),
            ("\u{200E}/halt lunch", Some("/halt lunch")),
            ("\u{FEFF}\u{200B} /status", Some("/status")),
            ("\u{200F}/resume", Some("/resume")),
            ("hello /halt", None),
            ("\u{200E}hello", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(command_text(text), want, "{text:?}");
        }
    }

    #[test]
    fn only_a_late_command_that_resumes_buying_is_held_back() {
        let now = 1_800_000_000_000;
        let sent = |ago_s: i64| chrono::DateTime::from_timestamp_millis(now - ago_s * 1000).unwrap();
        // (command, sent seconds ago, held back)
        let cases = [
            (Command::Unpause("whale".into()), 30, false),
            (Command::Unpause("whale".into()), 3_600, true),
            (Command::ResumeMarket("us-election".into()), 3_600, true),
            (Command::ResumeMarket("us-election".into()), 300, false),
            (Command::Halt("late".into()), 3_600, false),
            (Command::Pause("whale".into()), 3_600, false),
            (Command::PauseMarket("x".into()), 3_600, false),
            (Command::Resume, 3_600, false),
            (Command::Status, 86_000, false),
        ];
        for (cmd, ago, held) in cases {
            assert_eq!(stale_resumption(&cmd, sent(ago), now).is_some(), held, "{cmd:?} {ago}");
        }
    }
}
