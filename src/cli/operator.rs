//! `close`, `pause-market` and `resume-market`: the operator's own actions on positions and markets,
//! carried out by the daemon that trades (through its control socket).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{EXIT_NO_ACK, EXIT_NO_DAEMON, GlobalArgs, open_store, settings_or_bail};
use crate::control::client::{ControlError, ask_expected};
use crate::control::{Reply, Request};
use crate::risk::close::MarketSelector;
use crate::store::FillStatus;

/// How long the CLI waits for the daemon to journal a close's orders.
const CLOSE_ACK: Duration = Duration::from_secs(12);

fn said(r: &Reply) -> String {
    format!("the {} daemon (pid {}, journal {}): {}", r.mode, r.pid, r.journal, r.message)
}

/// `close <market>` or `close --all`: sells our positions at market within the slippage cap, in any
/// trading state, then waits up to `wait_s` for each order's outcome. Exit 0 when every order was
/// sent and resolved, 1 when refused or an order did not fill, 3 with no daemon, 4 without an answer.
///
/// # Errors
/// When the settings are invalid.
pub fn close(g: &GlobalArgs, market: Option<&str>, wait_s: u64) -> Result<i32> {
    let s = match super::settings_for_money(g, "close")? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some(m) = market
        && let Err(e) = MarketSelector::parse(m)
    {
        eprintln!("error: {e}");
        return Ok(super::EXIT_USAGE);
    }
    let req = Request::Close { market: market.map(str::to_owned), by: "cli".into() };
    let r = match ask_expected(&s.control_socket_path(), super::expected(g, &s), &req, CLOSE_ACK) {
        Ok(r) => r,
        Err(e @ ControlError::OtherDaemon { .. }) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(ControlError::NoDaemon(sock)) => {
            eprintln!(
                "error: no daemon is running on this journal (nothing listens on {sock}): a close is sent by the \
                 daemon that trades. Start it (it may stay halted: a close is allowed while halted), then close again"
            );
            return Ok(EXIT_NO_DAEMON);
        }
        Err(e) => {
            eprintln!("error: {e}. The close is NOT confirmed: check `polycopy trades` before asking again");
            return Ok(EXIT_NO_ACK);
        }
    };
    if !r.ok {
        eprintln!("{}", said(&r));
        return Ok(1);
    }
    println!("{}", said(&r));
    if r.rows.is_empty() || wait_s == 0 {
        return Ok(0);
    }
    follow(&s, &r.rows, Duration::from_secs(wait_s))
}

/// Prints each close order's outcome from the journal as it is known, for at most `wait`.
fn follow(s: &crate::config::Settings, rows: &[i64], wait: Duration) -> Result<i32> {
    let store = open_store(s)?;
    let until = Instant::now() + wait;
    let mut open: Vec<i64> = rows.to_vec();
    let mut failed = false;
    while !open.is_empty() {
        let mut still = Vec::new();
        for row in open {
            match store.fill_outcome(row)? {
                Some(o) if o.status == FillStatus::Executed => {
                    let (shares, price) = o.executed.unwrap_or_default();
                    match o.ordered {
                        // FAK: the book may take only part; the rest is still ours.
                        Some(want) if shares < want => {
                            failed = true;
                            println!(
                                "close order {row}: PARTLY filled: sold {shares} of {want} shares at {price}; {} left \
                                 (close again, or see `polycopy status`)",
                                crate::domain::Shares(want.0 - shares.0)
                            );
                        }
                        _ => println!("close order {row}: sold {shares} shares at {price}"),
                    }
                }
                Some(o) if o.status != FillStatus::Pending => {
                    failed = true;
                    println!("close order {row}: {}: {}", o.status, o.detail.unwrap_or_default());
                }
                _ => still.push(row),
            }
        }
        open = still;
        if open.is_empty() {
            break;
        }
        if Instant::now() >= until {
            failed = true;
            println!(
                "{} close order(s) still unresolved after {} s: they keep being resolved by the daemon (never sent \
                 twice); follow them with `polycopy trades`",
                open.len(),
                wait.as_secs()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(i32::from(failed))
}

/// `pause-market` / `resume-market`: through the daemon when one runs, else stored in the journal
/// for its next start. Exit codes as for `halt`.
///
/// # Errors
/// When the settings are invalid, or with no daemon the journal cannot be written.
pub fn pause_market(g: &GlobalArgs, market: &str, paused: bool) -> Result<i32> {
    // A pause only stops buying, and goes to the daemon that trades whatever its mode; a resumption
    // buys again, so, as `resume` and `close`, it is not sent to a daemon of another mode than the
    // file says (the operator may be moving away from it) unless its journal is named.
    let s = if paused {
        settings_or_bail(g)?
    } else {
        match super::settings_for_money(g, "resume-market")? {
            Ok(s) => s,
            Err(code) => return Ok(code),
        }
    };
    let sel = match MarketSelector::parse(market) {
        Ok(sel) => sel,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(super::EXIT_USAGE);
        }
    };
    let req = Request::PauseMarket { market: market.to_owned(), paused, by: "cli".into() };
    // Longer than the daemon's own waits for its journal (5 s for the market's tokens, 5 s for the
    // pause), so its answer (done, or not confirmed yet and carried out once the journal answers)
    // is what is said.
    match ask_expected(&s.control_socket_path(), super::expected(g, &s), &req, Duration::from_secs(12)) {
        Ok(r) if r.ok => {
            println!("{}", said(&r));
            Ok(0)
        }
        Ok(r) => {
            eprintln!("{}", said(&r));
            Ok(1)
        }
        Err(ControlError::NoDaemon(sock)) => {
            let store = open_store(&s)?;
            let tokens = store.tokens_of(&sel)?;
            let changed = if paused { store.pause_market(&sel, &tokens, "cli")? } else { store.resume_market(&sel)? };
            let what = crate::control::market_ops::paused_text(&sel, tokens.len(), paused, changed);
            store.add_event("operator", &format!("{what} (from the command line)"))?;
            println!("{what}: stored in the journal {}, obeyed from the next start", s.db_path.display());
            // A daemon that holds the journal but does not answer reads pauses only at its start:
            // it goes on trading that market meanwhile, which must not read as done.
            if let Some(pid) = crate::store::lock::holder(&s.db_path) {
                eprintln!(
                    "warning: a daemon{} holds this journal but nothing answers on {sock}: it does NOT know of this \
                     change until it restarts. Halt it (`polycopy halt`) if it must stop trading this market now",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                );
                return Ok(EXIT_NO_ACK);
            }
            eprintln!("note: no daemon is running on this journal (nothing listens on {sock})");
            Ok(EXIT_NO_DAEMON)
        }
        Err(e) => {
            eprintln!("error: {e}. NOT confirmed: check `polycopy status`");
            Ok(EXIT_NO_ACK)
        }
    }
}
