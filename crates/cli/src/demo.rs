//! The devnet's demo shop: what `consort devnet` puts on a new chain so there is a shop to try.
//!
//! The four genesis organisations (platform, shop, bank, regulator) admit a carrier, two more
//! sellers and a second bank by vote; customers register, publish sealing keys, keep their
//! profile as a sealed private record and receive e-money; the three sellers publish a
//! catalogue of 210 products in Chinese and English across categories, with variants, images
//! (by URL and SHA-256) and stock; and orders are driven into every state a shop shows —
//! unpaid, paid, accepted, partly shipped, in transit, delivered, completed and reviewed (some
//! with the seller's reply), cancelled, paid by bank transfer, cash on delivery waiting for the
//! seller, a return approved and a refund disputed before the platform; the unpaid and the
//! unaccepted orders expire once the chain's payment window passes — all through ordinary signed
//! transactions, in batches, each phase waiting for the last to be final.

use crate::client::Client;
use anyhow::{Context as _, bail};
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{
    AccountId, Amount, Asset, Call, SignedTx, Tx,
    codec_util::{Blob, List, Text},
    commerce::{
        Attribute, CarrierEvent, CommerceCall, Image, LineRequest, PaymentMethod, ProductContent,
        ProductKind, RecordId, ReviewContent, ShipLine, ShipmentStatus, VariantSpec,
    },
    gov::{Action, OrgKind},
    sealed,
};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

/// Products the demo catalogue holds.
pub const DEMO_PRODUCTS: usize = 210;

/// Demo customers.
pub const DEMO_CUSTOMERS: usize = 10;

/// Demo orders (each of one product, in the stages of `stage` in [`seed`]).
pub const DEMO_ORDERS: usize = 22;

/// The organisations admitted by vote: id, kind, the key file name of its first admin.
const ADMITTED: [(&str, OrgKind, &str); 4] = [
    ("swift", OrgKind::Logistics, "swift"),
    ("tea-house", OrgKind::Seller, "tea-house"),
    ("gadgets", OrgKind::Seller, "gadgets"),
    ("bank2", OrgKind::Bank, "bank2"),
];

/// A signer with its next nonce.
struct Actor {
    key: ed25519::PrivateKey,
    id: AccountId,
    nonce: u64,
}

impl Actor {
    fn load(client: &Client, path: &Path) -> anyhow::Result<Self> {
        let key = consort_node::node::load_key(path)?;
        Self::from_key(client, key)
    }

    fn from_key(client: &Client, key: ed25519::PrivateKey) -> anyhow::Result<Self> {
        let id = AccountId::new(key.public_key());
        let nonce = match client.get(&format!("/v1/accounts/{id}")) {
            Ok(account) => account["next_nonce"]
                .as_u64()
                .or_else(|| account["nonce"].as_u64())
                .unwrap_or(0),
            Err(_) => 0,
        };
        Ok(Self { key, id, nonce })
    }

    fn seal_key(&self) -> (AccountId, sealed::SealKey) {
        (self.id, sealed::keypair(&self.key.encode()).1)
    }

    fn sign(&mut self, chain_id: u64, call: Call) -> SignedTx {
        let tx = Tx {
            chain_id,
            sender: self.id,
            nonce: self.nonce,
            call,
        }
        .sign(&self.key);
        self.nonce += 1;
        tx
    }
}

/// Transactions posted together and waited for together.
struct Phase<'a> {
    client: &'a Client,
    chain_id: u64,
    txs: Vec<SignedTx>,
}

impl<'a> Phase<'a> {
    fn new(client: &'a Client, chain_id: u64) -> Self {
        Self {
            client,
            chain_id,
            txs: Vec::new(),
        }
    }

    fn add(&mut self, actor: &mut Actor, call: Call) -> usize {
        self.txs.push(actor.sign(self.chain_id, call));
        self.txs.len() - 1
    }

    fn shop(&mut self, actor: &mut Actor, call: CommerceCall) -> usize {
        self.add(actor, Call::Commerce(call))
    }

