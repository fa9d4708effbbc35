//! Schema and migrations, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version forward. Never edit a shipped entry; append a new one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE fills (
    id            INTEGER PRIMARY KEY,
    tx_hash       TEXT NOT NULL,
    order_hash    TEXT NOT NULL,
    occurrence    INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    block_number  INTEGER NOT NULL,
    block_hash    TEXT NOT NULL,
    block_ts      INTEGER NOT NULL,
    exchange      TEXT NOT NULL,
    version       TEXT NOT NULL,
    wallet        TEXT NOT NULL,
    role          TEXT NOT NULL,
    side          TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    shares        INTEGER NOT NULL,
    usdc          INTEGER NOT NULL,
    price         INTEGER NOT NULL,
    fee           INTEGER NOT NULL,
    seen_at_ms    INTEGER NOT NULL,
    -- pending | executed | rejected | withdrawn
    status        TEXT NOT NULL DEFAULT 'pending',
    reason        TEXT,
    detail        TEXT,
    -- its block was reorged out; waiting to see whether it is re-included
    suspect       INTEGER NOT NULL DEFAULT 0,
    -- we copied it and then its transaction left the chain
    reorged_after_copy INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tx_hash, order_hash, occurrence)
);
CREATE INDEX fills_block ON fills (block_number);
CREATE INDEX fills_status ON fills (status);
CREATE INDEX fills_wallet ON fills (wallet);

