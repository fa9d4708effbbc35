//! Messages for the chain's side of the journal: block ranges and the checkpoint, reorgs, fills
//! seen before their block (pending transactions, the RTDS feed).

use actix::{Context, Handler, Message, ResponseFuture};
use alloy::primitives::B256;

use super::{Request, StoreActor};
use crate::domain::TargetFill;
use crate::store::{JournalOutcome, PendingFill, Store, StoreResult};

/// Journal the fills of a range and move the checkpoint (one transaction).
#[derive(Debug)]
pub struct JournalRange {
    /// The range's fills.
    pub fills: Vec<TargetFill>,
    /// The new checkpoint.
    pub to: (u64, B256),
    /// Blocks holding fills, for reorg detection.
    pub blocks: Vec<(u64, B256)>,
    /// The last (or only) part of the range read: sweeps the suspects it did not see again (see
    /// [`crate::store::Store::journal_blocks`]).
    pub sweep: bool,
}
store_handler!(JournalRange -> JournalOutcome, stamped by |o, at| stamp_journaled(&mut o.to_copy, at), |s, m| {
    s.journal_blocks(&m.fills, m.to, &m.blocks, m.sweep)
});

/// Marks fills whose journal write committed at `at`: their copies' latency is measured from then.
fn stamp_journaled(fills: &mut [PendingFill], at: std::time::Instant) {
    for p in fills {
        p.journaled = Some(at);
    }
}

/// Journal fills seen in a pending transaction (see [`crate::store::Store::journal_pending`]).
#[derive(Debug)]
pub struct JournalPending {
    /// The provisional fills.
    pub fills: Vec<TargetFill>,
    /// Which source saw them.
    pub source: &'static str,
    /// Wallets whose fills are copied at once (trigger `pending`).
    pub act_now: std::collections::HashSet<alloy::primitives::Address>,
    /// Fills whose amounts are only a bound (V1/V2 takers): never copied before their block.
    pub at_limit: std::collections::HashSet<crate::domain::FillId>,
}
store_handler!(JournalPending -> Vec<PendingFill>, stamped by |v, at| stamp_journaled(v, at), |s, m| {
    s.journal_pending(&m.fills, m.source, crate::store::ActOnSight { wallets: &m.act_now, at_limit: Some(&m.at_limit) })
});

/// Leave a sighting's refused copy to its block ([`crate::store::Store::leave_to_block`]): its
/// row, and whether only behind a BUY of its wallet and token left there (a SELL).
#[derive(Debug)]
pub struct LeaveToBlock(pub i64, pub bool);
store_handler!(LeaveToBlock -> crate::store::LeftToBlock, |s, m| s.leave_to_block(m.0, m.1));

/// Journal RTDS rows of targets as sightings (see [`crate::store::Store::record_rtds`]).
#[derive(Debug)]
pub struct RecordRtds(pub Vec<(crate::market::rtds::row::RtdsRow, i64)>);
store_handler!(RecordRtds -> (), |s, m| s.record_rtds(&m.0));

/// Orphan the provisional fills of a transaction that will not be mined.
#[derive(Debug)]
pub struct OrphanTx(pub B256);
store_handler!(OrphanTx -> Vec<crate::store::Orphan>, |s, m| s.orphan_tx(m.0));

/// Each detection source's lead over the mined log since a time (unix ms).
#[derive(Debug)]
pub struct GetDetectionStats(pub i64);
store_handler!(GetDetectionStats -> crate::store::DetectionStats, |s, m| s.detection_stats(m.0));

/// Transactions with provisional fills waiting for their block.
#[derive(Debug)]
pub struct ProvisionalTxs;
store_handler!(ProvisionalTxs -> Vec<B256>, |s, _m| s.provisional_txs());

/// Transactions whose provisional fills a resubmission took over ([`crate::store::Store::replacement_txs`]).
#[derive(Debug)]
pub struct ReplacementTxs;
store_handler!(ReplacementTxs -> Vec<(B256, B256)>, |s, _m| s.replacement_txs());

/// Rewind to a reorg's common ancestor.
#[derive(Debug)]
pub struct Rewind(pub (u64, B256));
store_handler!(Rewind -> crate::store::Rewound, |s, m| s.rewind(m.0));

/// Recently processed block hashes, newest first.
#[derive(Debug)]
pub struct RecentBlocks;
store_handler!(RecentBlocks -> Vec<(u64, B256)>, |s, _m| s.recent_blocks());

/// Forgets our own fills journaled above the checkpoint (their range's fills were not): they are
/// read again with that range, from the chain as it is then. Returns how many, and the fees they
/// had booked.
#[derive(Debug)]
pub struct ForgetOwnFillsAboveCheckpoint;
store_handler!(ForgetOwnFillsAboveCheckpoint -> (usize, Vec<crate::store::ForgottenFee>), |s, _m| s
    .forget_own_fills_above_checkpoint_paying());

/// The stored checkpoint.
#[derive(Debug)]
pub struct GetCheckpoint;
store_handler!(GetCheckpoint -> Option<(u64, B256)>, |s, _m| s.checkpoint());
