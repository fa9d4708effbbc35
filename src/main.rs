//! The `polycopy` binary: parse the command line, set up logging, run.

// Nothing outside tests may panic on what the network, a file or a user sends: errors are values.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use anyhow::Result;
use clap::Parser;
use polycopy::actors::{DaemonConfig, DaemonError, run_daemon};
use polycopy::cli::{self, Cli, Command};
use polycopy::config::problem::render;
use tracing_subscriber::EnvFilter;

/// Logs to journald with structured fields when systemd connected our stderr to the journal
/// (`JOURNAL_STREAM`), else to stderr (text or JSON).
fn init_logging(json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // teloxide's own log lines can carry request URLs, which hold the bot token: they are never
    // shown; our code logs Telegram errors itself, scrubbed.
    let filter = || {
        let f = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        // alloy's HTTP transport names its URL (an RPC API key in the path) in its trace spans.
        ["teloxide=off", "teloxide_core=off", "reqwest=off", "hyper=off", "hyper_util=off", "alloy_transport_http=info"]
            .iter()
            .filter_map(|d| d.parse().ok())
            .fold(f, EnvFilter::add_directive)
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer.with_syslog_identifier("polycopy".into()))
                    .init();
                return;
            }
            Err(e) => eprintln!("journald unavailable ({e}); logging to stderr"),
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).with_ansi(ansi);
    if json { b.json().init() } else { b.init() }
}

/// Loads the installation's `polycopy.env` when readable; without an installation, `.env` from the
/// working directory only (never from its parents); variables already set win. On an installed
/// server the working directory's `.env` is not read at all: a command acts on the installed
/// daemon with its secrets, endpoints and overrides, never with a checkout's leftovers from paper
/// trials where the command happened to be run (a limit the daemon does not have, another mode).
/// A malformed line is named by its number only: its text may hold a secret. Every file is read;
/// the first problem is returned.
fn load_env_files(g: &cli::GlobalArgs) -> Result<(), String> {
    let dotenv = std::path::PathBuf::from(".env");
    let installation = cli::env_file(g);
    let mut files: Vec<std::path::PathBuf> = installation.iter().cloned().collect();
    match cli::installed_settings(g) {
        Some(settings) if dotenv.exists() => eprintln!(
            "note: ./.env is not read: this server has an installation ({}), and every command uses its \
             environment file, as the daemon does",
            settings.display()
        ),
        Some(_) => {}
        None => files.push(dotenv.clone()),
    }
    let mut first_problem = None;
    for file in files {
        if installation.as_ref() == Some(&file)
            && let Err(e) = read_as_systemd_does(&file)
        {
            first_problem.get_or_insert(e);
            continue;
        }
        if let Err(e) = load_env_file(&file) {
            if file == dotenv && working_dir_closed() {
                continue;
            }
            first_problem.get_or_insert(e);
        }
    }
    first_problem.map_or(Ok(()), Err)
}

/// The working directory is one this user may not even look into (`sudo -u polycopy …` run from
/// root's or another user's home, as the backup and restore steps are): its `.env`, if any, is
/// not ours to read, and taken as absent. A `.env` we can see but not read is still an error.
fn working_dir_closed() -> bool {
    matches!(std::fs::metadata(".env"), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// The installation's environment file, when it sets `POLYCOPY_SYSTEM_CONFIG`.
fn system_config_in_installation_env(g: &cli::GlobalArgs) -> Option<std::path::PathBuf> {
    cli::installation_env_file(g).into_iter().chain(cli::env_file(g)).find(|file| {
        dotenvy::from_path_iter(file)
            .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|(k, _)| k == "POLYCOPY_SYSTEM_CONFIG")))
    })
}

/// Refuses an installation's environment file that systemd would read otherwise than the commands
/// (see `polycopy::config::systemd_env`): `check-config` would pass values the daemon never gets.
fn read_as_systemd_does(file: &std::path::Path) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(file) else { return Ok(()) };
    match polycopy::config::systemd_env::first_difference(&text) {
        Some((line, why)) => Err(format!(
            "cannot use {}: line {line} {why}; the service reads this file through systemd (its text is not shown: \
             it may hold a secret)",
            file.display()
        )),
        None => Ok(()),
    }
}

