//! The replay's cases.

use super::*;
use crate::domain::ONE;
use crate::risk::SizingRule;

const MIN: i64 = 60_000;
const H: i64 = 60 * MIN;

fn t(at_ms: i64, side: Side, token: u64, shares: i64, price: i64) -> Trade {
    Trade {
        at_ms,
        side,
        token_id: TokenId::from(token),
        shares: Shares(shares * ONE),
        price: Price(price),
        taker: true,
    }
}

/// As live: a copy made later than `max_copy_delay_s` after the fill is refused as stale, and
/// past the day's loss limit buys wait for the next trading day (exits still go).
#[test]
fn stale_copies_and_buys_past_the_days_loss_limit_are_refused_as_live() {
    let stale = VetConfig { max_copy_delay_s: 5, ..cfg(10_000) };
    let r = replay(&[t(0, Side::Buy, 1, 100, 500_000)], &stale, &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.refusals.get("stale"), Some(&1), "{:?}", r.refusals);
    let mut tight = cfg(1_000);
    tight.limits.daily_loss_limit_usdc = Usdc(ONE);
    let day = 86_400_000;
    let trades = [
        t(0, Side::Buy, 1, 100, 500_000),
        // Sold at 0.30: 10 shares copied lose about 2 USDC, past the 1 USDC limit.
        t(60_000, Side::Sell, 1, 100, 300_000),
        t(120_000, Side::Buy, 2, 100, 500_000),
        // The next day the limit starts again.
        t(day + 60_000, Side::Buy, 3, 100, 500_000),
    ];
    let r = replay(&trades, &tight, &BTreeMap::new(), &BTreeMap::new());
    let copied: Vec<(Side, u64)> = r.copies.iter().map(|c| (c.side, u64::try_from(c.token_id).unwrap())).collect();
    assert_eq!(copied, [(Side::Buy, 1), (Side::Sell, 1), (Side::Buy, 3)], "{:?}", r.refusals);
    assert_eq!(r.refusals.get(crate::risk::reason::DAILY_LOSS_LIMIT), Some(&1), "{:?}", r.refusals);
}

#[test]
fn a_resting_orders_next_fill_does_not_price_a_copy() {
    // A market maker's bid at 0.40 fills in two parts a few seconds apart: the second part is
    // its own limit, not what a marketable copy would have paid. Priced at the cap instead.
    let maker = |at_ms, shares| Trade { taker: false, ..t(at_ms, Side::Buy, 6, shares, 400_000) };
    let r = replay(&[maker(0, 100), maker(3_000, 100)], &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.copies[0].model, PriceModel::SlippageCap);
    assert_eq!(r.copies[0].price, Price(408_000));
}

fn cfg(delay_ms: i64) -> VetConfig {
    VetConfig {
        rules: CopyRules::new(SizingRule::Multiplier(Decimal::new(1, 1))),
        limits: Limits {
            max_order_usdc: Usdc(1_000 * ONE),
            max_position_usdc: Usdc(5_000 * ONE),
            max_total_exposure_usdc: Usdc(10_000 * ONE),
            max_trades_per_hour: 1_000,
            daily_loss_limit_usdc: Usdc(1_000 * ONE),
        },
        delay_ms,
        max_slippage_bps: 200,
        min_order_usdc: Usdc(ONE),
        round_trip_ms: 5 * MIN,
        price_window_ms: MIN,
        max_copy_delay_s: 0,
        day_starts_at_hour: 0,
    }
}

/// A time an API or node got absurdly wrong (as far in the future as a time can be) is
/// replayed, never a panic on overflow (release builds check arithmetic).
#[test]
fn an_absurd_time_is_replayed_without_overflow() {
    let trades = [t(0, Side::Buy, 1, 100, 400_000), t(i64::MAX, Side::Sell, 1, 100, 600_000)];
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.copies.len(), 2);
    // Two sales held that long: the median of two huge holds.
    let trades = [
        t(0, Side::Buy, 1, 100, 400_000),
        t(1, Side::Buy, 2, 100, 400_000),
        t(i64::MAX - 1, Side::Sell, 1, 100, 600_000),
        t(i64::MAX, Side::Sell, 2, 100, 600_000),
    ];
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.copies.len(), 4);
    assert!(r.median_hold_ms.is_some_and(|h| h > i64::MAX / 2), "{:?}", r.median_hold_ms);
}

