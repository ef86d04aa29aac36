//! End-to-end tests of real `consort node` processes on loopback.

use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod gov;
mod indexer;
mod jam;
mod peg;
mod private;
mod shop;
mod shop_cli;
mod validators;

const BIN: &str = env!("CARGO_BIN_EXE_consort");

struct Node {
    config: PathBuf,
    api: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start node");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the node we started");
            child.wait().expect("reap");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn get(url: &str) -> Option<Value> {
    http().get(url).send().ok()?.json().ok()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn key_id(path: &Path) -> String {
    let out = Command::new(BIN)
        .args(["keys", "show"])
        .arg(path)
        .output()
        .expect("keys show");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn transfer(node: &str, key: &Path, to: &str, amount: u64) -> String {
    let out = Command::new(BIN)
        .args(["transfer", "--no-wait", "--node", node, "--key"])
        .arg(key)
        .args(["--to", to, "--amount", &amount.to_string()])
        .output()
        .expect("transfer");
    assert!(
        out.status.success(),
        "transfer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    text.trim().trim_start_matches("submitted ").to_string()
}

/// Write a devnet of `validators` node processes into `dir` (`consort devnet --init-only`,
/// idle blocks every `idle_ms`) and start every node; they stop when dropped.
pub(crate) fn start_devnet(dir: &Path, validators: usize, idle_ms: u64) -> Vec<Node> {
    start_devnet_with(dir, validators, idle_ms, &[])
}

/// [`start_devnet`], with more `consort devnet` options (`extra`).
pub(crate) fn start_devnet_with(
    dir: &Path,
    validators: usize,
    idle_ms: u64,
    extra: &[&str],
) -> Vec<Node> {
    let out = Command::new(BIN)
        .args(["devnet", "--init-only"])
        .args(["--validators", &validators.to_string()])
        .args(["--empty-block-interval-ms", &idle_ms.to_string()])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("devnet --init-only");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut nodes: Vec<Node> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let config = PathBuf::from(line);
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(&config).expect("config"))
                    .expect("json");
            Node {
                api: format!("http://{}", value["api_listen"].as_str().expect("api")),
                config,
                child: None,
                log: dir.join(format!("node-{i}.log")),
            }
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    nodes
}

fn height(node: &Node) -> u64 {
    height_of(&node.api)
}

#[test]
fn devnet_survives_a_sigkilled_node_and_all_nodes_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_devnet(dir.path(), 4, 500);
    wait_for(
        "every node to finalize blocks",
        Duration::from_secs(60),
        || nodes.iter().all(|n| height(n) >= 2),
    );

    let alice = dir.path().join("accounts/alice.key");
    let bob = key_id(&dir.path().join("accounts/bob.key"));
    let carol = key_id(&dir.path().join("accounts/carol.key"));
    // Transfers through different nodes reach the proposers by gossip.
    let first = transfer(&nodes[1].api, &alice, &bob, 7);
    wait_for(
        "the first transfer to finalize",
        Duration::from_secs(30),
        || {
            get(&format!("{}/v1/txs/{first}", nodes[0].api))
                .is_some_and(|s| s["status"] == "finalized")
        },
    );

    nodes[3].kill();
    let second = transfer(&nodes[2].api, &alice, &carol, 11);
    wait_for(
        "finality with one node down",
        Duration::from_secs(30),
        || {
            get(&format!("{}/v1/txs/{second}", nodes[0].api))
                .is_some_and(|s| s["status"] == "finalized")
        },
    );
    let before_restart = height(&nodes[0]);
    nodes[3].start();
    wait_for(
        "the restarted node to catch up",
        Duration::from_secs(60),
        || height(&nodes[3]) > before_restart + 2,
    );

    // Every node reports the same block at a common height and the same balances.
    let common = nodes.iter().map(height).min().expect("nodes");
    let hashes: Vec<Value> = nodes
        .iter()
        .map(|n| get(&format!("{}/v1/blocks/{common}", n.api)).expect("block")["hash"].clone())
        .collect();
    assert!(
        hashes.iter().all(|h| h == &hashes[0]),
        "blocks at {common} differ: {hashes:?}"
    );
    for id in [&bob, &carol] {
        let balances: Vec<Value> = nodes
            .iter()
            .map(|n| {
                get(&format!("{}/v1/accounts/{id}", n.api)).expect("account")["balance"].clone()
            })
            .collect();
        assert!(
            balances.iter().all(|b| b == &balances[0]),
            "balances differ: {balances:?}"
        );
    }
    let bob_balance =
        get(&format!("{}/v1/accounts/{bob}", nodes[3].api)).expect("account")["balance"].clone();
    assert_eq!(bob_balance, json!(1_000_000_007u64));

    // Bad input changes nothing and the node keeps serving.
    let client = http();
    bad_transactions_are_refused_with_typed_errors(&client, &nodes[0].api, &alice, &bob);
    light_client_verifies_and_catches_tampering(
        &nodes[2].api,
        &dir.path().join("genesis.json"),
        &bob,
    );
    let garbage = client
        .post(format!("{}/v1/txs", nodes[0].api))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .expect("post");
    assert_eq!(garbage.status().as_u16(), 400);
    let malformed: Value = client
        .post(format!("{}/v1/txs", nodes[0].api))
        .json(&json!({"tx": "00ff"}))
        .send()
        .expect("post")
        .json()
        .expect("json");
    assert_eq!(malformed["error"]["code"], "malformed");
    let unknown: Value = client
        .get(format!("{}/v1/accounts/{}", nodes[0].api, "11".repeat(32)))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert!(unknown["error"]["code"].is_string());
    assert!(height(&nodes[0]) >= common, "the node keeps serving");
}

fn post_tx(client: &reqwest::blocking::Client, api: &str, bytes: &[u8]) -> Value {
    client
        .post(format!("{api}/v1/txs"))
        .json(&json!({"tx": hex::encode(bytes)}))
        .send()
        .expect("post")
        .json()
        .expect("json")
}

fn signed_transfer(
    key: &commonware_cryptography::ed25519::PrivateKey,
    chain_id: u64,
    nonce: u64,
    to: &str,
    amount: u64,
) -> consort_types::SignedTx {
    use commonware_cryptography::Signer as _;
    consort_types::Tx {
        chain_id,
        sender: consort_types::AccountId::new(key.public_key()),
        nonce,
        call: consort_types::Call::Transfer {
            to: to.parse().expect("account id"),
            amount: consort_types::Amount::new(amount),
        },
    }
    .sign(key)
}

/// Each kind of bad transaction gets its typed error; the sender's account is unchanged and the
/// node keeps finalizing.
fn bad_transactions_are_refused_with_typed_errors(
    client: &reqwest::blocking::Client,
    api: &str,
    alice_key: &Path,
    bob: &str,
) {
    use commonware_codec::Encode as _;
    use commonware_cryptography::Signer as _;
    let key = consort_node::node::load_key(alice_key).expect("alice's key");
    let alice = key_id(alice_key);
    let account_url = format!("{api}/v1/accounts/{alice}");
    // Let alice's earlier transfers settle so her account is quiet.
    wait_for(
        "alice's pending transfers to settle",
        Duration::from_secs(30),
        || get(&account_url).is_some_and(|a| a["pending_spend"] == json!(0)),
    );
    let before = get(&account_url).expect("account");
    let nonce = before["nonce"].as_u64().expect("nonce");
    let balance = before["balance"].as_u64().expect("balance");
    let height_before = height_of(api);

    let good = signed_transfer(&key, 1, nonce, bob, 1);
    let mut bad_signature = good.encode().to_vec();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;
    let stranger = commonware_cryptography::ed25519::PrivateKey::from_seed(424_242);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad_signature", bad_signature),
        (
            "wrong_chain_id",
            signed_transfer(&key, 2, nonce, bob, 1).encode().to_vec(),
        ),
        (
            "nonce_reused",
            signed_transfer(&key, 1, 0, bob, 3).encode().to_vec(),
        ),
        (
            "duplicate",
            // The very first transfer (nonce 0, 7 to bob), resubmitted byte for byte.
            signed_transfer(&key, 1, 0, bob, 7).encode().to_vec(),
        ),
        (
            "insufficient_balance",
            signed_transfer(&key, 1, nonce, bob, balance + 1)
                .encode()
                .to_vec(),
        ),
        (
            "oversized",
            vec![0u8; consort_types::limits::TX_SIZE_MAX + 1],
        ),
        // The devnet is a consortium: an unregistered stranger may not write at all.
        (
            "unauthorized",
            signed_transfer(&stranger, 1, 0, bob, 1).encode().to_vec(),
        ),
        ("malformed", good.encode()[..40].to_vec()),
        (
            "nonce_too_high",
            signed_transfer(
                &key,
                1,
                nonce + consort_types::limits::NONCE_WINDOW_MAX,
                bob,
                1,
            )
            .encode()
            .to_vec(),
        ),
    ];
    for (code, bytes) in &cases {
        let answer = post_tx(client, api, bytes);
        assert_eq!(answer["error"]["code"], json!(code), "{code}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{code}: a human message"
        );
    }
    // A refused transaction's status says why.
    let wrong_chain = signed_transfer(&key, 2, nonce, bob, 1);
    let status = get(&format!(
        "{api}/v1/txs/{}",
        consort_types::hex_serde::encode(&wrong_chain.hash())
    ))
    .expect("status");
    assert_eq!(status["status"], "rejected", "{status}");
    assert_eq!(status["error"]["code"], "wrong_chain_id", "{status}");
    // Garbage where a hash or account id should be.
    for path in [
        "/v1/txs/zz",
        "/v1/accounts/not-hex",
        "/v1/blocks/minus-one",
        "/v1/nope",
    ] {
        let response = client.get(format!("{api}{path}")).send().expect("get");
        assert!(
            response.status().is_client_error(),
            "{path}: {}",
            response.status()
        );
    }
    // Nothing changed, and the chain moves on.
    wait_for(
        "the node to keep finalizing",
        Duration::from_secs(30),
        || height_of(api) > height_before + 2,
    );
    let after = get(&account_url).expect("account");
    assert_eq!(after["balance"], before["balance"]);
    assert_eq!(after["nonce"], before["nonce"]);
    assert_eq!(after["pending_spend"], json!(0));
    // The good transaction still goes through afterwards.
    let answer = post_tx(client, api, &good.encode());
    assert!(answer["hash"].is_string(), "{answer}");
}