CREATE TABLE intents (
    fill_id       INTEGER PRIMARY KEY REFERENCES fills (id),
    token_id      TEXT NOT NULL,
    side          TEXT NOT NULL,
    shares        INTEGER NOT NULL,
    limit_price   INTEGER NOT NULL,
    target_price  INTEGER NOT NULL,
    order_type    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE executions (
    fill_id        INTEGER PRIMARY KEY REFERENCES intents (fill_id),
    mode           TEXT NOT NULL,
    wallet         TEXT NOT NULL,
    side           TEXT NOT NULL,
    token_id       TEXT NOT NULL,
    shares         INTEGER NOT NULL,
    price          INTEGER NOT NULL,
    usdc           INTEGER NOT NULL,
    realized_pnl   INTEGER NOT NULL,
    executed_at_ms INTEGER NOT NULL
);
CREATE INDEX executions_at ON executions (executed_at_ms);

CREATE TABLE positions (
    token_id      TEXT PRIMARY KEY,
    shares        INTEGER NOT NULL,
    cost          INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- targets' positions as observed from their fills: the fallback when balanceOf cannot be read
CREATE TABLE target_positions (
    wallet   TEXT NOT NULL,
    token_id TEXT NOT NULL,
    shares   INTEGER NOT NULL,
    PRIMARY KEY (wallet, token_id)
);

CREATE TABLE checkpoint (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    block_number  INTEGER NOT NULL,
    block_hash    TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE recent_blocks (
    number INTEGER PRIMARY KEY,
    hash   TEXT NOT NULL
);

CREATE TABLE breaker (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    tripped  INTEGER NOT NULL,
    code     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    by       TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_at ON events (at_ms);
",
    r"
-- targets paused by the operator (Telegram /pause), kept across restarts
CREATE TABLE paused_wallets (
    wallet    TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL,
    by        TEXT NOT NULL
);
",
    r"
-- the reorg sweep after every journaled range looks only at suspects: keep that lookup
-- independent of the journal's size
CREATE INDEX fills_suspect ON fills (block_number) WHERE suspect = 1;
",
    r"
-- live orders: the signed order is stored with its intent before it is sent, so a crash can only
-- ever lead to looking it up or sending the very same order again (same hash, cannot fill twice)
CREATE TABLE orders (
    fill_id       INTEGER PRIMARY KEY REFERENCES intents (fill_id),
    order_id      TEXT NOT NULL UNIQUE,
    signed        TEXT NOT NULL,
    -- signed | sent | matched | live | delayed | no_fill | rejected | unknown
    status        TEXT NOT NULL,
    posts         INTEGER NOT NULL DEFAULT 0,
    shares        INTEGER,
    usdc          INTEGER,
    message       TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    -- 0 waiting, 1 our OrderFilled was seen on chain, -1 never settled and reversed in our books
    settled       INTEGER NOT NULL DEFAULT 0,
    settle_tx     TEXT
);
CREATE INDEX orders_unsettled ON orders (updated_at_ms) WHERE status = 'matched' AND settled = 0;

-- the last midpoint of each token we hold, for unrealized P&L
CREATE TABLE marks (
    token_id   TEXT PRIMARY KEY,
    price      INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL
);

-- positions closed by their market's resolution (a share pays 1 or 0), replayed like SELLs
CREATE TABLE settlements (
    id            INTEGER PRIMARY KEY,
    token_id      TEXT NOT NULL,
    shares        INTEGER NOT NULL,
    price         INTEGER NOT NULL,
    usdc          INTEGER NOT NULL,
    realized_pnl  INTEGER NOT NULL,
    at_ms         INTEGER NOT NULL
);

-- what each token is (Gamma API), refreshed when older than markets.refresh_s
CREATE TABLE markets (
    token_id      TEXT PRIMARY KEY,
    condition_id  TEXT,
    question      TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    neg_risk      INTEGER NOT NULL,
    tick          INTEGER,
    min_size      INTEGER NOT NULL,
    closed        INTEGER NOT NULL,
    end_ms        INTEGER,
    payout        INTEGER,
    fetched_at_ms INTEGER NOT NULL
);
",
    r"
-- the trading state between active and halted: only exits are copied (daily loss limit)
ALTER TABLE breaker ADD COLUMN reducing INTEGER NOT NULL DEFAULT 0;

-- the unrealized P&L of open positions when each trading day opened: the daily loss limit counts
-- the day's change of it, not lifetime unrealized against cost
CREATE TABLE day_open (
    day_start_ms INTEGER PRIMARY KEY,
    unrealized   INTEGER NOT NULL
);
",
    r"
-- the targets the daemon watches, as it last applied them: while a wallets.json edit is refused,
-- `status` shows these (the set still running), not the broken file's nothing
CREATE TABLE running_targets (
    address TEXT PRIMARY KEY,
    label   TEXT NOT NULL
);
",
    r"
-- Telegram messages still undelivered when the daemon stopped (Telegram down, a chat parked):
-- sent after the next start, so a notice an operator would want to read is not lost in a restart
CREATE TABLE telegram_held (
    id      INTEGER PRIMARY KEY,
    chat    INTEGER NOT NULL,
    alert   INTEGER NOT NULL,
    text    TEXT NOT NULL,
    silent  INTEGER NOT NULL,
    html    INTEGER NOT NULL,
    held_at INTEGER NOT NULL
);
",
    r"
-- a market's page on polymarket.com, linked from Telegram messages
ALTER TABLE markets ADD COLUMN slug TEXT;
",
    r"
-- markets the operator paused (polycopy pause-market, Telegram /pausemarket): buys into them are
-- refused, exits are copied; tokens are the market's tokens known when it was paused
CREATE TABLE paused_markets (
    key      TEXT PRIMARY KEY,
    tokens   TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    by       TEXT NOT NULL
);
",
    r"
-- positions corrected by polycopy reconcile --apply to what the chain holds (never a trade):
-- replayed like executions, a decrease at the average cost (no P&L), an increase at the last price
CREATE TABLE adjustments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id     TEXT NOT NULL,
    side         TEXT NOT NULL,
    shares       INTEGER NOT NULL,
    price        INTEGER NOT NULL,
    usdc         INTEGER NOT NULL,
    realized_pnl INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL,
    cause        TEXT NOT NULL,
    by           TEXT NOT NULL
);
",
    r"
-- redemptions of resolved markets' winning tokens: journaled (with the signed transaction) before
-- anything is sent, so a restart looks the transaction up or sends the very same one again
CREATE TABLE redemptions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    condition_id  TEXT NOT NULL,
    tokens        TEXT NOT NULL,
    shares        INTEGER NOT NULL,
    expected      INTEGER NOT NULL,
    -- planned | signed | sent | redeemed | reverted | failed | dropped | paper
    status        TEXT NOT NULL,
    tx_hash       TEXT,
    raw_tx        TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_ms   INTEGER NOT NULL DEFAULT 0,
    message       TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX redemptions_open ON redemptions (condition_id) WHERE status IN ('planned', 'signed', 'sent', 'reverted');
",
    r"
-- `polycopy vet`'s cache of wallets' fills read from the chain: which blocks were read for a wallet
-- (one contiguous range of buried blocks, under one set of exchanges) and the fills found there
CREATE TABLE vet_scans (
    wallet        TEXT PRIMARY KEY,
    exchanges     TEXT NOT NULL,
    from_block    INTEGER NOT NULL,
    to_block      INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE vet_fills (
    wallet       TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL,
    side         TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    shares       INTEGER NOT NULL,
    price        INTEGER NOT NULL,
    PRIMARY KEY (wallet, block_number, log_index)
) WITHOUT ROWID;
",
    r"
-- Detection before the block: a fill seen in a pending settlement is journaled provisional (its
-- block unknown) and confirmed by the mined log; `triggered_by` says which sighting handed it to
-- the copier (NULL: none yet, the target waits for the block); an orphan's transaction was dropped,
-- replaced or reverted
ALTER TABLE fills ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fills ADD COLUMN triggered_by TEXT;
ALTER TABLE fills ADD COLUMN orphaned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fills_provisional ON fills (tx_hash) WHERE provisional = 1;
-- every source's first sighting of a fill: pending | rtds | chain
CREATE TABLE sightings (
    fill_id    INTEGER NOT NULL REFERENCES fills (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (fill_id, source)
) WITHOUT ROWID;
",
    r"
-- RTDS rows of targets seen before their fill was journaled: linked to the fill (as its 'rtds'
-- sighting) when the fill arrives, by transaction, wallet, token, side, shares and occurrence
CREATE TABLE rtds_staged (
    tx_hash    TEXT NOT NULL,
    wallet     TEXT NOT NULL,
    token_id   TEXT NOT NULL,
    side       TEXT NOT NULL,
    shares     INTEGER NOT NULL,
    occurrence INTEGER NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tx_hash, wallet, token_id, side, shares, occurrence)
) WITHOUT ROWID;
",
    r"
-- our own orders' fills on chain, one row per (order, transaction), all its logs summed: an order
-- can fill in several transactions, and what it filled is their sum; a transaction read again
-- (a backfill, a restart) counts once
CREATE TABLE own_fills (
    order_id   TEXT NOT NULL,
    tx_hash    TEXT NOT NULL,
    shares     INTEGER NOT NULL,
    usdc       INTEGER NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, tx_hash)
) WITHOUT ROWID;
",
    r"
-- when the order was last sent (unix ms): a FAK order matches then or never, so with no fill of
-- ours on chain long after it, it did not fill
ALTER TABLE orders ADD COLUMN last_sent_ms INTEGER;
",
    r"
-- orders booked from their fill on chain before own_fills was kept: that transaction is what the
-- booking holds, so a later part of the same order adds only itself (an order the CLOB booked is
-- left out: what its first settling transaction held is not known, and the sum of later ones
-- never exceeds the booking until it really does)
INSERT OR IGNORE INTO own_fills (order_id, tx_hash, shares, usdc, seen_at_ms)
SELECT o.order_id, o.settle_tx, e.shares, e.usdc, o.updated_at_ms
FROM orders o JOIN executions e ON e.fill_id = o.fill_id
WHERE o.settle_tx IS NOT NULL AND o.settled IN (1, 2) AND o.message = 'booked from our fill on chain'
AND NOT EXISTS (SELECT 1 FROM own_fills f WHERE f.order_id = o.order_id);
",
    r"
-- the shares the CLOB said matched, kept once the settlement check disproved it (took out what
-- the chain never settled): from then on only our fills on chain grow the order, and its fill is
-- whole again only once they hold all of it. Orders disproved before this was kept take their
-- intent's size, the most they can have matched.
ALTER TABLE orders ADD COLUMN clob_shares INTEGER;
UPDATE orders SET clob_shares = (SELECT i.shares FROM intents i WHERE i.fill_id = orders.fill_id)
WHERE fill_id IN (SELECT id FROM fills WHERE reason = 'unsettled');
",
    r"
-- the shares of a SELL the book held when it was booked (the rest, never on the books, realized
-- nothing and released no cost): what taking it out gives back, and the share of its proceeds a
-- correction moves P&L by. NULL (older rows): all of them
ALTER TABLE executions ADD COLUMN held INTEGER;
",
    r"
-- the cost basis a SELL took out of the position, summed over its parts: what taking it out gives
-- back, exact even when its parts were booked at different prices on different holdings. NULL
-- (older rows, and BUYs): derived from its proceeds and P&L, exact for a SELL booked in one part
ALTER TABLE executions ADD COLUMN released INTEGER;
",
    r"
-- the block our fill on chain was read in: a reorg past it forgets the fill until the chain is
-- read again (a settlement the operator resubmitted in another transaction then counts once).
-- NULL (older rows): kept through reorgs, as before
ALTER TABLE own_fills ADD COLUMN block_number INTEGER;
",
    r"
-- a pending sighting asks whether the same match was already mined under another transaction
CREATE INDEX fills_order ON fills (order_hash);
",
    r"
-- a target's exit is sized on the shares its own copies hold
CREATE INDEX executions_copied ON executions (token_id, wallet);
",
    r"
-- vet: whether the wallet took liquidity in a fill (only such fills price a copy). Caches read
-- before this was kept are forgotten, so the next vet reads them again with it
ALTER TABLE vet_fills ADD COLUMN taker INTEGER;
DELETE FROM vet_fills;
DELETE FROM vet_scans;
",
    r"
-- a target's exit reads what its copies hold through its fills (wallet, then token): the index
-- by wallet grows a column instead of the executions getting one of their own, whose write on
-- every copy cost the copy path about 10 µs
DROP INDEX IF EXISTS executions_copied;
DROP INDEX fills_wallet;
CREATE INDEX fills_wallet ON fills (wallet, token_id);
",
    r"
-- an orphan stays provisional, so a replacement of its settlement mined soon after still adopts
-- it; after a week it no longer counts as waiting, so orphans kept for months neither make every
-- mined fill look for a replacement nor are scanned by it. The index reaches the fills still
-- waiting for their block and the recent orphans
DROP INDEX fills_provisional;
CREATE INDEX fills_provisional ON fills (orphaned, seen_at_ms) WHERE provisional = 1;
",
    r"
-- a redemption whose fee cap the base fee passed is signed again with higher fees and the same
-- nonce: the hashes it replaced (comma-separated), any of which may be the one mined
ALTER TABLE redemptions ADD COLUMN replaced TEXT NOT NULL DEFAULT '';
",
    r"
-- an approval a redemption waits for, journaled before it is sent, so that after a restart the
-- one sent is followed (sent again, re-priced) rather than a second one signed behind it
CREATE TABLE approvals (
    book         TEXT NOT NULL,
    operator     TEXT NOT NULL,
    tx_hash      TEXT NOT NULL,
    raw_tx       TEXT NOT NULL,
    signed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (book, operator)
);
",
    r"
-- when a position was opened from flat: a target's exit sells only its copies booked since, so
-- copies sold off meanwhile (by the operator's close, say) are not claimed again from the copies
-- of another target that opened the position anew. NULL (older rows): every copy counts, as before
ALTER TABLE positions ADD COLUMN opened_at_ms INTEGER;
",
    r"
-- instead of when a position was opened (any write that reopened it, a take-out or a part booked
-- late, reset the claims of copies still held): when the operator's own close emptied it. Targets'
-- exits claim only their copies booked after that close
ALTER TABLE positions DROP COLUMN opened_at_ms;
CREATE TABLE claims_reset (
    token_id TEXT PRIMARY KEY,
    at_ms    INTEGER NOT NULL
);
",
    r"
-- when a halt was last asked for, also one that found trading already halted: the operator's
-- close found again after a restart is sent only if it started after it, and a resume button
-- offered before it is refused (the gate's count of halts is lost in a restart). 0: never
ALTER TABLE breaker ADD COLUMN halt_asked_ms INTEGER NOT NULL DEFAULT 0;

-- fills copied and then taken as gone by a reorg: a settlement sent again later under another
-- transaction is matched to one of them (the same trade) rather than copied again
CREATE INDEX fills_reorged ON fills (block_number) WHERE reorged_after_copy = 1;
",
    r"
-- the fee the exchange charged our order in this transaction (pUSD: on top of a BUY's payment,
-- out of a SELL's proceeds), booked as realized P&L when it is read; a reorg that forgets the
-- fill forgets its fee until the chain is read again. 0 (older rows): not booked
ALTER TABLE own_fills ADD COLUMN fee INTEGER NOT NULL DEFAULT 0;
CREATE INDEX own_fees ON own_fills (seen_at_ms) WHERE fee > 0;
",
    r"
-- the exchange said it holds the order (Duplicated, matched without amounts, matched unsized by a
-- lookup): kept across resolve windows and restarts, so that a lookup answering null never has it
-- sent again. An order live or delayed is held by its status alone
ALTER TABLE orders ADD COLUMN exchange_has INTEGER NOT NULL DEFAULT 0;
",
    r"
-- the order live bookings were made in (an execution is stamped before it is booked, and a part
-- of it booked later keeps its time): what rebooking a token's later executions after a take-out
-- or a put-back goes by. `grown_seq` is the booking of its latest part
CREATE TABLE booking_seq (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO booking_seq (id, n) VALUES (1, 0);
ALTER TABLE executions ADD COLUMN booked_seq INTEGER;
ALTER TABLE executions ADD COLUMN grown_seq INTEGER;
",
    r"
-- a copied fill of a wallet no longer watched that a reorg put in doubt: not checked (the rescan
-- reads only the wallets watched), standing as booked, and still the same trade if its settlement
-- is mined again under another transaction while the wallet is watched again
ALTER TABLE fills ADD COLUMN unchecked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fills_unchecked ON fills (block_number) WHERE unchecked = 1;
",
    r"
-- the expiry (unix s) of a GTD order given up whose cancel failed: asked again, also after a
-- restart, until the exchange answers or the order expires. NULL: no cancel owed
ALTER TABLE orders ADD COLUMN cancel_owed_until_s INTEGER;
CREATE INDEX orders_cancel_owed ON orders (fill_id) WHERE cancel_owed_until_s IS NOT NULL;
",
    r"
-- a provisional fill taken over by a resubmission of its match: the transaction it was first seen
-- in, which may be the one mined (the resubmission then fails). NULL: never taken over
ALTER TABLE fills ADD COLUMN replaced_tx TEXT;
",
    r"
-- how many times the same signed order went again after a lookup answered null: bounded over the
-- order's life (windows, background retries and restarts together), so a market that refuses it
-- never has it re-sent hourly and its no-fill can be decided
ALTER TABLE orders ADD COLUMN null_resends INTEGER NOT NULL DEFAULT 0;
",
];

/// The file's schema version, and the newest this binary knows.
///
/// # Errors
/// When SQLite cannot read it.
pub(crate) fn versions(conn: &Connection) -> rusqlite::Result<(usize, usize)> {
    Ok((conn.query_row("PRAGMA user_version", [], |r| r.get(0))?, MIGRATIONS.len()))
}

/// Brings the schema up to date.
///
/// # Errors
/// When a migration fails (the transaction is rolled back).
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Up to date (every open but the first after an upgrade): no write lock taken, so a command
    // with read access only still opens it.
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current >= MIGRATIONS.len() {
        return Ok(());
    }
    // Two processes may migrate at once (the daemon starting, a command): each step takes the
    // write lock first and reads the version under it, so a step another one ran meanwhile is
    // never run again (some would succeed twice and move the version past a step that then
    // fails for ever).
    loop {
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let current: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let Some(sql) = MIGRATIONS.get(current) else { return Ok(()) };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brought up to date step by step from any version, each step once; an up-to-date journal
    /// opened for reading only takes no write lock.
    #[test]
    fn a_journal_is_migrated_from_where_it_stands_and_an_up_to_date_one_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let c = Connection::open(&path).unwrap();
        for (i, sql) in MIGRATIONS.iter().enumerate().take(MIGRATIONS.len() - 2) {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", i + 1).unwrap();
        }
        migrate(&c).unwrap();
        assert_eq!(versions(&c).unwrap(), (MIGRATIONS.len(), MIGRATIONS.len()));
        migrate(&c).unwrap();
        let read_only = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        read_only.execute_batch("BEGIN").unwrap();
        migrate(&read_only).unwrap();
        read_only.execute_batch("COMMIT").unwrap();
    }
}
