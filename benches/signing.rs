#![allow(missing_docs)] // criterion_main! generates an undocumented main
//! The live order path's own cost: one V2 order signed through the SDK's `Client::sign` (EIP-712
//! hash and secp256k1 signature, NegRisk lookup answered from the SDK's cache) and captured as the
//! `StoredOrder` the journal keeps, plus the fill-derived salt. No network: the client is given its
//! credentials. Run: `cargo bench --bench signing`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::str::FromStr;

use alloy::primitives::{B256, U256};
use alloy::signers::Signer as _;
use alloy::signers::local::PrivateKeySigner;
use criterion::{Criterion, criterion_group, criterion_main};
use polycopy::clob::order::{StoredOrder, salt_for};
use polycopy::domain::FillId;
use polymarket_client_sdk_v2::auth::{Credentials, Uuid};
use polymarket_client_sdk_v2::clob::types::{OrderPayload, OrderType, OrderV2, SignableOrder};
use polymarket_client_sdk_v2::clob::{Client, Config};

fn signing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let signer = PrivateKeySigner::from_str("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
        .expect("key")
        .with_chain_id(Some(137));
    let creds = Credentials::new(Uuid::nil(), "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=".into(), "pass".into());
    let client = rt
        .block_on(
            Client::new("http://127.0.0.1:9", Config::default())
                .expect("client")
                .authentication_builder(&signer)
                .credentials(creds)
                .authenticate(),
        )
        .expect("authenticated without a network call");
    let token = U256::from(1001u64);
    client.set_neg_risk(token, false);
    let fill = FillId { tx_hash: B256::repeat_byte(7), order_hash: B256::repeat_byte(3), occurrence: 0 };
    let order = |salt: u64| {
        let mut o = OrderV2::default();
        o.salt = U256::from(salt);
        o.maker = signer.address();
        o.signer = signer.address();
        o.tokenId = token;
        o.makerAmount = U256::from(5_100_000u64);
        o.takerAmount = U256::from(10_000_000u64);
        o.timestamp = U256::from(1_700_000_000_000u64);
        SignableOrder::builder()
            .payload(OrderPayload::new(o, U256::ZERO))
            .order_type(OrderType::FAK)
            .post_only(false)
            .defer_exec(true)
            .build()
    };
    c.bench_function("sign one V2 order (SDK Client::sign) + StoredOrder capture", |b| {
        b.iter(|| {
            let signed = rt.block_on(client.sign(&signer, order(salt_for(black_box(&fill))))).expect("signed");
            black_box(StoredOrder::from_signed(&signed, false).expect("v2"))
        });
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
