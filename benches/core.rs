#![allow(missing_docs)] // criterion_main! generates an undocumented main
//! Hot paths of one copy, measured: decoding a log, sizing plus every limit check, and the journal
//! writes of one fill's life (fill + checkpoint, intent, execution) on a real SQLite file in WAL
//! mode. Run: `cargo bench --bench core`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use criterion::{Criterion, criterion_group, criterion_main};
use polycopy::chain::events::{ORDER_FILLED_V1, ORDER_FILLED_V2, RawLog, address_topic, decode_order_filled};
use polycopy::domain::{ExecMode, Execution, FillId, OrderIntent, Price, Shares, Side, Usdc};
use polycopy::risk::sizing::SizingContext;
use polycopy::risk::{Book, CopyRules, Limits, SizingRule, WalletActivity, check_intent, size_copy};
use polycopy::store::Store;
use rust_decimal::Decimal;

const ONE: i64 = 1_000_000;

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| U256::from(*x).to_be_bytes::<32>()).collect()
}

fn raw<'a>(topics: &'a [B256], data: &'a [u8]) -> RawLog<'a> {
    RawLog {
        address: Address::repeat_byte(0xe1),
        topics,
        data,
        tx_hash: B256::repeat_byte(9),
        block_number: 80_000_000,
        block_hash: B256::repeat_byte(8),
        log_index: 3,
        block_ts: 1_700_000_000,
    }
}

fn decoding(c: &mut Criterion) {
    let maker = address_topic(&Address::repeat_byte(0xaa));
    let taker = address_topic(&Address::repeat_byte(0xbb));
    let v1_topics = [ORDER_FILLED_V1, B256::repeat_byte(1), maker, taker];
    let v2_topics = [ORDER_FILLED_V2, B256::repeat_byte(1), maker, taker];
    let v1 = words(&[0, 12_345, 47 * ONE as u64, 100 * ONE as u64, 0]);
    let v2 = words(&[0, 12_345, 47 * ONE as u64, 100 * ONE as u64, 0, 0, 0]);
    c.bench_function("decode V1 OrderFilled", |b| b.iter(|| decode_order_filled(black_box(&raw(&v1_topics, &v1)))));
    c.bench_function("decode V2 OrderFilled", |b| b.iter(|| decode_order_filled(black_box(&raw(&v2_topics, &v2)))));
}

fn sizing_and_limits(c: &mut Criterion) {
    let maker = address_topic(&Address::repeat_byte(0xaa));
    let topics = [ORDER_FILLED_V2, B256::repeat_byte(1), maker, B256::ZERO];
    let data = words(&[0, 12_345, 47 * ONE as u64, 100 * ONE as u64, 0, 0, 0]);
    let fill = decode_order_filled(&raw(&topics, &data)).unwrap();
    let mut rules = CopyRules::new(SizingRule::Multiplier(Decimal::from_str("0.1").unwrap()));
    rules.max_order_usdc = Some(Usdc(50 * ONE));
    let limits = Limits {
        max_order_usdc: Usdc(100 * ONE),
        max_position_usdc: Usdc(500 * ONE),
        max_total_exposure_usdc: Usdc(100_000 * ONE),
        max_trades_per_hour: 60,
        daily_loss_limit_usdc: Usdc(200 * ONE),
    };
    let mut book = Book::default();
    for t in 0..50u64 {
        book.apply(&Execution {
            fill_row: 0,
            side: Side::Buy,
            token_id: U256::from(t),
            shares: Shares(10 * ONE),
            price: Price(500_000),
            usdc: Usdc(5 * ONE),
            mode: ExecMode::Paper,
            at_ms: 0,
        });
    }
    let ctx = SizingContext {
        our_position: Shares::ZERO,
        target_balance_before: None,
        max_slippage_bps: 200,
        min_order_usdc: Usdc(ONE),
        market_min_shares: Shares(5 * ONE),
        max_copy_delay_s: 300,
        now_ms: 1_700_000_001_000,
    };
    let activity = WalletActivity { trades_last_hour: 10, ..WalletActivity::default() };
    c.bench_function("size + check limits (50 open positions)", |b| {
        b.iter(|| {
            let sized = size_copy(black_box(&fill), &rules, &ctx).unwrap();
            let intent = OrderIntent::for_fill(&fill, 1, sized.shares, sized.limit_price);
            check_intent(&intent, &limits, &book, Usdc::ZERO, &activity, ctx.now_ms).unwrap();
        });
    });
}

fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("bench.db")).unwrap();
    let maker = address_topic(&Address::repeat_byte(0xaa));
    let data = words(&[0, 12_345, 47 * ONE as u64, 100 * ONE as u64, 0, 0, 0]);
    let mut n: u64 = 0;
    c.bench_function("journal one fill: fill+checkpoint, intent, execution (WAL, synchronous=NORMAL)", |b| {
        b.iter(|| {
            n += 1;
            let order = B256::from(U256::from(n));
            let topics = [ORDER_FILLED_V2, order, maker, B256::ZERO];
            let mut fill = decode_order_filled(&raw(&topics, &data)).unwrap();
            fill.id = FillId { tx_hash: order, order_hash: order, occurrence: 0 };
            fill.block_number = 80_000_000 + n;
            let out = store
                .journal_range(std::slice::from_ref(&fill), (fill.block_number, B256::repeat_byte(1)), &[])
                .unwrap();
            let row = out.to_copy[0].row;
            let intent = OrderIntent::for_fill(&fill, row, Shares(10 * ONE), Price(480_000));
            assert!(store.record_intent(&intent).unwrap());
            let exec = paper_buy(row, &fill);
            assert!(store.record_execution(&exec, &fill.wallet).unwrap().is_some());
        });
    });
}

/// Our paper BUY of 10 shares at 0.47 copying `fill` (journaled at `row`).
fn paper_buy(row: i64, fill: &polycopy::domain::TargetFill) -> Execution {
    Execution {
        fill_row: row,
        side: Side::Buy,
        token_id: fill.token_id,
        shares: Shares(10 * ONE),
        price: Price(470_000),
        usdc: Usdc(4_700_000),
        mode: ExecMode::Paper,
        at_ms: 0,
    }
}

/// Ten new fills of one wallet, two blocks' worth (`n` numbers them across calls).
fn ten_fills(n: &mut u64) -> Vec<polycopy::domain::TargetFill> {
    let maker = address_topic(&Address::repeat_byte(0xaa));
    let data = words(&[0, 12_345, 47 * ONE as u64, 100 * ONE as u64, 0, 0, 0]);
    (0..10)
        .map(|_| {
            *n += 1;
            let order = B256::from(U256::from(*n));
            let mut fill = decode_order_filled(&raw(&[ORDER_FILLED_V2, order, maker, B256::ZERO], &data)).unwrap();
            fill.id = FillId { tx_hash: order, order_hash: order, occurrence: 0 };
            fill.block_number = 80_000_000 + *n / 5;
            fill
        })
        .collect()
}

/// What a paper copy waits for first: one poll's block range of ten fills journaled in one
/// transaction (the load harness's steady rate brings ten fills a poll).
fn journal_range_of_ten(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("bench.db")).unwrap();
    let mut n: u64 = 0;
    c.bench_function("journal a block range of 10 fills (one transaction)", |b| {
        b.iter(|| {
            let fills = ten_fills(&mut n);
            let to = (fills[9].block_number, B256::repeat_byte(1));
            assert_eq!(store.journal_range(&fills, to, &[]).unwrap().to_copy.len(), 10);
        });
    });
}

/// What a steady poll's ten copies cost the journal's writer: ten paper copies (intent and
/// execution, each in its own savepoint) on the real writer thread, committed in one batch, timed
/// from the first statement to the end of the commit. Their range is journaled first, untimed.
fn ten_paper_copies(c: &mut Criterion) {
    use polycopy::store::batch::{Job, spawn_writer};
    use std::sync::mpsc::channel;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(Store::open(&dir.path().join("bench.db")).unwrap()).unwrap();
    let mut n: u64 = 0;
    c.bench_function("ten paper copies through the journal's writer (one batch)", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let fills = ten_fills(&mut n);
                let (rows_tx, rows_rx) = channel();
                let range = fills.clone();
                let job: Job = Box::new(move |s: &mut Store| {
                    let to = (range[9].block_number, B256::repeat_byte(1));
                    let rows: Vec<i64> =
                        s.journal_range(&range, to, &[]).unwrap().to_copy.iter().map(|f| f.row).collect();
                    Box::new(move |_: Option<&str>, _| rows_tx.send(rows).unwrap())
                });
                writer.send(job).unwrap();
                let rows = rows_rx.recv().unwrap();
                // One job for the ten, so that they share one batch as a poll's copies do, and the
                // time is taken on the writer: the statements and the commit, not the hand-overs.
                let (done_tx, done_rx) = channel();
                let job: Job = Box::new(move |s: &mut Store| {
                    let start = Instant::now();
                    for (fill, row) in fills.into_iter().zip(rows) {
                        let intent = OrderIntent::for_fill(&fill, row, Shares(10 * ONE), Price(480_000));
                        let exec = paper_buy(row, &fill);
                        let booked =
                            s.atomically(|s| s.record_paper_copy(&intent, &exec, &fill.wallet, true, true)).unwrap();
                        assert!(matches!(booked, polycopy::store::PaperBooking::Booked(Some(_))));
                    }
                    Box::new(move |_: Option<&str>, committed: Instant| done_tx.send(committed - start).unwrap())
                });
                writer.send(job).unwrap();
                spent += done_rx.recv().unwrap();
            }
            spent
        });
    });
}

criterion_group!(benches, decoding, sizing_and_limits, journal, journal_range_of_ten, ten_paper_copies);
criterion_main!(benches);
