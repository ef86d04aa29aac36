//! The shop on four `consort node` processes: fifty customers order the last ten items at
//! once (ten orders, forty `out_of_stock` receipts, every nonce used, stock 0 available and 10
//! reserved), a buyer proves its order with `consort verify --order`, and a digital good goes
//! from order to review, whose text `consort verify --review` proves from genesis alone.
//! All along, `consort indexer` follows the chain and is SIGKILLed at random points; at the
//! end it holds exactly what an index built again from genesis holds.

use super::{BIN, get, height_of, http, start_devnet, wait_for};
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{
    AccountId, Amount, Call, SignedTx, Tx,
    codec_util::{List, Text},
    commerce::{
        CommerceCall, LineRequest, PaymentMethod, ProductContent, ProductKind, RecordId,
        ReviewContent, VariantSpec,
    },
    sealed::{self, Sealed},
};
use serde_json::{Value, json};
use std::{path::Path, process::Command, time::Duration};

const CUSTOMERS: u64 = 50;
const PRICE: u64 = 8_800;

fn sign(key: &ed25519::PrivateKey, nonce: u64, call: Call) -> SignedTx {
    Tx {
        chain_id: 1,
        sender: AccountId::new(key.public_key()),
        nonce,
        call,
    }
    .sign(key)
}

fn post(api: &str, txs: &[SignedTx]) -> Vec<String> {
    let hex: Vec<String> = txs.iter().map(|t| hex::encode(t.encode())).collect();
    let answer: Value = http()
        .post(format!("{api}/v1/txs/batch"))
        .timeout(Duration::from_secs(30))
        .json(&json!({ "txs": hex }))
        .send()
        .expect("post batch")
        .json()
        .expect("json");
    let refused = answer["results"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x.get("error").is_some()))
        .cloned();
    assert_eq!(
        answer["accepted"].as_u64(),
        Some(txs.len() as u64),
        "every transaction admitted; the first refused: {refused:?}"
    );
    txs.iter()
        .map(|t| consort_types::hex_serde::encode(&t.hash()))
        .collect()
}

/// Wait for `hash` to be final; its place and failure code (if it failed).
fn outcome(api: &str, hash: &str) -> (RecordId, Option<String>) {
    let mut found = None;
    wait_for(&format!("{hash} final"), Duration::from_secs(60), || {
        found = get(&format!("{api}/v1/txs/{hash}"))
            .filter(|v| matches!(v["status"].as_str(), Some("finalized" | "failed")));
        found.is_some()
    });
    let v = found.expect("final");
    (
        RecordId {
            height: v["height"].as_u64().expect("height"),
            index: u32::try_from(v["index"].as_u64().expect("index")).expect("index"),
        },
        v["error"]["code"].as_str().map(str::to_string),
    )
}

fn applied(api: &str, hash: &str) -> RecordId {
    let (place, failure) = outcome(api, hash);
    assert_eq!(failure, None, "{hash} applied");
    place
}

fn nonce_of(api: &str, id: &AccountId) -> u64 {
    get(&format!("{api}/v1/accounts/{id}"))
        .and_then(|a| a["nonce"].as_u64())
        .unwrap_or(0)
}

fn seal_key(key: &ed25519::PrivateKey) -> [u8; 32] {
    sealed::keypair(&key.encode()).1
}

fn seal(payload: &[u8], to: &[&ed25519::PrivateKey]) -> Sealed {
    let recipients: Vec<_> = to
        .iter()
        .map(|k| (AccountId::new(k.public_key()), seal_key(k)))
        .collect();
    sealed::seal(payload, &recipients, b"consort/shop-test").expect("seals")
}

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).expect("fits")
}

fn product(kind: ProductKind, stock: u64) -> CommerceCall {
    CommerceCall::PublishProduct {
        content: ProductContent {
            kind,
            title_zh: text("限量版蓝牙耳机"),
            title_en: text("Limited edition bluetooth headphones"),
            description_zh: text("最后十副"),
            description_en: text("The last ten"),
            category: text("electronics/audio"),
            attributes: List(Vec::new()),
            images: List(Vec::new()),
            variants: List(vec![VariantSpec {
                name: text("black"),
                price: PRICE,
                currency: "CNY".parse().expect("asset"),
                stock,
            }]),
        },
    }
}

