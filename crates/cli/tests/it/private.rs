//! Private fields on a running consortium of real nodes: sealed by the CLI, stored and served
//! only as ciphertext, read with signed requests by the parties and the regulator.

use crate::{
    BIN, Node, get, height, key_id,
    validators::{consort, consortium, node_from, submit},
    wait_for,
};
use std::{process::Command, time::Duration};

#[test]
fn a_shipping_address_is_sealed_to_buyer_seller_and_regulator_and_nobody_else() {
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
    let path = |name: &str| dir.path().join(format!("accounts/{name}.key"));
    // A customer registers itself; bob administers the shop (seller), dave the regulator,
    // carol the bank (a third party here).
    let buyer_key = dir.path().join("accounts/buyer.key");
    consort(&["keys", "new", "--out", buyer_key.to_str().expect("path")]);
    // Unregistered, it may not write: the node refuses at admission, naming why.
    let early = Command::new(BIN)
        .args(["private", "seal-key", "--node", &api, "--key"])
        .arg(&buyer_key)
        .output()
        .expect("run");
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    submit(&api, &buyer_key, consort_types::Call::SelfRegister);
    for key in [&buyer_key, &path("bob"), &path("dave"), &path("carol")] {
        consort(&[
            "private",
            "seal-key",
            "--node",
            &api,
            "--key",
            key.to_str().expect("path"),
        ]);
    }
    let address = "Room 5, 1 Harbour Road, Kowloon; phone +852 5555 0101";
    let (seller, regulator) = (key_id(&path("bob")), key_id(&path("dave")));
    let put = consort(&[
        "private",
        "put",
        "--node",
        &api,
        "--key",
        buyer_key.to_str().expect("path"),
        "--about",
        &seller,
        "--to",
        &regulator,
        "--label",
        "shipping-address",
        "--text",
        address,
    ]);
    assert!(put.starts_with("private record 0 finalized"), "{put}");

    // Buyer, seller and regulator open it through any node (once each has the block).
    let written = height(&nodes[0]);
    wait_for(
        "every node to reach the record",
        Duration::from_secs(30),
        || nodes.iter().all(|n| height(n) >= written),
    );
    for (who, node) in [(&buyer_key, 1), (&path("bob"), 2), (&path("dave"), 3)] {
        let shown = consort(&[
            "private",
            "get",
            "0",
            "--node",
            &nodes[node].api,
            "--key",
            who.to_str().expect("path"),
        ]);
        assert!(shown.contains(address), "{shown}");
    }
    // The bank's admin is refused; an unsigned read is refused.
    let refused = Command::new(BIN)
        .args(["private", "get", "0", "--node", &api, "--key"])
        .arg(path("carol"))
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not_entitled"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let unsigned = crate::http()
        .get(format!("{api}/v1/private/0"))
        .send()
        .expect("get");
    assert_eq!(unsigned.status().as_u16(), 401);

    // Every finalized block, as any third party reads it, holds only ciphertext.
    let tip = height(&nodes[0]);
    let hex_address = hex::encode(address.as_bytes());
    let mut sealed_in_blocks = false;
    for h in 1..=tip {
        let block = get(&format!("{api}/v1/blocks/{h}"))
            .expect("block")
            .to_string();
        assert!(!block.contains(address) && !block.contains(&hex_address[..40]));
        sealed_in_blocks |= block.contains("put_private");
    }
    assert!(sealed_in_blocks, "the record's transaction is in a block");
}