    /// Post every transaction and wait until each is final; their places, in order. A
    /// transaction that fails stops the demo with its code.
    fn run(self, what: &str) -> anyhow::Result<Vec<RecordId>> {
        let mut hashes = Vec::with_capacity(self.txs.len());
        for chunk in self.txs.chunks(500) {
            let body =
                json!({"txs": chunk.iter().map(|t| hex::encode(t.encode())).collect::<Vec<_>>()});
            let answer = self.client.post("/v1/txs/batch", &body)?;
            if answer["accepted"].as_u64() != Some(chunk.len() as u64) {
                bail!("the node refused some of the demo's {what}: {answer}");
            }
            hashes.extend(
                chunk
                    .iter()
                    .map(|t| consort_types::hex_serde::encode(&t.hash())),
            );
        }
        let started = Instant::now();
        let mut places = Vec::with_capacity(hashes.len());
        for (hash, tx) in hashes.iter().zip(&self.txs) {
            let mut unknown_since: Option<Instant> = None;
            loop {
                let status = match self.client.get(&format!("/v1/txs/{hash}")) {
                    Ok(status) => status,
                    // A busy node may drop a pending transaction from its pool; send it
                    // again (a copy of one already taken is refused, harmlessly).
                    Err(error) if error.to_string().starts_with("unknown_tx") => {
                        let since = *unknown_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(2) {
                            let body = json!({"txs": [hex::encode(tx.encode())]});
                            let _ = self.client.post("/v1/txs/batch", &body);
                            unknown_since = Some(Instant::now());
                        }
                        if started.elapsed() > Duration::from_secs(120) {
                            bail!("the demo's {what} were not final after two minutes");
                        }
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                match status["status"].as_str() {
                    Some("finalized") => {
                        places.push(RecordId {
                            height: status["height"].as_u64().context("height")?,
                            index: u32::try_from(status["index"].as_u64().context("index")?)?,
                        });
                        break;
                    }
                    Some("failed" | "rejected") => {
                        bail!("a demo transaction ({what}) did not apply: {status}")
                    }
                    _ if started.elapsed() > Duration::from_secs(120) => {
                        bail!("the demo's {what} were not final after two minutes")
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Ok(places)
    }
}

/// A proposal's status; a node's state may be a moment behind the finality it reports.
fn proposal_status(client: &Client, id: u64) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        match client.get(&format!("/v1/gov/proposals/{id}")) {
            Ok(answer) => return Ok(answer["status"].as_str().unwrap_or("").to_string()),
            Err(error) if started.elapsed() > Duration::from_secs(10) => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn text<const N: usize>(value: &str) -> anyhow::Result<Text<N>> {
    Text::new(value).with_context(|| format!("{value:?} is longer than {N} bytes"))
}

/// A catalogue line: category, Chinese and English names, attributes, variants (name,
/// price in fen), kind.
struct Item {
    category: &'static str,
    zh: &'static str,
    en: &'static str,
    attributes: &'static [(&'static str, &'static str)],
    variants: &'static [(&'static str, u64)],
    kind: ProductKind,
}

const fn item(
    category: &'static str,
    zh: &'static str,
    en: &'static str,
    attributes: &'static [(&'static str, &'static str)],
    variants: &'static [(&'static str, u64)],
) -> Item {
    Item {
        category,
        zh,
        en,
        attributes,
        variants,
        kind: ProductKind::Physical,
    }
}

const ITEMS: [Item; 21] = [
    item(
        "electronics/audio",
        "蓝牙耳机",
        "Bluetooth headphones",
        &[("battery", "30h"), ("noise cancelling", "yes")],
        &[("黑色 black", 29_900), ("白色 white", 31_900)],
    ),
    item(
        "electronics/audio",
        "有线耳机",
        "Wired earphones",
        &[("cable", "1.2m")],
        &[("白色 white", 4_900)],
    ),
    item(
        "electronics/audio",
        "蓝牙音箱",
        "Bluetooth speaker",
        &[("battery", "12h"), ("waterproof", "IPX7")],
        &[("蓝色 blue", 19_900), ("红色 red", 19_900)],
    ),
    item(
        "electronics/phones",
        "智能手机",
        "Smartphone",
        &[("screen", "6.5 inch"), ("storage", "256GB")],
        &[("128GB", 199_900), ("256GB", 229_900)],
    ),
    item(
        "electronics/phones",
        "手机壳",
        "Phone case",
        &[("material", "silicone")],
        &[("透明 clear", 2_900), ("黑色 black", 2_900)],
    ),
    item(
        "electronics/computers",
        "机械键盘",
        "Mechanical keyboard",
        &[("switch", "brown"), ("layout", "87 keys")],
        &[("87键 87 keys", 39_900), ("104键 104 keys", 45_900)],
    ),
    item(
        "electronics/computers",
        "无线鼠标",
        "Wireless mouse",
        &[("dpi", "4000"), ("battery", "AA")],
        &[("灰色 grey", 8_900)],
    ),
    item(
        "electronics/computers",
        "笔记本电脑支架",
        "Laptop stand",
        &[("material", "aluminium")],
        &[("银色 silver", 12_900)],
    ),
    item(
        "home/kitchen",
        "电饭煲",
        "Rice cooker",
        &[("capacity", "4L")],
        &[("4升 4L", 39_900), ("5升 5L", 45_900)],
    ),
    item(
        "home/kitchen",
        "不锈钢炒锅",
        "Stainless steel wok",
        &[("diameter", "32cm")],
        &[("32厘米 32cm", 15_900)],
    ),
    item(
        "home/furniture",
        "人体工学椅",
        "Ergonomic office chair",
        &[("material", "mesh")],
        &[("黑色 black", 89_900)],
    ),
    item(
        "clothing/men",
        "纯棉T恤",
        "Cotton T-shirt",
        &[("material", "cotton")],
        &[("M", 7_900), ("L", 7_900), ("XL", 8_900)],
    ),
    item(
        "clothing/women",
        "羊绒围巾",
        "Cashmere scarf",
        &[("material", "cashmere")],
        &[("驼色 camel", 39_900), ("灰色 grey", 39_900)],
    ),
    item(
        "clothing/shoes",
        "跑步鞋",
        "Running shoes",
        &[("sole", "EVA")],
        &[("41", 49_900), ("42", 49_900), ("43", 49_900)],
    ),
    item(
        "food/tea",
        "西湖龙井茶",
        "West Lake Longjing green tea",
        &[("weight", "250g"), ("origin", "Hangzhou")],
        &[("250克 250g", 28_800), ("500克 500g", 52_800)],
    ),
    item(
        "food/tea",
        "普洱茶饼",
        "Pu'er tea cake",
        &[("weight", "357g"), ("origin", "Yunnan")],
        &[("357克 357g", 18_800)],
    ),
    item(
        "food/snacks",
        "坚果礼盒",
        "Mixed nuts gift box",
        &[("weight", "1kg")],
        &[("1公斤 1kg", 12_800)],
    ),
    item(
        "beauty/skincare",
        "保湿面霜",
        "Moisturising face cream",
        &[("volume", "50ml")],
        &[("50毫升 50ml", 25_900)],
    ),
    item(
        "sports/outdoor",
        "登山背包",
        "Hiking backpack",
        &[("volume", "40L")],
        &[("绿色 green", 29_900), ("黑色 black", 29_900)],
    ),
    item(
        "toys/building",
        "积木套装",
        "Building blocks set",
        &[("pieces", "1000")],
        &[("1000块 1000 pieces", 19_900)],
    ),
    Item {
        category: "services/education",
        zh: "英语考试报名",
        en: "English exam registration",
        attributes: &[("format", "online")],
        variants: &[("标准 standard", 58_000)],
        kind: ProductKind::Service,
    },
];

/// Editions that make the catalogue 210 products: Chinese and English words put before the
/// item's name, and how they change price.
const EDITIONS: [(&str, &str, u64); 10] = [
    ("", "", 100),
    ("旗舰", "Flagship", 160),
    ("经典", "Classic", 90),
    ("轻薄", "Slim", 110),
    ("专业", "Pro", 140),
    ("入门", "Basic", 70),
    ("限量版", "Limited edition", 180),
    ("国潮", "Guochao", 120),
    ("便携", "Portable", 95),
    ("家庭装", "Family size", 130),
];

fn catalogue() -> anyhow::Result<Vec<ProductContent>> {
    catalogue_of(DEMO_PRODUCTS)
}

/// A catalogue of `n` products: every item in every edition, then again as later series
/// (`S2`, `S3`…) at slightly different prices.
pub fn catalogue_of(n: usize) -> anyhow::Result<Vec<ProductContent>> {
    let mut products = Vec::with_capacity(n);
    for k in 0..n {
        let (i, e) = (k % ITEMS.len(), (k / ITEMS.len()) % EDITIONS.len());
        let series = k / (ITEMS.len() * EDITIONS.len());
        let (item, (zh_word, en_word, edition_percent)) = (&ITEMS[i], &EDITIONS[e]);
        let percent = edition_percent + (series as u64 % 7) * 3;
        let suffix = if series == 0 {
            String::new()
        } else {
            format!(" S{}", series + 1)
        };
        {
            let title_zh = format!("{zh_word}{}{suffix}", item.zh);
            let title_en = if en_word.is_empty() {
                format!("{}{suffix}", item.en)
            } else {
                format!("{en_word} {}{suffix}", item.en.to_lowercase())
            };
            let url = format!(
                "https://img.consort.example/demo/{}-{e}.jpg",
                item.en.to_lowercase().replace([' ', '\''], "-")
            );
            let mut attributes: Vec<Attribute> = item
                .attributes
                .iter()
                .map(|(name, value)| {
                    Ok(Attribute {
                        name: text(name)?,
                        value: text(value)?,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            attributes.push(Attribute {
                name: text("edition")?,
                value: text(if en_word.is_empty() {
                    "standard"
                } else {
                    en_word
                })?,
            });
            let variants = item
                .variants
                .iter()
                .enumerate()
                .map(|(v, (name, price))| {
                    Ok(VariantSpec {
                        name: text(name)?,
                        price: price * percent / 100,
                        currency: "CNY".parse()?,
                        // Some variants sold out, some scarce, most in stock.
                        stock: match (e * 7 + i * 3 + v) % 11 {
                            0 => 0,
                            1 => 3,
                            _ => 20 + ((e + i + v) % 5) as u64 * 40,
                        },
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            products.push(ProductContent {
                kind: item.kind,
                title_zh: text(&title_zh)?,
                title_en: text(&title_en)?,
                description_zh: text(&format!("{title_zh}，正品行货，全国包邮，七天无理由退货。"))?,
                description_en: text(&format!(
                    "{title_en}: genuine goods, free delivery nationwide, 7-day returns."
                ))?,
                category: text(item.category)?,
                attributes: List(attributes),
                images: List(vec![Image {
                    sha256: consort_types::sha256(&[url.as_bytes()]).0,
                    url: text(&url)?,
                }]),
                variants: List(variants),
            });
        }
    }
    Ok(products)
}

/// What the demo made, for the devnet to print.
pub struct Demo {
    /// Products published.
    pub products: usize,
    /// Orders placed.
    pub orders: usize,
    /// A customer's key file.
    pub customer_key: std::path::PathBuf,
    /// The regulator's account (sealed fields are sealed to it too).
    pub regulator: AccountId,
}

/// Seed the demo shop on the devnet in `dir` through `node` (once per chain: a marker file
/// says it was done).
pub fn seed(dir: &Path, node: &str) -> anyhow::Result<Demo> {
    let marker = dir.join("demo-shop");
    let customer_key = dir.join("accounts/customer-0.key");
    let client = Client::new(node);
    let dave = Actor::load(&client, &dir.join("accounts/dave.key"))?;
    if marker.exists() {
        return Ok(Demo {
            products: DEMO_PRODUCTS,
            orders: 0,
            customer_key,
            regulator: dave.id,
        });
    }
    let chain_id = client.chain_id()?;
    // Transactions are admitted against finalized state: genesis is final with the first
    // blocks.
    let started = Instant::now();
    while client.get("/v1/status")?["finalized_height"].as_u64() < Some(2) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the devnet finalized no blocks in a minute; see its logs");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let load = |name: &str| Actor::load(&client, &dir.join(format!("accounts/{name}.key")));
    let (mut alice, mut bob, mut carol, mut dave) =
        (load("alice")?, load("bob")?, load("carol")?, dave);
    let new_actor = |name: &str| -> anyhow::Result<Actor> {
        let path = dir.join(format!("accounts/{name}.key"));
        if !path.exists() {
            crate::keys::new_key_file(&path)?;
        }
        Actor::load(&client, &path)
    };

    // 1. Four organisations admitted by vote: the platform proposes, every member approves.
    eprintln!("demo shop: admitting a carrier, two sellers and a second bank by vote...");
    let first = client.get("/v1/gov")?["next_proposal"]
        .as_u64()
        .context("no next_proposal")?;
    let mut admins: Vec<Actor> = ADMITTED
        .iter()
        .map(|(_, _, name)| new_actor(name))
        .collect::<anyhow::Result<_>>()?;
    let mut phase = Phase::new(&client, chain_id);
    for ((org, kind, _), admin) in ADMITTED.iter().zip(&admins) {
        let action = Action::AdmitOrg {
            org: org.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            kind: *kind,
            admin: admin.id,
        };
        phase.add(&mut alice, Call::Propose { action });
    }
    phase.run("proposals")?;
    // A proposal closes once enough members approve: each member votes on what is still
    // open, one member at a time.
    // The threshold grows as members join: the newly admitted vote on the rest.
    let mut voters: Vec<(Option<u64>, &mut Actor)> =
        vec![(None, &mut bob), (None, &mut carol), (None, &mut dave)];
    for (i, admin) in admins.iter_mut().enumerate() {
        voters.push((Some(first + i as u64), admin));
    }
    for (joined_by, voter) in voters {
        if let Some(own) = joined_by
            && proposal_status(&client, own)? != "passed"
        {
            continue;
        }
        let mut phase = Phase::new(&client, chain_id);
        for proposal in first..first + ADMITTED.len() as u64 {
            let open = proposal_status(&client, proposal)? == "open";
            if open {
                phase.add(
                    voter,
                    Call::Vote {
                        proposal,
                        approve: true,
                    },
                );
            }
        }
        phase.run("votes")?;
    }
    for proposal in first..first + ADMITTED.len() as u64 {
        let status = proposal_status(&client, proposal)?;
        if status != "passed" {
            bail!("the demo's proposal {proposal} is {status}, not passed");
        }
    }
    let [swift, tea, gadgets, bank2] = &mut admins[..] else {
        bail!("four admitted organisations");
    };

    // 2. Customers register; everyone who receives sealed fields publishes a sealing key.
    eprintln!("demo shop: customers register, keys and e-money...");
    let mut customers: Vec<Actor> = (0..DEMO_CUSTOMERS)
        .map(|i| new_actor(&format!("customer-{i}")))
        .collect::<anyhow::Result<_>>()?;
    let mut phase = Phase::new(&client, chain_id);
    for customer in &mut customers {
        phase.add(customer, Call::SelfRegister);
    }
    phase.run("registrations")?;
    let mut phase = Phase::new(&client, chain_id);
    let cny: Asset = "CNY".parse()?;
    let hkd: Asset = "HKD".parse()?;
    for actor in
        customers
            .iter_mut()
            .chain([&mut bob, &mut dave, &mut *swift, &mut *tea, &mut *gadgets])
    {
        let key = actor.seal_key().1;
        phase.add(actor, Call::SetSealKey { key });
    }
    for customer in &customers {
        phase.add(
            &mut carol,
            Call::Issue {
                asset: cny,
                to: customer.id,
                amount: Amount::new(2_000_000),
            },
        );
        phase.add(
            bank2,
            Call::Issue {
                asset: hkd,
                to: customer.id,
                amount: Amount::new(500_000),
            },
        );
    }
    phase.run("sealing keys and e-money")?;

    // 3. Profiles, sealed to their owner and the regulator.
    let regulator_seal = dave.seal_key();
    let mut phase = Phase::new(&client, chain_id);
    const NAMES: [(&str, &str); DEMO_CUSTOMERS] = [
        ("王芳", "上海市黄浦区南京东路100号"),
        ("李伟", "北京市朝阳区建国路88号"),
        ("张敏", "广州市天河区体育西路12号"),
        ("刘洋", "深圳市南山区科技园路1号"),
        ("陈静", "杭州市西湖区文三路200号"),
        ("杨磊", "成都市锦江区春熙路9号"),
        ("赵丽", "南京市鼓楼区中山路66号"),
        ("黄强", "武汉市江汉区解放大道500号"),
        ("周杰", "西安市雁塔区长安南路3号"),
        ("吴婷", "重庆市渝中区解放碑8号"),
    ];
    for (i, (customer, (name, address))) in customers.iter_mut().zip(NAMES).enumerate() {
        let profile = json!({
            "name": name,
            "phone": format!("+86 138 0000 {:04}", 1000 + i),
            "addresses": [address],
        })
        .to_string();
        let info = sealed::context(chain_id, &customer.id, &customer.id, b"profile");
        let envelope = sealed::seal(
            profile.as_bytes(),
            &[customer.seal_key(), regulator_seal],
            &info,
        )?;
        let about = customer.id;
        phase.add(
            customer,
            Call::PutPrivate {
                about,
                label: Blob::new(b"profile".to_vec()).context("label")?,
                envelope,
            },
        );
    }
    phase.run("profiles")?;

    // 4. The catalogue, shared among the three sellers.
    eprintln!("demo shop: publishing {DEMO_PRODUCTS} products...");
    let contents = catalogue()?;
    let mut phase = Phase::new(&client, chain_id);
    let mut sellers = [&mut bob, &mut *tea, &mut *gadgets];
    for (n, content) in contents.iter().enumerate() {
        let seller = &mut sellers[n % 3];
        phase.shop(
            seller,
            CommerceCall::PublishProduct {
                content: content.clone(),
            },
        );
    }
    let products = phase.run("products")?;

    // 5. Orders in every state: DEMO_ORDERS in-stock products, bought round the customers.
    eprintln!("demo shop: orders in every state, deliveries and reviews...");
    let in_stock = |n: usize| contents[n].variants.0[0].stock > 0;
    let mut picks: Vec<(usize, usize)> = Vec::new();
    for c in 0..DEMO_ORDERS {
        let mut n = (c * 37 + 5) % DEMO_PRODUCTS;
        while !in_stock(n)
            || contents[n].kind != ProductKind::Physical
            || picks.iter().any(|(_, m)| *m == n)
        {
            n = (n + 1) % DEMO_PRODUCTS;
        }
        picks.push((c % DEMO_CUSTOMERS, n));
    }
    // Stages: 0 unpaid, 1 paid, 2 accepted, 3 in transit, 4 delivered, 5+ completed and
    // reviewed; the last of each customer's first order is cancelled; bank transfers too.
    let mut phase = Phase::new(&client, chain_id);
    let mut placed: Vec<(usize, usize, usize)> = Vec::new(); // (customer, product, tx index)
    for (k, (c, n)) in picks.iter().enumerate() {
        let seller = n % 3;
        let payee = [&bob, &*tea, &*gadgets][seller].seal_key();
        let content = &contents[*n];
        let address = NAMES[*c].1;
        let customer = &mut customers[*c];
        let sealed = sealed::seal(
            address.as_bytes(),
            &[customer.seal_key(), payee, regulator_seal],
            b"consort/shop/address",
        )?;
        let method = match k {
            9 => PaymentMethod::BankTransfer,
            20 => PaymentMethod::CashOnDelivery,
            _ => PaymentMethod::Wallet,
        };
        let at = phase.shop(
            customer,
            CommerceCall::PlaceOrder {
                lines: List(vec![LineRequest {
                    product: products[*n],
                    variant: 0,
                    quantity: 1 + (k % 2) as u32,
                    price: content.variants.0[0].price,
                }]),
                method,
                // The first customer's first order waits unpaid.
                pay: method == PaymentMethod::Wallet && k != 0,
                address: sealed,
            },
        );
        placed.push((*c, *n, at));
    }
    let order_places = phase.run("orders")?;
    let orders: Vec<(usize, usize, RecordId, u64)> = placed
        .iter()
        .enumerate()
        .map(|(k, (c, n, at))| {
            let total = contents[*n].variants.0[0].price * (1 + (k % 2) as u64);
            (*c, *n, order_places[*at], total)
        })
        .collect();
    // Stage of each order: k = 0 unpaid; 1 cancelled; 2 paid; 9 bank transfer confirmed;
    // 3 accepted; 4 in transit; 5 delivered; 6 delivered, a return approved; 7 delivered, a
    // refund refused and disputed before the platform; 20 cash on delivery, not accepted yet;
    // 21 one of its two items shipped and in transit; the rest completed and reviewed. The
    // unpaid and the unaccepted one expire when the chain's payment window passes.
    let stage = |k: usize| match k {
        0 => "unpaid",
        20 => "cash_on_delivery",
        21 => "partly_shipped",
        1 => "cancelled",
        2 => "paid",
        9 => "bank_paid",
        3 => "accepted",
        4 => "in_transit",
        5 => "delivered",
        6 => "returning",
        7 => "disputed",
        _ => "completed",
    };
    let past = |k: usize, step: &str| {
        let order = ["accepted", "in_transit", "delivered", "completed"];
        let level = match stage(k) {
            "returning" | "disputed" => "delivered",
            "partly_shipped" => "in_transit",
            other => other,
        };
        let at = order.iter().position(|s| *s == level);
        let want = order.iter().position(|s| *s == step);
        matches!((at, want), (Some(a), Some(w)) if a >= w)
    };
    let mut phase = Phase::new(&client, chain_id);
    for (k, (c, _, order, total)) in orders.iter().enumerate() {
        match stage(k) {
            "cancelled" => {
                phase.shop(
                    &mut customers[*c],
                    CommerceCall::CancelOrder {
                        order: *order,
                        reason: text("买错了颜色 ordered the wrong colour")?,
                    },
                );
            }
            "bank_paid" => {
                phase.shop(
                    &mut carol,
                    CommerceCall::ConfirmPayment {
                        order: *order,
                        amount: *total,
                    },
                );
            }
            _ => {}
        }
    }
    let mut accepts: BTreeMap<usize, Vec<RecordId>> = BTreeMap::new();
    for (k, (_, n, order, _)) in orders.iter().enumerate() {
        if past(k, "accepted") {
            accepts.entry(n % 3).or_default().push(*order);
        }
    }
    {
        let mut sellers = [&mut bob, &mut *tea, &mut *gadgets];
        for (seller, list) in &accepts {
            phase.shop(
                sellers[*seller],
                CommerceCall::AcceptOrders {
                    orders: List(list.clone()),
                },
            );
        }
        phase.run("cancellations, bank payments and acceptances")?;
        let mut phase = Phase::new(&client, chain_id);
        for (k, (c, n, order, _)) in orders.iter().enumerate() {
            if !past(k, "in_transit") {
                continue;
            }
            let seller = &mut sellers[n % 3];
            // A partial shipment: one item now, the other later.
            let quantity = match stage(k) {
                "partly_shipped" => 1,
                _ => 1 + (k % 2) as u32,
            };
            let label = sealed::seal(
                format!("{} {}", NAMES[*c].0, NAMES[*c].1).as_bytes(),
                &[
                    seller.seal_key(),
                    customers[*c].seal_key(),
                    swift.seal_key(),
                    regulator_seal,
                ],
                b"consort/shop/label",
            )?;
            phase.shop(
                seller,
                CommerceCall::Ship {
                    order: *order,
                    lines: List(vec![ShipLine { line: 0, quantity }]),
                    carrier: "swift".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
                    label,
                },
            );
        }
        phase.run("shipments")?;
    }
    let mut phase = Phase::new(&client, chain_id);
    let mut events = Vec::new();
    for (k, (_, _, order, _)) in orders.iter().enumerate() {
        if !past(k, "in_transit") {
            continue;
        }
        let mut steps = vec![
            (ShipmentStatus::PickedUp, "深圳仓 Shenzhen depot"),
            (ShipmentStatus::InTransit, "上海转运中心 Shanghai hub"),
        ];
        if past(k, "delivered") {
            steps.push((
                ShipmentStatus::OutForDelivery,
                "派送中 out with the courier",
            ));
            steps.push((ShipmentStatus::Delivered, "已签收 signed for"));
        }
        for (status, location) in steps {
            events.push(CarrierEvent {
                order: *order,
                shipment: 0,
                status,
                location: text(location)?,
            });
        }
    }
    for chunk in events.chunks(64) {
        phase.shop(
            swift,
            CommerceCall::CarrierEvents {
                events: List(chunk.to_vec()),
            },
        );
    }
    phase.run("carrier events")?;
    let mut phase = Phase::new(&client, chain_id);
    for (k, (c, _, order, _)) in orders.iter().enumerate() {
        if stage(k) == "completed" {
            phase.shop(
                &mut customers[*c],
                CommerceCall::ConfirmReceipt { order: *order },
            );
        }
    }
    phase.run("receipts")?;
    const REVIEWS: [(u8, &str); 4] = [
        (5, "质量很好，物流很快。Great quality, fast delivery."),
        (4, "不错，性价比高。Good value for money."),
        (5, "包装精美，送人很合适。Beautifully packed, a good gift."),
        (
            3,
            "一般，颜色和图片有差别。Average; the colour differs from the photo.",
        ),
    ];
    let mut phase = Phase::new(&client, chain_id);
    let mut reviewed = Vec::new();
    for (k, (c, n, order, _)) in orders.iter().enumerate() {
        if stage(k) == "completed" {
            let (rating, words) = REVIEWS[k % REVIEWS.len()];
            phase.shop(
                &mut customers[*c],
                CommerceCall::Review {
                    order: *order,
                    line: 0,
                    content: ReviewContent {
                        rating,
                        text: text(words)?,
                        photos: List(Vec::new()),
                    },
                },
            );
            reviewed.push((k, *n, *order, rating));
        }
    }
    phase.run("reviews")?;
    let mut phase = Phase::new(&client, chain_id);
    {
        let sellers = [&mut bob, &mut *tea, &mut *gadgets];
        for (_, n, order, _) in reviewed.iter().filter(|r| r.3 <= 3) {
            phase.shop(
                sellers[n % 3],
                CommerceCall::ReplyReview {
                    order: *order,
                    line: 0,
                    text: text("抱歉，已为您安排换货。Sorry: we have arranged an exchange.")?,
                },
            );
        }
    }
    phase.run("replies")?;
    // After-sales: a return approved and waiting for the goods, and a refund the seller
    // refused that the customer took to the platform (the operator's disputes queue).
    let mut phase = Phase::new(&client, chain_id);
    for (k, (c, _, order, total)) in orders.iter().enumerate() {
        let (goods_back, amount, reason) = match stage(k) {
            "returning" => (true, *total, "尺码不合适，想退货 the size does not fit"),
            "disputed" => (
                false,
                total / 2,
                "少了一件 one item missing from the parcel",
            ),
            _ => continue,
        };
        phase.shop(
            &mut customers[*c],
            CommerceCall::RequestReturn {
                order: *order,
                amount,
                goods_back,
                reason: text(reason)?,
            },
        );
    }
    phase.run("after-sales requests")?;
    let mut phase = Phase::new(&client, chain_id);
    {
        let sellers = [&mut bob, &mut *tea, &mut *gadgets];
        for (k, (_, n, order, _)) in orders.iter().enumerate() {
            let (approve, reason) = match stage(k) {
                "returning" => (true, "同意退货，请寄回 approved: please send it back"),
                "disputed" => (false, "包裹出库时完整 the parcel left complete"),
                _ => continue,
            };
            phase.shop(
                sellers[n % 3],
                CommerceCall::AnswerReturn {
                    order: *order,
                    approve,
                    reason: text(reason)?,
                },
            );
        }
    }
    phase.run("after-sales answers")?;
    let mut phase = Phase::new(&client, chain_id);
    for (k, (c, _, order, _)) in orders.iter().enumerate() {
        if stage(k) == "disputed" {
            phase.shop(
                &mut customers[*c],
                CommerceCall::OpenDispute {
                    order: *order,
                    reason: text("快递签收照片显示只有一件 the delivery photo shows one item")?,
                },
            );
        }
    }
    phase.run("disputes")?;
    std::fs::write(&marker, format!("{}\n", Value::from(DEMO_PRODUCTS)))
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(Demo {
        products: DEMO_PRODUCTS,
        orders: orders.len(),
        customer_key,
        regulator: dave.id,
    })
}
