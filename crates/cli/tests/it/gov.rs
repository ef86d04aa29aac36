//! The governance CLI against a running consortium of real nodes: organisations admitted by
//! vote, accounts registered and rotated, bank e-money issued, redeemed and reported, and the
//! regulator's freezes, alerts and audit trail.

use crate::{
    BIN, Node, get, height, key_id,
    validators::{consort, consortium, node_from},
    wait_for,
};
use serde_json::Value;
use std::{
    process::{Command, Stdio},
    time::Duration,
};

fn fails(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run consort");
    assert!(!out.status.success(), "consort {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn the_governance_cli_runs_a_consortium_bank_money_and_the_regulator() {
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
    for node in &mut nodes {
        node.start();
    }
    wait_for("blocks", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= 2)
    });
    let api = nodes[0].api.clone();
    let key = |name: &str| {
        dir.path()
            .join(format!("accounts/{name}.key"))
            .to_str()
            .expect("path")
            .to_string()
    };
    let new_key = |name: &str| {
        let path = key(name);
        consort(&["keys", "new", "--out", &path]);
        (path.clone(), key_id(std::path::Path::new(&path)))
    };
    let (alice, bob, carol, dave) = (key("alice"), key("bob"), key("carol"), key("dave"));
    let first = height(&nodes[0]);

    // A carrier is admitted by three of four organisations.
    let (_, ship_admin) = new_key("ship-admin");
    let proposed = consort(&[
        "org",
        "propose-admit",
        "--node",
        &api,
        "--key",
        &alice,
        "--org",
        "ship",
        "--kind",
        "logistics",
        "--admin",
        &ship_admin,
    ]);
    assert!(proposed.contains("proposal 0 is open"), "{proposed}");
    consort(&["gov", "vote", "0", "--yes", "--node", &api, "--key", &bob]);
    let voted = consort(&["gov", "vote", "0", "--yes", "--node", &api, "--key", &carol]);
    assert!(voted.contains("now passed"), "{voted}");
    assert!(consort(&["org", "list", "--node", &api]).contains("ship"));
    assert!(
        fails(&["gov", "vote", "0", "--no", "--node", &api, "--key", &dave])
            .contains("gov_no_such_proposal")
    );

    // A customer registers; a shop clerk is registered by the shop's admin.
    let (buyer, buyer_id) = new_key("buyer");
    consort(&["account", "self-register", "--node", &api, "--key", &buyer]);
    let (_, clerk) = new_key("clerk");
    consort(&[
        "account",
        "register",
        "--node",
        &api,
        "--key",
        &bob,
        "--account",
        &clerk,
        "--roles",
        "seller",
    ]);
    // The shop may not grant bank roles.
    assert!(
        fails(&[
            "account",
            "register",
            "--node",
            &api,
            "--key",
            &bob,
            "--account",
            &buyer_id,
            "--roles",
            "bank",
        ])
        .contains("gov_")
    );

    // The bank issues, the customer redeems part, the bank reports reserves: outstanding is
    // issued minus redeemed.
    consort(&[
        "bank", "issue", "--node", &api, "--key", &carol, "--asset", "CNY", "--to", &buyer_id,
        "--amount", "1000",
    ]);
    consort(&[
        "bank", "redeem", "--node", &api, "--key", &buyer, "--asset", "CNY", "--amount", "300",
    ]);
    let attestation = dir.path().join("attestation.txt");
    std::fs::write(&attestation, "reserves audited 2026-11-24").expect("write");
    let reported = consort(&[
        "bank",
        "reserve",
        "--node",
        &api,
        "--key",
        &carol,
        "--asset",
        "CNY",
        "--reserves",
        "700",
        "--attestation",
        attestation.to_str().expect("path"),
    ]);
    assert!(
        reported.contains("issued 1000, redeemed 300, outstanding 700, reserves 700"),
        "{reported}"
    );
    // Only banks issue.
    assert!(
        fails(&[
            "bank", "issue", "--node", &api, "--key", &bob, "--asset", "CNY", "--to", &buyer_id,
            "--amount", "1",
        ])
        .contains("unauthorized")
    );

    // The customer rotates to a new key: the e-money follows, the old key stops.
    let (buyer2, buyer2_id) = new_key("buyer2");
    consort(&[
        "account",
        "rotate",
        "--node",
        &api,
        "--key",
        &buyer,
        "--new-key",
        &buyer2,
    ]);
    let balance = get(&format!("{api}/v1/accounts/{buyer2_id}/balances/CNY")).expect("balance");
    assert_eq!(balance["balance"], 700, "{balance}");
    assert!(
        fails(&[
            "bank", "redeem", "--node", &api, "--key", &buyer, "--asset", "CNY", "--amount", "1",
        ])
        .contains("unauthorized")
    );
    // A rotation that can never apply is refused at admission (its nonce stays unused), not
    // included to fail: back to the old, registered key, or to the key itself.
    for (to, code) in [
        (&buyer, "gov_already_registered"),
        (&buyer2, "gov_same_key"),
    ] {
        let refused = fails(&[
            "account",
            "rotate",
            "--node",
            &api,
            "--key",
            &buyer2,
            "--new-key",
            to,
        ]);
        assert!(
            refused.contains(code) && !refused.contains("failed at height"),
            "{refused}"
        );
    }
    // The new key has sent nothing (its account may not even exist: no native coin moved).
    let account = get(&format!("{api}/v1/accounts/{buyer2_id}")).expect("an answer");
    assert!(
        account["nonce"].as_u64().unwrap_or(0) == 0
            && (account["nonce"].is_u64() || account["error"]["code"] == "unknown_account"),
        "refused rotations use no nonce: {account}"
    );

    // The regulator watches large transfers, freezes an account and lifts the freeze.
    let alerts = Command::new(BIN)
        .args(["reg", "alerts", "--count", "1", "--node", &api])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("alerts");
    std::thread::sleep(Duration::from_millis(500));
    let bob_id = key_id(std::path::Path::new(&bob));
    consort(&[
        "reg",
        "freeze",
        "--node",
        &api,
        "--key",
        &dave,
        "--account",
        &key_id(std::path::Path::new(&alice)),
    ]);
    let frozen = fails(&[
        "transfer", "--node", &api, "--key", &alice, "--to", &bob_id, "--amount", "5",
    ]);
    assert!(frozen.contains("frozen"), "{frozen}");
    consort(&[
        "reg",
        "unfreeze",
        "--node",
        &api,
        "--key",
        &dave,
        "--account",
        &key_id(std::path::Path::new(&alice)),
    ]);
    consort(&[
        "transfer", "--node", &api, "--key", &alice, "--to", &bob_id, "--amount", "2000000",
    ]);
    let output = alerts.wait_with_output().expect("alerts end");
    let alert = String::from_utf8_lossy(&output.stdout);
    assert!(
        alert.contains("\"alert\"") && alert.contains("2000000"),
        "{alert}"
    );

    // The audit trail lists the freeze, the unfreeze and the transfer that went through.
    let last = height(&nodes[0]);
    let export = consort(&[
        "audit",
        "export",
        "--node",
        &api,
        "--from",
        &first.to_string(),
        "--to",
        &last.to_string(),
        "--format",
        "json",
    ]);
    let rows: Value = serde_json::from_str(&export).expect("json");
    let kinds: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for kind in [
        "propose",
        "vote",
        "issue",
        "redeem",
        "reserve_report",
        "rotate",
        "freeze",
        "unfreeze",
        "transfer",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let freeze_at = kinds.iter().position(|k| *k == "freeze").expect("freeze");
    let unfreeze_at = kinds
        .iter()
        .position(|k| *k == "unfreeze")
        .expect("unfreeze");
    let transfer_at = kinds
        .iter()
        .rposition(|k| *k == "transfer")
        .expect("transfer");
    assert!(
        freeze_at < unfreeze_at && unfreeze_at < transfer_at,
        "{kinds:?}"
    );

    // The emergency brake: the regulator proposes a halt and three more of the five
    // organisations agree; a transfer is then refused at admission while governance still
    // works, until a resume passes.
    let proposal = |out: &str| {
        out.split_whitespace()
            .nth(1)
            .expect("proposal number")
            .to_string()
    };
    // Members follow governance on the events stream, asking for gov events only; an
    // unknown event type is refused before the upgrade.
    let ws = api.replace("http://", "ws://");
    match tungstenite::connect(format!("{ws}/v1/events?types=gov,bogus")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!(
            "an unknown event type must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    let gov_events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    {
        let events = gov_events.clone();
        let (mut socket, _) =
            tungstenite::connect(format!("{ws}/v1/events?types=gov")).expect("events stream");
        std::thread::spawn(move || {
            while let Ok(message) = socket.read() {
                if let tungstenite::Message::Text(text) = message
                    && let Ok(event) = serde_json::from_str::<Value>(&text)
                {
                    events.lock().expect("events").push(event);
                }
            }
        });
    }
    let halt = proposal(&consort(&[
        "gov",
        "propose-halt",
        "--node",
        &api,
        "--key",
        &dave,
    ]));
    consort(&[
        "gov", "vote", &halt, "--yes", "--node", &api, "--key", &alice,
    ]);
    consort(&["gov", "vote", &halt, "--yes", "--node", &api, "--key", &bob]);
    let passed = consort(&[
        "gov", "vote", &halt, "--yes", "--node", &api, "--key", &carol,
    ]);
    assert!(passed.contains("now passed"), "{passed}");
    let refused = fails(&[
        "transfer", "--node", &api, "--key", &alice, "--to", &bob_id, "--amount", "5",
    ]);
    assert!(refused.contains("chain_halted"), "{refused}");
    assert!(consort(&["gov", "proposals", "--node", &api]).contains("HALTED"));
    let resume = proposal(&consort(&[
        "gov",
        "propose-resume",
        "--node",
        &api,
        "--key",
        &alice,
    ]));
    consort(&[
        "gov", "vote", &resume, "--yes", "--node", &api, "--key", &bob,
    ]);
    consort(&[
        "gov", "vote", &resume, "--yes", "--node", &api, "--key", &carol,
    ]);
    consort(&[
        "gov", "vote", &resume, "--yes", "--node", &api, "--key", &dave,
    ]);
    consort(&[
        "transfer", "--node", &api, "--key", &alice, "--to", &bob_id, "--amount", "5",
    ]);
    let seen = gov_events.lock().expect("events").clone();
    assert!(
        seen.iter().all(|e| e["type"] == "gov"),
        "only the types asked for: {seen:?}"
    );
    let halt_number: u64 = halt.parse().expect("number");
    assert!(
        seen.iter()
            .any(|e| e["call"]["kind"] == "propose" && e["call"]["action"]["action"] == "halt"),
        "{seen:?}"
    );
    let votes_on_halt = seen
        .iter()
        .filter(|e| e["call"]["kind"] == "vote" && e["call"]["proposal"] == halt_number)
        .count();
    assert_eq!(votes_on_halt, 3, "{seen:?}");
}
