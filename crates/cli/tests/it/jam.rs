//! Transactions that can never run do not jam the chain: four `consort node` processes, a key
//! that skips its next nonce posting megabytes of large transactions to every node, another
//! posting many small stuck ones; an honest transfer still finalizes within a few blocks, the
//! chain keeps its idle pace while only stuck transactions wait, the pools shed them, and a
//! transaction that fails at execution is included with its code and uses its nonce.

use super::{get, height_of, http, key_id, start_devnet, wait_for};
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{
    AccountId, Amount, Call, SignedTx, Tx,
    codec_util::{Blob, List},
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The devnet's empty-block interval in this test (ms): an idle chain builds ~1 block/s.
const IDLE_INTERVAL_MS: u64 = 1_000;

fn sign(key: &ed25519::PrivateKey, nonce: u64, call: Call) -> SignedTx {
    Tx {
        chain_id: 1,
        sender: AccountId::new(key.public_key()),
        nonce,
        call,
    }
    .sign(key)
}

fn post_batch(api: &str, txs: &[SignedTx]) -> Value {
    let hex: Vec<String> = txs.iter().map(|t| hex::encode(t.encode())).collect();
    http()
        .post(format!("{api}/v1/txs/batch"))
        .timeout(Duration::from_secs(30))
        .json(&json!({ "txs": hex }))
        .send()
        .expect("post batch")
        .json()
        .expect("json")
}

fn mempool_size(api: &str) -> Option<u64> {
    get(&format!("{api}/v1/status")).and_then(|s| s["mempool_size"].as_u64())
}

fn nonce_of(api: &str, id: &str) -> u64 {
    get(&format!("{api}/v1/accounts/{id}"))
        .and_then(|a| a["nonce"].as_u64())
        .unwrap_or(0)
}

#[test]
fn transactions_that_can_never_run_do_not_jam_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = start_devnet(dir.path(), 4, IDLE_INTERVAL_MS);
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_for("every node to finalize", Duration::from_secs(60), || {
        apis.iter().all(|api| height_of(api) >= 2)
    });
    let key = |name: &str| {
        consort_node::node::load_key(&dir.path().join(format!("accounts/{name}.key")))
            .expect("demo key")
    };
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    let dave = key_id(&dir.path().join("accounts/dave.key"));

    // The jam: bob skips his next nonce and posts large transactions (64 KiB bodies) to every
    // node, 8 MiB and more in all; carol skips hers and posts many small ones.
    let bob_next = nonce_of(&apis[0], &key_id(&dir.path().join("accounts/bob.key")));
    let big = |nonce| {
        sign(
            &bob,
            nonce,
            Call::ClaimDeposit {
                transaction: Blob(vec![7; 64 * 1024]),
                proof: Blob(vec![1; 1024]),
                outputs: List(vec![consort_types::peg::DepositOutput {
                    account: AccountId::new(bob.public_key()),
                    vout: 0,
                }]),
            },
        )
    };
    let mut posted_bytes = 0usize;
    let mut accepted = 0u64;
    for (round, api) in apis.iter().cycle().take(8).enumerate() {
        let txs: Vec<SignedTx> = (0..16u64)
            .map(|i| big(bob_next + 1 + round as u64 * 16 + i))
            .collect();
        posted_bytes += txs.iter().map(|t| t.encode().len()).sum::<usize>();
        accepted += post_batch(api, &txs)["accepted"].as_u64().unwrap_or(0);
    }
    assert!(
        posted_bytes >= 8 * 1024 * 1024,
        "posted {posted_bytes} bytes"
    );
    let carol_next = nonce_of(&apis[0], &key_id(&dir.path().join("accounts/carol.key")));
    let small: Vec<SignedTx> = (0..500u64)
        .map(|i| {
            sign(
                &carol,
                carol_next + 1 + i,
                Call::Transfer {
                    to: dave.parse().expect("id"),
                    amount: Amount::new(1),
                },
            )
        })
        .collect();
    accepted += post_batch(&apis[1], &small)["accepted"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        accepted > 0,
        "some of the jam is admitted (the pool holds it, never runs it)"
    );
    let stuck = mempool_size(&apis[0]).unwrap_or(0);
    assert!(stuck > 0, "the stuck transactions wait in the pool");

    // With only stuck transactions waiting, blocks keep the idle pace.
    let (start_height, start) = (height_of(&apis[0]), Instant::now());
    std::thread::sleep(Duration::from_secs(8));
    let blocks = height_of(&apis[0]) - start_height;
    let idle_pace = start.elapsed().as_millis() as u64 / IDLE_INTERVAL_MS;
    assert!(
        blocks <= idle_pace + 3,
        "{blocks} blocks in {:?} with only stuck transactions (idle pace {idle_pace})",
        start.elapsed()
    );

    // An honest transfer posted behind the jam finalizes within a few blocks.
    let alice_id = key_id(&dir.path().join("accounts/alice.key"));
    let honest_nonce = nonce_of(&apis[2], &alice_id);
    let honest = sign(
        &alice,
        honest_nonce,
        Call::Transfer {
            to: dave.parse().expect("id"),
            amount: Amount::new(5),
        },
    );
    let posted_at = height_of(&apis[2]);
    assert_eq!(
        post_batch(&apis[2], std::slice::from_ref(&honest))["accepted"],
        1
    );
    let hash = hex::encode(honest.hash());
    let mut finalized_at = 0;
    wait_for("the honest transfer", Duration::from_secs(30), || {
        get(&format!("{}/v1/txs/{hash}", apis[0])).is_some_and(|s| {
            finalized_at = s["height"].as_u64().unwrap_or(0);
            s["status"] == "finalized"
        })
    });
    assert!(
        finalized_at <= posted_at + 4,
        "posted at height {posted_at}, finalized at {finalized_at}"
    );

    // A transaction that fails at execution is included, uses its nonce, and says why: on the
    // API and on the events stream. Alice holds no CNY: the transfer passes admission (which
    // does not read asset balances) and fails when it runs.
    let url = format!("{}/v1/events", apis[3].replace("http://", "ws://"));
    let (mut socket, _) = tungstenite::connect(url).expect("events stream");
    let alice_nonce = honest_nonce + 1;
    let failing = sign(
        &alice,
        alice_nonce,
        Call::TransferAsset {
            asset: "CNY".parse().expect("asset"),
            to: dave.parse().expect("id"),
            amount: Amount::new(1),
        },
    );
    let failing_hash = hex::encode(failing.hash());
    assert_eq!(
        post_batch(&apis[3], std::slice::from_ref(&failing))["accepted"],
        1
    );
    let mut status = Value::Null;
    wait_for(
        "the failing transfer's receipt",
        Duration::from_secs(30),
        || {
            status = get(&format!("{}/v1/txs/{failing_hash}", apis[0])).unwrap_or_default();
            status["status"] == "failed"
        },
    );
    assert_eq!(status["error"]["code"], "insufficient_balance", "{status}");
    wait_for("alice's nonce to be used", Duration::from_secs(10), || {
        nonce_of(&apis[0], &alice_id) == alice_nonce + 1
    });
    let block = get(&format!("{}/v1/blocks/{}", apis[0], status["height"])).expect("block");
    let listed = block["txs"][status["index"].as_u64().expect("index") as usize].clone();
    assert_eq!(listed["outcome"], "insufficient_balance", "{listed}");
    let mut seen = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen && Instant::now() < deadline {
        if let Ok(tungstenite::Message::Text(text)) = socket.read() {
            let event: Value = serde_json::from_str(&text).unwrap_or_default();
            seen = event["type"] == "tx_failed"
                && event["tx"] == failing_hash
                && event["code"] == "insufficient_balance";
        }
    }
    assert!(seen, "the events stream reports the failure");

    // The pools shed the jam once its gap is older than NONCE_GAP_BLOCKS_MAX blocks.
    wait_for(
        "every pool to shed the jam",
        Duration::from_secs(90),
        || apis.iter().all(|api| mempool_size(api) == Some(0)),
    );
    let rejected = get(&format!(
        "{}/v1/txs/{}",
        apis[0],
        hex::encode(big(bob_next + 1).hash())
    ))
    .expect("status");
    assert!(
        rejected["status"] == "rejected" || rejected["error"]["code"] == "unknown_tx",
        "{rejected}"
    );
    assert_eq!(
        nonce_of(&apis[0], &key_id(&dir.path().join("accounts/bob.key"))),
        bob_next
    );
}
