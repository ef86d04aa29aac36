//! A customer's whole purchase on four node processes, through `consort shop` only: she
//! searches in Chinese, compares, fills a cart, checks out and pays; the seller accepts and
//! ships with a carrier admitted by vote; the carrier posts its events; she follows the
//! timeline live, confirms and reviews; the seller sees its settlement. Every balance adds up
//! at each step. The shop API is node 0's (its config names a read model, as the devnet's
//! does); transactions go to node 1. Then bad input on every new route: typed errors, nothing
//! changed.

use super::{BIN, get, height_of, http, key_id, start_devnet, start_devnet_with, wait_for};
use serde_json::{Value, json};
use std::{
    io::BufRead as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// Run `consort shop ARGS` with `key` against the devnet; its stdout, or a panic with both
/// streams.
fn shop(env: &Env, args: &[&str], key: &Path) -> String {
    let out = env.command(args, key).output().expect("consort shop");
    assert!(
        out.status.success(),
        "consort shop {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn shop_json(env: &Env, args: &[&str], key: &Path) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&shop(env, &all, key)).expect("--json prints JSON")
}

fn shop_fails(env: &Env, args: &[&str], key: &Path) -> String {
    let out = env.command(args, key).output().expect("consort shop");
    assert!(!out.status.success(), "consort shop {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

struct Env {
    node: String,
    shop: String,
    regulator: String,
}

impl Env {
    fn command(&self, args: &[&str], key: &Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("shop")
            .args(args)
            .env("CONSORT_NODE", &self.node)
            .env("CONSORT_SHOP", &self.shop)
            .env("CONSORT_REGULATOR", &self.regulator)
            .env("CONSORT_KEY", key)
            .stdin(Stdio::null());
        command
    }
}

fn consort(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("consort");
    assert!(
        out.status.success(),
        "consort {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn balance(api: &str, account: &str) -> u64 {
    get(&format!("{api}/v1/accounts/{account}/balances/CNY"))
        .and_then(|v| v["balance"].as_u64())
        .unwrap_or(0)
}

fn escrow(api: &str) -> u64 {
    get(&format!("{api}/v1/commerce/holdings/CNY"))
        .and_then(|v| v["escrow"].as_u64())
        .expect("holdings")
}

fn write_product(dir: &Path, name: &str, content: &Value) -> String {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, content.to_string()).expect("product file");
    path.to_str().expect("path").to_string()
}

fn product(
    title_zh: &str,
    title_en: &str,
    category: &str,
    attrs: &[(&str, &str)],
    variants: &[(&str, u64, u64)],
) -> Value {
    json!({
        "kind": "physical",
        "title_zh": title_zh,
        "title_en": title_en,
        "description_zh": format!("{title_zh}，正品行货"),
        "description_en": format!("{title_en}, genuine"),
        "category": category,
        "attributes": attrs.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "images": [{"sha256": "ab".repeat(32), "url": format!("https://img.example/{}.jpg", title_en.replace(' ', "-"))}],
        "variants": variants.iter().map(|(n, price, stock)| json!({"name": n, "price": price, "currency": "CNY", "stock": stock})).collect::<Vec<_>>(),
    })
}

#[test]
fn a_customer_buys_through_consort_shop_on_four_nodes_and_every_balance_adds_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = start_devnet(dir.path(), 4, 500);
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_for("every node to finalize", Duration::from_secs(60), || {
        apis.iter().all(|api| height_of(api) >= 2)
    });
    wait_for("node 0's shop API", Duration::from_secs(30), || {
        get(&format!("{}/v1/shop/status", apis[0]))
            .is_some_and(|s| s["indexed_height"].as_u64() >= Some(1))
    });
    let key = |name: &str| dir.path().join(format!("accounts/{name}.key"));
    let new_key = |name: &str| {
        let path = key(name);
        consort(&["keys", "new", "--out", path.to_str().expect("path")]);
        let id = key_id(&path);
        (path, id)
    };
    let s = |p: &Path| p.to_str().expect("path").to_string();
    // Rotate an account's key through node 1; wait until node 0 names the old key as the
    // new one's previous.
    let rotate = |old: &Path, new: &Path, old_id: &str, new_id: &str| {
        consort(&[
            "account",
            "rotate",
            "--node",
            &apis[1],
            "--key",
            &s(old),
            "--new-key",
            &s(new),
        ]);
        wait_for("the rotation", Duration::from_secs(20), || {
            get(&format!("{}/v1/accounts/{new_id}/registration", apis[0]))
                .is_some_and(|r| r["previous_keys"] == json!([old_id]))
        });
    };
    let (alice, bob, carol, dave) = (key("alice"), key("bob"), key("carol"), key("dave"));
    let (bob_id, dave_id) = (key_id(&bob), key_id(&dave));
    let env = Env {
        node: apis[1].clone(),
        shop: apis[0].clone(),
        regulator: dave_id.clone(),
    };

    // A carrier is admitted by vote; its admin registers a courier account.
    let (swift_admin, swift_admin_id) = new_key("swift-admin");
    let proposed = consort(&[
        "org",
        "propose-admit",
        "--node",
        &apis[1],
        "--key",
        &s(&alice),
        "--org",
        "swift",
        "--kind",
        "logistics",
        "--admin",
        &swift_admin_id,
    ]);
    let proposal = proposed
        .split("proposal ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("proposal number")
        .to_string();
    for voter in [&bob, &carol] {
        consort(&[
            "gov",
            "vote",
            &proposal,
            "--yes",
            "--node",
            &apis[1],
            "--key",
            &s(voter),
        ]);
    }
    let (courier, courier_id) = new_key("courier");
    consort(&[
        "account",
        "register",
        "--node",
        &apis[1],
        "--key",
        &s(&swift_admin),
        "--account",
        &courier_id,
        "--roles",
        "carrier",
    ]);
    // Everyone who receives sealed fields publishes a sealing key.
    for party in [&bob, &dave, &courier] {
        shop(&env, &["join"], party);
    }
    let (ann, ann_id) = new_key("ann");
    let joined = shop(&env, &["join"], &ann);
    assert!(
        joined.contains("registered") && joined.contains("ready to shop"),
        "{joined}"
    );
    // Carol's bank issues e-money to an account.
    let issue = |asset: &str, to: &str, amount: &str| {
        consort(&[
            "bank",
            "issue",
            "--node",
            &apis[1],
            "--key",
            &s(&carol),
            "--asset",
            asset,
            "--to",
            to,
            "--amount",
            amount,
        ])
    };
    issue("CNY", &ann_id, "100000");

    // The seller publishes three products.
    let published: Vec<String> = [
        product(
            "蓝牙耳机 降噪",
            "Bluetooth headphones, noise cancelling",
            "electronics/audio",
            &[("battery", "30h"), ("colour", "black")],
            &[("black", 29_900, 5), ("white", 31_900, 2)],
        ),
        product(
            "有线耳机",
            "Wired earphones",
            "electronics/audio",
            &[("battery", "none"), ("colour", "white")],
            &[("white", 4_900, 50)],
        ),
        product(
            "机械键盘",
            "Mechanical keyboard",
            "electronics/computers",
            &[("switch", "brown")],
            &[("87 keys", 39_900, 10)],
        ),
    ]
    .iter()
    .enumerate()
    .map(|(i, content)| {
        let file = write_product(dir.path(), &format!("product-{i}"), content);
        let out = shop(&env, &["publish", "--file", &file], &bob);
        out.trim()
            .strip_prefix("published product ")
            .expect("id")
            .to_string()
    })
    .collect();
    let (headphones, earphones, keyboard) = (&published[0], &published[1], &published[2]);

    // She searches in Chinese: both headphones, not the keyboard; facets count them.
    let mut found = Value::Null;
    wait_for(
        "the products to be searchable",
        Duration::from_secs(30),
        || {
            found = shop_json(&env, &["search", "耳机"], &ann);
            found["total"] == 2
        },
    );
    let ids: Vec<&str> = found["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.contains(&headphones.as_str()) && ids.contains(&earphones.as_str()),
        "{found}"
    );
    assert!(!ids.contains(&keyboard.as_str()));
    let text = shop(&env, &["search", "耳机", "--sort", "price_asc"], &ann);
    assert!(text.starts_with("2 found"), "{text}");
    assert!(
        text.find("有线耳机").expect("earphones listed")
            < text.find("蓝牙耳机").expect("headphones listed"),
        "price order: {text}"
    );
    let english = shop_json(&env, &["search", "bluetooth", "headphone"], &ann);
    assert_eq!(
        english["results"][0]["id"].as_str(),
        Some(headphones.as_str()),
        "{english}"
    );

    // She compares them: colour and battery differ.
    let compared = shop(&env, &["compare", headphones, earphones], &ann);
    assert!(
        compared.lines().any(|l| l.starts_with("*battery")),
        "{compared}"
    );
    assert!(
        compared.lines().any(|l| l.starts_with("*colour")),
        "{compared}"
    );
    assert!(
        compared.lines().any(|l| l.starts_with(" category")),
        "{compared}"
    );

    // The cart: two headphones (white), one pair of earphones, then one headphone fewer.
    shop(
        &env,
        &[
            "cart",
            "add",
            headphones,
            "--variant",
            "1",
            "--quantity",
            "2",
        ],
        &ann,
    );
    shop(&env, &["cart", "add", earphones], &ann);
    let cart = shop(
        &env,
        &[
            "cart",
            "set",
            headphones,
            "--variant",
            "1",
            "--quantity",
            "1",
        ],
        &ann,
    );
    assert!(cart.contains("total: 36800 CNY"), "{cart}");
    let viewed = shop_json(&env, &["cart", "show"], &ann);
    assert_eq!(viewed["ready"], true);
    assert_eq!(
        viewed["checkout"].as_array().map(Vec::len),
        Some(1),
        "one seller, one order"
    );
    // More than is in stock is warned of and left out of checkout.
    shop(&env, &["cart", "add", keyboard, "--quantity", "11"], &ann);
    let viewed = shop_json(&env, &["cart", "show"], &ann);
    let keyboard_line = viewed["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["product"] == keyboard.as_str())
        .expect("keyboard line")
        .clone();
    assert_eq!(keyboard_line["warnings"], json!(["low_stock"]), "{viewed}");
    assert_eq!(viewed["ready"], false);
    shop(&env, &["cart", "remove", keyboard], &ann);

    // Checkout pays from her wallet into escrow.
    let (ann_before, escrow_before) = (balance(&apis[2], &ann_id), escrow(&apis[2]));
    assert_eq!(ann_before, 100_000);
    let placed = shop(
        &env,
        &["checkout", "--address", "安妮, 上海市南京路100号 5室"],
        &ann,
    );
    let order = placed
        .split("order ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("order id")
        .to_string();
    assert!(placed.contains("paid into escrow"), "{placed}");
    wait_for("balances after checkout", Duration::from_secs(20), || {
        balance(&apis[2], &ann_id) == ann_before - 36_800
    });
    assert_eq!(escrow(&apis[2]), escrow_before + 36_800);
    assert_eq!(
        shop_json(&env, &["cart", "show"], &ann)["lines"],
        json!([]),
        "ordered items left the cart"
    );

    // Her orders; the seller's queue; a stranger sees nothing of it.
    let mine = wait_json(&env, &["orders"], &ann, |v| v["total"] == 1);
    assert_eq!(mine["orders"][0]["id"].as_str(), Some(order.as_str()));
    assert_eq!(mine["orders"][0]["status"], "paid");
    // She follows the order live from here.
    let mut follower = env
        .command(&["track", &order, "--follow"], &ann)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("track --follow");

    let queue = wait_json(
        &env,
        &["orders", "--role", "seller", "--status", "paid"],
        &bob,
        |v| v["total"] == 1,
    );
    assert_eq!(queue["orders"][0]["buyer"].as_str(), Some(ann_id.as_str()));
    let (stranger, _) = new_key("stranger");
    let refused = shop_fails(&env, &["order", &order], &stranger);
    assert!(refused.contains("not_a_party"), "{refused}");
    assert!(shop_fails(&env, &["orders", "--role", "seller"], &ann).contains("not_a_party"));
    assert!(shop_fails(&env, &["orders", "--role", "regulator"], &ann).contains("not_a_party"));
    assert!(
        shop_json(&env, &["orders", "--role", "regulator"], &dave)["total"].as_u64() >= Some(1)
    );

    // The seller accepts and ships with the carrier; the carrier posts its events. A label
    // that would be sealed to someone other than the carrier's account is refused before
    // anything is sent.
    shop(&env, &["accept", &order], &bob);
    let refused = shop_fails(
        &env,
        &[
            "ship",
            &order,
            "--carrier",
            "swift",
            "--carrier-account",
            &ann_id,
            "--label",
            "安妮 上海市南京路100号 5室",
        ],
        &bob,
    );
    assert!(
        refused.contains("is not a carrier account of swift"),
        "{refused}"
    );
    shop(
        &env,
        &[
            "ship",
            &order,
            "--carrier",
            "swift",
            "--carrier-account",
            &courier_id,
            "--label",
            "安妮 上海市南京路100号 5室 138-0000-0000",
        ],
        &bob,
    );
    let assigned = wait_json(&env, &["orders", "--role", "carrier"], &courier, |v| {
        v["total"] == 1
    });
    assert_eq!(
        assigned["shipments"][0]["order"].as_str(),
        Some(order.as_str())
    );
    for (status, location) in [
        ("picked_up", "深圳"),
        ("in_transit", "Shanghai hub"),
        ("out_for_delivery", "黄浦区"),
        ("delivered", ""),
    ] {
        shop(
            &env,
            &["event", &order, "0", status, "--location", location],
            &courier,
        );
    }
    let timeline = wait_json(&env, &["order", &order], &ann, |v| {
        v["order"]["status"] == "delivered"
    });
    let steps: Vec<String> = timeline["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| match e["event"].as_str() {
            Some("shipment") => format!("shipment:{}", e["status"].as_str().unwrap_or("")),
            other => other.unwrap_or("").to_string(),
        })
        .collect();
    let expected = [
        "place_order",
        "accept_orders",
        "ship",
        "shipment:picked_up",
        "shipment:in_transit",
        "shipment:out_for_delivery",
        "shipment:delivered",
    ];
    let mut rest = steps.iter();
    for step in expected {
        assert!(rest.any(|s| s == step), "{step} in order in {steps:?}");
    }
    assert_eq!(
        steps.first().map(String::as_str),
        Some("place_order"),
        "{steps:?}"
    );
    assert_eq!(timeline["as"], "buyer");
    assert_eq!(timeline["lines"][0]["title_zh"], "蓝牙耳机 降噪");

    // She confirms: escrow pays the seller less the platform's fee; the follower sees the
    // order complete and stops on its own.
    let bob_before = balance(&apis[2], &bob_id);
    let escrow_held = escrow(&apis[2]);
    shop(&env, &["confirm", &order], &ann);
    let done = wait_json(&env, &["order", &order], &ann, |v| {
        v["order"]["status"] == "completed"
    });
    let (settled, fee) = (
        done["order"]["settled"].as_u64().expect("settled"),
        done["order"]["fee"].as_u64().expect("fee"),
    );
    assert_eq!(settled + fee, 36_800, "{done}");
    wait_for("the seller's settlement", Duration::from_secs(20), || {
        balance(&apis[2], &bob_id) == bob_before + settled
    });
    assert_eq!(escrow(&apis[2]), escrow_held - 36_800);
    assert_eq!(balance(&apis[2], &ann_id), ann_before - 36_800);
    let sold = wait_json(
        &env,
        &["orders", "--role", "seller", "--status", "completed"],
        &bob,
        |v| v["total"] == 1,
    );
    assert_eq!(sold["orders"][0]["settled"].as_u64(), Some(settled));

    let mut followed = String::new();
    let stdout = follower.stdout.take().expect("stdout");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        followed.push_str(&line);
        followed.push('\n');
        if line.contains("confirm_receipt") {
            break;
        }
    }
    if !followed.contains("shipment 0 in_transit at Shanghai hub") {
        let _ = follower.kill();
        let mut errors = String::new();
        if let Some(mut stderr) = follower.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
        }
        panic!("the follower printed:\n{followed}\nand said:\n{errors}");
    }
    let status = follower
        .wait()
        .expect("the follower ends once the order completes");
    assert!(status.success(), "{followed}");

    // She reviews the headphones; the product page shows it.
    shop(
        &env,
        &[
            "review",
            &order,
            "0",
            "--rating",
            "5",
            "--text",
            "音质很好，降噪明显",
        ],
        &ann,
    );
    let page = wait_json(&env, &["product", headphones], &ann, |v| {
        v["reviews"]["total"] == 1
    });
    assert_eq!(page["reviews"]["latest"][0]["text"], "音质很好，降噪明显");
    assert_eq!(page["rating"], "5.00");

    // After-sales: a second order, of earphones, delivered; one earbud is missing, so she
    // asks for half back without returning them; the seller refuses, she takes it to the
    // platform, and the operator's ruling refunds her half and settles the rest.
    // She keeps her address in her profile (sealed to her and the regulator) and checks out
    // without typing it again.
    assert!(shop_fails(&env, &["profile"], &ann).contains("no profile yet"));
    shop(
        &env,
        &[
            "profile",
            "--name",
            "安妮",
            "--phone",
            "+86 138 0000 0000",
            "--address",
            "上海市南京路100号 5室",
            "--address",
            "北京市建国路88号",
        ],
        &ann,
    );
    // The shop's indexer may be a block behind the node that took it.
    let profile = |done: &dyn Fn(&Value) -> bool| -> Value {
        let mut last = Value::Null;
        wait_for("the profile indexed", Duration::from_secs(30), || {
            let out = env
                .command(&["profile", "--json"], &ann)
                .output()
                .expect("consort shop profile");
            last = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            out.status.success() && done(&last)
        });
        last
    };
    let mine = profile(&|v| v["name"] == "安妮");
    assert_eq!(mine["addresses"][0], "上海市南京路100号 5室", "{mine}");
    shop(&env, &["profile", "--phone", "+86 139 1111 1111"], &ann);
    let mine = profile(&|v| v["phone"] == "+86 139 1111 1111");
    assert_eq!(mine["name"], "安妮", "a change keeps what it does not name");
    assert!(shop_fails(&env, &["profile"], &stranger).contains("no profile yet"));
    shop(&env, &["cart", "add", earphones], &ann);
    let placed = shop(&env, &["checkout"], &ann);
    let second = placed
        .split("order ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("order id")
        .to_string();
    shop(&env, &["accept", &second], &bob);
    shop(
        &env,
        &[
            "ship",
            &second,
            "--carrier",
            "swift",
            "--carrier-account",
            &courier_id,
            "--label",
            "安妮 上海市南京路100号 5室 138-0000-0000",
        ],
        &bob,
    );
    for status in ["picked_up", "in_transit", "out_for_delivery", "delivered"] {
        shop(&env, &["event", &second, "0", status], &courier);
    }
    wait_json(&env, &["order", &second], &ann, |v| {
        v["order"]["status"] == "delivered"
    });
    let half = "2450";
    let refused = shop_fails(
        &env,
        &["return", &second, "--amount", "4901", "--reason", "x"],
        &ann,
    );
    assert!(refused.contains("refund_too_large"), "{refused}");
    shop(
        &env,
        &[
            "return",
            &second,
            "--amount",
            half,
            "--refund-only",
            "--reason",
            "少了一只耳塞 one earbud missing",
        ],
        &ann,
    );
    shop(
        &env,
        &["answer-return", &second, "--refuse", "--reason", "包裹完整"],
        &bob,
    );
    shop(
        &env,
        &["dispute", &second, "--reason", "快递照片显示缺件"],
        &ann,
    );
    let disputes = wait_json(&env, &["orders", "--role", "operator"], &alice, |v| {
        v["total"] == 1
    });
    assert_eq!(disputes["orders"][0]["id"].as_str(), Some(second.as_str()));
    assert!(shop_fails(&env, &["orders", "--role", "operator"], &ann).contains("not_a_party"));
    let case = shop_json(&env, &["order", &second], &alice);
    assert_eq!(case["as"], "operator");
    assert_eq!(case["after_sale"]["status"], "disputed", "{case}");
    let ann_before = balance(&apis[2], &ann_id);
    shop(
        &env,
        &[
            "rule",
            &second,
            "--refund",
            half,
            "--reason",
            "the carrier's photo shows one earbud",
        ],
        &alice,
    );
    let ruled = wait_json(&env, &["order", &second], &ann, |v| {
        v["order"]["status"] == "completed"
    });
    assert_eq!(ruled["after_sale"]["status"], "ruled", "{ruled}");
    assert_eq!(ruled["order"]["refunded"].as_u64(), Some(2_450));
    assert_eq!(
        ruled["order"]["settled"].as_u64().unwrap_or(0)
            + ruled["order"]["fee"].as_u64().unwrap_or(0),
        4_900 - 2_450
    );
    wait_for("the ruling's refund", Duration::from_secs(20), || {
        balance(&apis[2], &ann_id) == ann_before + 2_450
    });
    let printed = shop(&env, &["order", &second], &ann);
    assert!(printed.contains("after-sales: ruled"), "{printed}");

    // Settlement paid Bob in e-money; Carol's bank pays part of it out in fiat.
    let bob_cny = balance(&apis[1], &bob_id);
    assert!(bob_cny >= 1_000, "settlement paid Bob: {bob_cny}");
    let payout_id = |printed: &str| {
        printed
            .split("payout ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("payout id")
            .to_string()
    };
    let payout = payout_id(&shop(
        &env,
        &["payout", "--asset", "CNY", "--amount", "1000"],
        &bob,
    ));
    wait_for(
        "the payout to leave Bob's balance",
        Duration::from_secs(20),
        || balance(&apis[1], &bob_id) == bob_cny - 1_000,
    );
    let asked = shop_json(&env, &["payout-status", &payout], &bob);
    assert_eq!(asked["payout"]["confirmed"], false, "{asked}");
    assert_eq!(asked["payout"]["amount"].as_u64(), Some(1_000));
    assert!(shop_fails(&env, &["payout-status", &payout], &ann).contains("not_entitled"));
    assert!(
        shop_fails(&env, &["payout", "--asset", "CNY", "--amount", "1"], &ann)
            .contains("unauthorized")
    );
    assert_eq!(
        shop_json(&env, &["payout-status", &payout], &carol)["payout"]["seller"].as_str(),
        Some(bob_id.as_str())
    );
    // Carol's bank finds it in its queue of payouts to pay out; Ann has no such queue.
    let queue = wait_json(
        &env,
        &["payouts", "--role", "bank", "--waiting"],
        &carol,
        |v| v["total"] == 1,
    );
    assert_eq!(queue["payouts"][0]["id"].as_str(), Some(payout.as_str()));
    assert_eq!(queue["payouts"][0]["amount"].as_u64(), Some(1_000));
    assert!(shop_fails(&env, &["payouts", "--role", "bank"], &ann).contains("not_a_party"));
    shop(&env, &["confirm-payout", &payout], &carol);
    wait_json(
        &env,
        &["payouts", "--role", "bank", "--waiting"],
        &carol,
        |v| v["total"] == 0,
    );
    let paid = shop(&env, &["payout-status", &payout], &bob);
    assert!(paid.contains("confirmed by the bank"), "{paid}");
    assert!(shop_fails(&env, &["cancel-payout", &payout], &bob).contains("payout_confirmed"));
    // A second one Bob thinks better of: withdrawn, the e-money is back.
    let second_payout = payout_id(&shop(
        &env,
        &["payout", "--asset", "CNY", "--amount", "500"],
        &bob,
    ));
    wait_for(
        "the second payout to leave Bob's balance",
        Duration::from_secs(20),
        || balance(&apis[1], &bob_id) == bob_cny - 1_500,
    );
    let waiting = wait_json(&env, &["payouts", "--waiting"], &bob, |v| v["total"] == 1);
    assert_eq!(
        waiting["payouts"][0]["id"].as_str(),
        Some(second_payout.as_str())
    );
    shop(&env, &["cancel-payout", &second_payout], &bob);
    wait_for(
        "the withdrawn payout's e-money back",
        Duration::from_secs(20),
        || balance(&apis[1], &bob_id) == bob_cny - 1_000,
    );
    assert!(
        shop_fails(&env, &["confirm-payout", &second_payout], &carol).contains("unknown_payout")
    );
    // Bob's list keeps the paid one; the withdrawn one is gone from it.
    let bobs = wait_json(&env, &["payouts", "--confirmed"], &bob, |v| v["total"] == 1);
    assert_eq!(bobs["payouts"][0]["id"].as_str(), Some(payout.as_str()));
    wait_json(&env, &["payouts", "--waiting"], &bob, |v| v["total"] == 0);
    let all = shop_json(&env, &["payouts"], &bob);
    assert_eq!(all["total"], 1, "{all}");
    // E-money no order was ever priced in still reaches its bank's queue when paid out:
    // Carol's bank issues HKD to Bob directly, and he asks for it in fiat.
    issue("HKD", &bob_id, "300");
    wait_for("Bob's HKD", Duration::from_secs(20), || {
        get(&format!("{}/v1/accounts/{bob_id}/balances/HKD", apis[1]))
            .and_then(|v| v["balance"].as_u64())
            == Some(300)
    });
    let hkd = payout_id(&shop(
        &env,
        &["payout", "--asset", "HKD", "--amount", "300"],
        &bob,
    ));
    let queue = wait_json(
        &env,
        &["payouts", "--role", "bank", "--waiting"],
        &carol,
        |v| v["total"] == 1,
    );
    assert_eq!(queue["payouts"][0]["id"].as_str(), Some(hkd.as_str()));
    assert_eq!(
        queue["payouts"][0]["asset"].as_str(),
        Some("HKD"),
        "{queue}"
    );
    shop(&env, &["confirm-payout", &hkd], &carol);
    wait_json(
        &env,
        &["payouts", "--role", "bank", "--waiting"],
        &carol,
        |v| v["total"] == 0,
    );

    bad_input_on_the_new_routes(&apis[0], &order, earphones, &ann);

    // Ann's key may be lost or stolen: she rotates to a new one. The new key reads the
    // orders she placed with the old one; the old key reads nothing any more.
    let (ann2, ann2_id) = new_key("ann2");
    rotate(&ann, &ann2, &ann_id, &ann2_id);
    let old_key = get(&format!("{}/v1/accounts/{ann_id}/registration", apis[0]))
        .expect("the old key's registration");
    assert_eq!(old_key["rotated_to"].as_str(), Some(ann2_id.as_str()));
    let hers = wait_json(&env, &["orders"], &ann2, |v| v["total"] == 2);
    assert!(
        hers["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .all(|o| o["buyer"].as_str() == Some(ann_id.as_str())),
        "{hers}"
    );
    assert_eq!(shop_json(&env, &["order", &second], &ann2)["as"], "buyer");
    // The shop API remembers who a key is for MEMBER_TTL (5 s).
    wait_for("the old key to be refused", Duration::from_secs(15), || {
        let out = env
            .command(&["orders"], &ann)
            .output()
            .expect("consort shop");
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("key_rotated")
    });
    assert!(shop_fails(&env, &["order", &second], &ann).contains("key_rotated"));
    assert!(shop_fails(&env, &["cart", "show"], &ann).contains("key_rotated"));
    // The node's own order route agrees: the new key reads it, the old one is refused.
    let path = format!("/v1/commerce/orders/{second}");
    let (status, read) = signed_get(&apis[1], &ann2, &path);
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["after_sale"]["status"], "ruled", "{read}");
    assert_eq!(
        read["returns"],
        json!([]),
        "a refund without goods back has no parcel"
    );
    assert_eq!(read["order"]["refunded"].as_u64(), Some(2_450));
    let (status, refused) = signed_get(&apis[1], &ann, &path);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "key_rotated", "{refused}");
    // So does the payout route: the old key is told its new one, the new key is no party.
    let path = format!("/v1/commerce/payouts/{payout}");
    let (status, refused) = signed_get(&apis[1], &ann, &path);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "key_rotated", "{refused}");
    let (status, refused) = signed_get(&apis[1], &ann2, &path);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "not_entitled", "{refused}");
    let (status, read) = signed_get(&apis[1], &bob, &path);
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["payout"]["confirmed"], true, "{read}");
    // Bob rotates his key too: the new one reads and lists his payout, the old one neither.
    let (bob2, bob2_id) = new_key("bob2");
    rotate(&bob, &bob2, &bob_id, &bob2_id);
    let (status, read) = signed_get(&apis[1], &bob2, &path);
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["payout"]["seller"].as_str(), Some(bob_id.as_str()));
    assert_eq!(
        read["seller_now"].as_str(),
        Some(bob2_id.as_str()),
        "{read}"
    );
    let status = env
        .command(&["payout-status", &payout], &bob2)
        .output()
        .expect("consort shop payout-status");
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success()
            && printed.contains(&format!(
                "to seller {bob2_id} (asked as {bob_id}, since rotated)"
            )),
        "{printed}"
    );
    let (status, refused) = signed_get(&apis[1], &bob, &path);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "key_rotated", "{refused}");
    // Both of his paid-out payouts (CNY and HKD), newest first.
    let listed = wait_json(&env, &["payouts"], &bob2, |v| v["total"] == 2);
    assert_eq!(listed["payouts"][0]["id"].as_str(), Some(hkd.as_str()));
    assert_eq!(listed["payouts"][1]["id"].as_str(), Some(payout.as_str()));
}