fn verify(dir: &Path, api: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["verify", "--node", api, "--genesis"])
        .arg(dir.join("genesis.json"))
        .args(args)
        .output()
        .expect("consort verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn fifty_customers_race_for_the_last_ten_items_on_the_devnet_and_orders_and_reviews_are_proven() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = start_devnet(dir.path(), 4, 500);
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    wait_for("every node to finalize", Duration::from_secs(60), || {
        apis.iter().all(|api| height_of(api) >= 2)
    });
    // An indexer follows the busy chain from here, killed at random points all along.
    let followed = dir.path().join("followed.sqlite");
    let chaos = crate::indexer::chaos(&apis[3], &followed, &dir.path().join("indexer.log"));
    let demo = |name: &str| {
        consort_node::node::load_key(&dir.path().join(format!("accounts/{name}.key")))
            .expect("demo key")
    };
    // alice runs the platform, bob the shop, carol the bank, dave the regulator.
    let (bob, carol, dave) = (demo("bob"), demo("carol"), demo("dave"));
    let customers: Vec<ed25519::PrivateKey> = (0..CUSTOMERS)
        .map(|i| ed25519::PrivateKey::from_seed(0x5_0000_0000 + i))
        .collect();

    // Customers register and publish sealing keys; the shop and the regulator too; the bank
    // issues e-money to every customer.
    // Admission reads the finalized state: registrations first, then what needs them.
    let registered: Vec<SignedTx> = customers
        .iter()
        .map(|customer| sign(customer, 0, Call::SelfRegister))
        .collect();
    for hash in post(&apis[0], &registered) {
        applied(&apis[0], &hash);
    }
    let mut setup = Vec::new();
    for customer in &customers {
        setup.push(sign(
            customer,
            1,
            Call::SetSealKey {
                key: seal_key(customer),
            },
        ));
    }
    let seals = [&bob, &dave].map(|k| {
        let id = AccountId::new(k.public_key());
        sign(
            k,
            nonce_of(&apis[0], &id),
            Call::SetSealKey { key: seal_key(k) },
        )
    });
    setup.extend(seals);
    let carol_nonce = nonce_of(&apis[0], &AccountId::new(carol.public_key()));
    for (i, customer) in customers.iter().enumerate() {
        setup.push(sign(
            &carol,
            carol_nonce + i as u64,
            Call::Issue {
                asset: "CNY".parse().expect("asset"),
                to: AccountId::new(customer.public_key()),
                amount: Amount::new(100_000),
            },
        ));
    }
    let hashes = post(&apis[0], &setup);
    for hash in &hashes {
        applied(&apis[0], hash);
    }
    let bob_nonce = nonce_of(&apis[0], &AccountId::new(bob.public_key()));
    let published = post(
        &apis[1],
        &[
            sign(
                &bob,
                bob_nonce,
                Call::Commerce(product(ProductKind::Physical, 10)),
            ),
            sign(
                &bob,
                bob_nonce + 1,
                Call::Commerce(product(ProductKind::Digital, 100)),
            ),
        ],
    );
    let physical = applied(&apis[1], &published[0]);
    let digital = applied(&apis[1], &published[1]);

    // The race: fifty orders for the last ten, posted to the four nodes at once.
    let orders: Vec<SignedTx> = customers
        .iter()
        .map(|customer| {
            sign(
                customer,
                2,
                Call::Commerce(CommerceCall::PlaceOrder {
                    lines: List(vec![LineRequest {
                        product: physical,
                        variant: 0,
                        quantity: 1,
                        price: PRICE,
                    }]),
                    method: PaymentMethod::Wallet,
                    pay: true,
                    address: seal(b"Room 1, 100 Nanjing Road", &[customer, &bob, &dave]),
                }),
            )
        })
        .collect();
    let hashes: Vec<String> = orders
        .chunks(orders.len().div_ceil(apis.len()))
        .zip(&apis)
        .flat_map(|(chunk, api)| post(api, chunk))
        .collect();
    let outcomes: Vec<(RecordId, Option<String>)> =
        hashes.iter().map(|h| outcome(&apis[2], h)).collect();
    let placed: Vec<(usize, RecordId)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (_, failure))| failure.is_none())
        .map(|(i, (place, _))| (i, *place))
        .collect();
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|(_, failure)| failure.as_deref())
        .collect();
    assert_eq!(placed.len(), 10, "exactly ten orders: {outcomes:?}");
    assert_eq!(refused.len(), 40);
    assert!(
        refused.iter().all(|code| *code == "out_of_stock"),
        "{refused:?}"
    );
    for customer in &customers {
        assert_eq!(
            nonce_of(&apis[3], &AccountId::new(customer.public_key())),
            3,
            "every order used its nonce"
        );
    }
    let shown = get(&format!("{}/v1/commerce/products/{physical}", apis[3])).expect("product");
    assert_eq!(shown["variants"][0]["available"], 0);
    assert_eq!(shown["variants"][0]["reserved"], 10);
    let escrow = get(&format!("{}/v1/commerce/holdings/CNY", apis[0])).expect("holdings");
    assert_eq!(escrow["escrow"], 10 * PRICE);

    // A winner proves its order from genesis alone; a stranger may not read it.
    let (winner, order) = placed[0];
    let key_file = dir.path().join("winner.key");
    std::fs::write(
        &key_file,
        consort_types::hex_serde::encode(&customers[winner]),
    )
    .expect("key");
    let (ok, out) = verify(
        dir.path(),
        &apis[1],
        &[
            "--order",
            &order.to_string(),
            "--key",
            key_file.to_str().expect("path"),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("verified: order {order} is paid")),
        "{out}"
    );
    let loser = outcomes
        .iter()
        .position(|(_, f)| f.is_some())
        .expect("a loser");
    let stranger_file = dir.path().join("stranger.key");
    std::fs::write(
        &stranger_file,
        consort_types::hex_serde::encode(&customers[loser]),
    )
    .expect("key");
    let (ok, out) = verify(
        dir.path(),
        &apis[1],
        &[
            "--order",
            &order.to_string(),
            "--key",
            stranger_file.to_str().expect("path"),
        ],
    );
    assert!(!ok && out.contains("not_entitled"), "{out}");

    // A digital good from order to review, then the review proven with its text.
    let buyer = &customers[loser];
    let bought = post(
        &apis[0],
        &[sign(
            buyer,
            3,
            Call::Commerce(CommerceCall::PlaceOrder {
                lines: List(vec![LineRequest {
                    product: digital,
                    variant: 0,
                    quantity: 1,
                    price: PRICE,
                }]),
                method: PaymentMethod::Wallet,
                pay: true,
                address: Sealed::default(),
            }),
        )],
    );
    let ebook = applied(&apis[0], &bought[0]);
    let bob_nonce = nonce_of(&apis[0], &AccountId::new(bob.public_key()));
    let steps = post(
        &apis[0],
        &[
            sign(
                &bob,
                bob_nonce,
                Call::Commerce(CommerceCall::AcceptOrders {
                    orders: List(vec![ebook]),
                }),
            ),
            sign(
                &bob,
                bob_nonce + 1,
                Call::Commerce(CommerceCall::Fulfil {
                    order: ebook,
                    voucher: seal(b"CODE-1234", &[&bob, buyer, &dave]),
                }),
            ),
            sign(
                buyer,
                4,
                Call::Commerce(CommerceCall::ConfirmReceipt { order: ebook }),
            ),
            sign(
                buyer,
                5,
                Call::Commerce(CommerceCall::Review {
                    order: ebook,
                    line: 0,
                    content: ReviewContent {
                        rating: 5,
                        text: text("音质很好 great sound"),
                        photos: List(vec![[3; 32]]),
                    },
                }),
            ),
        ],
    );
    for hash in &steps {
        applied(&apis[0], hash);
    }
    let (ok, out) = verify(dir.path(), &apis[2], &["--review", &format!("{ebook}:0")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("rating 5/5") && out.contains("音质很好 great sound"),
        "{out}"
    );
    review_evidence_catches_tampering(dir.path(), &apis[2], ebook);
    indexed_the_same_as_a_rebuild(
        dir.path(),
        &apis,
        chaos,
        &followed,
        (physical, digital),
        ebook,
    );
}

