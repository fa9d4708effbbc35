//! Reconciliation: our journal's positions against what the chain holds for our funder and what
//! Polymarket's Data API reports, each difference with its likely cause. Pure, so every case is
//! pinned by a table; reading the three sources is `polycopy reconcile`'s job.

use std::fmt;

use crate::domain::{LOT, Shares, TokenId};

/// One token as the three sources see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// The token.
    pub token_id: TokenId,
    /// Our journal's position.
    pub journal: Shares,
    /// Our funder's balance on chain (Conditional Tokens plus PositionManager); `None`: unread.
    pub chain: Option<Shares>,
    /// The Data API's position; `None`: not listed or unread.
    pub data: Option<Shares>,
    /// Shares the journal booked from matches the chain has not settled yet (BUY positive).
    pub unsettled: Shares,
    /// The market resolved (the journal booked its payout, or the Data API says redeemable).
    pub resolved: bool,
    /// It resolved against us: its tokens pay nothing, so holding them is no difference to act on.
    pub worthless: bool,
    /// A match of ours is between the books and the chain (settled after it was taken out, not put
    /// back yet): the journal is about to move by itself.
    pub settling: bool,
    /// An order of ours for it is not resolved yet: its fill may be on chain and not in the
    /// journal, which books it once the order is resolved.
    pub in_flight: bool,
    /// The chain holds less, the journal has not seen the market resolve, and whether it resolved
    /// could not be read ([`Resolution::Unread`]): the tokens may have been redeemed.
    pub resolution_unread: bool,
    /// The node read is behind the block of our latest fill of it: its balance is not the one
    /// the journal settled to.
    pub node_behind: bool,
    /// The balance changed in blocks after the last one the journal has read (the daemon behind
    /// or stopped): what changed it (a late settlement of ours, a fill not booked yet) is still
    /// to be journaled, and booking the chain's figure now would count it twice.
    pub journal_behind: bool,
}

/// Whether a market resolved, as the chain was asked while reconciling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Conditional Tokens holds its result.
    Resolved,
    /// Open: no result, and Gamma does not show it closed or past its end.
    Open,
    /// Not known: the node did not answer, the journal knows no condition id for it, Gamma shows
    /// it closed while Conditional Tokens has no result (not reported yet), or it trades on the V3
    /// exchange, whose results Conditional Tokens never holds.
    Unread,
}

impl Resolution {
    /// What Conditional Tokens' answer `read` (`Some(Ok(has_result))`, `Some(Err)` for a failed
    /// read, `None` when it could not be asked) means for a market Gamma shows `closed`, of the
    /// V3 exchange when `v3`.
    #[must_use]
    pub const fn from_read(read: Option<Result<bool, ()>>, closed: bool, v3: bool) -> Self {
        match read {
            Some(Ok(true)) => Self::Resolved,
            Some(Ok(false)) if !closed && !v3 => Self::Open,
            Some(Ok(false) | Err(())) | None => Self::Unread,
        }
    }
}

/// Why the journal and the chain disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Less than one lot apart: rounding at the exchange.
    Dust,
    /// A match booked by us that has not settled on chain yet.
    UnsettledMatch,
    /// An order of ours is not resolved yet: the chain may hold its fill before the journal does.
    OrderInFlight,
    /// The market resolved and the chain still holds its tokens: redeem them.
    Unredeemed,
    /// The market resolved and the tokens are gone (redeemed); the journal settles it itself.
    Redeemed,
    /// The chain holds more: bought or received outside polycopy, or a fill not booked.
    BoughtOutside,
    /// The chain holds less: sold or sent outside polycopy.
    SoldOutside,
    /// The chain holds less and whether the market resolved could not be read: sold outside
    /// polycopy, or redeemed (by Polymarket's auto-redeemer or on the website).
    SoldOrRedeemed,
    /// The chain and the journal agree but the Data API does not (it lags the chain).
    DataApiLags,
    /// Reconcile's node has not seen the block of our latest fill of the token yet.
    NodeBehind,
    /// The balance moved after the last block the journal has read.
    JournalBehind,
    /// Neither the chain nor the Data API answered for this token.
    Unknown,
}