fn height_of(api: &str) -> u64 {
    get(&format!("{api}/v1/status"))
        .and_then(|s| s["finalized_height"].as_u64())
        .unwrap_or(0)
}

/// `consort verify` accepts what an honest node serves; the light client refuses the same
/// evidence with a tampered balance, state root or signature, or against another validator set.
/// A hex field's bytes.
pub(crate) fn hex_field(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex field")).expect("hex")
}

/// What a light client checks a proof against: a finalized header, its finalization, and
/// every epoch boundary before it (the devnet's epochs are short: the committee is followed
/// from genesis through every epoch's last block).
pub(crate) struct Evidence {
    pub(crate) header: Vec<u8>,
    pub(crate) finalization: Vec<u8>,
    pub(crate) boundaries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// GET `path` from `api` until the node ties its proof to a finalized block; the answer and
/// that block's evidence.
pub(crate) fn proven(api: &str, genesis: &consort_types::Genesis, path: &str) -> (Value, Evidence) {
    let (answer, block) = loop {
        let answer = get(&format!("{api}{path}")).expect("proof");
        if let Some(height) = answer["proof"]["height"].as_u64() {
            let block = get(&format!("{api}/v1/blocks/{height}")).expect("block");
            break (answer, block);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let height = block["height"].as_u64().expect("height");
    let blocks = genesis.epoch_blocks();
    let boundaries = (0..height / blocks)
        .map(|e| {
            let boundary =
                get(&format!("{api}/v1/blocks/{}", (e + 1) * blocks - 1)).expect("block");
            (
                hex_field(&boundary["header"]),
                hex_field(&boundary["finalization"]),
            )
        })
        .collect();
    let evidence = Evidence {
        header: hex_field(&block["header"]),
        finalization: hex_field(&block["finalization"]),
        boundaries,
    };
    (answer, evidence)
}

fn light_client_verifies_and_catches_tampering(api: &str, genesis_path: &Path, id: &str) {
    use consort_client::light::{AccountEvidence, LightError, verify_account};
    let out = Command::new(BIN)
        .args(["verify", "--node", api, "--genesis"])
        .arg(genesis_path)
        .arg(id)
        .output()
        .expect("consort verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("verified"),
        "verify failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let genesis =
        consort_types::Genesis::from_json(&std::fs::read_to_string(genesis_path).expect("genesis"))
            .expect("genesis");
    let (answer, evidence_at) = proven(api, &genesis, &format!("/v1/accounts/{id}"));
    let Evidence {
        header,
        finalization,
        boundaries,
    } = evidence_at;
    let proof = hex_field(&answer["proof"]["proof"]);
    let account = consort_types::Account {
        balance: consort_types::Amount::new(answer["balance"].as_u64().expect("balance")),
        nonce: answer["nonce"].as_u64().expect("nonce"),
    };
    let evidence = |account, header: &[u8], finalization: &[u8]| {
        let evidence = AccountEvidence {
            id: id.parse().expect("id"),
            account,
            header,
            finalization,
            proof: &proof,
            boundaries: &boundaries,
        };
        verify_account(&genesis, &evidence)
    };
    let verified = evidence(account, &header, &finalization).expect("honest evidence verifies");
    assert_eq!(verified.account, account);
    assert!(verified.signers >= 3, "a quorum of 4 signed");

    // A balance one unit higher.
    let richer = consort_types::Account {
        balance: consort_types::Amount::new(account.balance.units() + 1),
        ..account
    };
    assert_eq!(
        evidence(richer, &header, &finalization),
        Err(LightError::ProofMismatch)
    );
    // A header whose state root was changed (the state root is followed by ops_root and
    // ops_range at the end of the encoding; flip a byte well inside the state root).
    let mut tampered_header = header.clone();
    let state_root_at = header.len() - 32 - 32 - 20;
    tampered_header[state_root_at] ^= 0x01;
    assert!(evidence(account, &tampered_header, &finalization).is_err());
    // A signature byte flipped in the certificate.
    let mut tampered_cert = finalization.clone();
    let last = tampered_cert.len() - 1;
    tampered_cert[last] ^= 0x01;
    assert!(matches!(
        evidence(account, &header, &tampered_cert),
        Err(LightError::BadSignatures | LightError::BadFinalization(_))
    ));
    // The same evidence judged against a different validator set.
    let mut forged = genesis.clone();
    for (i, v) in forged.validators.iter_mut().enumerate() {
        use commonware_cryptography::Signer as _;
        v.public_key = consort_types::AccountId::new(
            commonware_cryptography::ed25519::PrivateKey::from_seed(900 + i as u64).public_key(),
        );
    }
    let evidence_struct = AccountEvidence {
        id: id.parse().expect("id"),
        account,
        header: &header,
        finalization: &finalization,
        proof: &proof,
        boundaries: &boundaries,
    };
    assert_eq!(
        verify_account(&forged, &evidence_struct),
        Err(LightError::BadSignatures)
    );
    // A boundary left out: the block's epoch committee cannot be reached.
    if let Some((_, fewer)) = boundaries.split_last() {
        let evidence_struct = AccountEvidence {
            boundaries: fewer,
            ..evidence_struct
        };
        assert!(matches!(
            verify_account(&genesis, &evidence_struct),
            Err(LightError::BadBoundary(_))
        ));
    }
}