/// The host a request to `api` names, as signed requests sign it.
fn host(api: &str) -> String {
    consort_types::signed_read::host_of(api).expect("the API's URL names a host")
}

/// A GET of `path` on `api` signed by the key in `key` (chain 1): status and JSON body.
fn signed_get(api: &str, key: &Path, path: &str) -> (u16, Value) {
    let key = consort_node::node::load_key(key).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut request = http().get(format!("{api}{path}"));
    for (name, value) in
        consort_types::signed_read::sign(&key, 1, &host(api), "GET", path, now, b"")
    {
        request = request.header(name, value);
    }
    let response = request.send().expect("signed GET");
    let status = response.status().as_u16();
    (status, response.json().expect("a JSON answer"))
}

/// Poll `consort shop ARGS --json` until `done` holds.
fn wait_json(env: &Env, args: &[&str], key: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    wait_for(
        &format!("consort shop {args:?}"),
        Duration::from_secs(30),
        || {
            last = shop_json(env, args, key);
            done(&last)
        },
    );
    last
}

/// Unsigned, forged, stale, replayed and malformed requests to order views and carts: each a
/// typed error, and the cart unchanged.
fn bad_input_on_the_new_routes(api: &str, order: &str, product: &str, ann_key: &Path) {
    let key = consort_node::node::load_key(ann_key).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = |method: &str, path: &str, body: &[u8], time: u64| {
        let headers =
            consort_types::signed_read::sign(&key, 1, &host(api), method, path, time, body);
        let mut request = http().request(method.parse().expect("method"), format!("{api}{path}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body.to_vec())
    };
    let code = |response: reqwest::blocking::Response| -> (u16, String) {
        let status = response.status().as_u16();
        let body: Value = response.json().expect("a JSON error");
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    // A line in the cart, and a replay of the request that put it there refused.
    let add = format!(r#"{{"product":"{product}","quantity":1}}"#);
    let path = "/v1/shop/cart/items?request_id=bad-input-test";
    let added = signed("POST", path, add.as_bytes(), now)
        .send()
        .expect("add");
    assert_eq!(added.status().as_u16(), 200);
    assert_eq!(
        code(
            signed("POST", path, add.as_bytes(), now)
                .send()
                .expect("replay")
        ),
        (409, "replayed".into())
    );
    let read_cart = || -> Value {
        let response = signed("GET", "/v1/shop/cart", b"", now)
            .send()
            .expect("cart");
        assert_eq!(response.status().as_u16(), 200);
        response.json().expect("json")
    };
    let cart_before = read_cart();
    assert_eq!(cart_before["lines"][0]["quantity"], 1, "{cart_before}");
    // Unsigned.
    for path in [
        "/v1/shop/cart",
        &format!("/v1/shop/orders/{order}"),
        "/v1/shop/orders",
        "/v1/shop/updates",
        "/v1/shop/payouts",
    ] {
        assert_eq!(
            code(http().get(format!("{api}{path}")).send().expect("get")),
            (401, "unsigned_read".into()),
            "{path}"
        );
    }
    // One account opens at most UPDATE_STREAMS_PER_ACCOUNT_MAX update streams; a closed one
    // gives its place back.
    let stream = |at: u64| {
        signed("GET", "/v1/shop/updates", b"", at)
            .send()
            .expect("stream")
    };
    let mut open: Vec<_> = (0..consort_indexer::api::UPDATE_STREAMS_PER_ACCOUNT_MAX as u64)
        .map(|i| {
            let response = stream(now - i);
            assert_eq!(response.status().as_u16(), 200);
            response
        })
        .collect();
    assert_eq!(code(stream(now - 10)), (429, "too_many_streams".into()));
    drop(open.pop());
    wait_for("a closed stream's place", Duration::from_secs(60), || {
        let response = stream(now);
        let free = response.status().as_u16() == 200;
        if free {
            open.push(response);
        }
        free
    });
    drop(open);
    // A key no member organisation registered gets no stream.
    let stranger =
        <commonware_cryptography::ed25519::PrivateKey as commonware_cryptography::Signer>::from_seed(
            0x5EED_0001,
        );
    let mut unregistered = http().get(format!("{api}/v1/shop/updates"));
    for (name, value) in consort_types::signed_read::sign(
        &stranger,
        1,
        &host(api),
        "GET",
        "/v1/shop/updates",
        now,
        b"",
    ) {
        unregistered = unregistered.header(name, value);
    }
    assert_eq!(
        code(unregistered.send().expect("stream")),
        (403, "not_a_party".into())
    );
    // Signed for another path, or long ago.
    let mut other = http().get(format!("{api}/v1/shop/orders"));
    for (name, value) in
        consort_types::signed_read::sign(&key, 1, &host(api), "GET", "/v1/shop/cart", now, b"")
    {
        other = other.header(name, value);
    }
    assert_eq!(
        code(other.send().expect("get")),
        (401, "unsigned_read".into())
    );
    assert_eq!(
        code(
            signed("GET", "/v1/shop/cart", b"", now - 3_600)
                .send()
                .expect("get")
        ),
        (401, "unsigned_read".into())
    );
    // Signed for another server (a cart read meant for it, replayed here).
    let mut replayed = http().get(format!("{api}/v1/shop/cart"));
    for (name, value) in
        consort_types::signed_read::sign(&key, 1, "127.0.0.1:1", "GET", "/v1/shop/cart", now, b"")
    {
        replayed = replayed.header(name, value);
    }
    assert_eq!(
        code(replayed.send().expect("get")),
        (401, "unsigned_read".into())
    );
    // A body that is not what was signed.
    let body = br#"{"product":"1-0","quantity":1}"#;
    let headers = consort_types::signed_read::sign(
        &key,
        1,
        &host(api),
        "POST",
        "/v1/shop/cart/items",
        now,
        body,
    );
    let mut tampered = http().post(format!("{api}/v1/shop/cart/items"));
    for (name, value) in headers {
        tampered = tampered.header(name, value);
    }
    assert_eq!(
        code(
            tampered
                .body(br#"{"product":"1-0","quantity":9}"#.to_vec())
                .send()
                .expect("post")
        ),
        (401, "unsigned_read".into())
    );
    // Malformed bodies and parameters.
    for (body, expected) in [
        (&b"not json"[..], (400, "bad_request")),
        (br#"{"product":"1-0","quantity":0}"#, (400, "bad_request")),
        (br#"{"product":"x","quantity":1}"#, (400, "bad_request")),
        (
            br#"{"product":"1-0","quantity":1,"extra":true}"#,
            (400, "bad_request"),
        ),
        (
            br#"{"product":"999999-0","quantity":1}"#,
            (404, "unknown_product"),
        ),
    ] {
        let (status, error) = code(
            signed("POST", "/v1/shop/cart/items", body, now)
                .send()
                .expect("post"),
        );
        assert_eq!(
            (status, error.as_str()),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let big = format!(
        r#"{{"product":"1-0","quantity":1,"pad":"{}"}}"#,
        "x".repeat(2_000)
    );
    assert_eq!(
        code(
            signed("POST", "/v1/shop/cart/items", big.as_bytes(), now)
                .send()
                .expect("post")
        )
        .0,
        413
    );
    for path in [
        "/v1/shop/orders?role=king",
        "/v1/shop/orders?method=barter",
        "/v1/shop/orders?role=carrier&method=wallet",
        "/v1/shop/orders?page=0",
        "/v1/shop/orders?per_page=101",
        "/v1/shop/orders?colour=red",
        "/v1/shop/orders/not-an-id",
        "/v1/shop/payouts?role=king",
        "/v1/shop/payouts?confirmed=maybe",
        "/v1/shop/payouts?page=0",
        "/v1/shop/payouts?per_page=101",
        "/v1/shop/payouts?colour=red",
    ] {
        assert_eq!(
            code(signed("GET", path, b"", now).send().expect("get")),
            (400, "bad_request".into()),
            "{path}"
        );
    }
    // A customer sees no bank's or regulator's payouts.
    for path in [
        "/v1/shop/payouts?role=bank",
        "/v1/shop/payouts?role=regulator",
    ] {
        assert_eq!(
            code(signed("GET", path, b"", now).send().expect("get")),
            (403, "not_a_party".into()),
            "{path}"
        );
    }
    assert_eq!(
        code(
            signed("DELETE", "/v1/shop/cart/items/1-0/0", b"", now)
                .send()
                .expect("delete")
        ),
        (404, "not_in_cart".into())
    );
    assert_eq!(
        read_cart()["lines"],
        cart_before["lines"],
        "nothing changed"
    );
    // A replayed clear is refused too.
    let first = signed("DELETE", "/v1/shop/cart", b"", now)
        .send()
        .expect("clear");
    assert_eq!(first.status().as_u16(), 200);
    let again = signed("DELETE", "/v1/shop/cart", b"", now);
    assert_eq!(
        code(again.send().expect("clear again")),
        (409, "replayed".into())
    );
    assert_eq!(read_cart()["lines"], json!([]));
}

/// `consort shop demo` (what `consort devnet` runs at start) on four nodes: four
/// organisations admitted by vote, 210 products in both languages, orders in every state a
/// shop shows (the unpaid and unaccepted ones expire after the chain's payment window, here
/// 45 s), reviews with a seller's reply, customers' profiles sealed to them; a second run
/// changes nothing.
#[test]
fn the_demo_shop_fills_a_devnet_with_a_catalogue_orders_in_every_state_and_reviews() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = start_devnet_with(dir.path(), 4, 500, &["--payment-window", "45"]);
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_for("every node to finalize", Duration::from_secs(60), || {
        apis.iter().all(|api| height_of(api) >= 2)
    });
    let demo = |node: &str| {
        let out = Command::new(BIN)
            .args(["shop", "demo", "--node", node, "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("consort shop demo");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let said = demo(&apis[2]);
    assert!(said.contains("210 products, 22 orders"), "{said}");
    let gov = get(&format!("{}/v1/gov", apis[1])).expect("gov");
    let members: Vec<&str> = gov["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for org in ["swift", "tea-house", "gadgets", "bank2"] {
        assert!(members.contains(&org), "{org} admitted: {members:?}");
    }
    let env = Env {
        node: apis[1].clone(),
        shop: apis[0].clone(),
        regulator: key_id(&dir.path().join("accounts/dave.key")),
    };
    let dave = dir.path().join("accounts/dave.key");
    let alice = dir.path().join("accounts/alice.key");
    // Node 0's indexer may be a block or two behind the node the demo talked to: the demo's
    // last step is a dispute, which the platform's queue shows.
    let disputes = wait_json(&env, &["orders", "--role", "operator"], &alice, |v| {
        v["total"] == 1
    });
    assert_eq!(disputes["orders"][0]["status"], "after_sale", "{disputes}");
    let states_of = |status: &Value| -> Vec<String> {
        let mut states: Vec<String> = status["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .filter_map(|o| o["status"].as_str().map(str::to_string))
            .collect();
        states.sort_unstable();
        states.dedup();
        states
    };
    let regulator_view = ["orders", "--role", "regulator", "--per-page", "100"];
    let status = wait_json(&env, &regulator_view, &dave, |v| v["total"] == 22);
    let mut states = states_of(&status);
    // The unpaid wallet order and the unaccepted cash-on-delivery one: placed until the
    // payment window passes, then expired, their stock back.
    states.retain(|s| s != "placed" && s != "expired");
    assert_eq!(
        states,
        [
            "accepted",
            "after_sale",
            "cancelled",
            "completed",
            "delivered",
            "paid",
            "partly_shipped",
            "shipped"
        ],
        "{status}"
    );
    // The issuing bank follows the orders in its e-money as they change: its update stream
    // carries the cash-on-delivery order when it expires.
    let carol = dir.path().join("accounts/carol.key");
    let bank_events = {
        let key = consort_node::node::load_key(&carol).expect("key");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut request = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .expect("client")
            .get(format!("{}/v1/shop/updates", apis[0]));
        for (name, value) in consort_types::signed_read::sign(
            &key,
            1,
            &host(&apis[0]),
            "GET",
            "/v1/shop/updates",
            now,
            b"",
        ) {
            request = request.header(name, value);
        }
        let response = request.send().expect("the bank's update stream");
        assert_eq!(response.status().as_u16(), 200);
        let (sender, receiver) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(response).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        receiver
    };
    let mut expired = Value::Null;
    wait_for(
        "the unpaid orders to expire",
        Duration::from_secs(90),
        || {
            expired = shop_json(&env, &regulator_view, &dave);
            expired["orders"]
                .as_array()
                .is_some_and(|o| o.iter().filter(|o| o["status"] == "expired").count() == 2)
        },
    );
    assert!(
        !states_of(&expired).contains(&"placed".to_string()),
        "{expired}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut heard = Vec::new();
    let bank_heard_expiry = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = bank_events.recv_timeout(left) else {
            break false;
        };
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        if event["order"]["status"] == "expired" {
            heard.push(event["order"]["method"].clone());
            if event["order"]["method"] == "cash_on_delivery" {
                break true;
            }
        }
    };
    assert!(
        bank_heard_expiry,
        "the bank's stream carries its cash-on-delivery order's expiry; expiries heard: {heard:?}"
    );
    // The bank that issues the shop's e-money sees the orders in it: the transfer it confirmed
    // and the cash-on-delivery order whose cash it would remit, and reads them one by one.
    let transfers = shop_json(
        &env,
        &["orders", "--role", "bank", "--method", "bank_transfer"],
        &carol,
    );
    assert_eq!(transfers["total"], 1, "{transfers}");
    assert_eq!(transfers["orders"][0]["payment"], "escrowed", "{transfers}");
    let cash = shop_json(
        &env,
        &["orders", "--role", "bank", "--method", "cash_on_delivery"],
        &carol,
    );
    assert_eq!(cash["total"], 1, "{cash}");
    let id = cash["orders"][0]["id"].as_str().expect("an id");
    assert_eq!(shop_json(&env, &["order", id], &carol)["as"], "bank");
    let everything = shop_json(
        &env,
        &["orders", "--role", "bank", "--per-page", "100"],
        &carol,
    );
    assert_eq!(everything["total"], 22, "{everything}");
    // Not a bank's account (nor, for this order, its buyer): refused.
    let customer = dir.path().join("accounts/customer-1.key");
    assert!(shop_fails(&env, &["orders", "--role", "bank"], &customer).contains("not_a_party"));
    assert!(shop_fails(&env, &["order", id], &customer).contains("not_a_party"));
    let catalogue = get(&format!("{}/v1/shop/status", apis[0])).expect("status");
    assert_eq!(catalogue["products"], 210, "{catalogue}");
    assert_eq!(catalogue["reviews"], 11, "{catalogue}");
    // Both languages find the same goods; sellers and categories are facets.
    let zh = get(&format!(
        "{}/v1/shop/search?q=%E9%BE%99%E4%BA%95%E8%8C%B6&per_page=100",
        apis[0]
    ))
    .expect("search");
    let en = get(&format!(
        "{}/v1/shop/search?q=longjing&per_page=100",
        apis[0]
    ))
    .expect("search");
    assert_eq!(zh["total"], 10, "{zh}");
    assert_eq!(zh["total"], en["total"]);
    let everything = get(&format!("{}/v1/shop/search?per_page=1", apis[0])).expect("search");
    assert_eq!(
        everything["facets"]["sellers"].as_array().map(Vec::len),
        Some(3),
        "{everything}"
    );
    assert!(
        everything["facets"]["categories"]
            .as_array()
            .map_or(0, Vec::len)
            == 8,
        "{everything}"
    );
    // A customer sees her own three orders (the demo's 22 go round its 10 customers).
    let customer = dir.path().join("accounts/customer-0.key");
    let mine = shop_json(&env, &["orders"], &customer);
    assert_eq!(mine["total"], 3, "{mine}");
    // Run again: nothing more is made.
    let again = demo(&apis[3]);
    assert!(again.contains("210 products, 0 orders"), "{again}");
    assert_eq!(
        get(&format!("{}/v1/shop/status", apis[0])).expect("status")["orders"],
        22
    );
}
