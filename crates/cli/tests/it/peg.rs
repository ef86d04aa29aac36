//! The peg end to end: `consort devnet` starts litecoind regtest and four validator processes
//! whose watchers relay, claim, sign, broadcast and confirm; a user only pays a deposit address
//! and asks for a peg-out with the CLI.

use super::BIN;
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The devnet process, interrupted (as Ctrl-C would) and reaped on drop.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn consort(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run consort");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

struct MainChain {
    url: String,
    cookie: PathBuf,
}

impl MainChain {
    fn open(dir: &Path) -> Self {
        let ports: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("litecoind/ports.json")).expect("ports"),
        )
        .expect("ports json");
        Self {
            url: format!("http://127.0.0.1:{}/wallet/devnet", ports["rpc"]),
            cookie: dir.join("litecoind/regtest/.cookie"),
        }
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let cookie = std::fs::read_to_string(&self.cookie).expect("cookie");
        let (user, password) = cookie.trim().split_once(':').expect("cookie format");
        let answer: Value = reqwest::blocking::Client::new()
            .post(&self.url)
            .basic_auth(user, Some(password))
            .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))
            .send()
            .expect("rpc")
            .json()
            .expect("rpc json");
        assert!(answer["error"].is_null(), "{method}: {}", answer["error"]);
        answer["result"].clone()
    }
}

fn get(url: &str) -> Option<Value> {
    super::get(url)
}

/// The smallest deposit the peg credits, from the address answer.
fn answer_minimum(node: &str, account: &str) -> u64 {
    get(&format!("{node}/v1/peg/address/{account}")).expect("address")["minimum_deposit_sat"]
        .as_u64()
        .expect("minimum")
}

