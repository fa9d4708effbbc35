#![allow(missing_docs)] // criterion_main! generates an undocumented main
//! The pending path's own cost per settlement transaction: decoding a V2 `matchOrders` with one
//! taker and three makers (every order's EIP-712 hash computed), and journaling the target's
//! provisional fill in a real SQLite file. Run: `cargo bench --bench pending`; figures go to
//! BENCHMARKS.md.

use std::collections::HashSet;
use std::hint::black_box;

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::sol_types::SolCall as _;
use criterion::{Criterion, criterion_group, criterion_main};
use polycopy::chain::abi::v2;
use polycopy::chain::pending::{Sighting, decode_pending};

const EXCHANGE: Address = address!("E111180000d2663C0091e4f400237545B87B996B");
const TARGET: Address = address!("1111111111111111111111111111111111111111");

fn order(maker: Address, side: u8, salt: u64) -> v2::SignedOrder {
    v2::SignedOrder {
        salt: U256::from(salt),
        maker,
        signer: maker,
        tokenId: U256::from(424_242u64),
        makerAmount: U256::from(40_000_000u64),
        takerAmount: U256::from(100_000_000u64),
        side,
        signatureType: 2,
        timestamp: U256::from(1_764_000_000_000u64),
        metadata: B256::ZERO,
        builder: B256::ZERO,
        signature: Bytes::from(vec![7u8; 65]),
    }
}

fn settlement() -> Vec<u8> {
    let makers: Vec<v2::SignedOrder> = (0..3u8)
        .map(|i| order(if i == 1 { TARGET } else { Address::with_last_byte(i + 10) }, 0, u64::from(i)))
        .collect();
    v2::matchOrders_0Call {
        conditionId: B256::repeat_byte(3),
        takerOrder: order(Address::with_last_byte(9), 1, 99),
        makerOrders: makers,
        takerFillAmount: U256::from(300_000_000u64),
        makerFillAmounts: vec![U256::from(40_000_000u64); 3],
        takerFeeAmount: U256::ZERO,
        makerFeeAmounts: vec![U256::ZERO; 3],
    }
    .abi_encode()
}

fn pending(c: &mut Criterion) {
    let input = settlement();
    let watched: HashSet<Address> = [TARGET].into();
    let s = Sighting { tx_hash: B256::repeat_byte(1), exchange: EXCHANGE, chain_id: 137, seen_s: 1_764_000_000 };
    assert_eq!(decode_pending(&s, &input, &watched).unwrap().fills.len(), 1);
    c.bench_function("decode a pending matchOrders (1 taker, 3 makers)", |b| {
        b.iter(|| decode_pending(black_box(&s), black_box(&input), &watched))
    });

    let dir = std::env::temp_dir().join(format!("polycopy-bench-pending-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut store = polycopy::store::Store::open(&dir.join("journal.db")).unwrap();
    let act_now: HashSet<Address> = [TARGET].into();
    let mut n: u64 = 0;
    c.bench_function("journal one provisional fill (real SQLite file)", |b| {
        b.iter(|| {
            n += 1;
            let s = Sighting { tx_hash: B256::from(U256::from(n)), ..s };
            let decoded = decode_pending(&s, &input, &watched).unwrap();
            let act = polycopy::store::ActOnSight { wallets: &act_now, at_limit: Some(&decoded.at_limit) };
            store.journal_pending(&decoded.fills, "pending", act).unwrap()
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, pending);
criterion_main!(benches);