#[test]
fn a_slow_profitable_wallet_stays_profitable_when_copied() {
    // Buys 100 at 0.40, sells them hours later at 0.60. We copy 10 each; no next fill after
    // the delay: priced at the slippage cap (0.408 and 0.588).
    let trades = [t(0, Side::Buy, 1, 100, 400_000), t(5 * H, Side::Sell, 1, 100, 600_000)];
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.copies.len(), 2);
    assert!(r.copies.iter().all(|c| c.model == PriceModel::SlippageCap));
    assert_eq!((r.copies[0].price, r.copies[1].price), (Price(408_000), Price(588_000)));
    // 10 × 0.588 − 10 × 0.408
    assert_eq!(r.realized, Usdc(1_800_000));
    assert_eq!(r.invested, Usdc(4_080_000));
    assert_eq!(r.win_rate_pct, Some(100));
    assert_eq!(r.median_hold_ms, Some(5 * H));
    assert!(!r.high_frequency);
    assert_eq!(r.concentration_pct, 100);
}

#[test]
fn a_sale_of_part_of_what_the_wallet_held_before_the_period_sells_that_part_of_ours() {
    // It held 300 before the period, buys 100 at 0.40 and sells 100 at 0.60: a quarter of its
    // 400. We bought 10 (at the cap, 0.408) and sell a quarter, 2.5, at 0.588; 7.5 stay open.
    let trades = [t(0, Side::Buy, 7, 100, 400_000), t(5 * H, Side::Sell, 7, 100, 600_000)];
    let held: BTreeMap<TokenId, Shares> = [(TokenId::from(7u8), Shares(300 * ONE))].into();
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &held);
    assert_eq!(r.copies[1].shares, Shares(2_500_000));
    assert_eq!(r.realized, Usdc(450_000));
    assert_eq!(r.open_pnl, Usdc(4_500_000 - 3_060_000));
    // Not known: the period alone says it sold all it had, and all of ours is sold.
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!((r.copies[1].shares, r.realized), (Shares(10 * ONE), Usdc(1_800_000)));
}

#[test]
fn an_edge_that_lives_in_one_block_disappears_with_the_delay() {
    // The wallet buys at 0.40; a block later the market is at 0.404 (its own next buy), and it
    // sells at 0.41 at once: +1.06 for it. Copied 2 s late we buy 10 at 0.404 (its second buy,
    // 1 share, is under the 1 USDC minimum) and sell them at the cap under 0.41 (0.4018): a loss.
    let trades =
        [t(0, Side::Buy, 2, 100, 400_000), t(2_000, Side::Buy, 2, 10, 404_000), t(2_500, Side::Sell, 2, 110, 410_000)];
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    let models: Vec<_> = r.copies.iter().map(|c| (c.side, c.price, c.model)).collect();
    assert_eq!(
        models,
        vec![(Side::Buy, Price(404_000), PriceModel::NextFill), (Side::Sell, Price(401_800), PriceModel::SlippageCap),]
    );
    assert_eq!(r.refusals.get("below_minimum"), Some(&1));
    assert_eq!(r.realized, Usdc(4_018_000 - 4_040_000));
    assert!(r.realized.0 < 0 && r.win_rate_pct == Some(0));
}

#[test]
fn median_is_the_middle_or_the_mean_of_the_two_middles() {
    let cases: [(&[i64], Option<i64>); 4] = [(&[], None), (&[5], Some(5)), (&[1, 3], Some(2)), (&[1, 2, 9], Some(2))];
    for (v, want) in cases {
        assert_eq!(median(v), want, "{v:?}");
    }
}