#[test]
fn devnet_pegs_in_and_out_through_litecoind_with_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8 path");
    let log = std::fs::File::create(dir.path().join("devnet.log")).expect("log");
    let _devnet = Devnet(
        Command::new(BIN)
            .args(["devnet", "--empty-block-interval-ms", "500", "--dir", path])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start devnet"),
    );
    let devnet_json = dir.path().join("devnet.json");
    super::wait_for("devnet.json", Duration::from_secs(90), || {
        devnet_json.exists()
    });
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(&devnet_json).expect("read")).expect("json");
    let node = info["nodes"][0]["api"].as_str().expect("url").to_string();
    super::wait_for("the peg API", Duration::from_secs(60), || {
        get(&format!("{node}/v1/peg")).is_some_and(|v| v["main_tip"]["height"].as_u64() > Some(100))
    });
    let main = MainChain::open(dir.path());
    // Every peg step shows on the events stream.
    let peg_events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    {
        let events = peg_events.clone();
        let url = format!("{}/v1/events", node.replace("http://", "ws://"));
        std::thread::spawn(move || {
            let Ok((mut socket, _)) = tungstenite::connect(url) else {
                return;
            };
            while let Ok(message) = socket.read() {
                if let tungstenite::Message::Text(text) = message
                    && let Ok(event) = serde_json::from_str::<Value>(&text)
                    && event["type"] == json!("peg")
                {
                    events.lock().expect("events").push(event);
                }
            }
        });
    }
    let alice_key = dir.path().join("accounts/alice.key");
    let alice = super::key_id(&alice_key);

    // Peg-in: the user asks for the address and pays it; nothing else.
    let (ok, address, err) = consort(&["peg", "address", "--node", &node, &alice]);
    assert!(ok, "peg address: {err}");
    main.call("sendtoaddress", json!([address, 0.5]));
    let answer = get(&format!("{node}/v1/peg/address/{alice}")).expect("address");
    assert_eq!(answer["watched"], json!(true), "{answer}");
    let deposit_fee = answer["deposit_fee_sat"].as_u64().expect("deposit fee");
    // Anyone may ask for any key's address, but only registered accounts are watched.
    let stranger = "11".repeat(32);
    let answer = get(&format!("{node}/v1/peg/address/{stranger}")).expect("address");
    assert_eq!(answer["watched"], json!(false), "{answer}");
    assert!(answer["address"].is_string(), "{answer}");
    let balance = format!("{node}/v1/accounts/{alice}/balances/LTC");
    let started = Instant::now();
    super::wait_for(
        "the deposit to be credited",
        Duration::from_secs(120),
        || get(&balance).is_some_and(|v| v["balance"] == json!(50_000_000 - deposit_fee)),
    );
    eprintln!("first deposit credited in {:?}", started.elapsed());

    // Watchers cannot be knocked out: a burst of 1,000 address requests for unregistered keys
    // and five deposits one satoshi below the minimum leave the next deposit's crediting, the
    // validators' nonces and the idle block pace as they were.
    let minimum = answer_minimum(&node, &alice);
    for seed in 0..1_000u64 {
        use commonware_cryptography::Signer as _;
        let key = commonware_cryptography::ed25519::PrivateKey::from_seed(70_000 + seed);
        let id = hex::encode(commonware_codec::Encode::encode(&key.public_key()));
        let answer = get(&format!("{node}/v1/peg/address/{id}")).expect("address");
        assert_eq!(answer["watched"], json!(false), "{answer}");
    }
    let bob = super::key_id(&dir.path().join("accounts/bob.key"));
    let (ok, bob_address, err) = consort(&["peg", "address", "--node", &node, &bob]);
    assert!(ok, "peg address: {err}");
    for target in [&address, &bob_address, &address, &bob_address, &address] {
        main.call(
            "sendtoaddress",
            json!([target, format!("0.{:08}", minimum - 1)]),
        );
    }
    main.call("sendtoaddress", json!([address, 0.2]));
    let started = Instant::now();
    super::wait_for(
        "a deposit after the knock-out attempt to be credited",
        Duration::from_secs(120),
        || get(&balance).is_some_and(|v| v["balance"] == json!(70_000_000 - 2 * deposit_fee)),
    );
    eprintln!(
        "deposit after 1,000 address requests and 5 deposits below the minimum credited in {:?}",
        started.elapsed()
    );
    let genesis: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("genesis.json")).expect("genesis"),
    )
    .expect("genesis json");
    for validator in genesis["validators"].as_array().expect("validators") {
        let id = validator["public_key"].as_str().expect("validator key");
        super::wait_for(
            "every duty transaction of the validator to be final (no nonce gap)",
            Duration::from_secs(60),
            || {
                get(&format!("{node}/v1/accounts/{id}"))
                    .is_some_and(|a| a["next_nonce"] == a["nonce"])
            },
        );
    }
    let height = |node: &str| {
        get(&format!("{node}/v1/status")).expect("status")["height"]
            .as_u64()
            .expect("height")
    };
    let before = height(&node);
    std::thread::sleep(Duration::from_secs(5));
    let blocks = height(&node) - before;
    // Idle: a block per 500 ms, plus the watchers' occasional duties.
    assert!(
        blocks <= 30,
        "{blocks} blocks in 5 s: the chain is not at its idle pace"
    );
    let cookie = dir.path().join("litecoind/regtest/.cookie");
    let rpc_url = main.url.clone();
    let audit = || {
        consort(&[
            "peg",
            "audit",
            "--node",
            &node,
            "--rpc-url",
            &rpc_url,
            "--rpc-cookie",
            cookie.to_str().expect("utf8"),
        ])
    };
    let (ok, report, err) = audit();
    assert!(ok, "audit after peg-in: {report} {err}");

    // Peg-out: the quote is shown and must be accepted; then the watchers do the rest.
    let payee = main.call("getnewaddress", json!(["", "bech32"]));
    let payee = payee.as_str().expect("address");
    let key = alice_key.to_str().expect("utf8");
    let (ok, _, err) = consort(&[
        "peg", "out", "--node", &node, "--key", key, "--amount", "20000000", "--to", payee,
    ]);
    assert!(
        !ok && err.contains("--yes"),
        "a peg-out without --yes must stop at the quote: {err}"
    );
    let quote = get(&format!("{node}/v1/peg/quote/{payee}")).expect("quote");
    let fee = quote["fee_sat"].as_u64().expect("fee");
    let (ok, out, err) = consort(&[
        "peg", "out", "--node", &node, "--key", key, "--amount", "20000000", "--to", payee, "--yes",
    ]);
    assert!(ok, "peg out: {out} {err}");
    super::wait_for("the peg-out to complete", Duration::from_secs(180), || {
        get(&format!("{node}/v1/peg/requests/0")).is_some_and(|v| v["status"] == json!("completed"))
    });
    let received = main.call("getreceivedbyaddress", json!([payee, 1]));
    assert_eq!(
        (received.as_f64().expect("amount") * 1e8).round() as u64,
        20_000_000 - fee,
        "the payee receives the amount less the quoted fee"
    );
    assert_eq!(
        get(&balance).expect("balance")["balance"],
        json!(50_000_000 - 2 * deposit_fee)
    );
    let (ok, report, err) = audit();
    assert!(ok, "audit after peg-out: {report} {err}");
    let seen: Vec<String> = peg_events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| e["call"].as_str().map(str::to_string))
        .collect();
    for call in [
        "relay_headers",
        "claim_deposit",
        "peg_out",
        "sign_batch",
        "confirm_batch",
    ] {
        assert!(
            seen.iter().any(|c| c == call),
            "no {call} event in {seen:?}"
        );
    }

    // The regulator's export lists every finalized step, as CSV and JSON.
    let height = get(&format!("{node}/v1/status")).expect("status")["height"]
        .as_u64()
        .expect("height");
    let to = height.to_string();
    let (ok, csv, err) = consort(&[
        "audit", "export", "--node", &node, "--from", "1", "--to", &to, "--format", "csv",
    ]);
    assert!(ok, "audit export: {err}");
    assert!(csv.starts_with("height,timestamp_ms,block,tx,sender,nonce,kind,"));
    for kind in ["claim_deposit", "peg_out", "sign_batch", "confirm_batch"] {
        assert!(
            csv.contains(&format!(",{kind},")),
            "no {kind} row in the CSV export"
        );
    }
    let (ok, json_text, err) = consort(&[
        "audit", "export", "--node", &node, "--from", "1", "--to", &to, "--format", "json",
    ]);
    assert!(ok, "audit export json: {err}");
    let rows: Vec<Value> = serde_json::from_str(&json_text).expect("JSON export");
    assert!(
        rows.iter()
            .any(|r| r["kind"] == json!("peg_out") && r["sender"] == json!(alice))
    );
}