/// Loads an env file as systemd reads one: a key set twice takes its last value (an operator
/// appending `PRIVATE_KEY=…` below the template's empty line gives the daemon the key, and must give
/// the commands the same), while variables already in the process environment win. Lines before a
/// malformed one are loaded, then the problem is returned.
fn load_env_file(file: &std::path::Path) -> Result<(), String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let entries = dotenvy::from_read_iter(without_bom(&text).as_bytes());
    let mut last: Vec<(String, String)> = Vec::new();
    let mut problem = None;
    for entry in entries {
        match entry {
            Ok((k, v)) => match last.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => last.push((k, v)),
            },
            Err(e) => {
                problem = Some(env_file_problem(file, &e));
                break;
            }
        }
    }
    // Handed to dotenvy again, quoted, as the values it parsed: it sets them (our code may not).
    let text: String = last
        .iter()
        .filter(|(k, _)| std::env::var_os(k).is_none())
        .map(|(k, v)| {
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('\n', "\\n");
            format!("{k}=\"{v}\"\n")
        })
        .collect();
    if dotenvy::from_read(text.as_bytes()).is_err() {
        return Err(format!("cannot read {}: invalid content (not shown)", file.display()));
    }
    problem.map_or(Ok(()), Err)
}

/// `text` without a leading byte-order mark (a file saved by some Windows editors): it is not part
/// of the first key.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// What is wrong with an env file, never quoting it (a line may hold a secret).
fn env_file_problem(file: &std::path::Path, e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(..) => format!(
            "cannot read {}: line {} is not KEY=VALUE (its text is not shown: it may hold a secret)",
            file.display(),
            bad_env_line(file)
        ),
        dotenvy::Error::Io(e) => format!("cannot read {}: {e}", file.display()),
        _ => format!("cannot read {}: invalid content (not shown)", file.display()),
    }
}

/// The number of the first line of an env file that does not parse (the parser's own position is
/// an offset within its current entry, not a line): the shortest prefix of lines that fails.
fn bad_env_line(file: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = without_bom(&text).lines().collect();
    (1..=lines.len())
        .find(|&n| {
            let prefix = lines[..n].join("\n");
            dotenvy::from_read_iter(prefix.as_bytes()).any(|r| r.is_err())
        })
        .unwrap_or(0)
}

/// `polycopy trades | head -1`: once the reader of our output is gone, the command ends quietly
/// with the shell's usual status for it (128 + SIGPIPE), like any Unix tool, instead of a panic.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.contains("Broken pipe")) {
            std::process::exit(141);
        }
        // Output that cannot be written (a full disk, /dev/full): a clean error, EX_IOERR.
        if let Some(m) = msg.filter(|m| m.contains("failed printing to stdout")) {
            eprintln!("Error: cannot write the output: {}", m.rsplit(": ").next().unwrap_or(m));
            std::process::exit(74);
        }
        default(info);
    }));
}

/// Commands that never wait for a configuration fix: stopping trading, seeing it, and telling the
/// operator straight through Telegram that the daemon is down (which a bad file may be the cause of).
const fn is_emergency(cmd: Option<&cli::Command>) -> bool {
    matches!(
        cmd,
        Some(cli::Command::Halt { .. } | cli::Command::Status { .. } | cli::Command::Alert { direct: true, .. })
    )
}

