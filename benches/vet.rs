#![allow(missing_docs)] // criterion_main! generates an undocumented main
//! `polycopy vet`'s replay over 10,000 fills of one wallet (20 tokens, a fill every 30 s, buys and
//! sells): sizing, limits, pricing after the delay and the report. Run: `cargo bench --bench vet`.
//! Figures go to BENCHMARKS.md.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use polycopy::domain::{Price, Shares, Side, TokenId, Usdc};
use polycopy::risk::{CopyRules, Limits, SizingRule};
use polycopy::vet::{Trade, VetConfig, replay};
use rust_decimal::Decimal;

const ONE: i64 = 1_000_000;

fn history(n: usize) -> Vec<Trade> {
    (0..n)
        .map(|i| {
            let k = i as i64;
            Trade {
                at_ms: k * 30_000,
                side: if i % 3 == 2 { Side::Sell } else { Side::Buy },
                token_id: TokenId::from((i % 20) as u64),
                shares: Shares((50 + k % 50) * ONE),
                price: Price(300_000 + (k * 7_919) % 400_000),
                taker: i % 2 == 0,
            }
        })
        .collect()
}

fn cfg() -> VetConfig {
    VetConfig {
        rules: CopyRules::new(SizingRule::Multiplier(Decimal::new(1, 1))),
        limits: Limits {
            max_order_usdc: Usdc(1_000 * ONE),
            max_position_usdc: Usdc(50_000 * ONE),
            max_total_exposure_usdc: Usdc(1_000_000 * ONE),
            max_trades_per_hour: 10_000,
            daily_loss_limit_usdc: Usdc(1_000_000 * ONE),
        },
        delay_ms: 2_000,
        max_slippage_bps: 200,
        min_order_usdc: Usdc(ONE),
        round_trip_ms: 300_000,
        price_window_ms: 60_000,
        max_copy_delay_s: 0,
        day_starts_at_hour: 0,
    }
}

fn vet(c: &mut Criterion) {
    let trades = history(10_000);
    let cfg = cfg();
    let resolved = BTreeMap::new();
    let r = replay(&trades, &cfg, &resolved, &BTreeMap::new());
    eprintln!("10,000 fills: {} copies, {} refusal kinds", r.copies.len(), r.refusals.len());
    c.bench_function("vet replay of 10,000 fills", |b| {
        b.iter(|| replay(black_box(&trades), &cfg, &resolved, &BTreeMap::new()))
    });
}

criterion_group!(benches, vet);
criterion_main!(benches);
