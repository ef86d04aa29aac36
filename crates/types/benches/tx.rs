//! Per-transaction CPU costs on one core: decoding (which includes ed25519 point
//! decompression of the keys it carries), hashing, and signature verification one at a time and
//! in batches. `cargo bench -p consort-types` prints them; compare within one run.

#![allow(missing_docs)]

use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{AccountId, Amount, Call, SignedTx, Tx};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn signed(n: u64) -> Vec<SignedTx> {
    (0..n)
        .map(|i| {
            let key = ed25519::PrivateKey::from_seed(i);
            Tx {
                chain_id: 1,
                sender: AccountId::new(key.public_key()),
                nonce: i,
                call: Call::Transfer {
                    to: AccountId::new(ed25519::PrivateKey::from_seed(i + 1).public_key()),
                    amount: Amount::new(1),
                },
            }
            .sign(&key)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let txs = signed(1024);
    let encoded: Vec<Vec<u8>> = txs.iter().map(|t| t.encode().to_vec()).collect();
    let mut group = c.benchmark_group("tx");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % encoded.len();
            black_box(SignedTx::decode_untrusted(&encoded[i]).is_ok())
        });
    });
    group.bench_function("verify_one", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % txs.len();
            black_box(txs[i].verify_signature())
        });
    });
    group.throughput(Throughput::Elements(txs.len() as u64));
    group.bench_function("verify_batch_1024", |b| {
        let refs: Vec<&SignedTx> = txs.iter().collect();
        let mut rng = rand::rng();
        b.iter(|| black_box(consort_types::tx::verify_batch(&refs, &mut rng)));
    });
    // With the senders' keys decoded beforehand (as admission keeps them), by batch size:
    // small batches use a different multiscalar method than large ones.
    for size in [8usize, 16, 32, 64, 128, 256, 1024] {
        group.throughput(Throughput::Elements(size as u64));
        let refs: Vec<&SignedTx> = txs.iter().take(size).collect();
        let keys: Vec<_> = refs
            .iter()
            .map(|t| t.tx.sender.public_key().expect("a valid key"))
            .collect();
        group.bench_function(format!("verify_batch_with_keys_{size}"), |b| {
            let mut rng = rand::rng();
            b.iter(|| {
                black_box(consort_types::tx::verify_batch_with_keys(
                    &refs, &keys, &mut rng,
                ))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
