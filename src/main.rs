//! The `polycopy` binary: parse the command line, set up logging, run.

use anyhow::Result;
use clap::Parser;
use polycopy::actors::{DaemonConfig, run_daemon};
use polycopy::cli::{self, Cli, Command};
use polycopy::config::Env;
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
        ["teloxide=off", "teloxide_core=off", "reqwest=off", "hyper=off", "hyper_util=off"]
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

fn main() {
    // A missing .env is normal (systemd passes an EnvironmentFile); a broken one is not silently ignored.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("Error: cannot read .env: {e}");
        std::process::exit(1);
    }
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    let g = cli.global;
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { json } => cli::check_config(&g, json),
        Command::Status { json } => cli::status(&g, json).map(|()| 0),
        Command::Trades { json, limit } => cli::trades(&g, json, limit).map(|()| 0),
        Command::Halt { reason } => cli::halt(&g, &reason).map(|()| 0),
        Command::Resume => cli::resume(&g).map(|()| 0),
        Command::Doctor { json } => cli::doctor(&g, json),
        Command::Backup { out } => cli::backup(&g, &out).map(|()| 0),
        Command::DbCheck { file, quick } => cli::db_check(&g, file.as_deref(), quick),
        Command::Maintenance { prune_days, no_vacuum } => cli::maintenance(&g, prune_days, no_vacuum),
        Command::Report { period, json } => cli::report(&g, period, json).map(|()| 0),
        Command::Run => {
            let settings = cli::load_settings(&g)
                .map_err(|p| anyhow::anyhow!("invalid settings:\n{}\n(run `polycopy check-config`)", render(&p)))?;
            let env = Env::from_process().map_err(|p| anyhow::anyhow!("invalid environment:\n{}", render(&p)))?;
            init_logging(settings.log_format == "json");
            let system = actix_rt::System::new();
            system.block_on(run_daemon(DaemonConfig { settings, env }))?;
            Ok(0)
        }
    }
}