impl Cause {
    /// What the operator should do.
    #[must_use]
    pub const fn advice(self) -> &'static str {
        match self {
            Self::Dust => "dust left by rounding; `reconcile --apply` books it",
            Self::UnsettledMatch => "wait: the exchange settles matches on chain within minutes",
            Self::OrderInFlight => {
                "wait: an order of ours is still being resolved (the daemon looks it up and books its fill); run again after"
            }
            Self::Unredeemed => "the winnings are still tokens: redeem them (Polymarket's site or auto-redeem)",
            Self::Redeemed => "already redeemed; the journal books the payout when it reads the resolution",
            Self::BoughtOutside => "a trade outside polycopy (or a fill not booked); `reconcile --apply` books it",
            Self::SoldOutside => "sold or moved outside polycopy; `reconcile --apply` books it",
            Self::SoldOrRedeemed => {
                "sold outside polycopy or redeemed: whether its market resolved could not be read, so `--apply` books \
                 nothing (a redemption booked as a sale would lose its payout); run again once the chain answers or \
                 the result is reported"
            }
            Self::DataApiLags => "the Data API lags the chain; nothing to do unless it persists",
            Self::NodeBehind => {
                "reconcile's node has not seen the block of our latest fill of it yet (a load balancer's backend \
                 behind): nothing is booked; run again in a minute"
            }
            Self::JournalBehind => {
                "the balance moved on chain after the last block the journal has read (the daemon is behind or \
                 stopped): nothing is booked; run again once the daemon has caught up (`status` shows its lag)"
            }
            Self::Unknown => "the chain and the Data API did not answer; run again",
        }
    }

    /// True when `--apply` books the chain's figure into the journal.
    #[must_use]
    pub const fn applies(self) -> bool {
        matches!(self, Self::Dust | Self::BoughtOutside | Self::SoldOutside)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dust => "dust",
            Self::UnsettledMatch => "unsettled match",
            Self::OrderInFlight => "order in flight",
            Self::Unredeemed => "resolved, not redeemed",
            Self::Redeemed => "redeemed",
            Self::BoughtOutside => "bought outside polycopy",
            Self::SoldOutside => "sold outside polycopy",
            Self::SoldOrRedeemed => "sold outside or redeemed",
            Self::DataApiLags => "Data API lags",
            Self::NodeBehind => "node behind our fill",
            Self::JournalBehind => "journal behind the chain",
            Self::Unknown => "unknown",
        })
    }
}

/// One disagreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Difference {
    /// What was seen.
    pub seen: Sighting,
    /// The figure the journal should hold: the chain's, else the Data API's.
    pub truth: Option<Shares>,
    /// Truth less the journal.
    pub delta: Shares,
    /// The likely cause.
    pub cause: Cause,
}

impl Difference {
    /// Whether `--apply` books it: a cause it books, with a figure the chain gave. The Data API's
    /// figure (the chain unread) can lag a fresh trade, so it is shown, never booked.
    #[must_use]
    pub const fn bookable(&self) -> bool {
        self.cause.applies() && self.seen.chain.is_some() && self.settled()
    }

    /// No match or order of ours is between the books and the chain for this token. While one
    /// is, the chain's figure is not the one the journal will have once it settles, is put back or
    /// is booked, and booking it would count that trade twice.
    #[must_use]
    pub const fn settled(&self) -> bool {
        self.seen.unsettled.0 == 0 && !self.seen.settling && !self.seen.in_flight
    }
}

/// The differences among `sightings`, each with its likely cause; agreeing tokens are left out.
#[must_use]
pub fn compare(sightings: &[Sighting]) -> Vec<Difference> {
    sightings.iter().filter_map(classify).collect()
}