fn main() {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    match cli::note_system_config_var(&cli.global, is_emergency(cli.command.as_ref())) {
        Ok(Some(warning)) => eprintln!("warning: {warning}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(cli::EXIT_CONFIG);
        }
    }
    if let Err(e) = load_env_files(&cli.global) {
        // Stopping trading, or seeing it, never waits for a config fix: an env file systemd
        // reads in its own way may trade while ours cannot parse it. Anything that could start
        // trading again (resume) or trade (close) waits for the fix: a file read only in part
        // may have let another file's values in.
        let emergency = is_emergency(cli.command.as_ref());
        if !emergency {
            eprintln!("Error: {e}");
            std::process::exit(cli::EXIT_CONFIG);
        }
        eprintln!("warning: {e}; going on with what could be read (fix the file: check-config)");
    }
    if let Some(file) = system_config_in_installation_env(&cli.global) {
        // systemd hands the variable to the daemon (EnvironmentFile), while a command run by hand
        // ignores it in a file: the two would read other settings, another mode, journal and socket.
        let emergency = is_emergency(cli.command.as_ref());
        let msg = format!(
            "POLYCOPY_SYSTEM_CONFIG is set in {}: systemd gives it to the daemon, but commands run by hand \
             ignore it there, so they would act on other settings (another mode, journal and control socket). \
             Remove it from that file; a second installation is named with --instance",
            file.display()
        );
        if !emergency {
            eprintln!("Error: {msg}");
            std::process::exit(cli::EXIT_CONFIG);
        }
        eprintln!("warning: {msg}");
    }
    if cli::system_config_var_from_a_file() {
        eprintln!(
            "warning: POLYCOPY_SYSTEM_CONFIG set by a .env file is ignored: only the environment the command \
             runs in can point it at other settings"
        );
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Whatever failed, its message is cleaned of the secrets this process knows.
            eprintln!("Error: {}", polycopy::config::env::redact(&format!("{e:#}")));
            if e.downcast_ref::<cli::ConfigError>().is_some() {
                cli::EXIT_CONFIG
            } else if e.downcast_ref::<cli::DataError>().is_some() {
                cli::EXIT_DATAERR
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    let g = cli.global;
    // Whatever the command, text the operator types is cleaned of the secrets this process knows.
    polycopy::config::env::register_process_secrets();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { json, offline } => cli::check_config(&g, json, offline),
        Command::Status { json } => cli::status(&g, json).map(|()| 0),
        Command::Trades { json, limit } => cli::trades(&g, json, limit).map(|()| 0),
        Command::Halt { reason } => cli::halt(&g, &reason),
        Command::Resume => cli::resume(&g),
        Command::Close { market, all: _, wait } => cli::close(&g, market.as_deref(), wait),
        Command::Reconcile { json, apply, alert } => cli::reconcile(&g, json, apply, alert),
        Command::Incident { out } => cli::incident(&g, out.as_deref()),
        Command::Alert { test, direct, message } => cli::alert(&g, test, direct, message.as_deref()),
        Command::PauseMarket { market } => cli::pause_market(&g, &market, true),
        Command::ResumeMarket { market } => cli::pause_market(&g, &market, false),
        Command::Doctor { json } => cli::doctor(&g, json),
        Command::Vet(a) => cli::vet(&g, &a),
        Command::Stats { command: cli::StatsCommand::Detection { days, json } } => {
            cli::stats_detection(&g, days, json).map(|()| 0)
        }
        Command::Targets { command: cli::TargetsCommand::Suggest(a) } => cli::suggest(&g, &a),
        Command::Backup { out } => cli::backup(&g, &out).map(|()| 0),
        Command::DbCheck { file, quick } => cli::db_check(&g, file.as_deref(), quick),
        Command::Maintenance { prune_days, no_vacuum } => cli::maintenance(&g, prune_days, no_vacuum),
        Command::Report { period, json } => cli::report(&g, period, json).map(|()| 0),
        Command::Run => {
            let settings = cli::load_settings(&g).map_err(|p| {
                cli::ConfigError(format!("invalid settings:\n{}\n(run `polycopy check-config`)", render(&p)))
            })?;
            let env = cli::env_for(&settings, true)?;
            init_logging(settings.log_format == polycopy::config::settings::LogFormat::Json);
            if let Err(e) = polycopy::config::hidden_env::hide_from_same_user() {
                tracing::warn!(cause = %e, "other processes of this user can read the daemon's environment (its secrets)");
            }
            let system = actix_rt::System::new();
            system.block_on(run_daemon(DaemonConfig { settings, env })).map_err(|e| match e {
                // A live check that failed with an answer (a wrong key, funder or signature type, a
                // missing allowance, a blocked region) is the setup's: restarting cannot fix it, so
                // systemd must not loop on it (a CLOB that does not answer starts the daemon anyway).
                DaemonError::Wallets { .. } | DaemonError::OtherModesJournal(_) | DaemonError::Live(_) => {
                    anyhow::Error::new(cli::ConfigError(e.to_string()))
                }
                DaemonError::Store(
                    polycopy::store::StoreError::Damaged { .. } | polycopy::store::StoreError::NewerSchema { .. },
                ) => anyhow::Error::new(cli::DataError(e.to_string())),
                e => anyhow::Error::new(e),
            })?;
            Ok(0)
        }
    }
}
