//! `check-config` and `doctor`: is the configuration right, and would live trading work.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::{ConfigError, EXIT_CONFIG, GlobalArgs, load_settings, settings_or_bail};
use crate::config::mode::check_mode;
use crate::config::problem::render;
use crate::config::{Env, Settings, Wallets};

/// Reads the environment and checks it against the settings' mode. `need_key`: the command signs.
///
/// # Errors
/// Every problem, as a [`ConfigError`].
pub fn env_for(s: &Settings, need_key: bool) -> Result<Env> {
    let env = Env::from_process().map_err(|p| ConfigError(format!("invalid environment:\n{}", render(&p))))?;
    let p = check_mode(s.mode, env.paper_trading, env.private_key.is_some(), &s.origin, need_key);
    if p.is_empty() { Ok(env) } else { Err(ConfigError(format!("invalid environment:\n{}", render(&p))).into()) }
}

/// `check-config`: returns the process exit code (0 clean, 78 problems).
///
/// # Errors
/// Never for a bad configuration (that is the output); only when printing fails.
pub fn check_config(g: &GlobalArgs, as_json: bool, offline: bool) -> Result<i32> {
    let mut problems = Vec::new();
    // Said, with no effect on the exit code: what runs, but not as the operator likely meant.
    let mut warnings: Vec<crate::config::Problem> = Vec::new();
    let settings = load_settings(g).map_err(|p| problems.extend(p)).ok();
    let env = Env::from_process().map_err(|p| problems.extend(p)).ok();
    if let (Some(s), Some(e)) = (&settings, &env) {
        problems.extend(check_mode(s.mode, e.paper_trading, e.private_key.is_some(), &s.origin, true));
    }
    // The journal may come from --db, after the settings' own rules ran: asked again.
    if let Some((s, field)) = settings.as_ref().and_then(|s| Some(s).zip(crate::config::control_socket_clash(s))) {
        let message = if field == "db_path" {
            format!("is the journal itself ({}): name a path of its own, or leave it empty", s.db_path.display())
        } else {
            format!("must not be the same path as {field}: a stale socket there is removed")
        };
        problems.push(crate::config::Problem::new(s.origin.clone(), "control_socket", message));
    }
    // Where things are, for the scripts (backup, health check, alerts, restore): from the full
    // settings, or, when they do not load (an edit left a mistake, the daemon still trades on the
    // settings it started with), from the files' own mode and paths as `halt` reads them. Without
    // them a wrong file silently stopped every backup and every script's alert.
    let located = settings.clone().or_else(|| super::located_settings(g));
    let wallets_path = g
        .wallets
        .clone()
        .or_else(|| located.as_ref().map(|s| s.wallets_path.clone()))
        .unwrap_or_else(|| PathBuf::from("config/wallets.json"));
    // Without valid settings the wallets path is a guess: only check the file named on the command line.
    let wallets = if settings.is_some() || g.wallets.is_some() {
        Wallets::load(&wallets_path).map_err(|p| problems.extend(p)).ok()
    } else {
        None
    };
    // Root reads any file; the daemon runs as the service user.
    if let Some(user) = settings.as_ref().and_then(|s| super::service_access::service_user(&s.db_path)) {
        let installed = super::installed_settings(g).map(|f| (f, "settings"));
        let files: Vec<(PathBuf, &str)> = installed.into_iter().chain([(wallets_path.clone(), "wallets")]).collect();
        problems
            .extend(files.iter().filter_map(|(f, what)| super::service_access::unreadable_for_service(f, user, what)));
    }
    // The installation's own settings, which its unit runs with (not a file POLYCOPY_SYSTEM_CONFIG names).
    let unit = crate::config::Location::discover(g.instance.as_deref())
        .ok()
        .filter(|l| super::system_config_var().is_none() && l.settings_file().exists());
    if let (Some(s), Some(unit)) = (settings.as_ref(), unit) {
        let live = s.mode == crate::config::Mode::Live;
        let journal = if live { "live.db_path" } else { "db_path" };
        problems.extend(super::service_access::unseen_by_the_service(
            &s.origin,
            &unit.prefix,
            &[
                ("emergency_stop_file", &s.emergency_stop_file),
                (journal, &s.db_path),
                // Relative, the service and a command would name different targets or sockets.
                ("wallets_path", &s.wallets_path),
                ("control_socket", &s.control_socket),
            ],
        ));
        let socket =
            (!s.control_socket.as_os_str().is_empty()).then_some(("control_socket", s.control_socket.as_path()));
        let written: Vec<(&str, &std::path::Path)> =
            [(journal, s.db_path.as_path())].into_iter().chain(socket).collect();
        let opened = super::service_access::drop_in_writable(&unit.prefix, unit.instance.as_deref());
        problems.extend(super::service_access::unwritable_by_the_service(
            &s.origin,
            &unit.state_dir(),
            &opened,
            &written,
        ));
    }
    if let (Some(s), Some(w)) = (&settings, &wallets) {
        let fit = crate::config::wallets_fit::Fit {
            min_order_usdc: s.copy.min_order_usdc,
            max_slippage_bps: s.copy.max_slippage_bps,
            max_order_usdc: s.risk.max_order_usdc,
        };
        let misfits = crate::config::wallets_fit::below_minimum(w, fit, &wallets_path.display().to_string());
        problems.extend(misfits.problems);
        warnings.extend(misfits.warnings);
    }
    if let (Some(s), Some(e)) = (&settings, &env) {
        warnings.extend(group_open_to_all(&e.telegram_chat_ids, &s.telegram.allowed_user_ids));
    }
    let enabled = wallets.as_ref().map_or(0, |w| w.enabled().count());
    let endpoints = match (&settings, &env) {
        (Some(s), Some(e)) if !offline => probe_endpoints(s, e, &mut problems),
        _ => Vec::new(),
    };
    // The file is checked as written; the daemon that trades may still run the mode it started
    // with, and the scripts (backup, health check) must act on that one.
    let running = located
        .as_ref()
        .and_then(|s| super::daemon_that_trades::daemon_of_the_other_mode(g, s).map(|d| (d.describe(s.mode), d)));
    if as_json {
        let out = json!({
            "ok": problems.is_empty(),
            "problems": problems,
            "warnings": warnings,
            "mode": located.as_ref().map(|s| s.mode.as_str()),
            "targets_enabled": enabled,
            "wallets_path": wallets_path.display().to_string(),
            "db_path": located.as_ref().map(|s| s.db_path.display().to_string()),
            "control_socket": located.as_ref().map(|s| s.control_socket_path().display().to_string()),
            "http_listen": located.as_ref().map(|s| s.http.listen.clone()),
            "emergency_stop_file": located.as_ref().map(|s| s.emergency_stop_file.display().to_string()),
            "alert_token_file": located.as_ref().map(|s| crate::alert_gate::token_path(&s.db_path).display().to_string()),
            "settings_file": located.as_ref().map(|s| s.origin.clone()),
            // False when the settings do not load: the daemon trades on those it started with,
            // and its next start (a crash, a reboot, an update) would refuse them.
            "settings_valid": settings.is_some(),
            "instance": g.instance,
            "endpoints": endpoints,
            "running_mode": running.as_ref().map(|(_, d)| d.mode.as_str()),
            "running_db_path": running.as_ref().map(|(_, d)| d.journal.display().to_string()),
            // The token that daemon takes alerts with (the scripts relay theirs to it).
            "running_alert_token_file": running.as_ref().map(|(_, d)| crate::alert_gate::token_path(&d.journal).display().to_string()),
            "running_warning": running.as_ref().map(|(w, _)| w.clone()),
        });
        // Problems quote what the operator wrote; a secret this process knows is never among it.
        println!("{}", crate::config::env::redact(&serde_json::to_string_pretty(&out)?));
    } else if problems.is_empty() {
        println!("configuration OK");
        if let (Some(s), Some(e)) = (&settings, &env) {
            print_summary(s, e, &endpoints);
        }
        println!("  targets: {enabled} enabled in {}", wallets_path.display());
    } else {
        eprintln!("{} problem(s) found:\n{}", problems.len(), crate::config::env::redact(&render(&problems)));
    }
    if let Some((warning, _)) = running.as_ref().filter(|_| !as_json) {
        eprintln!("warning: {warning}");
    }
    if !as_json && !warnings.is_empty() {
        eprintln!("{} warning(s):\n{}", warnings.len(), crate::config::env::redact(&render(&warnings)));
    }
    Ok(if problems.is_empty() { 0 } else { EXIT_CONFIG })
}

