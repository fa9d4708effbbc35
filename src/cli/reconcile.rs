//! `polycopy reconcile`: our journal's positions against the chain (our funder's balances in
//! Conditional Tokens and the V3 PositionManager) and Polymarket's Data API, each difference with
//! its likely cause. `--apply` books the chain's figure (through the daemon that trades, when one
//! runs; never a trade); `--alert` hands any difference to the daemon's notifier (cron).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{EXIT_NO_DAEMON, GlobalArgs, open_store, settings_or_bail};
use crate::chain::positions::PositionContracts;
use crate::config::{Env, Mode, Settings};
use crate::domain::{Price, Shares, TokenId};
use crate::risk::reconcile::{Difference, Resolution, Sighting, compare};

/// Longest the chain may take for one answer.
const SOURCE_WAIT: Duration = Duration::from_secs(20);

/// `reconcile [--json] [--apply] [--alert]`: exit 0 no difference, 1 differences (or a source
/// unreadable), 3 `--apply`/`--alert` found no daemon where one was needed.
///
/// # Errors
/// When the settings, the environment or the journal cannot be read.
pub fn reconcile(g: &GlobalArgs, as_json: bool, apply: bool, alert: bool) -> Result<i32> {
    let s = if apply {
        match super::settings_for_money(g, "reconcile --apply")? {
            Ok(s) => s,
            Err(code) => return Ok(code),
        }
    } else {
        settings_or_bail(g)?
    };
    let done = compare_and_apply(g, &s, as_json, apply, alert);
    // The daily cron run must not stop working for months unnoticed: a run that could not even
    // compare is an alert too (its output goes to syslog, which nobody reads).
    if alert && let Err(e) = &done {
        let _ = super::alert::send(&s, &crate::config::env::redact(&format!("reconcile FAILED: {e:#}")));
    }
    done
}

fn compare_and_apply(g: &GlobalArgs, s: &Settings, as_json: bool, apply: bool, alert: bool) -> Result<i32> {
    if s.mode == Mode::Paper {
        let why = "paper mode: positions are simulated, there is nothing on chain to reconcile them with";
        if as_json {
            println!("{}", json!({"mode": "paper", "differences": [], "problems": [], "note": why}));
        } else {
            println!("{why}");
        }
        return Ok(0);
    }
    let env = super::env_for(s, true)?;
    let funder = funder(s, &env)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if crate::store::lock::holder(&s.db_path).is_some() {
        rt.block_on(journal_caught_up(s, &env));
    }
    let store = open_store(s)?;
    let book = store.book()?;
    let state = store.reconcile_state()?;
    // The last block the journal has read: a balance that moved after it moved for something the
    // daemon has yet to journal (a late settlement, a fill of ours).
    let journal_block = store.checkpoint()?.map(|(n, _)| n);
    let mut prices = store.last_prices()?;
    // Held in the journal, and not known to have resolved: the chain is asked whether its market
    // did (redeemed by Polymarket's auto-redeemer or on the website, it would read as sold).
    let mut unresolved = BTreeMap::new();
    for t in book.tokens() {
        if !state.get(&t).is_some_and(|st| st.resolved) {
            unresolved.insert(t, store.market(&t)?.map(|(info, _)| info));
        }
    }
    drop(store);
    let data = rt.block_on(crate::market::data_api::positions(&env.data_api_url, funder));
    let mut tokens: Vec<TokenId> = state.keys().copied().collect();
    if let Ok(d) = &data {
        tokens.extend(d.keys().copied());
    }
    tokens.sort();
    tokens.dedup();
    // Tokens the journal never traded nor marked are booked at what the account paid for them (the
    // Data API's average entry price), never at 0: a cost of 0 would count their whole value as
    // profit when they are sold or resolve, and let the loss limit miss real losses.
    if let Ok(d) = &data {
        for (t, p) in d {
            if let Some(avg) = p.avg_price {
                prices.entry(*t).or_insert(avg);
            }
        }
    }
    let (chain, head, moved) = match rt.block_on(chain_balances(s, &env, funder, &tokens, journal_block)) {
        Ok((head, c, moved)) => (Ok(c), Some(head), moved),
        Err(e) => (Err(e), None, std::collections::BTreeSet::new()),
    };
    // Asked only where the chain holds less than the journal: only there could missing tokens be
    // taken for sold.
    if let Ok(c) = &chain {
        unresolved.retain(|t, _| c.get(t).is_some_and(|on_chain| on_chain.0 < book.position(t).shares.0));
    } else {
        unresolved.clear();
    }
    let contracts = PositionContracts::from_settings(&s.chain);
    let v3: std::collections::BTreeSet<TokenId> = unresolved
        .keys()
        .filter(|t| state.get(t).and_then(|st| st.exchange).is_some_and(|e| contracts.v3_exchanges.contains(&e)))
        .copied()
        .collect();
    let resolutions = rt.block_on(resolutions(s, &env, &unresolved, &v3));
    let resolved_on_chain = |t: &TokenId| resolutions.get(t) == Some(&Resolution::Resolved);
    let sightings: Vec<Sighting> = tokens
        .iter()
        .map(|t| {
            let st = state.get(t).copied().unwrap_or_default();
            let listed = data.as_ref().ok().and_then(|d| d.get(t));
            Sighting {
                token_id: *t,
                journal: book.position(t).shares,
                chain: chain.as_ref().ok().and_then(|c| c.get(t).copied()),
                // Listed or not: a readable Data API that does not list a token says 0.
                data: data.as_ref().ok().map(|_| listed.map_or(Shares(0), |p| p.size)),
                unsettled: st.unsettled,
                resolved: st.resolved || listed.is_some_and(|p| p.redeemable) || resolved_on_chain(t),
                // The journal's word, or a market the Data API shows lost (tokens bought
                // outside polycopy): not "redeem them", which would only burn them.
                worthless: st.worthless || listed.is_some_and(crate::market::data_api::DataPosition::lost),
                settling: st.settling,
                in_flight: st.in_flight,
                resolution_unread: resolutions.get(t) == Some(&Resolution::Unread),
                // The node read is behind a block holding a fill of ours (the daemon's feed saw it,
                // this endpoint not yet): its balance is not the one the journal settled to.
                node_behind: st.last_fill_block.zip(head).is_some_and(|(b, h)| b > h),
                journal_behind: moved.contains(t),
            }
        })
        .collect();
    let diffs = compare(&sightings);
    let problems: Vec<String> = [("chain", chain.err()), ("Data API", data.err())]
        .into_iter()
        .filter_map(|(what, e)| e.map(|e| format!("{what} unreadable: {e}")))
        .collect();
    print_report(s, funder, &diffs, &problems, as_json, sightings.len())?;
    let mut code = i32::from(!diffs.is_empty() || !problems.is_empty());
    if apply {
        code = code.max(apply_all(s, (super::expected(g, s), funder), &diffs, &prices)?);
    }
    if alert && !diffs.is_empty() {
        code = code.max(raise(s, &diffs));
    }
    if alert && !problems.is_empty() {
        let text = format!("reconcile could not compare every position: {}", problems.join("; "));
        if let Err(c) = super::alert::send(s, &text) {
            code = code.max(c.clamp(1, EXIT_NO_DAEMON));
        }
    }
    Ok(code)
}

