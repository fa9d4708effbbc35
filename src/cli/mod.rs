//! The subcommands an operator runs. Every one reads the same settings file as the daemon (the
//! installation's, found from where the binary is installed, or `--instance`), so they all act on
//! the journal of the mode the settings name. Halt and resume reach the running daemon through its
//! control socket; the read-only commands read the journal and never create one.

mod alert;
mod control;
mod daemon_that_trades;
mod incident;
mod journal;
mod operator;
mod reconcile;
mod service_access;
mod setup;
mod stats;
mod status;
mod suggest;
mod vet;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::problem::render;
use crate::config::settings::SettingsSources;
use crate::config::{Location, Mode, Problem, Settings};
use crate::store::Store;

pub use alert::alert;
pub use control::{halt, resume};
pub use incident::incident;
pub use journal::{backup, db_check, maintenance, report, trades};
pub use operator::{close, pause_market};
pub use reconcile::reconcile;
pub use setup::{check_config, doctor, env_for};
pub use stats::detection as stats_detection;
pub use status::status;
pub use suggest::{SuggestArgs, suggest};
pub use vet::{VetArgs, vet};

/// polycopy: mirror Polymarket target wallets' trades, paper trading by default.
#[derive(Debug, Parser)]
#[command(name = "polycopy", version, about)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand takes.
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalArgs {
    /// Settings file layered over the defaults and /etc/polycopy/polycopy.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Target wallets file (overrides `wallets_path`).
    #[arg(long, global = true, value_name = "PATH")]
    pub wallets: Option<PathBuf>,
    /// SQLite journal (overrides the mode's journal).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Act on the named instance (`polycopy@NAME`): settings from /etc/polycopy/NAME/polycopy.toml.
    /// `POLYCOPY_INSTANCE` in the command's environment (never from a `.env` file) names it too.
    #[arg(long, global = true, value_name = "NAME", env = "POLYCOPY_INSTANCE")]
    pub instance: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate settings, environment and wallets.json; print every problem.
    CheckConfig {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Do not try the chain endpoints (scripts that only read the settings' fields).
        #[arg(long)]
        offline: bool,
    },
    /// Breaker, targets, positions, last block, last fill.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The journal, newest first: one row per target fill.
    Trades {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// How many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Trip the breaker: no order leaves until `resume`. The running daemon acknowledges within a
    /// second (exit 0); exit 3 when no daemon runs (the halt is stored for its next start), 4 when it
    /// did not answer in time.
    Halt {
        /// Why, for the record.
        #[arg(long, default_value = "manual halt from the command line")]
        reason: String,
    },
    /// Clear the breaker (refused while the emergency stop file exists). Exit codes as for `halt`.
    Resume,
    /// Sell our positions at market within the slippage cap, in any trading state (a halt never
    /// closes anything by itself): one market (token id, condition id or slug) or `--all`. Waits for
    /// the outcomes; exit 0 all sold, 1 refused or not all filled, 3 no daemon, 4 no answer.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["market", "all"])))]
    Close {
        /// The market: a token id, a condition id (0x…) or a slug.
        market: Option<String>,
        /// Every open position.
        #[arg(long)]
        all: bool,
        /// Seconds to wait for the outcomes (0: do not wait; at most an hour).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
        wait: u64,
    },
    /// Stop buying into one market (token id, condition id or slug); exits are still copied.
    /// Persisted; shown in `status`. Exit codes as for `halt`.
    PauseMarket {
        /// The market: a token id, a condition id (0x…) or a slug.
        market: String,
    },
    /// Hand a message to the running daemon's notifier (log, journal, Telegram) through POST /alert,
    /// as the cron scripts do; `--test` sends a test alert to prove the path end to end.
    Alert {
        /// Send a test alert.
        #[arg(long)]
        test: bool,
        /// Straight to every authorized Telegram chat, without the daemon (for when it is down:
        /// systemd runs this when the unit fails). Needs only the Telegram variables.
        #[arg(long)]
        direct: bool,
        /// The message (unless --test).
        message: Option<String>,
    },
    /// Write an incident evidence bundle (status, health, breaker history, events, trades, settings
    /// and wallets without secrets, the last journald lines, versions) to one owner-only file.
    Incident {
        /// The file to write (default: `polycopy-incident-<UTC time>.txt` here); must not exist.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Compare the journal's positions with the chain (our funder's balances) and Polymarket's Data
    /// API, each difference with its likely cause. Exit 0 no difference, 1 differences.
    Reconcile {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Book the chain's figure for outside trades and dust (journaled adjustments, never trades;
        /// through the running daemon when there is one).
        #[arg(long)]
        apply: bool,
        /// Hand any difference to the daemon's notifier (log, journal, Telegram): for cron.
        #[arg(long)]
        alert: bool,
    },
    /// Would copying this wallet have paid? Its fills over the period, read from the chain (cached
    /// in the journal), replayed through our sizing and limits with a copy delay and slippage,
    /// settled where Gamma says a market resolved. Exit 0 reported, 1 no fills, 64 bad input.
    Vet(VetArgs),
    /// Figures from the journal.
    Stats {
        /// Which figures.
        #[command(subcommand)]
        command: StatsCommand,
    },
    /// Finding whom to copy.
    Targets {
        /// What to do.
        #[command(subcommand)]
        command: TargetsCommand,
    },
    /// Lift a market's pause. Exit codes as for `halt`.
    ResumeMarket {
        /// The market as it was paused.
        market: String,
    },
    /// Check the live-trading setup (key, funder, CLOB, credentials, pUSD, allowances, region) and
    /// explain each problem; exit 1 when live trading would fail. Needs PRIVATE_KEY.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Online backup of the journal to a file (safe while the daemon runs), integrity-checked.
    Backup {
        /// Where to write the copy.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a journal file's integrity (the configured one, or --file); exit 1 when it is not sound.
    DbCheck {
        /// The file to check (default: the configured journal).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// `PRAGMA quick_check` instead of the full integrity check.
        #[arg(long)]
        quick: bool,
    },
    /// The daily or weekly report: P&L, copies and rejections, positions, per-target breakdown.
    Report {
        /// `daily` (since 00:00 UTC) or `weekly` (the last seven days).
        #[arg(value_enum)]
        period: ReportPeriod,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Integrity check, prune old journal rows, ANALYZE, and VACUUM unless the database is busy.
    Maintenance {
        /// Delete finished fills and events older than this many days.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
        prune_days: u32,
        /// Skip VACUUM.
        #[arg(long)]
        no_vacuum: bool,
    },
}

/// `stats` subcommands.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Which source saw the targets' fills first (pending pool, chain), by how much (p50/p90/p99
    /// of the lead over the mined log), and how many pending sightings were never mined.
    Detection {
        /// Days back from now.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `targets` subcommands.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Candidates from Polymarket's leaderboard, each with its last trade and `vet`'s figures;
    /// `--add` appends the ones worth a look to wallets.json, disabled.
    Suggest(SuggestArgs),
}

/// Which report.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportPeriod {
    /// Since 00:00 UTC.
    Daily,
    /// The last seven days.
    Weekly,
    /// The last thirty days.
    Monthly,
}

/// Exit code of bad input on the command line (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when maintenance could not VACUUM because the database was busy (EX_TEMPFAIL).
pub const EXIT_BUSY: i32 = 75;
/// Exit code of a configuration error (EX_CONFIG): systemd does not restart on it.
pub const EXIT_CONFIG: i32 = 78;
/// Exit code of `halt`/`resume` when no daemon runs on the journal (the change is stored).
pub const EXIT_NO_DAEMON: i32 = 3;
/// Exit code of `halt`/`resume` when the daemon did not acknowledge within a second.
pub const EXIT_NO_ACK: i32 = 4;

/// Exit code of a damaged journal (EX_DATAERR): restarting does not heal it, so systemd does not.
pub const EXIT_DATAERR: i32 = 65;

/// The journal is damaged: the process exits [`EXIT_DATAERR`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

/// A configuration problem: the process exits [`EXIT_CONFIG`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// `POLYCOPY_SYSTEM_CONFIG` as the process got it, before any `.env` file was read (`got`): a
/// `.env` in whatever directory a command runs from must not point it at other settings (another
/// mode, another journal) than the daemon's. `taken` is what commands act on.
#[derive(Debug)]
struct SystemConfigVar {
    got: Option<std::ffi::OsString>,
    taken: Option<std::ffi::OsString>,
}

static SYSTEM_CONFIG_VAR: std::sync::OnceLock<SystemConfigVar> = std::sync::OnceLock::new();

/// Notes `POLYCOPY_SYSTEM_CONFIG` as the process got it; `main` calls it before reading `.env`.
///
/// Set empty ("no installation", as the demo and the tests run) in the shell of an installed
/// binary's operator, on a server with an installation and without `--config`, it would detach
/// the command from the daemon that trades (built-in defaults, a journal under the working
/// directory). An `emergency` command (halt, status) ignores it then and acts on the
/// installation, with the warning returned; any other is refused, since acting on either could
/// surprise (a scratch daemon turned live, a close of the wrong journal).
///
/// # Errors
/// A command other than an emergency one in that case: the message says what to do.
pub fn note_system_config_var(g: &GlobalArgs, emergency: bool) -> Result<Option<String>, ConfigError> {
    let got = std::env::var_os("POLYCOPY_SYSTEM_CONFIG");
    let installation = got
        .as_ref()
        .filter(|v| v.is_empty() && g.config.is_none() && crate::config::location::installed_binary())
        .and_then(|_| installation_dir(g));
    let said = installation.as_ref().map(|dir| {
        format!(
            "POLYCOPY_SYSTEM_CONFIG is set empty in this environment (no installation, as the demo and the tests \
             run), but this server has one ({})",
            dir.display()
        )
    });
    let taken = if installation.is_some() && emergency { None } else { got.clone() };
    let _ = SYSTEM_CONFIG_VAR.set(SystemConfigVar { got, taken });
    match said {
        Some(said) if emergency => {
            Ok(Some(format!("{said}: the command acts on it, as its daemon does. Unset the variable")))
        }
        Some(said) => Err(ConfigError(format!(
            "{said}: unset the variable to act on the installation, or name other settings with --config"
        ))),
        None => Ok(None),
    }
}

/// This binary's installation, when there is one: the instance named, the default settings, or
/// named instances.
fn installation_dir(g: &GlobalArgs) -> Option<PathBuf> {
    let loc = Location::discover(g.instance.as_deref()).ok()?;
    let dir = loc.config_dir();
    (loc.settings_file().exists() || (g.instance.is_none() && !installed_instances(&dir).is_empty())).then_some(dir)
}

/// True when a `.env` file set `POLYCOPY_SYSTEM_CONFIG` otherwise than the process got it (ignored).
#[must_use]
pub fn system_config_var_from_a_file() -> bool {
    SYSTEM_CONFIG_VAR.get().is_some_and(|noted| noted.got != std::env::var_os("POLYCOPY_SYSTEM_CONFIG"))
}

/// `POLYCOPY_SYSTEM_CONFIG` as commands take it (the environment's, when nothing was noted).
fn system_config_var() -> Option<std::ffi::OsString> {
    SYSTEM_CONFIG_VAR.get().map_or_else(|| std::env::var_os("POLYCOPY_SYSTEM_CONFIG"), |v| v.taken.clone())
}

/// Where the settings come from: `POLYCOPY_SYSTEM_CONFIG` (set empty: none), else the installation's.
fn system_file(g: &GlobalArgs) -> Result<Option<PathBuf>, Vec<Problem>> {
    let loc = Location::discover(g.instance.as_deref()).map_err(|p| vec![p])?;
    if let (Some(i), Some(var)) = (&g.instance, system_config_var()) {
        // Two answers to "which settings": acting on either could halt or trade the wrong account.
        return Err(vec![Problem::new(
            "environment",
            "POLYCOPY_SYSTEM_CONFIG",
            format!(
                "is set ({}) while the instance {i:?} is named: unset it, or leave out --instance / POLYCOPY_INSTANCE",
                PathBuf::from(var).display()
            ),
        )]);
    }
    let file = match system_config_var() {
        None => Some(loc.settings_file()),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    if g.instance.is_none()
        && g.config.is_none()
        && system_config_var().is_none()
        && let Some(f) = file.as_ref().filter(|f| !f.exists())
        && let names = installed_instances(&loc.config_dir())
        && !names.is_empty()
    {
        // A server with named instances only: no settings would mean built-in defaults and a
        // journal in whatever directory the command runs from, never the accounts that trade.
        return Err(vec![Problem::new(
            f.display().to_string(),
            "--instance",
            format!(
                "this server has no default installation, only the instances {}: name one with --instance NAME \
                 (or POLYCOPY_INSTANCE)",
                names.join(", ")
            ),
        )]);
    }
    if let (None, Some(f)) = (&g.instance, file.as_ref().filter(|f| !f.exists()))
        && system_config_var().is_some_and(|v| !v.is_empty())
    {
        // Named, and not there (a typo): built-in defaults and a journal in whatever directory the
        // command runs from would be acted on, never the installation meant.
        return Err(vec![Problem::new(
            f.display().to_string(),
            "POLYCOPY_SYSTEM_CONFIG",
            "names a settings file that does not exist: correct it, or set it empty for no installation",
        )]);
    }
    if let (Some(i), Some(f)) = (&g.instance, &file)
        && !f.exists()
    {
        return Err(vec![Problem::new(
            f.display().to_string(),
            "--instance",
            format!("no settings for instance {i:?} here: install it with `install.sh --instance {i}`"),
        )]);
    }
    Ok(file)
}

/// The instances installed under `config_dir` (`NAME/polycopy.toml`), sorted.
fn installed_instances(config_dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(config_dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("polycopy.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The installation's own environment file (`polycopy.env` beside its settings), wherever
/// `POLYCOPY_SYSTEM_CONFIG` points, when readable.
#[must_use]
pub fn installation_env_file(g: &GlobalArgs) -> Option<PathBuf> {
    let file = Location::discover(g.instance.as_deref()).ok()?.env_file();
    std::fs::File::open(&file).is_ok().then_some(file)
}

/// The settings file of the installation this command acts on, when there is one (an installed
/// server, or `POLYCOPY_SYSTEM_CONFIG` naming one that exists).
#[must_use]
pub fn installed_settings(g: &GlobalArgs) -> Option<PathBuf> {
    system_file(g).ok().flatten().filter(|f| f.exists())
}

/// The environment file of the installation (`polycopy.env` beside its settings), when readable.
#[must_use]
pub fn env_file(g: &GlobalArgs) -> Option<PathBuf> {
    let file = match system_config_var() {
        None => Location::discover(g.instance.as_deref()).ok()?.env_file(),
        Some(p) if p.is_empty() => return None,
        Some(p) => PathBuf::from(p).with_file_name("polycopy.env"),
    };
    std::fs::File::open(&file).is_ok().then_some(file)
}

/// Loads the settings with the global overrides applied; `db_path` becomes the journal of the mode.
///
/// # Errors
/// Every settings problem.
pub fn load_settings(g: &GlobalArgs) -> Result<Settings, Vec<Problem>> {
    let system_file = system_file(g)?;
    let mut s = Settings::load(&SettingsSources { config_file: g.config.clone(), system_file })?;
    if let Some(w) = &g.wallets {
        s.wallets_path.clone_from(w);
    }
    use_journal_of_mode(g, &mut s);
    Ok(s)
}

/// `db_path` becomes `--db`, or the journal of the mode.
fn use_journal_of_mode(g: &GlobalArgs, s: &mut Settings) {
    if let Some(d) = &g.db {
        s.db_path.clone_from(d);
    } else if s.mode == Mode::Live {
        // Real money keeps its own journal: paper history never mixes with it.
        s.db_path.clone_from(&s.live.db_path);
    }
}

/// The settings a command acts with: the file's, or, when the daemon that trades still runs the
/// other mode ([`OtherModeDaemon`]), that daemon's mode and journal, with a warning.
fn settings_or_bail(g: &GlobalArgs) -> Result<Settings> {
    Ok(following_the_daemon(g, file_settings_or_bail(g)?))
}

/// The settings of `status`: as [`settings_or_bail`], but a settings file with problems does not
/// stop it (the daemon keeps trading on the settings it started with, and seeing it must not wait
/// for a fix): its mode, journals and socket are used, with a warning, as a halt uses them.
fn settings_for_reading(g: &GlobalArgs) -> Result<Settings> {
    Ok(following_the_daemon(g, settings_for_control(g)?))
}

/// `s`, or the daemon that trades when it runs the other mode (said).
fn following_the_daemon(g: &GlobalArgs, mut s: Settings) -> Settings {
    daemon_that_trades::mode_of_the_named_journals_daemon(g, &mut s);
    if let Some(d) = daemon_that_trades::daemon_of_the_other_mode(g, &s) {
        eprintln!("warning: {}; this command acts on that daemon and its journal", d.describe(s.mode));
        d.follow(&mut s);
    }
    s
}

/// The file's settings, as written (see [`settings_or_bail`]).
fn file_settings_or_bail(g: &GlobalArgs) -> Result<Settings> {
    load_settings(g).map_err(|p| ConfigError(format!("invalid settings:\n{}", render(&p))).into())
}

/// The settings of a command that trades or books real money (`close`, `reconcile --apply`): the
/// file's; `Err(exit code)` after saying why when the daemon that trades runs the other mode. The
/// operator may be moving away from it, so its positions are sold or rebooked only when its
/// journal is named (`--db`).
fn settings_for_money(g: &GlobalArgs, what: &str) -> Result<Result<Settings, i32>> {
    let mut s = file_settings_or_bail(g)?;
    daemon_that_trades::mode_of_the_named_journals_daemon(g, &mut s);
    if let Some(d) = daemon_that_trades::daemon_of_the_other_mode(g, &s) {
        eprintln!(
            "refused: {}. A {what} acts on real positions: name that daemon's journal with --db {} to act on it",
            d.describe(s.mode),
            d.journal.display()
        );
        return Ok(Err(1));
    }
    Ok(Ok(s))
}

/// The files' own mode and paths when the full settings do not load (see
/// [`Settings::load_for_control`]), with the journal of that mode or `--db`.
fn located_settings(g: &GlobalArgs) -> Option<Settings> {
    let mut s = unchecked_settings(g).ok()?;
    use_journal_of_mode(g, &mut s);
    Some(s)
}

/// The files' own settings, unchecked (see [`Settings::load_for_control`]).
fn unchecked_settings(g: &GlobalArgs) -> Result<Settings, Vec<Problem>> {
    let system_file = system_file(g)?;
    Settings::load_for_control(&SettingsSources { config_file: g.config.clone(), system_file })
}

/// The settings `halt` and `resume` act with: the full load, or, when it fails, the files' own
/// mode, journals and control socket, with the problems said as a warning. The daemon that trades
/// runs on the settings it started with, and a halt must reach it even while the file is wrong.
fn settings_for_control(g: &GlobalArgs) -> Result<Settings> {
    settings_for_control_or_guess(g, true)
}

/// The settings `resume` acts with: as [`settings_for_control`], but settings that cannot be read
/// at all are refused rather than taken from whichever installed daemon answers: mid-switch of
/// mode, that may be the live one, which a resume must never restart on a guess.
fn settings_for_resume(g: &GlobalArgs) -> Result<Settings> {
    settings_for_control_or_guess(g, false)
}

/// [`settings_for_control`]; `guess`: unreadable settings fall back to the installed daemon.
fn settings_for_control_or_guess(g: &GlobalArgs, guess: bool) -> Result<Settings> {
    let problems = match load_settings(g) {
        Ok(s) => return Ok(s),
        Err(p) => p,
    };
    let mut s = match unchecked_settings(g) {
        Ok(s) => s,
        Err(unreadable) => {
            if let Some(s) = installed_daemon(g).filter(|_| guess) {
                eprintln!(
                    "warning: the settings cannot be read (the daemon keeps the settings it started with); this \
                     command acts on the installed {} daemon, which answers on {}:\n{}",
                    s.mode.as_str(),
                    s.control_socket_path().display(),
                    render(&unreadable)
                );
                return Ok(s);
            }
            if !guess {
                return Err(ConfigError(format!(
                    "invalid settings, and not even their mode and journal can be read:\n{}\nFix the settings file \
                     first: a resume is never sent to a daemon guessed at",
                    render(&unreadable)
                ))
                .into());
            }
            return Err(ConfigError(format!(
                "invalid settings, and not even their journal and control socket can be read:\n{}\nTo stop trading \
                 for sure, stop the service (`systemctl stop {}`)",
                render(&unreadable),
                unit_name(g)
            ))
            .into());
        }
    };
    eprintln!(
        "warning: the settings have problems (the daemon keeps the settings it started with); this command \
         uses only their mode, journals and control socket:\n{}",
        render(&problems)
    );
    use_journal_of_mode(g, &mut s);
    Ok(s)
}

/// The service's unit: `polycopy`, or `polycopy@NAME` for a named instance.
fn unit_name(g: &GlobalArgs) -> String {
    g.instance.as_ref().map_or_else(|| "polycopy".to_owned(), |i| format!("polycopy@{i}"))
}

/// When the settings file cannot be read at all (a half-edited file that no longer parses): the
/// daemon of this installation that answers on its standard control socket (the journals
/// install.sh names, in the state directory), live first. Only for the installation's own file:
/// a file named with `--config` may put its journals anywhere.
fn installed_daemon(g: &GlobalArgs) -> Option<Settings> {
    if g.config.is_some() || g.db.is_some() || system_config_var().is_some() {
        return None;
    }
    let state = Location::discover(g.instance.as_deref()).ok()?.state_dir();
    let mut s = Settings::load_for_control(&SettingsSources { config_file: None, system_file: None }).ok()?;
    s.live.db_path = state.join("polycopy-live.db");
    s.emergency_stop_file = state.join("EMERGENCY_STOP");
    s.control_socket = PathBuf::new();
    for (mode, journal) in [(Mode::Live, s.live.db_path.clone()), (Mode::Paper, state.join("polycopy-paper.db"))] {
        s.mode = mode;
        s.db_path = journal;
        // A daemon listens there (a crashed one's socket file refuses the connection at once).
        // One this user may not reach is still there: the halt then says so, by name.
        match std::os::unix::net::UnixStream::connect(s.control_socket_path()) {
            Ok(_) => return Some(s),
            Err(e) if !matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => {
                return Some(s);
            }
            Err(_) => {}
        }
    }
    None
}

/// The daemon a command that changes trading means: the settings' mode and journal, or the journal
/// named with `--db`.
fn expected<'a>(g: &GlobalArgs, s: &'a Settings) -> crate::control::client::Expected<'a> {
    crate::control::client::Expected { mode: g.db.is_none().then(|| s.mode.as_str()), journal: &s.db_path }
}

/// The control socket the daemon of the other mode would listen on (the mode in the file may have
/// been changed since the running daemon started), when the socket follows the journal.
fn other_mode_socket(g: &GlobalArgs, s: &Settings) -> Option<PathBuf> {
    if g.db.is_some() || !s.control_socket.as_os_str().is_empty() {
        return None;
    }
    let mut files = unchecked_settings(g).ok()?;
    files.db_path = match s.mode {
        Mode::Live => files.db_path,
        Mode::Paper => files.live.db_path.clone(),
    };
    files.control_socket = PathBuf::new();
    Some(files.control_socket_path())
}

/// The other mode's journal of these settings when a daemon holds it (its lock is taken), with the
/// settings pointed at it and the holder's pid: the mode in the file may have been changed since
/// the daemon that trades started. `None` with `--db`, or when both modes share one journal.
fn other_mode_journal_held(g: &GlobalArgs, s: &Settings) -> Option<(Settings, Option<u32>)> {
    if g.db.is_some() {
        return None;
    }
    let files = unchecked_settings(g).ok()?;
    let (mode, journal) = match s.mode {
        Mode::Live => (Mode::Paper, files.db_path),
        Mode::Paper => (Mode::Live, files.live.db_path),
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    if canon(&journal) == canon(&s.db_path) {
        return None;
    }
    let pid = crate::store::lock::holder(&journal)?;
    let mut other = s.clone();
    other.mode = mode;
    other.db_path = journal;
    Some((other, pid))
}

/// Opens the journal of a command that reads or controls: a missing journal is an error that names
/// the path and the likely cause, never a new empty file.
fn open_store(s: &Settings) -> Result<Store> {
    open_store_as(s, false)
}

/// [`open_store`] for a halt: stored even in a journal an older daemon runs on.
fn open_store_for_halt(s: &Settings) -> Result<Store> {
    open_store_as(s, true)
}

fn open_store_as(s: &Settings, halting: bool) -> Result<Store> {
    require_journal(s)?;
    let open = if halting { Store::open_existing_for_halt } else { Store::open_existing };
    open(&s.db_path)
        .map(|store| store.with_trading_day(s.risk.day_starts_at_hour))
        .with_context(|| format!("opening the journal {}", s.db_path.display()))
}

/// A missing journal: an error that names the path and the likely cause, never a new empty file.
fn require_journal(s: &Settings) -> Result<()> {
    if !s.db_path.exists() {
        anyhow::bail!(
            "no journal at {} (mode {}, settings: {}). Either the daemon has not run with these settings yet, \
             or this is not the installation you meant: check --instance / --config, or `polycopy check-config`",
            s.db_path.display(),
            s.mode.as_str(),
            s.origin
        );
    }
    Ok(())
}

/// An HTTP connection to the chain as the settings and environment name it (not yet connected):
/// what the commands that read the chain use.
pub(crate) fn http_rpc(s: &Settings, env: &crate::config::Env) -> crate::chain::Rpc {
    crate::chain::Rpc::new(crate::chain::RpcConfig {
        ws_url: None,
        http_urls: env.rpc_urls.clone(),
        requests_per_second: s.chain.rpc_requests_per_second,
        timeout: std::time::Duration::from_millis(s.chain.request_timeout_ms),
        failover_after: s.chain.failover_after_errors,
        chain_id: s.chain.chain_id,
    })
}