/// What a clean configuration amounts to, for a person: mode, settings file, endpoints (secrets
/// redacted), journal and Telegram.
fn print_summary(s: &Settings, e: &Env, endpoints: &[String]) {
    println!("  mode: {}", s.mode.as_str().to_ascii_uppercase());
    println!("  settings: {}", s.origin);
    println!("  rpc: {}", e.rpc_urls.iter().map(|u| crate::config::redact_url(u)).collect::<Vec<_>>().join(", "));
    println!("  websocket: {}", e.ws_url.as_deref().map_or("none (polling)".into(), crate::config::redact_url));
    for line in endpoints {
        println!("    {line}");
    }
    println!("  journal: {}", s.db_path.display());
    if s.db_path.is_relative() {
        println!("    (relative: it depends on the directory a command runs from; servers use absolute paths)");
    }
    println!(
        "  telegram: {}",
        if e.telegram_bot_token.is_some() { "configured" } else { "off (TELEGRAM_BOT_TOKEN not set)" }
    );
}

/// Tries every chain endpoint: it must answer and be on the configured chain. Returns one line per
/// endpoint that answered; each failure is a problem naming its variable.
fn probe_endpoints(s: &Settings, e: &Env, problems: &mut Vec<crate::config::Problem>) -> Vec<String> {
    use crate::chain::{Rpc, RpcConfig};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let mut named: Vec<(&str, &String)> = Vec::new();
    named.extend(e.ws_url.iter().map(|u| ("POLYGON_WS_URL", u)));
    named.extend(
        e.rpc_urls
            .iter()
            .enumerate()
            .map(|(i, u)| (if i == 0 { "POLYGON_RPC_URL" } else { "POLYGON_RPC_FALLBACK_URLS" }, u)),
    );
    let mut ok = Vec::new();
    for (var, url) in named {
        let (ws, http) =
            if url.starts_with("ws") { (Some(url.clone()), Vec::new()) } else { (None, vec![url.clone()]) };
        let mut rpc = Rpc::new(RpcConfig {
            ws_url: ws,
            http_urls: http,
            requests_per_second: s.chain.rpc_requests_per_second,
            timeout: std::time::Duration::from_millis(s.chain.request_timeout_ms.min(5_000)),
            failover_after: 1,
            chain_id: s.chain.chain_id,
        });
        let shown = crate::config::redact_url(url);
        let head = rt.block_on(async {
            rpc.connect().await?;
            rpc.block_number().await
        });
        match head {
            Ok(n) => ok.push(format!("{shown}: answers, chain {}, head block {n}", s.chain.chain_id)),
            Err(err) => problems.push(crate::config::Problem::new(
                "environment",
                var,
                format!("{shown} does not work: {err} (check-config --offline skips this check)"),
            )),
        }
    }
    ok
}

