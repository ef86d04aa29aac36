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
        match self.try_call(method, params) {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    fn try_call(&self, method: &str, params: Value) -> Result<Value, Value> {
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
        if answer["error"].is_null() {
            Ok(answer["result"].clone())
        } else {
            Err(answer["error"].clone())
        }
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
            .args([
                "devnet",
                "--no-demo",
                "--empty-block-interval-ms",
                "500",
                "--dir",
                path,
            ])
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

/// The peg soak on `consort devnet` (not run by default: about ten minutes). 2,000 deposits
/// to the four demo accounts (500 main-chain transactions of four outputs), then 500 peg-outs
/// from them (four accounts in parallel), while `consort peg audit` runs again and again: it
/// must hold every time, at every main-chain block. Prints how long each phase took.
///
/// `cargo test -p consort-cli --test it -- --ignored --nocapture devnet_peg_soak`
#[test]
#[ignore = "a soak of about ten minutes; run by hand"]
fn devnet_peg_soak_two_thousand_deposits_and_five_hundred_peg_outs() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    const DEPOSITS: usize = 2_000;
    const PEG_OUTS: usize = 500;
    const DEPOSIT_SAT: u64 = 1_000_000;
    const PEG_OUT_SAT: u64 = 500_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf8 path").to_string();
    let log = std::fs::File::create(dir.path().join("devnet.log")).expect("log");
    let _devnet = Devnet(
        Command::new(BIN)
            .args([
                "devnet",
                "--no-demo",
                "--empty-block-interval-ms",
                "500",
                "--dir",
                &path,
            ])
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
    let names = ["alice", "bob", "carol", "dave"];
    let keys: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.path().join(format!("accounts/{n}.key")))
        .collect();
    let ids: Vec<String> = keys.iter().map(|k| super::key_id(k)).collect();
    let addresses: Vec<String> = ids
        .iter()
        .map(|id| {
            let (ok, address, err) = consort(&["peg", "address", "--node", &node, id]);
            assert!(ok, "peg address: {err}");
            address
        })
        .collect();
    let fee =
        get(&format!("{node}/v1/peg/address/{}", ids[0])).expect("address")["deposit_fee_sat"]
            .as_u64()
            .expect("deposit fee");

    // The audit, again and again, from another thread until the soak ends.
    let done = Arc::new(AtomicBool::new(false));
    let auditor = {
        let done = done.clone();
        let node = node.clone();
        let rpc_url = main.url.clone();
        let cookie = dir.path().join("litecoind/regtest/.cookie");
        let dir_path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let mut runs = 0u64;
            let mut heights = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                let height =
                    get(&format!("{node}/v1/peg")).and_then(|v| v["main_tip"]["height"].as_u64());
                let (ok, report, err) = consort(&[
                    "peg",
                    "audit",
                    "--node",
                    &node,
                    "--rpc-url",
                    &rpc_url,
                    "--rpc-cookie",
                    cookie.to_str().expect("utf8"),
                ]);
                if !ok {
                    let log = dir_path.join("logs/node-0.log");
                    let _ = std::fs::copy(&log, std::env::temp_dir().join("soak-node-0.log"));
                    panic!("the audit failed during the soak: {report} {err}");
                }
                runs += 1;
                heights.extend(height);
            }
            (runs, heights)
        })
    };

    // Coins for 500 transactions that each spend a confirmed coin (the wallet would otherwise
    // chain unconfirmed change past the mempool's limit, and such transactions are never
    // relayed): 100 coins, confirmed.
    let mut split = serde_json::Map::new();
    for _ in 0..100 {
        let address = main.call("getnewaddress", json!(["", "bech32"]));
        split.insert(
            address.as_str().expect("address").to_string(),
            json!("0.25"),
        );
    }
    main.call("sendmany", json!(["", Value::Object(split)]));
    let height = main
        .call("getblockcount", json!([]))
        .as_u64()
        .expect("height");
    super::wait_for("the split to confirm", Duration::from_secs(60), || {
        main.call("getblockcount", json!([])).as_u64() > Some(height)
    });

    // 2,000 deposits: 500 transactions paying each account once.
    let started = Instant::now();
    let amounts: serde_json::Map<String, Value> = addresses
        .iter()
        .map(|a| (a.clone(), json!(format!("0.{DEPOSIT_SAT:08}"))))
        .collect();
    for _ in 0..DEPOSITS / names.len() {
        // The wallet chains its change: past the mempool's chain limit it waits for a block.
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Err(error) =
            main.try_call("sendmany", json!(["", Value::Object(amounts.clone())]))
        {
            assert!(Instant::now() < deadline, "sendmany: {error}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!("{DEPOSITS} deposits sent in {:?}", started.elapsed());
    let per_account = (DEPOSITS / names.len()) as u64 * (DEPOSIT_SAT - fee);
    let balance = |id: &str| {
        get(&format!("{node}/v1/accounts/{id}/balances/LTC"))
            .and_then(|v| v["balance"].as_u64())
            .unwrap_or(0)
    };
    super::wait_for(
        "every deposit to be credited",
        Duration::from_secs(900),
        || ids.iter().all(|id| balance(id) == per_account),
    );
    let credited = started.elapsed();
    eprintln!("{DEPOSITS} deposits credited {credited:?} after the first was sent");

    // 500 peg-outs, the four accounts in parallel.
    let started = Instant::now();
    let payee = main.call("getnewaddress", json!(["", "bech32"]));
    let payee = payee.as_str().expect("address").to_string();
    let senders: Vec<_> = keys
        .iter()
        .map(|key| {
            let (node, key, payee) = (node.clone(), key.clone(), payee.clone());
            std::thread::spawn(move || {
                for _ in 0..PEG_OUTS / 4 {
                    let (ok, out, err) = consort(&[
                        "peg",
                        "out",
                        "--node",
                        &node,
                        "--key",
                        key.to_str().expect("utf8"),
                        "--amount",
                        &PEG_OUT_SAT.to_string(),
                        "--to",
                        &payee,
                        "--yes",
                    ]);
                    assert!(ok, "peg out: {out} {err}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("peg-out sender");
    }
    let requested = started.elapsed();
    eprintln!("{PEG_OUTS} peg-outs requested in {requested:?}");
    super::wait_for(
        "every peg-out to complete",
        Duration::from_secs(900),
        || {
            get(&format!("{node}/v1/peg"))
                .is_some_and(|v| v["totals"]["pending_peg_outs"] == json!(0))
        },
    );
    eprintln!(
        "{PEG_OUTS} peg-outs completed {:?} after the first request",
        started.elapsed()
    );
    for id in &ids {
        assert_eq!(
            balance(id),
            per_account - (PEG_OUTS / 4) as u64 * PEG_OUT_SAT
        );
    }
    std::thread::sleep(Duration::from_secs(6));
    done.store(true, Ordering::Relaxed);
    let (runs, heights) = auditor.join().expect("auditor");
    eprintln!(
        "the audit held {runs} times over {} main-chain blocks ({}..={})",
        heights.len(),
        heights.first().copied().unwrap_or(0),
        heights.last().copied().unwrap_or(0)
    );
}