fn funder(s: &Settings, env: &Env) -> Result<alloy::primitives::Address> {
    let cfg = crate::clob::venue::VenueConfig::from_settings(s, env).map_err(anyhow::Error::msg)?;
    let key = env.private_key.as_ref().context("PRIVATE_KEY is not set")?;
    let signer = crate::clob::venue::Venue::signer_address(secrecy::ExposeSecret::expose_secret(key))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sig = crate::clob::SigType::parse(&s.live.signature_type).map_err(anyhow::Error::msg)?;
    crate::clob::account::resolve_funder(sig, signer, cfg.funder).map_err(anyhow::Error::msg)
}

/// How long reconcile waits for a running daemon's journal to read the node's head.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// Waits (up to [`CATCH_UP_WAIT`]) until the running daemon's journal has read the node's head, so
/// that the chain as it is now is compared with a journal that has read it; a balance that moved
/// after the journal's block is shown, never booked (see `journal_behind`).
async fn journal_caught_up(s: &Settings, env: &Env) {
    let mut rpc = super::http_rpc(s, env);
    let head = match tokio::time::timeout(SOURCE_WAIT, rpc.connect()).await {
        Ok(Ok(())) => rpc.block_number().await.ok(),
        _ => None,
    };
    // The feed reads no further than `chain.confirmations` below the head.
    let Some(head) = head else { return };
    let readable = head.saturating_sub(s.chain.confirmations);
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    loop {
        let at = open_store(s).ok().and_then(|st| st.checkpoint().ok().flatten()).map(|(n, _)| n);
        if at.is_some_and(|n| n >= readable) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "note: the daemon's journal has read the chain up to block {} and the node is at {head}: balances \
                 that moved after the journal's block are shown, not booked",
                at.map_or_else(|| "none".to_owned(), |n| n.to_string())
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node's head, our funder's balance of each token there, and the tokens whose balance moved
/// after `journal_block`, the last block the journal has read (one that cannot be read there is
/// counted as moved: a node keeping recent state only cannot say).
async fn chain_balances(
    s: &Settings,
    env: &Env,
    funder: alloy::primitives::Address,
    tokens: &[TokenId],
    journal_block: Option<u64>,
) -> Result<(u64, BTreeMap<TokenId, Shares>, std::collections::BTreeSet<TokenId>), String> {
    let mut rpc = super::http_rpc(s, env);
    tokio::time::timeout(SOURCE_WAIT, rpc.connect())
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let head = rpc.block_number().await.map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    let mut moved = std::collections::BTreeSet::new();
    for t in tokens {
        let now = balance_at(s, &rpc, funder, *t, head).await?;
        if let Some(read) = journal_block.filter(|b| *b < head) {
            // Moved after it, or unreadable there: either way not the journal's to book yet.
            if balance_at(s, &rpc, funder, *t, read).await.ok() != Some(now) {
                moved.insert(*t);
            }
        }
        out.insert(*t, now);
    }
    Ok((head, out, moved))
}

/// Our funder's balance of `token` at block `at`: Conditional Tokens plus the V3 PositionManager
/// (a token lives in one of them; the other answers 0). A PositionManager with no code there (not
/// deployed yet on this chain, or a wrong address) holds nothing: it must not make every
/// Conditional Tokens market unreadable too.
async fn balance_at(
    s: &Settings,
    rpc: &crate::chain::Rpc,
    funder: alloy::primitives::Address,
    token: TokenId,
    at: u64,
) -> Result<Shares, String> {
    let c = PositionContracts::from_settings(&s.chain);
    let ctf = rpc.balance_of(c.conditional_tokens, funder, token, at).await.map_err(|e| e.to_string())?;
    let v3 = rpc.balance_of_if_deployed(c.position_manager, funder, token, at).await.map_err(|e| e.to_string())?;
    let total = ctf.saturating_add(v3.unwrap_or_default());
    i64::try_from(total).map(Shares).map_err(|_| format!("the balance of {token} is out of range"))
}

/// Whether the market of each of `markets` (the journal's word on it, if any) has resolved on
/// chain (Conditional Tokens has its payout). A read that fails leaves that token, and the ones
/// after it, unread: a node that does not answer is not asked once per token.
async fn resolutions(
    s: &Settings,
    env: &Env,
    markets: &BTreeMap<TokenId, Option<crate::market::MarketInfo>>,
    v3: &std::collections::BTreeSet<TokenId>,
) -> BTreeMap<TokenId, Resolution> {
    let mut rpc = super::http_rpc(s, env);
    let mut answering =
        !markets.is_empty() && matches!(tokio::time::timeout(SOURCE_WAIT, rpc.connect()).await, Ok(Ok(())));
    let ctf = PositionContracts::from_settings(&s.chain).conditional_tokens;
    let mut out = BTreeMap::new();
    for (t, info) in markets {
        // Gamma's word, not the end date: markets often trade on past it.
        let closed = info.as_ref().is_some_and(|i| i.closed);
        let read = match info.as_ref().and_then(|i| i.condition_id) {
            // Binary markets: the outcome count matters only for the numerators, not read here.
            Some(condition) if answering => match rpc.condition_result(ctf, condition, 2).await {
                Ok(r) => Some(Ok(!r.denominator.is_zero())),
                Err(_) => {
                    answering = false;
                    Some(Err(()))
                }
            },
            _ => None,
        };
        out.insert(*t, Resolution::from_read(read, closed, v3.contains(t)));
    }
    out
}

fn shown(s: Option<Shares>) -> String {
    s.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

fn print_report(
    s: &Settings,
    funder: alloy::primitives::Address,
    diffs: &[Difference],
    problems: &[String],
    as_json: bool,
    checked: usize,
) -> Result<()> {
    if as_json {
        let rows: Vec<_> = diffs
            .iter()
            .map(|d| {
                // Shares as decimal strings, as `status --json` writes them.
                let s = |v: Option<Shares>| v.map(|v| v.to_string());
                json!({"token_id": d.seen.token_id.to_string(), "journal": d.seen.journal.to_string(),
                       "chain": s(d.seen.chain), "data_api": s(d.seen.data), "delta": d.delta.to_string(),
                       "cause": d.cause, "advice": d.cause.advice(), "applies": d.bookable()})
            })
            .collect();
        let out = json!({"funder": format!("{funder:#x}"), "journal": s.db_path.display().to_string(),
                         "tokens_checked": checked, "differences": rows, "problems": problems});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("reconcile of {} (funder {funder:#x}): {checked} token(s) checked", s.db_path.display());
    for p in problems {
        println!("WARNING: {p}");
    }
    if diffs.is_empty() && problems.is_empty() {
        println!("no difference: the journal, the chain and the Data API agree");
    } else if diffs.is_empty() {
        println!("no difference among the sources that answered (see the warnings above)");
    }
    for d in diffs {
        println!(
            "{}: journal {} · chain {} · Data API {} → {} ({}): {}",
            d.seen.token_id,
            d.seen.journal,
            shown(d.seen.chain),
            shown(d.seen.data),
            d.delta,
            d.cause,
            d.cause.advice()
        );
    }
    Ok(())
}

/// Books each difference `--apply` may book, through the running daemon when there is one.
fn apply_all(
    s: &Settings,
    (daemon, funder): (crate::control::client::Expected<'_>, alloy::primitives::Address),
    diffs: &[Difference],
    prices: &BTreeMap<TokenId, Price>,
) -> Result<i32> {
    let mut code = 0;
    for d in diffs.iter().filter(|d| d.cause.applies()) {
        if !d.settled() {
            code = 1;
            eprintln!(
                "not applied: {}: a match or an order of ours is not settled on chain or resolved yet (or is being put \
                 back in the books): the chain's figure would count it twice. Run reconcile --apply again once it has \
                 settled",
                d.seen.token_id
            );
            continue;
        }
        let Some(to) = d.truth.filter(|_| d.bookable()) else {
            code = 1;
            eprintln!(
                "not applied: {}: the chain could not be read, and the Data API's figure is not booked (it can lag \
                 a fresh trade); run reconcile --apply again when the chain answers",
                d.seen.token_id
            );
            continue;
        };
        let price = match prices.get(&d.seen.token_id).copied() {
            Some(p) => p,
            // Taking shares out needs no price (they go at their average cost); booking shares in
            // does: without one, nothing is booked.
            None if d.delta.0 > 0 => {
                code = 1;
                eprintln!(
                    "not applied: {}: no price is known for these shares (the journal never traded or marked the \
                     token, and the Data API gives no average price): sell them by hand, or run reconcile --apply \
                     again when the Data API lists the position",
                    d.seen.token_id
                );
                continue;
            }
            None => Price(0),
        };
        let req = crate::control::Request::Adjust {
            token: d.seen.token_id.to_string(),
            shares: to.0,
            compared: Some(d.seen.journal.0),
            price: price.0,
            cause: d.cause.to_string(),
            by: "cli".into(),
            funder: Some(format!("{funder:#x}")),
        };
        match crate::control::client::ask_expected(&s.control_socket_path(), daemon, &req, Duration::from_secs(5)) {
            Ok(r) if r.ok => println!("applied: {}", r.message),
            Ok(r) => {
                code = 1;
                eprintln!("not applied: {}", r.message);
            }
            Err(crate::control::client::ControlError::NoDaemon(_))
                if crate::store::lock::holder(&s.db_path).is_some() =>
            {
                // Its socket removed, the daemon still runs: a change written behind it would
                // never reach its book, whose exits would go on selling the old count.
                code = 1;
                eprintln!(
                    "not applied: a daemon{} holds {} but nothing answers on its control socket; restart it \
                     (`systemctl restart polycopy`, or `polycopy@NAME` for a named instance) and run reconcile again",
                    crate::store::lock::holder(&s.db_path).flatten().map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    s.db_path.display()
                );
            }
            Err(crate::control::client::ControlError::NoDaemon(_)) => {
                let mut store = open_store(s)?;
                let compared = Some(d.seen.journal);
                match store.adjust_position(d.seen.token_id, (compared, to), price, &d.cause.to_string(), "cli") {
                    Ok((_, pos)) => println!(
                        "applied in the journal (no daemon runs): position in {} is now {} shares",
                        d.seen.token_id, pos.position.shares
                    ),
                    Err(e @ crate::store::StoreError::PositionMoved { .. }) => {
                        code = 1;
                        eprintln!("not applied: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => {
                code = 1;
                eprintln!("not applied: {e}");
            }
        }
    }
    Ok(code)
}

/// Hands the differences to the daemon's notifier (log, journal, Telegram).
fn raise(s: &Settings, diffs: &[Difference]) -> i32 {
    let lines: Vec<String> = diffs.iter().map(|d| format!("{} {} ({})", d.seen.token_id, d.delta, d.cause)).collect();
    let text =
        format!("reconcile: {} difference(s) between the journal and the chain: {}", diffs.len(), lines.join("; "));
    match super::alert::send(s, &text) {
        Ok(()) => 1,
        Err(code) => code.clamp(1, EXIT_NO_DAEMON),
    }
}
