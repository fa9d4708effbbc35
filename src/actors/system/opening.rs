//! The start's first phase: everything that can refuse a start is checked before any actor runs,
//! and the trading state is read from the journal while this thread still owns it.

use std::collections::HashSet;
use std::path::PathBuf;

use alloy::primitives::Address;

use super::DaemonError;
use crate::actors::risk_supervisor::RiskState;
use crate::config::{Settings, Wallets, problem::render};
use crate::domain::Usdc;
use crate::store::identity::FileIdentity;
use crate::store::lock::JournalLock;
use crate::store::{Store, now_ms};

/// What the first phase leaves for the rest of the start.
pub(super) struct Opened {
    /// wallets.json as validated at start.
    pub wallets: Wallets,
    /// Held for the daemon's life: a second daemon on the same journal refuses to start.
    pub journal_lock: JournalLock,
    /// The CLI's control socket, bound.
    pub control: tokio::net::UnixListener,
    /// Removes the control socket's file when the daemon ends.
    pub control_file: crate::control::server::SocketFile,
    /// `/health` and `/metrics`, bound (none when `http.listen` is empty).
    pub http: Option<tokio::net::TcpListener>,
    /// The journal, opened, migrated and checked.
    pub store: Store,
    /// Which file the journal is, watched by the supervisor and `/health` (deleted or replaced).
    pub journal_file: Option<(PathBuf, FileIdentity)>,
    /// Targets the operator paused.
    pub paused: HashSet<Address>,
    /// The trading state as the journal left it.
    pub state: RiskState,
    /// When the start began (ms since the epoch).
    pub now: i64,
}

/// Validates wallets.json, takes the journal's lock, binds the control socket and the HTTP
/// address, opens the journal and reads the trading state from it.
pub(super) async fn open(s: &Settings) -> Result<Opened, DaemonError> {
    let wallets = Wallets::load(&s.wallets_path)
        .map_err(|p| DaemonError::Wallets { file: s.wallets_path.display().to_string(), problems: render(&p) })?;
    // First, so a second daemon on the same journal stops here, before it touches anything.
    let mut journal_lock = JournalLock::acquire(&s.db_path).map_err(|e| DaemonError::Setup(e.to_string()))?;
    let (control, control_file) = crate::control::server::bind(&s.control_socket_path()).map_err(DaemonError::Setup)?;
    // Bound before any actor starts: a port in use is a clean refusal, not a half-started daemon.
    let http = if s.http.listen.is_empty() {
        None
    } else {
        Some(
            crate::http::bind(&s.http.listen)
                .await
                .map_err(|e| DaemonError::Http { addr: s.http.listen.clone(), source: e })?,
        )
    };
    let store = Store::open(&s.db_path)?.with_trading_day(s.risk.day_starts_at_hour);
    if !s.mode.is_paper() {
        store.sync_every_commit()?;
    }
    let synced = if store.synchronous()? >= 2 { "every commit synced to disk" } else { "synced at checkpoints" };
    tracing::info!(journal = %s.db_path.display(), "journal opened: {synced}");
    journal_lock
        .lock_file(&s.db_path)
        .map_err(|e| DaemonError::Setup(format!("{e} (through another path to the same file)")))?;
    store.quick_check()?;
    refuse_other_modes_journal(&store, s)?;
    let mut store = store;
    let cleaned = store.clean_pasted_secrets()?;
    if cleaned > 0 {
        tracing::warn!(rows = cleaned, "a secret pasted into a halt stored by a command was cleaned from the journal");
    }
    if !s.detection.pending {
        orphan_unfollowed_sightings(&mut store)?;
    }
    // Before the trading state is read: the fees they booked leave today's P&L with them.
    let forgotten = store.forget_own_fills_above_checkpoint()?;
    if forgotten > 0 {
        tracing::info!(forgotten, "our fills on chain journaled above the checkpoint wait to be read again");
    }
    let journal_file = FileIdentity::of(&s.db_path).map(|id| (s.db_path.clone(), id));
    let now = now_ms();
    let paused = store.paused()?;
    let state = trading_state(&store, s, now)?;
    Ok(Opened { wallets, journal_lock, control, control_file, http, store, journal_file, paused, state, now })
}

/// A journal that holds copies of the other mode is refused: a live daemon on paper history would
/// count simulated positions as exposure and send real SELLs for shares it never bought; a paper
/// daemon on a live journal would write simulated fills into the real-money history. Reached by
/// `live.db_path` naming the paper journal, `run --db`, or a restore of the other mode's backup.
fn refuse_other_modes_journal(store: &Store, s: &Settings) -> Result<(), DaemonError> {
    use crate::domain::ExecMode;
    let (ours, other) =
        if s.mode.is_paper() { (ExecMode::Paper, ExecMode::Live) } else { (ExecMode::Live, ExecMode::Paper) };
    let n = store.copies_in_mode(other)?;
    if n == 0 {
        return Ok(());
    }
    Err(DaemonError::OtherModesJournal(format!(
        "the journal {} holds {n} {} copies and this daemon trades {}: paper history never mixes with real money. \
         Give each mode its own journal (db_path for paper, live.db_path for live; check-config names the one used)",
        s.db_path.display(),
        other.as_str(),
        ours.as_str(),
    )))
}

/// With pending detection off, nothing follows the pool for the settlements sighted by an earlier
/// run: they are taken as orphans now (the target's position given back, none copied unless an
/// order left for it). One mined after all is confirmed by its block, read by the backfill, and
/// stands again; left provisional, each would count in the target's position for ever.
fn orphan_unfollowed_sightings(store: &mut Store) -> Result<(), DaemonError> {
    let txs = store.provisional_txs()?;
    let mut fills = 0;
    for tx in &txs {
        fills += store.orphan_tx(*tx)?.len();
    }
    if fills > 0 {
        tracing::info!(
            transactions = txs.len(),
            fills,
            "pending detection is off: sightings of an earlier run are orphans until their block shows them"
        );
    }
    Ok(())
}

/// The risk supervisor's state as the journal left it: breaker, book, today's P&L and activity.
fn trading_state(store: &Store, s: &Settings, now: i64) -> Result<RiskState, DaemonError> {
    let day_start_ms = crate::risk::day::day_start(now, s.risk.day_starts_at_hour);
    let book = store.book()?;
    // Only held positions' marks: a journal from before closed positions lost theirs may still
    // keep them.
    let marks = store.marks()?.into_iter().filter(|(t, _)| book.position(t).shares.0 > 0).collect();
    // With nothing open, the day's opening unrealized P&L is simply zero, and it is journaled: a
    // restart later today, with positions bought since, must not open the day again at their
    // marks (that would forget the day's losses on them). Otherwise the first marks set it when
    // the journal has no record for today (a first start mid-day).
    let unrealized_at_open = match store.day_open(day_start_ms)? {
        Some(open) => Some(open),
        None if book.positions.is_empty() => {
            store.set_day_open(day_start_ms, Usdc::ZERO)?;
            Some(Usdc::ZERO)
        }
        None => None,
    };
    Ok(RiskState {
        breaker: crate::actors::store::cleaned(store.breaker()?),
        book,
        realized_today: store.realized_since(day_start_ms)?,
        recent_copies: store.copies_since(now - 3_600_000)?,
        day_start_ms,
        unrealized_at_open,
        marks,
        paused_markets: store.paused_markets()?,
    })
}