/// `doctor`: returns the exit code (0 healthy, 1 a check failed).
///
/// # Errors
/// Invalid settings or environment, or no PRIVATE_KEY.
pub fn doctor(g: &GlobalArgs, as_json: bool) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = env_for(&s, true)?;
    let cfg = crate::clob::venue::VenueConfig::from_settings(&s, &env).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut d = rt.block_on(crate::clob::doctor::diagnose(&cfg, s.live.check_geoblock));
    let funder = crate::clob::venue::Venue::signer_address(secrecy::ExposeSecret::expose_secret(&cfg.private_key))
        .ok()
        .and_then(|signer| crate::clob::account::resolve_funder(cfg.sig, signer, cfg.funder).ok());
    d.checks.extend(rt.block_on(crate::redeem::doctor::checks(
        &s,
        env.rpc_urls.first().map(String::as_str),
        cfg.sig,
        funder,
    )));
    if as_json {
        let checks: Vec<_> = d
            .checks
            .iter()
            .map(|c| json!({"check": c.name, "verdict": format!("{:?}", c.verdict).to_ascii_lowercase(), "detail": c.detail}))
            .collect();
        println!("{}", json!({"healthy": d.healthy(), "checks": checks}));
    } else {
        print!("{}", d.render());
        println!(
            "{}",
            if d.healthy() {
                "live trading setup looks right"
            } else {
                "live trading would fail: fix the FAIL lines above"
            }
        );
    }
    Ok(i32::from(!d.healthy()))
}

/// A warning when an authorized chat is a group (negative id) and no user is named: every member
/// of that group, one added later too, may then resume trading, close positions and unpause
/// targets. Said, not refused: a private group of operators is a choice the runbook describes.
fn group_open_to_all(chats: &[i64], allowed_user_ids: &[u64]) -> Option<crate::config::Problem> {
    let groups = chats.iter().filter(|c| **c < 0).count();
    (groups > 0 && allowed_user_ids.is_empty()).then(|| {
        crate::config::Problem::new(
            "environment",
            "TELEGRAM_CHAT_ID",
            format!(
                "names {groups} group chat(s) and telegram.allowed_user_ids is empty: every member of such a group \
                 can /resume, /close and /unpause; list the operators' Telegram user ids in telegram.allowed_user_ids"
            ),
        )
    })
}

#[cfg(test)]
mod group_tests {
    use super::group_open_to_all;

    #[test]
    fn a_group_chat_with_no_user_named_is_warned_about() {
        // (chats, allowed users, warned)
        let cases: [(&[i64], &[u64], bool); 5] = [
            (&[1001], &[], false),
            (&[-1001234567890], &[], true),
            (&[1001, -42], &[], true),
            (&[-1001234567890], &[7], false),
            (&[], &[], false),
        ];
        for (chats, users, warned) in cases {
            assert_eq!(group_open_to_all(chats, users).is_some(), warned, "{chats:?} {users:?}");
        }
    }
}
