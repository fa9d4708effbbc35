//! Our own fills on chain: our funder's fills of our orders, summed per order and transaction,
//! journaled before the checkpoint passes their block (settled, booked, or corrected), and each
//! change the journal made handed to the risk supervisor as plain data.

use tracing::info;

use super::{ChainFeed, ask};
use crate::actors::store as store_msgs;
use crate::chain::rpc::ChainError;
use crate::domain::TargetFill;
use crate::store::OwnSettlement;

/// What our fill on chain changed in the journal's books for one of our orders.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct OwnBooked {
    /// Our order id.
    pub order_id: String,
    /// What the journal did.
    pub change: OwnChange,
}

/// See [`OwnBooked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnChange {
    /// Booked an order the CLOB never confirmed, or the part a later fill added.
    Booked(crate::store::OwnBooking),
    /// Replaced a booked SELL's proceeds with what the chain says it got.
    Corrected(crate::store::Correction),
    /// Booked the fee our fill on chain paid, as realized P&L from when it was read.
    Fee {
        /// pUSD.
        fee: crate::domain::Usdc,
        /// When the journal booked it (unix ms): the day it counts on, as in the journal's sum.
        at_ms: i64,
    },
    /// A reorg forgot our fill and the fee it had booked: realized P&L gives it back (the fill,
    /// read again, books it again).
    FeeForgotten(crate::store::ForgottenFee),
}

/// Our funder's fill of one of our orders, seen on chain, summed over the logs of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnFill {
    /// Our order id (its hash, 0x-hex).
    pub order_id: String,
    /// Shares filled.
    pub shares: crate::domain::Shares,
    /// pUSD paid or received.
    pub usdc: crate::domain::Usdc,
    /// The fee the exchange charged, pUSD (docs/PROTOCOL.md §5, *Fees*).
    pub fee: crate::domain::Usdc,
    /// The transaction, 0x-hex.
    pub tx: String,
    /// The block it was read in (a reorg past it forgets it until it is read again).
    pub block: u64,
}

impl ChainFeed {
    /// Marks our own orders settled by these fills of our funder (never copied); an order whose
    /// outcome the CLOB never confirmed is booked from its fill. Both are journaled before the
    /// checkpoint moves past these blocks, so a crash cannot lose them.
    pub(super) async fn settle_own(&self, own: Vec<TargetFill>) -> Result<(), ChainError> {
        for f in sum_by_order(own) {
            let m = store_msgs::BookOwnFill {
                order_id: f.order_id.clone(),
                shares: f.shares,
                usdc: f.usdc,
                fee: f.fee,
                tx: f.tx.clone(),
                block: f.block,
            };
            let settled = ask(&self.writer, m).await?;
            if settled.fee.0 > 0 {
                info!(order = %f.order_id, tx = %f.tx, fee = %settled.fee, "our order paid a fee on chain: booked as realized P&L");
                if let Some(r) = &self.own_fills {
                    r.do_send(OwnBooked {
                        order_id: f.order_id.clone(),
                        change: OwnChange::Fee { fee: settled.fee, at_ms: settled.at_ms },
                    });
                }
            }
            match settled.settlement {
                OwnSettlement::Settled => info!(order = %f.order_id, tx = %f.tx, "our order settled on chain"),
                OwnSettlement::Booked(booking) => {
                    info!(order = %f.order_id, tx = %f.tx, "our order booked from its fill on chain");
                    if let Some(r) = &self.own_fills {
                        r.do_send(OwnBooked { order_id: f.order_id, change: OwnChange::Booked(booking) });
                    }
                }
                OwnSettlement::Corrected(c) => {
                    info!(order = %f.order_id, tx = %f.tx, booked = %c.booked, chain = %c.chain,
                        "our order settled on chain for other pUSD than booked: the chain's amount is booked");
                    if let Some(r) = &self.own_fills {
                        r.do_send(OwnBooked { order_id: f.order_id, change: OwnChange::Corrected(c) });
                    }
                }
                OwnSettlement::Nothing => {}
            }
        }
        Ok(())
    }
}

/// One [`OwnFill`] per (order, transaction): an order matched against several makers has a log each.
fn sum_by_order(own: Vec<TargetFill>) -> Vec<OwnFill> {
    let mut out: Vec<OwnFill> = Vec::new();
    for f in own {
        let (order_id, tx) = (format!("{:#x}", f.id.order_hash), format!("{:#x}", f.id.tx_hash));
        match out.iter_mut().find(|o| o.order_id == order_id && o.tx == tx) {
            Some(o) => {
                // Each log's amount fits an i64; a node's absurd ones summed may not, and an
                // overflow's panic here would stop the feed at the same range after every restart.
                o.shares = crate::domain::Shares(o.shares.0.saturating_add(f.shares.0));
                o.usdc = crate::domain::Usdc(o.usdc.0.saturating_add(f.usdc.0));
                o.fee = crate::domain::Usdc(o.fee.0.saturating_add(fee_paid(&f).0));
            }
            None => out.push(OwnFill {
                order_id,
                shares: f.shares,
                usdc: f.usdc,
                fee: fee_paid(&f),
                tx,
                block: f.block_number,
            }),
        }
    }
    out
}

/// The pUSD fee a log of ours charged. Under V2 and V3 the fee is collateral: on top of what a BUY
/// pays, out of what a SELL gets (docs/PROTOCOL.md §5, *Fees*). The legacy exchange took a BUY's
/// fee in shares; our orders are never signed for it, so such a fee books nothing.
fn fee_paid(f: &TargetFill) -> crate::domain::Usdc {
    match (f.version, f.side) {
        (crate::domain::ExchangeVersion::V1, crate::domain::Side::Buy) => crate::domain::Usdc::ZERO,
        _ => crate::domain::Usdc(f.fee.max(0)),
    }
}