fn classify(s: &Sighting) -> Option<Difference> {
    let Some(truth) = s.chain.or(s.data) else {
        return (s.journal.0 != 0).then_some(Difference {
            seen: *s,
            truth: None,
            delta: Shares(0),
            cause: Cause::Unknown,
        });
    };
    // Losing tokens stay in the funder (redeeming them would cost gas for nothing); the journal
    // settled them at 0, which is what they are worth.
    if s.worthless && s.journal.0 == 0 {
        return None;
    }
    let delta = Shares(truth.0 - s.journal.0);
    let diff = |cause| Some(Difference { seen: *s, truth: Some(truth), delta, cause });
    if delta.0 == 0 {
        return match (s.chain, s.data) {
            (Some(c), Some(d)) if (c.0 - d.0).abs() >= LOT => diff(Cause::DataApiLags),
            _ => None,
        };
    }
    if s.node_behind && s.chain.is_some() {
        return diff(Cause::NodeBehind);
    }
    // Within a lot: an order counts as settled when its fills on chain fall short of the match by
    // less than one, so the journal and the chain can be a little apart besides the match.
    if s.unsettled.0 != 0 && (delta.0 + s.unsettled.0).abs() < LOT {
        return diff(Cause::UnsettledMatch);
    }
    if s.in_flight && delta.0.abs() >= LOT {
        return diff(Cause::OrderInFlight);
    }
    if s.journal_behind && s.chain.is_some() {
        return diff(Cause::JournalBehind);
    }
    if s.resolved && s.journal.0 == 0 && truth.0 > 0 {
        return diff(Cause::Unredeemed);
    }
    if s.resolved && truth.0 == 0 {
        return diff(Cause::Redeemed);
    }
    if delta.0.abs() < LOT {
        return diff(Cause::Dust);
    }
    if s.resolution_unread && delta.0 < 0 {
        return diff(Cause::SoldOrRedeemed);
    }
    diff(if delta.0 > 0 { Cause::BoughtOutside } else { Cause::SoldOutside })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    fn s(journal: i64, chain: Option<i64>, data: Option<i64>) -> Sighting {
        Sighting {
            token_id: TokenId::from(1u8),
            journal: Shares(journal),
            chain: chain.map(Shares),
            data: data.map(Shares),
            unsettled: Shares(0),
            resolved: false,
            worthless: false,
            settling: false,
            in_flight: false,
            resolution_unread: false,
            node_behind: false,
            journal_behind: false,
        }
    }

    #[test]
    fn a_balance_moved_after_the_journals_block_is_shown_never_booked() {
        let behind = |journal, chain| Sighting { journal_behind: true, ..s(journal, Some(chain), None) };
        // (sighting, cause)
        for (seen, cause) in [
            (behind(0, 100 * ONE), Some(Cause::JournalBehind)),
            (behind(100 * ONE, 0), Some(Cause::JournalBehind)),
            // Agreeing, it is no difference at all.
            (behind(10 * ONE, 10 * ONE), None),
        ] {
            let d = classify(&seen);
            assert_eq!(d.map(|d| d.cause), cause, "{seen:?}");
            assert!(d.is_none_or(|d| !d.bookable()), "{seen:?}");
        }
    }

    #[test]
    fn an_order_in_flight_is_waited_for_never_booked_as_an_outside_trade() {
        // (journal, chain, shown cause, bookable)
        for (journal, chain, cause, bookable) in [
            // A BUY of ours filled on chain whose answer the daemon has not had yet.
            (0, 10 * ONE, Cause::OrderInFlight, false),
            // A SELL likewise.
            (10 * ONE, 0, Cause::OrderInFlight, false),
            // Dust is dust, but not booked while an order is out.
            (10 * ONE, 10 * ONE + LOT / 2, Cause::Dust, false),
        ] {
            let seen = Sighting { in_flight: true, ..s(journal, Some(chain), None) };
            let d = compare(&[seen]);
            assert_eq!((d[0].cause, d[0].bookable()), (cause, bookable), "{journal} {chain}");
            assert!(!d[0].cause.applies() || cause == Cause::Dust);
        }
    }

    #[test]
    fn each_difference_gets_its_likely_cause() {
        let cases: Vec<(&str, Sighting, Option<(i64, Cause)>)> = vec![
            ("agree", s(10 * ONE, Some(10 * ONE), Some(10 * ONE)), None),
            ("agree, no Data API row", s(10 * ONE, Some(10 * ONE), None), None),
            ("both empty", s(0, Some(0), None), None),
            ("chain holds more", s(10 * ONE, Some(12 * ONE), Some(12 * ONE)), Some((2 * ONE, Cause::BoughtOutside))),
            ("chain holds less", s(10 * ONE, Some(4 * ONE), Some(4 * ONE)), Some((-6 * ONE, Cause::SoldOutside))),
            ("only on chain", s(0, Some(5 * ONE), Some(5 * ONE)), Some((5 * ONE, Cause::BoughtOutside))),
            ("half a lot", s(10 * ONE, Some(10 * ONE + LOT / 2), None), Some((LOT / 2, Cause::Dust))),
            ("Data API lags", s(10 * ONE, Some(10 * ONE), Some(7 * ONE)), Some((0, Cause::DataApiLags))),
            ("chain unread: Data API decides", s(10 * ONE, None, Some(8 * ONE)), Some((-2 * ONE, Cause::SoldOutside))),
            ("nothing answered", s(10 * ONE, None, None), Some((0, Cause::Unknown))),
            ("nothing answered, nothing held", s(0, None, None), None),
        ];
        for (name, sighting, want) in cases {
            let got = compare(&[sighting]).first().map(|d| (d.delta.0, d.cause));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn unsettled_and_resolved_markets_are_not_called_outside_trades() {
        let unsettled = Sighting { unsettled: Shares(10 * ONE), ..s(10 * ONE, Some(0), None) };
        assert_eq!(compare(&[unsettled])[0].cause, Cause::UnsettledMatch);
        // Dust left by earlier orders settled within a lot does not hide the match.
        let with_dust = Sighting { unsettled: Shares(10 * ONE), ..s(10 * ONE + LOT / 2, Some(0), None) };
        assert_eq!(compare(&[with_dust])[0].cause, Cause::UnsettledMatch);
        // A match pending beside a real outside trade: told apart, but never booked while the
        // match is open (the chain's figure would count it twice), nor while one is put back.
        let both = Sighting { unsettled: Shares(10 * ONE), ..s(20 * ONE, Some(4 * ONE), Some(4 * ONE)) };
        let d = compare(&[both])[0];
        assert_eq!(d.cause, Cause::SoldOutside);
        assert!(!d.bookable() && !d.settled());
        let putting_back = Sighting { settling: true, ..s(0, Some(10 * ONE), Some(10 * ONE)) };
        let d = compare(&[putting_back])[0];
        assert_eq!(d.cause, Cause::BoughtOutside);
        assert!(!d.bookable());
        let plain = compare(&[s(10 * ONE, Some(4 * ONE), Some(4 * ONE))])[0];
        assert!(plain.bookable());
        let unredeemed = Sighting { resolved: true, ..s(0, Some(10 * ONE), Some(10 * ONE)) };
        assert_eq!(compare(&[unredeemed])[0].cause, Cause::Unredeemed);
        let redeemed = Sighting { resolved: true, ..s(10 * ONE, Some(0), None) };
        assert_eq!(compare(&[redeemed])[0].cause, Cause::Redeemed);
        let lost = Sighting { resolved: true, worthless: true, ..s(0, Some(10 * ONE), Some(0)) };
        assert!(compare(&[lost]).is_empty(), "a lost market's tokens are worth nothing: no difference");
        assert!(Cause::SoldOutside.applies() && !Cause::Redeemed.applies() && !Cause::UnsettledMatch.applies());
    }

    #[test]
    fn a_node_behind_our_fill_is_not_believed() {
        let behind = |journal, chain| Sighting { node_behind: true, ..s(journal, Some(chain), None) };
        for (sighting, want) in [
            (behind(10 * ONE, 0), Some(Cause::NodeBehind)),
            (behind(0, 10 * ONE), Some(Cause::NodeBehind)),
            (behind(10 * ONE, 10 * ONE), None),
        ] {
            let d = compare(&[sighting]);
            assert_eq!(d.first().map(|d| d.cause), want, "{sighting:?}");
            assert!(d.iter().all(|d| !d.bookable()));
        }
    }

    #[test]
    fn tokens_gone_while_the_resolution_is_unread_are_never_booked_as_sold() {
        // (sighting, cause, bookable)
        let unread = |journal, chain| Sighting { resolution_unread: true, ..s(journal, Some(chain), None) };
        for (sighting, cause, bookable) in [
            // Redeemed by the auto-redeemer, or sold: booked as a sale at cost, a win would be lost.
            (unread(10 * ONE, 0), Cause::SoldOrRedeemed, false),
            (unread(10 * ONE, 4 * ONE), Cause::SoldOrRedeemed, false),
            // Dust is still dust.
            (unread(10 * ONE, 10 * ONE - LOT / 2), Cause::Dust, true),
            // Known resolved: redeemed, as before.
            (Sighting { resolved: true, ..unread(10 * ONE, 0) }, Cause::Redeemed, false),
            // Known open: a sale.
            (s(10 * ONE, Some(0), None), Cause::SoldOutside, true),
        ] {
            let d = compare(&[sighting])[0];
            assert_eq!((d.cause, d.bookable()), (cause, bookable), "{sighting:?}");
        }
    }

    #[test]
    fn a_resolution_is_unread_unless_the_chain_said_so_for_a_market_gamma_shows_open() {
        // (what Conditional Tokens answered, Gamma shows it closed, a V3 market, resolution)
        for (read, closed, v3, want) in [
            (Some(Ok(true)), false, false, Resolution::Resolved),
            (Some(Ok(true)), true, false, Resolution::Resolved),
            (Some(Ok(false)), false, false, Resolution::Open),
            // Closed without a result on Conditional Tokens: not reported yet.
            (Some(Ok(false)), true, false, Resolution::Unread),
            // V3: Conditional Tokens never has its result, whatever Gamma said last.
            (Some(Ok(false)), false, true, Resolution::Unread),
            (Some(Err(())), false, false, Resolution::Unread),
            (Some(Err(())), true, false, Resolution::Unread),
            // No condition id known, or the node never answered.
            (None, false, false, Resolution::Unread),
        ] {
            assert_eq!(Resolution::from_read(read, closed, v3), want, "{read:?} {closed} {v3}");
        }
    }

    #[test]
    fn only_a_figure_the_chain_gave_is_booked() {
        // (sighting, booked by --apply)
        for (sighting, bookable) in [
            (s(10 * ONE, Some(4 * ONE), Some(4 * ONE)), true),
            (s(10 * ONE, Some(4 * ONE), None), true),
            (s(10 * ONE, None, Some(4 * ONE)), false), // the chain unread: the Data API may lag
            (s(10 * ONE, Some(10 * ONE), Some(7 * ONE)), false), // Data API lags: nothing to book
        ] {
            assert_eq!(compare(&[sighting])[0].bookable(), bookable, "{sighting:?}");
        }
    }
}