#[test]
fn a_quick_round_tripper_is_flagged() {
    let mut trades = Vec::new();
    for k in 0..6 {
        trades.push(t(k * 10 * MIN, Side::Buy, 3, 50, 500_000));
        trades.push(t(k * 10 * MIN + MIN, Side::Sell, 3, 50, 501_000));
    }
    let r = replay(&trades, &cfg(2_000), &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(r.round_trip_pct, 100);
    assert!(r.high_frequency);
    // 12 fills in 51 minutes: counted over at least an hour.
    assert_eq!(r.trades_per_hour, Decimal::from(12));
}

#[test]
fn a_price_beyond_the_cap_is_not_copied_and_resolutions_settle_what_is_open() {
    // The next fill is 10 % higher than the buy: our limit (2 %) would not have filled.
    let trades =
        [t(0, Side::Buy, 4, 100, 400_000), t(3_000, Side::Buy, 4, 100, 440_000), t(4_000, Side::Buy, 5, 100, 300_000)];
    let resolved: BTreeMap<TokenId, Resolution> = [
        (TokenId::from(4u8), Resolution::at_period_end(Price(ONE))),
        (TokenId::from(5u8), Resolution::at_period_end(Price(0))),
    ]
    .into();
    let r = replay(&trades, &cfg(2_000), &resolved, &BTreeMap::new());
    assert_eq!(r.refusals.get("price_moved"), Some(&1));
    // Copies: 10 of token 4 at the cap over 0.44 (0.4488: no later fill) → 4.488, settles at 10;
    // 10 of token 5 at 0.306 → 3.06, settles at 0.
    assert_eq!(r.realized, Usdc(10 * ONE - 4_488_000 - 3_060_000));
    assert_eq!(r.win_rate_pct, Some(50));
    assert_eq!(r.max_drawdown, Usdc(3_060_000));
}

/// Resolutions are counted in token order: the same history gives the same drawdown each run
/// (the book's own order is a hash map's, another for each book).
#[test]
fn the_same_history_vets_to_the_same_drawdown_every_run() {
    let trades = [t(0, Side::Buy, 7, 100, 300_000), t(1, Side::Buy, 8, 100, 300_000), t(2, Side::Buy, 9, 100, 300_000)];
    let resolved: BTreeMap<TokenId, Resolution> =
        [(7u8, 0), (8, ONE), (9, 0)].map(|(t, p)| (TokenId::from(t), Resolution::at_period_end(Price(p)))).into();
    let drawdowns: std::collections::BTreeSet<Usdc> =
        (0..20).map(|_| replay(&trades, &cfg(2_000), &resolved, &BTreeMap::new()).max_drawdown).collect();
    // Token 7 loses 3.06 first; token 8's gain then covers token 9's loss.
    assert_eq!(drawdowns.into_iter().collect::<Vec<_>>(), [Usdc(3_060_000)]);
}

/// A trader who holds short markets to their resolution: each market settles when it ends, as
/// the daemon frees a resolved position's exposure, so the exposure cap does not refuse every
/// buy after the first few markets; and a loss at a resolution counts toward that day's loss.
#[test]
fn resolved_markets_free_their_exposure_when_they_end_not_at_the_periods_end() {
    // Room for two open copies of 5 (10 shares at 0.5): 15-minute markets, one after another.
    let capped = VetConfig {
        limits: Limits {
            max_total_exposure_usdc: Usdc(10 * ONE),
            daily_loss_limit_usdc: Usdc(12 * ONE),
            ..cfg(0).limits
        },
        ..cfg(0)
    };
    let trades: Vec<Trade> = (0..6).map(|k| t(k * 15 * MIN, Side::Buy, 10 + k as u64, 100, 500_000)).collect();
    // Each ends 10 minutes after its buy; the odd ones pay 1, the even ones 0.
    let resolved: BTreeMap<TokenId, Resolution> = (0..6)
        .map(|k| {
            let payout = Price(if k % 2 == 1 { ONE } else { 0 });
            (TokenId::from(10 + k as u64), Resolution { payout, ended_ms: Some(k * 15 * MIN + 10 * MIN) })
        })
        .collect();
    let r = replay(&trades, &capped, &resolved, &BTreeMap::new());
    assert_eq!(r.refusals, BTreeMap::new(), "every copy made: each market freed its exposure before the next");
    assert_eq!(r.copies.len(), 6);
    // 10 shares at 0.5 each (the 2 % cap over 0.5: 0.51): three pay 10, three pay nothing.
    assert_eq!(r.realized, Usdc(3 * 10 * ONE - 6 * 5_100_000));
    assert_eq!(r.win_rate_pct, Some(50));
    // Settled in time order, never at the end: from its peak at 0 the line falls to -5.5 after the
    // third loss (-5.1 + 4.9 - 5.1 + 4.9 - 5.1), never to the -15.3 of the three losses together.
    assert_eq!(r.max_drawdown, Usdc(5_500_000));

    // Their ends unknown: settled at the period's end, so the cap refuses after the first.
    let unknown: BTreeMap<TokenId, Resolution> =
        resolved.iter().map(|(t, r)| (*t, Resolution::at_period_end(r.payout))).collect();
    let r = replay(&trades, &capped, &unknown, &BTreeMap::new());
    assert_eq!(r.copies.len(), 1, "{:?}", r.refusals);

    // Losing markets one after another count toward the day's loss: past 12, buys wait.
    let losing: BTreeMap<TokenId, Resolution> =
        resolved.iter().map(|(t, r)| (*t, Resolution { payout: Price(0), ..*r })).collect();
    let r = replay(&trades, &capped, &losing, &BTreeMap::new());
    assert_eq!(r.copies.len(), 3, "two losses of 5.1, then a third (10.2 < 12), then refused");
    assert_eq!(r.refusals.get("daily_loss_limit"), Some(&3), "{:?}", r.refusals);
}
