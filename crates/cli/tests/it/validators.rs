//! A fifth validator joins a running four-validator network of real `consort node` processes by
//! governance vote, through the CLI, and one is removed: nobody restarts.

use crate::{BIN, Node, get, height, key_id, wait_for};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

const EPOCH_BLOCKS: u64 = 20;

/// A free loopback port this test process has not handed out before.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if GIVEN.lock().expect("ports").insert(port) {
            return port;
        }
    }
}

pub(crate) fn consort(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run consort");
    assert!(
        out.status.success(),
        "consort {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn committee(api: &str) -> Vec<String> {
    get(&format!("{api}/v1/validators"))
        .and_then(|v| {
            v["committee"].as_array().map(|members| {
                members
                    .iter()
                    .filter_map(|m| m["key"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn proposers(api: &str, from: u64, to: u64) -> Vec<String> {
    (from..to)
        .filter_map(|h| get(&format!("{api}/v1/blocks/{h}")))
        .filter_map(|b| b["proposer"].as_str().map(str::to_string))
        .collect()
}

/// Turn the devnet genesis into a consortium of four organisations administered by the demo
/// accounts, with short epochs and no peg (this test is about consensus).
pub(crate) fn consortium(dir: &Path) {
    let path = dir.join("genesis.json");
    let mut genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("genesis")).expect("json");
    let admin = |name: &str| key_id(&dir.join(format!("accounts/{name}.key")));
    genesis["governance"] = json!({
        "mode": "consortium",
        "organisations": [
            {"id": "platform", "kind": "operator", "admins": [admin("alice")]},
            {"id": "shop", "kind": "seller", "admins": [admin("bob")]},
            {"id": "bank", "kind": "bank", "admins": [admin("carol")]},
            {"id": "reg", "kind": "regulator", "admins": [admin("dave")]},
        ],
        "registrar": "platform",
        "vote_period_blocks": 10_000,
        "alert_threshold": 1_000_000,
    });
    genesis["epoch_blocks"] = json!(EPOCH_BLOCKS);
    genesis["account_limits"] = json!({
        "txs_per_block": 64,
        "tx_size_max": 16_384,
        "pending_max": 256,
    });
    genesis.as_object_mut().expect("object").remove("peg");
    std::fs::write(&path, serde_json::to_string_pretty(&genesis).expect("json")).expect("write");
}

pub(crate) fn node_from(config: PathBuf, log: PathBuf) -> Node {
    let mut value: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    value.as_object_mut().expect("object").remove("mainchain");
    std::fs::write(&config, value.to_string()).expect("write");
    Node {
        api: format!("http://{}", value["api_listen"].as_str().expect("api")),
        config,
        child: None,
        log,
    }
}

#[test]
fn a_fifth_validator_joins_a_running_network_by_vote_and_one_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = consort(&[
        "devnet",
        "--init-only",
        "--empty-block-interval-ms",
        "500",
        "--validators",
        "4",
        "--dir",
        dir.path().to_str().expect("path"),
    ]);
    consortium(dir.path());
    let mut nodes: Vec<Node> = out
        .lines()
        .enumerate()
        .map(|(i, line)| node_from(line.into(), dir.path().join(format!("node-{i}.log"))))
        .collect();

    // The fifth node: its own key and ports, the same genesis. It follows the chain until the
    // consortium admits it.
    let joiner_dir = dir.path().join("validators/4");
    std::fs::create_dir_all(&joiner_dir).expect("dir");
    let joiner_key = joiner_dir.join("key");
    consort(&["keys", "new", "--out", joiner_key.to_str().expect("path")]);
    let joiner_id = key_id(&joiner_key);
    let joiner_p2p = format!("127.0.0.1:{}", free_port());
    let config = joiner_dir.join("config.json");
    std::fs::write(
        &config,
        json!({
            "genesis": dir.path().join("genesis.json"),
            "key_file": joiner_key,
            "data_dir": joiner_dir.join("data"),
            "p2p_listen": joiner_p2p,
            "api_listen": format!("127.0.0.1:{}", free_port()),
        })
        .to_string(),
    )
    .expect("config");
    nodes.push(node_from(config, dir.path().join("node-4.log")));
    for node in &mut nodes {
        node.start();
    }
    wait_for(
        "the four validators to finalize blocks",
        Duration::from_secs(60),
        || nodes[..4].iter().all(|n| height(n) >= 2),
    );
    let validator_ids: Vec<String> = (0..4)
        .map(|i| key_id(&dir.path().join(format!("validators/{i}/key"))))
        .collect();
    let key = |name: &str| dir.path().join(format!("accounts/{name}.key"));
    let api = nodes[0].api.clone();

    // The platform proposes the fifth validator; the shop and the bank vote for it.
    consort(&[
        "validators",
        "propose-add",
        "--node",
        &api,
        "--key",
        key("alice").to_str().expect("path"),
        "--validator",
        &joiner_id,
        "--address",
        &joiner_p2p,
    ]);
    for voter in ["bob", "carol"] {
        vote(&api, &key(voter), 0);
    }
    wait_for(
        "the joiner to vote in a committee of five",
        Duration::from_secs(120),
        || {
            committee(&nodes[4].api).contains(&joiner_id)
                && height(&nodes[4]) + 2 >= height(&nodes[0])
        },
    );
    assert_eq!(committee(&nodes[0].api).len(), 5);
    let joined_at = height(&nodes[0]);

    // One of the four stops: four of five is a quorum only with the joiner's votes.
    nodes[3].kill();
    let cut = height(&nodes[0]);
    wait_for(
        "finality with the joiner and without validator 3",
        Duration::from_secs(120),
        || height(&nodes[0]) > cut + EPOCH_BLOCKS,
    );
    assert!(
        proposers(&api, joined_at, height(&nodes[0])).contains(&joiner_id),
        "the joiner proposes blocks that finalize"
    );

    // The shop proposes removing validator 0; the bank and the regulator vote for it.
    consort(&[
        "validators",
        "propose-remove",
        "--node",
        &nodes[1].api,
        "--key",
        key("bob").to_str().expect("path"),
        "--validator",
        &validator_ids[0],
    ]);
    for voter in ["carol", "dave"] {
        vote(&nodes[1].api, &key(voter), 1);
    }
    wait_for(
        "a committee without validator 0",
        Duration::from_secs(120),
        || {
            let members = committee(&nodes[1].api);
            !members.is_empty() && !members.contains(&validator_ids[0])
        },
    );
    // Validator 0 stops too: validators 1, 2 and the joiner are three of the four members, a
    // quorum only because validator 0 no longer counts.
    nodes[0].kill();
    let cut = height(&nodes[1]);
    wait_for(
        "finality without the removed validator",
        Duration::from_secs(120),
        || height(&nodes[1]) > cut + EPOCH_BLOCKS,
    );
    let listing = consort(&["validators", "list", "--node", &nodes[1].api]);
    assert!(listing.contains(&joiner_id), "{listing}");
    assert!(!listing.contains(&validator_ids[0]), "{listing}");
}

/// An admin's vote for `proposal`, signed and posted to the API.
fn vote(api: &str, key: &Path, proposal: u64) {
    submit(
        api,
        key,
        consort_types::Call::Vote {
            proposal,
            approve: true,
        },
    );
}

/// Sign `call` with the key in `key`, post it, and wait until it is finalized; returns its hash.
pub(crate) fn submit(api: &str, key: &Path, call: consort_types::Call) -> String {
    use commonware_codec::Encode as _;
    use commonware_cryptography::Signer as _;
    let key = consort_node::node::load_key(key).expect("key");
    let sender = consort_types::AccountId::new(key.public_key());
    let status = get(&format!("{api}/v1/status")).expect("status");
    let nonce = get(&format!("{api}/v1/accounts/{sender}"))
        .and_then(|a| a["next_nonce"].as_u64().or_else(|| a["nonce"].as_u64()))
        .unwrap_or(0);
    let tx = consort_types::Tx {
        chain_id: status["chain_id"].as_u64().expect("chain id"),
        sender,
        nonce,
        call,
    }
    .sign(&key);
    let answer: Value = crate::http()
        .post(format!("{api}/v1/txs"))
        .json(&json!({"tx": hex::encode(tx.encode())}))
        .send()
        .expect("post")
        .json()
        .expect("json");
    let hash = answer["hash"]
        .as_str()
        .unwrap_or_else(|| panic!("refused: {answer}"))
        .to_string();
    wait_for(
        "the transaction to finalize",
        Duration::from_secs(30),
        || get(&format!("{api}/v1/txs/{hash}")).is_some_and(|s| s["status"] == "finalized"),
    );
    hash
}