/// The indexer killed at random points while the chain was busy holds exactly what one built
/// again from genesis (from another node's change log) holds, and that is the shop: the race's
/// stock, the orders, the digital order's timeline, the review's words.
fn indexed_the_same_as_a_rebuild(
    dir: &Path,
    apis: &[String],
    chaos: crate::indexer::Chaos,
    followed: &std::path::PathBuf,
    (physical, digital): (RecordId, RecordId),
    ebook: RecordId,
) {
    let kills = chaos.finish();
    assert!(kills >= 5, "the indexer was killed {kills} times");
    let tip = height_of(&apis[3]);
    crate::indexer::index_until(&apis[3], followed, tip, false);
    let rebuilt = dir.join("rebuilt.sqlite");
    crate::indexer::index_until(&apis[1], &rebuilt, tip, true);
    let (a, b) = (
        crate::indexer::dump(followed),
        crate::indexer::dump(&rebuilt),
    );
    assert!(
        a == b,
        "the followed index (killed {kills} times) differs from the rebuild:\n{}",
        a.lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .take(5)
            .map(|(x, y)| format!("followed: {x}\nrebuilt:  {y}\n"))
            .collect::<String>()
    );
    let index = consort_indexer::Index::open(&rebuilt).expect("open the index");
    let db = index.connection();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT COUNT(*) FROM orders"),
        11,
        "ten race winners and the e-book"
    );
    let stock: (i64, i64) = db
        .query_row(
            "SELECT available, reserved FROM variants WHERE product = ?1 AND variant = 0",
            [physical.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the race's variant");
    assert_eq!(stock, (0, 10), "the race's stock as the chain has it");
    let timeline: Vec<String> = {
        let mut statement = db
            .prepare("SELECT event FROM order_events WHERE order_id = ?1 ORDER BY height, idx, seq")
            .expect("timeline");
        statement
            .query_map([ebook.to_string()], |r| r.get(0))
            .expect("timeline")
            .collect::<Result<_, _>>()
            .expect("timeline")
    };
    assert_eq!(
        timeline,
        [
            "place_order",
            "accept_orders",
            "fulfil",
            "confirm_receipt",
            "review"
        ],
        "the e-book's timeline"
    );
    let review: (String, i64, String) = db
        .query_row(
            "SELECT text, rating, status FROM reviews JOIN orders ON orders.id = reviews.order_id \
             WHERE order_id = ?1",
            [ebook.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the review");
    assert_eq!(
        review,
        (
            "音质很好 great sound".to_string(),
            5,
            "completed".to_string()
        )
    );
    let title: String = db
        .query_row(
            "SELECT title_zh FROM products WHERE id = ?1",
            [physical.to_string()],
            |r| r.get(0),
        )
        .expect("the product");
    assert_eq!(
        title, "限量版蓝牙耳机",
        "the product's text comes from its transaction"
    );
    drop(index);
    shop_api_answers_from_the_index(dir, &apis[1], &rebuilt, (physical, digital), ebook);
}

/// The shop's read API over that index: search in Chinese and English, the product page
/// with the race's stock and the e-book's review, a comparison, and typed errors for bad
/// input.
fn shop_api_answers_from_the_index(
    dir: &Path,
    api: &str,
    db: &Path,
    (physical, digital): (RecordId, RecordId),
    ebook: RecordId,
) {
    let shop = crate::indexer::serving(api, db, &dir.join("shop-api.log"));
    let url = &shop.url;
    let found = |query: &str| -> Vec<String> {
        let answer = get(&format!("{url}/v1/shop/search?{query}")).expect("search answers");
        answer["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {answer}"))
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect()
    };
    // Both products carry the same title: each query finds both, whatever the language.
    for query in [
        "q=蓝牙耳机",
        "q=耳机",
        "q=bluetooth+headphones",
        "q=headphone",
    ] {
        let mut ids = found(query);
        ids.sort();
        let mut both = vec![physical.to_string(), digital.to_string()];
        both.sort();
        assert_eq!(ids, both, "{query}");
    }
    assert_eq!(found("q=冰箱"), Vec::<String>::new());
    assert_eq!(
        found("in_stock=true"),
        [digital.to_string()],
        "the race's product is sold out"
    );
    let page = get(&format!("{url}/v1/shop/products/{physical}")).expect("product");
    assert_eq!(page["variants"][0]["available"], 0);
    assert_eq!(page["variants"][0]["reserved"], 10);
    assert_eq!(
        page["versions"][0]["content"]["title_en"],
        "Limited edition bluetooth headphones"
    );
    let search = get(&format!("{url}/v1/shop/search?q=耳机&category=electronics")).expect("search");
    assert_eq!(search["total"], 2, "{search}");
    assert!(
        search["facets"]["categories"]
            .as_array()
            .expect("facets")
            .iter()
            .any(|c| c["name"] == "electronics" && c["count"] == 2),
        "{search}"
    );
    let page = get(&format!("{url}/v1/shop/products/{digital}")).expect("product page");
    assert_eq!(page["reviews"]["total"], 1);
    assert_eq!(page["reviews"]["latest"][0]["text"], "音质很好 great sound");
    assert_eq!(page["reviews"]["latest"][0]["order"], ebook.to_string());
    assert_eq!(page["rating"], "5.00");
    let compared =
        get(&format!("{url}/v1/shop/compare?ids={physical},{digital}")).expect("compare");
    let rows = compared["rows"].as_array().expect("rows");
    let available = rows.iter().find(|r| r["name"] == "available").expect("row");
    assert_eq!(available["differs"], true);
    // Bad input: a typed error, nothing else.
    for (path, status, code) in [
        ("/v1/shop/search?per_page=1000", 400, "bad_request"),
        ("/v1/shop/search?sort=cheapest", 400, "bad_request"),
        ("/v1/shop/search?price_min=-5", 400, "bad_request"),
        ("/v1/shop/search?color=red", 400, "bad_request"),
        ("/v1/shop/search?rating_min=9", 400, "bad_request"),
        ("/v1/shop/products/garbage", 400, "bad_request"),
        ("/v1/shop/products/999999-0", 404, "unknown_product"),
        ("/v1/shop/compare?ids=1-0", 400, "bad_request"),
    ] {
        let response = http().get(format!("{url}{path}")).send().expect("answers");
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: serde_json::Value = response.json().expect("json error");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}

/// The light client refuses a review's record evidence changed in any part: a value's
/// byte, its length head, its size, a chunk's key, a chunk dropped.
fn review_evidence_catches_tampering(dir: &Path, api: &str, order: RecordId) {
    use commonware_codec::DecodeExt as _;
    use consort_client::light::{ChunkEvidence, LightError, verify_record};
    let genesis = consort_types::Genesis::from_json(
        &std::fs::read_to_string(dir.join("genesis.json")).expect("genesis"),
    )
    .expect("genesis");
    let (answer, evidence) = super::proven(
        api,
        &genesis,
        &format!("/v1/commerce/reviews/{order}/0/proof"),
    );
    let super::Evidence {
        header,
        finalization,
        boundaries,
    } = evidence;
    let proof = &answer["proof"];
    let bytes = super::hex_field;
    let chunks = || -> Vec<ChunkEvidence> {
        proof["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(|c| ChunkEvidence {
                key: consort_types::Digest::decode(commonware_codec::Copying(
                    bytes(&c["key"]).as_slice(),
                ))
                .expect("key"),
                value: bytes(&c["value"]),
                proof: bytes(&c["proof"]),
            })
            .collect()
    };
    let key = consort_types::state_key::commerce::review(&order, 0);
    let check = |chunks: &[ChunkEvidence]| {
        verify_record(&genesis, &header, &finalization, &boundaries, &key, chunks)
    };
    let honest = check(&chunks()).expect("honest evidence verifies");
    assert!(honest.signers >= 3, "a quorum of 4 signed");

    // A byte of the record changed (past the 4-byte length head).
    let mut lied = chunks();
    lied[0].value[10] ^= 0x01;
    assert_eq!(check(&lied), Err(LightError::ProofMismatch));
    // The length head changed: the chunks it names are not these, or the proof fails.
    let mut lied = chunks();
    lied[0].value[3] ^= 0x01;
    assert!(check(&lied).is_err(), "a changed length head is caught");
    // A value of the wrong size.
    let mut lied = chunks();
    lied[0].value.pop();
    assert_eq!(
        check(&lied),
        Err(LightError::BadRecord("a chunk is not a state value's size"))
    );
    // The record's first chunk presented under another key (another line's review).
    let mut lied = chunks();
    lied[0].key = consort_types::state_key::commerce::review(&order, 1);
    assert_eq!(
        check(&lied),
        Err(LightError::BadRecord("the chunk keys are not the record's"))
    );
    // A chunk dropped (the review's head names more than one, or none are left).
    let mut lied = chunks();
    lied.pop();
    assert!(
        matches!(check(&lied), Err(LightError::BadRecord(_))),
        "a dropped chunk is caught"
    );
}
