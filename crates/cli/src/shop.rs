//! `consort shop …`: the marketplace from the command line. Customers search, compare, fill a
//! cart, check out, pay, follow and confirm their orders and review what they bought; sellers
//! publish goods, manage stock, accept and ship orders; carriers post delivery events; banks
//! confirm fiat payments. Reads go to the shop API (`/v1/shop/...`, served by a node that runs
//! the indexer, or by `consort indexer --listen`); writes are transactions sent to a node.

use crate::client::Client;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use commonware_cryptography::ed25519;
use consort_types::{
    AccountId, Asset, Call,
    codec_util::{List, Text},
    commerce::{
        CarrierEvent, CommerceCall, LineRequest, PaymentMethod, ProductContent, RecordId,
        ReviewContent, ShipLine, ShipmentStatus, StockChange,
    },
    gov::{OrgId, role},
    sealed::{self, Sealed},
};
use reqwest::Method;
use serde_json::{Value, json};
use std::{io::BufRead as _, path::PathBuf, time::Duration};

const AFTER_HELP: &str = "\
A customer:
  consort shop join --key me.key                      # register, publish a sealing key
  consort shop search 蓝牙耳机 --in-stock --sort price_asc
  consort shop product 12-0
  consort shop compare 12-0 15-2
  consort shop cart add 12-0 --variant 1 --quantity 2 --key me.key
  consort shop cart show --key me.key
  consort shop checkout --key me.key --address 'Room 5, 1 Harbour Road' --regulator <id>
  consort shop orders --key me.key
  consort shop track 40-3 --key me.key --follow      # the timeline, live
  consort shop confirm 40-3 --key me.key
  consort shop review 40-3 0 --rating 5 --text '音质很好' --key me.key
A seller (a seller account of a seller organisation):
  consort shop publish --file headphones.json --key seller.key
  consort shop stock 12-0 --variant 0 --add 50 --key seller.key
  consort shop orders --role seller --status paid --key seller.key
  consort shop accept 40-3 41-0 --key seller.key
  consort shop ship 40-3 --carrier swift --carrier-account <id> --regulator <id> \\
      --label 'Li Lei, Room 5, 1 Harbour Road' --key seller.key
After-sales (while the order's money is in escrow, i.e. delivered, not completed):
  consort shop return 40-3 --amount 12000 --reason '尺码不合适' --key me.key
  consort shop answer-return 40-3 --approve --key seller.key     # or --refuse
  consort shop send-back 40-3 --carrier swift --tracking SF123 --key me.key
  consort shop receive-return 40-3 --key seller.key             # the refund is paid
  consort shop dispute 40-3 --reason '商品损坏' --key me.key       # after a refusal
  consort shop rule 40-3 --refund 6000 --reason 'half each' --key operator.key
Settlement pays the seller in e-money; its bank pays that out in fiat:
  consort shop payout --asset CNY --amount 500000 --key seller.key   # prints the payout's id
  consort shop payout-status 52-1 --key seller.key                 # or the bank's key
  consort shop payouts --key seller.key                            # yours, newest first
  consort shop cancel-payout 52-1 --key seller.key               # before the bank confirms
A carrier, and a bank:
  consort shop event 40-3 0 in_transit --location Shanghai --key carrier.key
  consort shop confirm-payment 40-3 --amount 36800 --key bank.key
  consort shop payouts --role bank --waiting --key bank.key   # the payouts to pay out
  consort shop confirm-payout 52-1 --key bank.key         # the fiat is paid; e-money redeemed

--node (or CONSORT_NODE) is the node that takes transactions; --shop (default: the same) serves
/v1/shop. A regulator's account is needed to seal addresses and labels (every sealed field on
a governed chain is readable by one): give --regulator or set CONSORT_REGULATOR.";

/// Where to send and read.
#[derive(Args, Clone)]
pub struct Endpoints {
    /// A node's API URL (transactions, and the shop API unless --shop says otherwise).
    #[arg(
        long,
        global = true,
        env = "CONSORT_NODE",
        default_value = "http://127.0.0.1:28000"
    )]
    pub node: String,
    /// The shop API's URL (a node running the indexer, or `consort indexer --listen`).
    #[arg(long, global = true, env = "CONSORT_SHOP")]
    pub shop: Option<String>,
}

impl Endpoints {
    fn node(&self) -> Client {
        Client::new(&self.node)
    }

    fn shop(&self) -> Client {
        Client::new(self.shop.as_deref().unwrap_or(&self.node)).chain_from(&self.node)
    }
}

/// The key of the account that acts.
#[derive(Args, Clone)]
pub struct KeyArg {
    /// File with the account's private key (hex).
    #[arg(long, env = "CONSORT_KEY")]
    pub key: PathBuf,
}

impl KeyArg {
    fn load(&self) -> anyhow::Result<ed25519::PrivateKey> {
        consort_node::node::load_key(&self.key)
    }
}

/// Print JSON instead of text.
#[derive(Args, Clone, Copy)]
pub struct JsonArg {
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum ShopCommand {
    /// Put the demo shop on a devnet (`consort devnet` does it at start unless --no-demo):
    /// a carrier, two sellers and a bank admitted by vote, 210 products, customers with
    /// profiles, orders in every state, reviews. Once per chain.
    Demo {
        /// The devnet's directory (its demo accounts' keys are in `accounts/`).
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
    },
    /// Register as a customer and publish this account's sealing key (once per account).
    Join {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Your profile (name, phone, addresses), kept on chain as a private record sealed to you
    /// and a regulator. With no option, show it; with options, change what they name. Checkout
    /// ships to its first address when --address is not given.
    Profile {
        #[command(flatten)]
        key: KeyArg,
        /// Your name.
        #[arg(long)]
        name: Option<String>,
        /// Your phone number.
        #[arg(long)]
        phone: Option<String>,
        /// Your addresses, the default first (repeat the option; replaces the list).
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// A regulator's account (the profile is sealed to it too).
        #[arg(long, env = "CONSORT_REGULATOR")]
        regulator: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Search the catalogue, in Chinese or English.
    Search {
        /// Words (蓝牙耳机, "bluetooth headphones"); none lists everything.
        words: Vec<String>,
        /// A category path (`electronics` takes `electronics/audio`).
        #[arg(long)]
        category: Option<String>,
        /// A seller organisation.
        #[arg(long)]
        seller: Option<String>,
        /// Lowest price, base units.
        #[arg(long)]
        price_min: Option<u64>,
        /// Highest price, base units.
        #[arg(long)]
        price_max: Option<u64>,
        /// Only what is in stock.
        #[arg(long)]
        in_stock: bool,
        /// Attributes that must match: `colour:black,battery:30h`.
        #[arg(long)]
        attr: Option<String>,
        /// Lowest average rating (e.g. 4.5).
        #[arg(long)]
        rating_min: Option<String>,
        /// relevance, price_asc, price_desc, rating, sales or newest.
        #[arg(long)]
        sort: Option<String>,
        /// Page, from 1.
        #[arg(long)]
        page: Option<usize>,
        /// Results per page (1 to 100).
        #[arg(long)]
        per_page: Option<usize>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// A product's page: versions, variants with price and stock, rating, reviews.
    Product {
        /// The product's id (`HEIGHT-INDEX`).
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Compare 2 to 4 products attribute by attribute; differences are marked `*`.
    Compare {
        /// Product ids.
        #[arg(num_args = 2..=4, required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// The cart (kept by the shop's indexer, per account, signed by its key).
    Cart {
        #[command(subcommand)]
        command: CartCommand,
    },
    /// Place the cart as orders (one per seller, currency and kind of good) and pay them from
    /// the wallet; the items ordered leave the cart.
    Checkout {
        #[command(flatten)]
        key: KeyArg,
        /// The shipping address, sealed to you, the seller and a regulator.
        #[arg(long)]
        address: Option<String>,
        /// A regulator's account (the address is sealed to it too).
        #[arg(long, env = "CONSORT_REGULATOR")]
        regulator: Option<String>,
        /// wallet (pay now from your balance), bank_transfer or cash_on_delivery.
        #[arg(long, default_value = "wallet")]
        method: String,
        /// Place wallet orders unpaid (pay later with `consort shop pay`).
        #[arg(long)]
        pay_later: bool,
    },
    /// Pay a wallet order into escrow.
    Pay {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Your orders (or, with --role, your organisation's queue or shipments).
    Orders {
        #[command(flatten)]
        key: KeyArg,
        /// buyer (default), seller, carrier, regulator, operator (disputes to rule) or bank
        /// (orders in your bank's e-money; with --method bank_transfer, the transfers to
        /// confirm).
        #[arg(long)]
        role: Option<String>,
        /// Only orders (shipments, for a carrier) in this status.
        #[arg(long)]
        status: Option<String>,
        /// Only orders whose payment is in this state.
        #[arg(long)]
        payment: Option<String>,
        /// Only orders paid this way: wallet, bank_transfer or cash_on_delivery.
        #[arg(long)]
        method: Option<String>,
        /// Page, from 1.
        #[arg(long)]
        page: Option<usize>,
        /// Orders per page (1 to 100).
        #[arg(long)]
        per_page: Option<usize>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// One order: lines, shipments and its whole timeline.
    Order {
        /// The order.
        id: String,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// An order's timeline; with --follow, keep printing as blocks change it until it ends.
    Track {
        /// The order.
        id: String,
        #[command(flatten)]
        key: KeyArg,
        /// Keep following (server-sent updates) until the order completes, is cancelled or
        /// expires.
        #[arg(long)]
        follow: bool,
    },
    /// Confirm you received an order: the escrow pays the seller.
    Confirm {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Cancel an order before it ships (the buyer; or its seller, refusing it).
    Cancel {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// Why.
        #[arg(long, default_value = "changed my mind")]
        reason: String,
    },
    /// Review a line of a completed order (once; `--revise` makes a new version).
    Review {
        /// The order.
        order: String,
        /// The line (from 0).
        line: u8,
        #[command(flatten)]
        key: KeyArg,
        /// 1 to 5.
        #[arg(long)]
        rating: u8,
        /// What you think.
        #[arg(long)]
        text: String,
        /// Revise an earlier review.
        #[arg(long)]
        revise: bool,
    },
    /// Publish a product from a JSON file (kind, title_zh/en, description_zh/en, category,
    /// attributes, images, variants); prints its id.
    Publish {
        /// The product's content as JSON.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Add or remove stock of a product's variant.
    Stock {
        /// The product.
        product: String,
        /// The variant (from 0).
        #[arg(long, default_value_t = 0)]
        variant: u16,
        /// Items added.
        #[arg(long, conflicts_with = "remove")]
        add: Option<u32>,
        /// Items taken away.
        #[arg(long)]
        remove: Option<u32>,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Accept paid (or cash-on-delivery) orders.
    Accept {
        /// The orders.
        #[arg(required = true)]
        orders: Vec<String>,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Ship an accepted order (all its unshipped items, or --lines) with a carrier.
    Ship {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// The carrier organisation.
        #[arg(long)]
        carrier: String,
        /// The carrier's account the delivery label is sealed to.
        #[arg(long)]
        carrier_account: String,
        /// A regulator's account (the label is sealed to it too).
        #[arg(long, env = "CONSORT_REGULATOR")]
        regulator: Option<String>,
        /// The delivery label (name, address, phone).
        #[arg(long)]
        label: String,
        /// What goes in this shipment: `LINE:QUANTITY,...` (default: everything unshipped).
        #[arg(long)]
        lines: Option<String>,
    },
    /// Post a shipment event (a carrier account of the assigned carrier).
    Event {
        /// The order.
        order: String,
        /// The shipment: its number (from 0), or `return-N` for the goods going back under
        /// the order's after-sales case N (as `consort shop order` lists them).
        shipment: String,
        /// picked_up, in_transit, out_for_delivery, delivered, failed_attempt or
        /// returned_to_sender.
        status: String,
        #[command(flatten)]
        key: KeyArg,
        /// Where.
        #[arg(long, default_value = "")]
        location: String,
    },
    /// Ask the bank issuing an e-money to pay part of your balance out to your bank account
    /// (a seller account): the amount leaves the balance at once and waits, as an unpaid
    /// payout, for the bank to confirm it paid the fiat. Prints the payout's id
    Payout {
        /// The e-money (its asset code, e.g. CNY).
        #[arg(long)]
        asset: String,
        /// Base units.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        key: KeyArg,
    },
    /// A payout's state (the seller that asked, the issuing bank or a regulator; a signed
    /// read)
    PayoutStatus {
        /// The payout (as `payout` printed it).
        payout: String,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Payouts, newest first: your own (the default), your bank's queue (--role bank, with
    /// --waiting: what it still has to pay out) or every one (--role regulator)
    Payouts {
        #[command(flatten)]
        key: KeyArg,
        /// seller (default), bank or regulator.
        #[arg(long)]
        role: Option<String>,
        /// Only payouts the bank has not confirmed yet.
        #[arg(long, conflicts_with = "confirmed")]
        waiting: bool,
        /// Only confirmed payouts.
        #[arg(long)]
        confirmed: bool,
        /// Page, from 1.
        #[arg(long)]
        page: Option<usize>,
        /// Payouts per page (1 to 100).
        #[arg(long)]
        per_page: Option<usize>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Withdraw a payout the bank has not confirmed yet (the seller that asked): the
    /// e-money comes back to the balance
    CancelPayout {
        /// The payout.
        payout: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Confirm a payout (the bank issuing its e-money): the fiat was paid to the seller's
    /// bank account, and the e-money is redeemed
    ConfirmPayout {
        /// The payout.
        payout: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Confirm a fiat payment received for an order (the bank issuing its currency): its
    /// e-money goes into the order's escrow.
    ConfirmPayment {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// The fiat received, base units: the order's total (an order that changed since is
        /// refused, so give what actually arrived).
        #[arg(long)]
        amount: u64,
    },
    /// Ask for money back on a delivered order (the buyer), sending the goods back unless
    /// --refund-only. The order does not complete while the case is open; the seller has the
    /// shop's after-sales window to answer, or the request is approved.
    Return {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// The refund asked, base units (at most what escrow holds; `consort shop order`
        /// shows it).
        #[arg(long)]
        amount: u64,
        /// Keep the goods: a refund without return (e.g. an item missing from the parcel).
        #[arg(long)]
        refund_only: bool,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Answer a return or refund request (the seller): --approve (a refund without return is
    /// paid at once) or --refuse (the buyer may then dispute).
    AnswerReturn {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// Approve the request.
        #[arg(long, conflicts_with = "refuse", required_unless_present = "refuse")]
        approve: bool,
        /// Refuse it.
        #[arg(long)]
        refuse: bool,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Record that you sent the goods of an approved return back (the buyer).
    SendBack {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// The carrier organisation that carries them.
        #[arg(long)]
        carrier: String,
        /// Its tracking number.
        #[arg(long)]
        tracking: String,
    },
    /// Confirm the goods sent back arrived (the seller): the refund is paid from escrow.
    ReceiveReturn {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Take an after-sales case to the platform: the buyer after a refusal, the seller when
    /// the goods came back damaged or not at all.
    Dispute {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Rule a dispute (an operator of the platform): --refund to the buyer, the rest of the
    /// escrow to the seller less the fee; the order completes.
    Rule {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
        /// Base units refunded to the buyer (0: all to the seller).
        #[arg(long)]
        refund: u64,
        /// The ruling's grounds.
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your return or refund request (the buyer) while it is not yet sent back or
    /// disputed; the order goes on.
    WithdrawReturn {
        /// The order.
        order: String,
        #[command(flatten)]
        key: KeyArg,
    },
}

#[derive(Subcommand)]
pub enum CartCommand {
    /// The cart, priced now, with stock warnings and the orders checkout would place.
    Show {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Put items in the cart.
    Add {
        /// The product.
        product: String,
        /// The variant (from 0).
        #[arg(long, default_value_t = 0)]
        variant: u16,
        /// How many.
        #[arg(long, default_value_t = 1)]
        quantity: u32,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Change how many of a line (0 removes it).
    Set {
        /// The product.
        product: String,
        /// The variant (from 0).
        #[arg(long, default_value_t = 0)]
        variant: u16,
        /// How many.
        #[arg(long)]
        quantity: u32,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Take a line out of the cart.
    Remove {
        /// The product.
        product: String,
        /// The variant (from 0).
        #[arg(long, default_value_t = 0)]
        variant: u16,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Empty the cart.
    Clear {
        #[command(flatten)]
        key: KeyArg,
    },
}

fn record(text: &str) -> anyhow::Result<RecordId> {
    text.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

fn text<const N: usize>(value: &str, what: &str) -> anyhow::Result<Text<N>> {
    Text::new(value).with_context(|| format!("{what} is longer than {N} bytes"))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Query-string encoding of one value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Sign `call`, send it, wait until final; returns its place (the id of what it made).
fn send(node: &Client, key: &ed25519::PrivateKey, call: CommerceCall) -> anyhow::Result<RecordId> {
    let hash = node.submit(key, Call::Commerce(call), None)?;
    let status = node.wait_finalized(&hash, Duration::from_secs(60))?;
    Ok(RecordId {
        height: status["height"].as_u64().context("no height")?,
        index: status["index"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .context("no index")?,
    })
}

/// An account's published sealing key.
fn seal_key(node: &Client, id: &AccountId) -> anyhow::Result<(AccountId, sealed::SealKey)> {
    let answer = node.get(&format!("/v1/accounts/{id}/seal-key"))?;
    let Some(hex_key) = answer["seal_key"].as_str() else {
        bail!(
            "{id} has no sealing key yet; it runs `consort shop join` (or `consort private seal-key`) first"
        );
    };
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the node sent a malformed sealing key")?;
    Ok((*id, bytes))
}

fn account(text: &str, what: &str) -> anyhow::Result<AccountId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{what} is not an account id (hex public key): {e}"))
}

fn regulator(value: Option<&String>) -> anyhow::Result<AccountId> {
    let value = value.context(
        "give a regulator's account with --regulator (or CONSORT_REGULATOR); `consort devnet` \
         prints the devnet's",
    )?;
    account(value, "--regulator")
}

/// The organisation and roles of an active member account, from the chain: an account that
/// is not one is refused, naming `what` it was given as.
fn member(node: &Client, id: &AccountId, what: &str) -> anyhow::Result<(OrgId, u16)> {
    let answer = node.get(&format!("/v1/accounts/{id}/registration"))?;
    let registration = &answer["registration"];
    if registration.is_null() || registration["active"] != json!(true) {
        bail!("{what} {id} is not an active member account of any organisation; check the id");
    }
    let org = registration["org"]
        .as_str()
        .context("the node sent a registration without its organisation")?
        .parse()
        .map_err(|e| anyhow::anyhow!("the node sent a malformed organisation id: {e}"))?;
    let roles = registration["roles"]
        .as_u64()
        .and_then(|r| u16::try_from(r).ok())
        .context("the node sent a registration without its roles")?;
    Ok((org, roles))
}

/// The regulator account given, checked on the chain to hold the regulator's role: sealed
/// data sealed to anyone else would be out of the regulator's sight.
fn checked_regulator(node: &Client, value: Option<&String>) -> anyhow::Result<AccountId> {
    let id = regulator(value)?;
    let (org, roles) = member(node, &id, "--regulator")?;
    if roles & role::REGULATOR == 0 {
        bail!(
            "--regulator {id} is an account of {org} without the regulator's role; give a \
             regulator's account (`consort devnet` prints the devnet's)"
        );
    }
    Ok(id)
}

/// Seal `payload` to `to` (duplicates dropped) for the shop (`what`: `address`, `label`…).
fn seal(node: &Client, what: &str, payload: &str, to: &[AccountId]) -> anyhow::Result<Sealed> {
    let mut unique: Vec<AccountId> = Vec::new();
    for id in to {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    let keyed = unique
        .iter()
        .map(|id| seal_key(node, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let info = format!("consort/shop/{what}");
    Ok(sealed::seal(payload.as_bytes(), &keyed, info.as_bytes())?)
}

fn money(amount: &Value, currency: &Value) -> String {
    format!(
        "{} {}",
        amount.as_i64().map_or("-".into(), |a| a.to_string()),
        currency.as_str().unwrap_or("")
    )
}

/// Run a `consort shop` command.
pub fn run(at: &Endpoints, command: ShopCommand) -> anyhow::Result<()> {
    match command {
        ShopCommand::Join { key } => join(at, &key.load()?),
        ShopCommand::Profile {
            key,
            name,
            phone,
            addresses,
            regulator: reg,
            json,
        } => {
            let key = key.load()?;
            let changing = name.is_some() || phone.is_some() || !addresses.is_empty();
            if changing {
                // A change keeps the fields it does not name: read them from an indexer that
                // has every block the node has.
                shop_caught_up(at)?;
            }
            let mut profile = my_profile(at, &key)?.unwrap_or_else(|| json!({}));
            if changing {
                if let Some(name) = name {
                    profile["name"] = json!(name);
                }
                if let Some(phone) = phone {
                    profile["phone"] = json!(phone);
                }
                if !addresses.is_empty() {
                    profile["addresses"] = json!(addresses);
                }
                put_profile(at, &key, &profile, reg.as_ref())?;
            } else if profile == json!({}) {
                bail!(
                    "no profile yet: `consort shop profile --name ... --phone ... --address ...` \
                     writes one"
                );
            }
            if json.json {
                return print_json(&profile);
            }
            println!(
                "{}{}",
                profile["name"].as_str().unwrap_or("(no name)"),
                profile["phone"]
                    .as_str()
                    .map(|p| format!(" · {p}"))
                    .unwrap_or_default()
            );
            for (i, address) in profile["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                println!(
                    "  {} {}",
                    if i == 0 { "*" } else { " " },
                    address.as_str().unwrap_or("?")
                );
            }
            if changing {
                println!("(sealed to you and the regulator; only you two can read it)");
            }
            Ok(())
        }
        ShopCommand::Demo { dir } => {
            let demo = crate::demo::seed(&dir, &at.node)?;
            println!(
                "demo shop ready: {} products, {} orders; try consort shop search 耳机",
                demo.products, demo.orders
            );
            Ok(())
        }
        ShopCommand::Search {
            words,
            category,
            seller,
            price_min,
            price_max,
            in_stock,
            attr,
            rating_min,
            sort,
            page,
            per_page,
            json,
        } => {
            let path = format!(
                "/v1/shop/search{}",
                query(&[
                    ("q", Some(words.join(" ")).filter(|q| !q.is_empty())),
                    ("category", category),
                    ("seller", seller),
                    ("price_min", price_min.map(|p| p.to_string())),
                    ("price_max", price_max.map(|p| p.to_string())),
                    ("in_stock", in_stock.then(|| "true".into())),
                    ("attr", attr),
                    ("rating_min", rating_min),
                    ("sort", sort),
                    ("page", page.map(|p| p.to_string())),
                    ("per_page", per_page.map(|p| p.to_string())),
                ])
            );
            let answer = at.shop().get(&path)?;
            if json.json {
                return print_json(&answer);
            }
            print_results(&answer);
            Ok(())
        }
        ShopCommand::Product { id, json } => {
            let answer = at
                .shop()
                .get(&format!("/v1/shop/products/{}", encode(&id)))?;
            if json.json {
                return print_json(&answer);
            }
            print_product(&answer);
            Ok(())
        }
        ShopCommand::Compare { ids, json } => {
            let answer = at
                .shop()
                .get(&format!("/v1/shop/compare?ids={}", encode(&ids.join(","))))?;
            if json.json {
                return print_json(&answer);
            }
            print_comparison(&answer);
            Ok(())
        }
        ShopCommand::Cart { command } => cart(at, command),
        ShopCommand::Checkout {
            key,
            address,
            regulator: reg,
            method,
            pay_later,
        } => checkout(at, &key.load()?, address, reg.as_ref(), &method, pay_later),
        ShopCommand::Pay { order, key } => {
            let place = send(
                &at.node(),
                &key.load()?,
                CommerceCall::PayOrder {
                    order: record(&order)?,
                },
            )?;
            println!("order {order} paid into escrow (block {})", place.height);
            Ok(())
        }
        ShopCommand::Orders {
            key,
            role,
            status,
            payment,
            method,
            page,
            per_page,
            json,
        } => {
            let path = format!(
                "/v1/shop/orders{}",
                query(&[
                    ("role", role),
                    ("status", status),
                    ("payment", payment),
                    ("method", method),
                    ("page", page.map(|p| p.to_string())),
                    ("per_page", per_page.map(|p| p.to_string())),
                ])
            );
            let answer = at.shop().get_signed(&path, &key.load()?)?;
            if json.json {
                return print_json(&answer);
            }
            print_orders(&answer);
            Ok(())
        }
        ShopCommand::Order { id, key, json } => {
            let answer = at
                .shop()
                .get_signed(&format!("/v1/shop/orders/{}", encode(&id)), &key.load()?)?;
            if json.json {
                return print_json(&answer);
            }
            print_order(&answer);
            Ok(())
        }
        ShopCommand::Track { id, key, follow } => track(at, &id, &key.load()?, follow),
        ShopCommand::Confirm { order, key } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::ConfirmReceipt {
                    order: record(&order)?,
                },
            )?;
            println!("order {order} confirmed: the seller is paid from escrow");
            Ok(())
        }
        ShopCommand::Cancel { order, key, reason } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::CancelOrder {
                    order: record(&order)?,
                    reason: text(&reason, "--reason")?,
                },
            )?;
            println!("order {order} cancelled; stock released, escrow refunded");
            Ok(())
        }
        ShopCommand::Review {
            order,
            line,
            key,
            rating,
            text: words,
            revise,
        } => {
            let content = ReviewContent {
                rating,
                text: text(&words, "--text")?,
                photos: List(Vec::new()),
            };
            let order_id = record(&order)?;
            let call = if revise {
                CommerceCall::ReviseReview {
                    order: order_id,
                    line,
                    content,
                }
            } else {
                CommerceCall::Review {
                    order: order_id,
                    line,
                    content,
                }
            };
            send(&at.node(), &key.load()?, call)?;
            println!("review of order {order} line {line} finalized");
            Ok(())
        }
        ShopCommand::Publish { file, key } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let content: ProductContent = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a product's content", file.display()))?;
            let id = send(
                &at.node(),
                &key.load()?,
                CommerceCall::PublishProduct { content },
            )?;
            println!("published product {id}");
            Ok(())
        }
        ShopCommand::Stock {
            product,
            variant,
            add,
            remove,
            key,
        } => {
            let delta = match (add, remove) {
                (Some(n), None) => i64::from(n),
                (None, Some(n)) => -i64::from(n),
                _ => bail!("give --add N or --remove N"),
            };
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::SetStock {
                    product: record(&product)?,
                    changes: List(vec![StockChange { variant, delta }]),
                },
            )?;
            println!("stock of {product} variant {variant} changed by {delta}");
            Ok(())
        }
        ShopCommand::Accept { orders, key } => {
            let ids = orders
                .iter()
                .map(|o| record(o))
                .collect::<anyhow::Result<Vec<_>>>()?;
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::AcceptOrders { orders: List(ids) },
            )?;
            println!("accepted {}", orders.join(", "));
            Ok(())
        }
        ShopCommand::Ship {
            order,
            key,
            carrier,
            carrier_account,
            regulator: reg,
            label,
            lines,
        } => ship(
            at,
            &key.load()?,
            &order,
            &carrier,
            &carrier_account,
            reg.as_ref(),
            &label,
            lines.as_deref(),
        ),
        ShopCommand::Event {
            order,
            shipment,
            status,
            key,
            location,
        } => {
            let shipment = shipment_number(&shipment)?;
            let status: ShipmentStatus = serde_json::from_value(json!(status)).map_err(|_| {
                anyhow::anyhow!(
                    "{status:?}: use picked_up, in_transit, out_for_delivery, delivered, \
                     failed_attempt or returned_to_sender"
                )
            })?;
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::CarrierEvents {
                    events: List(vec![CarrierEvent {
                        order: record(&order)?,
                        shipment,
                        status,
                        location: text(&location, "--location")?,
                    }]),
                },
            )?;
            println!(
                "order {order} {}: {status:?} posted",
                shipment_name(&json!(shipment))
            );
            Ok(())
        }
        ShopCommand::Payout { asset, amount, key } => {
            let asset: Asset = asset.parse().map_err(|e| anyhow::anyhow!("--asset: {e}"))?;
            let id = send(
                &at.node(),
                &key.load()?,
                CommerceCall::RequestPayout { asset, amount },
            )?;
            println!(
                "payout {id} of {amount} {asset} requested: the bank pays it out and confirms \
                 (`consort shop payout-status {id}`)"
            );
            Ok(())
        }
        ShopCommand::PayoutStatus { payout, key, json } => {
            let id = record(&payout)?;
            let answer = at
                .node()
                .get_signed(&format!("/v1/commerce/payouts/{id}"), &key.load()?)?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let p = &answer["payout"];
            // The seller as it is now; the key that asked too, if it has rotated since.
            let asked = p["seller"].as_str().unwrap_or("?");
            let now = answer["seller_now"].as_str().unwrap_or(asked);
            let seller = if now == asked {
                now.to_string()
            } else {
                format!("{now} (asked as {asked}, since rotated)")
            };
            println!(
                "payout {id}: {} {} to seller {seller}, requested at block {}, {}",
                p["amount"],
                p["asset"].as_str().unwrap_or("?"),
                p["requested"]["height"],
                if p["confirmed"].as_bool() == Some(true) {
                    "confirmed by the bank"
                } else {
                    "waiting for the bank"
                }
            );
            Ok(())
        }
        ShopCommand::Payouts {
            key,
            role,
            waiting,
            confirmed,
            page,
            per_page,
            json,
        } => {
            let path = format!(
                "/v1/shop/payouts{}",
                query(&[
                    ("role", role),
                    (
                        "confirmed",
                        (waiting || confirmed).then(|| confirmed.to_string())
                    ),
                    ("page", page.map(|p| p.to_string())),
                    ("per_page", per_page.map(|p| p.to_string())),
                ])
            );
            let answer = at.shop().get_signed(&path, &key.load()?)?;
            if json.json {
                return print_json(&answer);
            }
            let rows = answer["payouts"].as_array().map_or(&[][..], Vec::as_slice);
            println!(
                "{} payouts ({})",
                answer["total"],
                answer["role"].as_str().unwrap_or("?")
            );
            for p in rows {
                println!(
                    "  {:<10} {:>12} {:<6} seller {}  {}",
                    p["id"].as_str().unwrap_or("?"),
                    p["amount"],
                    p["asset"].as_str().unwrap_or("?"),
                    p["seller"].as_str().unwrap_or("?"),
                    if p["confirmed"].as_bool() == Some(true) {
                        "confirmed"
                    } else {
                        "waiting for the bank"
                    }
                );
            }
            Ok(())
        }
        ShopCommand::CancelPayout { payout, key } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::CancelPayout {
                    payout: record(&payout)?,
                },
            )?;
            println!("payout {payout} withdrawn: its e-money is back in the balance");
            Ok(())
        }
        ShopCommand::ConfirmPayout { payout, key } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::ConfirmPayout {
                    payout: record(&payout)?,
                },
            )?;
            println!("payout {payout} confirmed: the fiat is paid, the e-money redeemed");
            Ok(())
        }
        ShopCommand::ConfirmPayment { order, key, amount } => {
            let key = key.load()?;
            let node = at.node();
            send(
                &node,
                &key,
                CommerceCall::ConfirmPayment {
                    order: record(&order)?,
                    amount,
                },
            )?;
            println!("payment of {amount} for order {order} confirmed into escrow");
            Ok(())
        }
        ShopCommand::Return {
            order,
            key,
            amount,
            refund_only,
            reason,
        } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::RequestReturn {
                    order: record(&order)?,
                    amount,
                    goods_back: !refund_only,
                    reason: text(&reason, "--reason")?,
                },
            )?;
            println!(
                "{} of {amount} asked on order {order}; the seller answers (consort shop order \
                 {order} follows it)",
                if refund_only {
                    "refund"
                } else {
                    "return and refund"
                }
            );
            Ok(())
        }
        ShopCommand::AnswerReturn {
            order,
            key,
            approve,
            refuse: _,
            reason,
        } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::AnswerReturn {
                    order: record(&order)?,
                    approve,
                    reason: text(&reason, "--reason")?,
                },
            )?;
            println!(
                "order {order}: request {}",
                if approve { "approved" } else { "refused" }
            );
            Ok(())
        }
        ShopCommand::SendBack {
            order,
            key,
            carrier,
            tracking,
        } => {
            let carrier: OrgId = carrier
                .parse()
                .map_err(|e| anyhow::anyhow!("--carrier {carrier:?}: {e}"))?;
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::ReturnShipped {
                    order: record(&order)?,
                    carrier,
                    tracking: text(&tracking, "--tracking")?,
                },
            )?;
            println!(
                "order {order}: goods on their way back; the carrier posts their events as \
                 shipment return-N (N = the case, see consort shop order), and the seller \
                 confirms they arrived"
            );
            Ok(())
        }
        ShopCommand::ReceiveReturn { order, key } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::ReceiveReturn {
                    order: record(&order)?,
                },
            )?;
            println!("order {order}: goods back; the refund is paid from escrow");
            Ok(())
        }
        ShopCommand::Dispute { order, key, reason } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::OpenDispute {
                    order: record(&order)?,
                    reason: text(&reason, "--reason")?,
                },
            )?;
            println!("order {order}: disputed; the platform's operator rules");
            Ok(())
        }
        ShopCommand::Rule {
            order,
            key,
            refund,
            reason,
        } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::RuleDispute {
                    order: record(&order)?,
                    refund,
                    reason: text(&reason, "--reason")?,
                },
            )?;
            println!("order {order}: ruled, {refund} to the buyer and the rest to the seller");
            Ok(())
        }
        ShopCommand::WithdrawReturn { order, key } => {
            send(
                &at.node(),
                &key.load()?,
                CommerceCall::WithdrawReturn {
                    order: record(&order)?,
                },
            )?;
            println!("order {order}: request withdrawn; the order goes on");
            Ok(())
        }
    }
}

/// The signer's profile, opened, if it wrote one.
fn my_profile(at: &Endpoints, key: &ed25519::PrivateKey) -> anyhow::Result<Option<Value>> {
    let record = match at.shop().get_signed("/v1/shop/profile", key) {
        Ok(record) => record,
        Err(error) if error.to_string().starts_with("no_profile") => return Ok(None),
        Err(error) => return Err(error),
    };
    let envelope: Sealed = serde_json::from_value(record["envelope"].clone())
        .context("the shop sent a malformed profile envelope")?;
    let me = crate::keys::account_of(key);
    let chain_id = at.node().chain_id()?;
    let info = sealed::context(chain_id, &me, &me, PROFILE_LABEL);
    let (secret, _) = sealed::keypair(&commonware_codec::Encode::encode(key));
    let opened = sealed::open(&envelope, &me, &secret, &info)
        .ok()
        .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
        .filter(Value::is_object);
    if opened.is_none() {
        eprintln!(
            "note: the profile on chain cannot be opened with this key or is not a profile; \
             a change starts afresh"
        );
    }
    Ok(Some(opened.unwrap_or_else(|| json!({}))))
}

/// Wait until the shop's indexer has every block the node has finalized (a read-modify-write
/// must not start from an older state), or fail saying so.
fn shop_caught_up(at: &Endpoints) -> anyhow::Result<()> {
    let tip = at.node().get("/v1/status")?["finalized_height"]
        .as_u64()
        .context("the node's status has no finalized_height")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(PROFILE_INDEX_WAIT_SECS);
    loop {
        let indexed = at.shop().get("/v1/shop/status")?["indexed_height"]
            .as_u64()
            .unwrap_or(0);
        if indexed >= tip {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "the shop's indexer is at block {indexed}, the node at {tip}: try again when it \
                 has caught up (`consort shop` reads your profile from it)"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Seal `profile` to the signer and a regulator and put it on chain as a private record.
fn put_profile(
    at: &Endpoints,
    key: &ed25519::PrivateKey,
    profile: &Value,
    reg: Option<&String>,
) -> anyhow::Result<()> {
    let node = at.node();
    let me = crate::keys::account_of(key);
    let regulator = checked_regulator(&node, reg)?;
    let keyed = [seal_key(&node, &me)?, seal_key(&node, &regulator)?];
    let chain_id = node.chain_id()?;
    let info = sealed::context(chain_id, &me, &me, PROFILE_LABEL);
    let envelope = sealed::seal(profile.to_string().as_bytes(), &keyed, &info)?;
    let sent = serde_json::to_value(&envelope)?;
    let hash = node.submit(
        key,
        Call::PutPrivate {
            about: me,
            label: consort_types::codec_util::Blob::new(PROFILE_LABEL.to_vec()).context("label")?,
            envelope,
        },
        None,
    )?;
    node.wait_finalized(&hash, Duration::from_secs(30))?;
    // Until the shop's indexer has it, a next change would start from the old profile.
    let shop = at.shop();
    let deadline = std::time::Instant::now() + Duration::from_secs(PROFILE_INDEX_WAIT_SECS);
    while std::time::Instant::now() < deadline {
        if shop
            .get_signed("/v1/shop/profile", key)
            .is_ok_and(|record| record["envelope"] == sent)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "note: the profile is on chain, but the shop's indexer has not shown it yet after \
         {PROFILE_INDEX_WAIT_SECS} s"
    );
    Ok(())
}

/// How long `consort shop profile` waits for the shop's indexer to show a change.
const PROFILE_INDEX_WAIT_SECS: u64 = 15;

/// The label of the private record holding a customer's profile (as the indexer keeps it).
const PROFILE_LABEL: &[u8] = consort_indexer::model::PROFILE_LABEL;

fn join(at: &Endpoints, key: &ed25519::PrivateKey) -> anyhow::Result<()> {
    let node = at.node();
    let me = crate::keys::account_of(key);
    let registered = node.get(&format!("/v1/accounts/{me}/registration"))?;
    if registered["registration"].is_null() {
        let hash = node.submit(key, Call::SelfRegister, None)?;
        node.wait_finalized(&hash, Duration::from_secs(60))?;
        println!("registered {me} as a customer");
    }
    let (_, public) = sealed::keypair(&commonware_codec::Encode::encode(key));
    let published = node.get(&format!("/v1/accounts/{me}/seal-key"))?;
    if published["seal_key"].as_str() != Some(hex::encode(public).as_str()) {
        let hash = node.submit(key, Call::SetSealKey { key: public }, None)?;
        node.wait_finalized(&hash, Duration::from_secs(60))?;
        println!("sealing key published: sellers and carriers can seal your address to you");
    }
    println!("{me} is ready to shop");
    Ok(())
}

/// A change's path made unique (`?request_id=`), so that two equal changes within the same
/// second are two signatures, not a replay.
fn unique(path: &str) -> String {
    let id: u64 = rand::random();
    format!("{path}?request_id={id:016x}")
}

fn cart(at: &Endpoints, command: CartCommand) -> anyhow::Result<()> {
    let shop = at.shop();
    let (answer, json) = match command {
        CartCommand::Show { key, json } => {
            (shop.get_signed("/v1/shop/cart", &key.load()?)?, json.json)
        }
        CartCommand::Add {
            product,
            variant,
            quantity,
            key,
        } => (
            shop.signed(
                Method::POST,
                &unique("/v1/shop/cart/items"),
                Some(&json!({"product": product, "variant": variant, "quantity": quantity})),
                &key.load()?,
            )?,
            false,
        ),
        CartCommand::Set {
            product,
            variant,
            quantity,
            key,
        } => (
            shop.signed(
                Method::PUT,
                &unique(&format!(
                    "/v1/shop/cart/items/{}/{variant}",
                    encode(&product)
                )),
                Some(&json!({ "quantity": quantity })),
                &key.load()?,
            )?,
            false,
        ),
        CartCommand::Remove {
            product,
            variant,
            key,
        } => (
            shop.signed(
                Method::DELETE,
                &unique(&format!(
                    "/v1/shop/cart/items/{}/{variant}",
                    encode(&product)
                )),
                None,
                &key.load()?,
            )?,
            false,
        ),
        CartCommand::Clear { key } => (
            shop.signed(Method::DELETE, &unique("/v1/shop/cart"), None, &key.load()?)?,
            false,
        ),
    };
    if json {
        return print_json(&answer);
    }
    print_cart(&answer);
    Ok(())
}

fn checkout(
    at: &Endpoints,
    key: &ed25519::PrivateKey,
    address: Option<String>,
    reg: Option<&String>,
    method: &str,
    pay_later: bool,
) -> anyhow::Result<()> {
    let method: PaymentMethod = serde_json::from_value(json!(method)).map_err(|_| {
        anyhow::anyhow!("--method {method:?}: use wallet, bank_transfer or cash_on_delivery")
    })?;
    let shop = at.shop();
    let node = at.node();
    let me = crate::keys::account_of(key);
    let cart = shop.get_signed("/v1/shop/cart", key)?;
    let groups = cart["checkout"].as_array().cloned().unwrap_or_default();
    if groups.is_empty() {
        bail!("nothing in the cart can be bought now (see `consort shop cart show`)");
    }
    if cart["ready"] != Value::Bool(true) {
        eprintln!("note: some lines cannot be bought as they are and stay in the cart");
    }
    // Checked once, before any order is placed, so a wrong --regulator stops nothing halfway.
    let any_physical = groups
        .iter()
        .any(|g| g["kind"].as_str() == Some("physical"));
    let address = match address {
        Some(address) => Some(address),
        None if any_physical => {
            let profile = my_profile(at, key)?;
            let first = profile
                .as_ref()
                .and_then(|p| p["addresses"][0].as_str())
                .map(str::to_string);
            if first.is_none() {
                bail!(
                    "the cart holds physical goods: give --address, or keep one in your profile \
                     (`consort shop profile --address ...`); it is sealed, never public"
                );
            }
            eprintln!("shipping to your profile's address");
            first
        }
        None => None,
    };
    let regulator = if any_physical {
        Some(checked_regulator(&node, reg)?)
    } else {
        None
    };
    for group in groups {
        let lines = group["lines"]
            .as_array()
            .context("a checkout group without lines")?
            .iter()
            .map(|l| {
                Ok(LineRequest {
                    product: record(l["product"].as_str().context("line product")?)?,
                    variant: u16::try_from(l["variant"].as_u64().context("line variant")?)?,
                    quantity: u32::try_from(l["quantity"].as_u64().context("line quantity")?)?,
                    price: l["price"].as_u64().context("line price")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let physical = group["kind"].as_str() == Some("physical");
        let sealed_address = if physical {
            let address = address
                .as_deref()
                .context("physical goods need --address (it is sealed, never public)")?;
            // The seller paid is the product's payee; the address is sealed to it.
            let product = node.get(&format!("/v1/commerce/products/{}", lines[0].product))?;
            let payee = account(
                product["head"]["payee"]
                    .as_str()
                    .context("the product has no payee")?,
                "the product's payee",
            )?;
            seal(
                &node,
                "address",
                address,
                &[
                    me,
                    payee,
                    regulator.context("a physical group was found above")?,
                ],
            )?
        } else {
            Sealed::default()
        };
        let pay = method == PaymentMethod::Wallet && !pay_later;
        // The lines leave the cart before the order is sent, so running checkout again after
        // a failure can never order them twice; if the order is refused they go back.
        for line in &lines {
            shop.signed(
                Method::DELETE,
                &unique(&format!(
                    "/v1/shop/cart/items/{}/{}",
                    line.product, line.variant
                )),
                None,
                key,
            )?;
        }
        let placed = send(
            &node,
            key,
            CommerceCall::PlaceOrder {
                lines: List(lines.clone()),
                method,
                pay,
                address: sealed_address,
            },
        );
        let id = match placed {
            Ok(id) => id,
            Err(error) => {
                for line in &lines {
                    let body = json!({
                        "product": line.product.to_string(),
                        "variant": line.variant,
                        "quantity": line.quantity,
                    });
                    if let Err(e) = shop.signed(
                        Method::POST,
                        &unique("/v1/shop/cart/items"),
                        Some(&body),
                        key,
                    ) {
                        eprintln!("note: could not put {} back in the cart: {e}", line.product);
                    }
                }
                return Err(error.context(
                    "the order was not placed; its items are back in the cart (check `consort \
                     shop orders` first if the node may have taken it)",
                ));
            }
        };
        println!(
            "order {id} placed with {}: {} {}{}",
            group["seller"].as_str().unwrap_or("?"),
            group["total"],
            group["currency"].as_str().unwrap_or(""),
            if pay { ", paid into escrow" } else { "" }
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn ship(
    at: &Endpoints,
    key: &ed25519::PrivateKey,
    order: &str,
    carrier: &str,
    carrier_account: &str,
    reg: Option<&String>,
    label: &str,
    lines: Option<&str>,
) -> anyhow::Result<()> {
    let node = at.node();
    let id = record(order)?;
    let carrier: OrgId = carrier.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let carrier_account = account(carrier_account, "--carrier-account")?;
    let view = node.get_signed(&format!("/v1/commerce/orders/{id}"), key)?;
    let buyer = account(
        view["order"]["buyer"]
            .as_str()
            .context("the order has no buyer")?,
        "the order's buyer",
    )?;
    let ship_lines = match lines {
        Some(list) => list
            .split(',')
            .map(|part| {
                let (line, quantity) = part
                    .split_once(':')
                    .context("write --lines as LINE:QUANTITY,...")?;
                Ok(ShipLine {
                    line: line.trim().parse()?,
                    quantity: quantity.trim().parse()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => (0u8..)
            .zip(
                view["order"]["lines"]
                    .as_array()
                    .context("the order has no lines")?,
            )
            .filter_map(|(line, l)| {
                let left = l["quantity"]
                    .as_u64()?
                    .checked_sub(l["shipped"].as_u64()?)?;
                (left > 0).then(|| {
                    Ok(ShipLine {
                        line,
                        quantity: u32::try_from(left)?,
                    })
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    if ship_lines.is_empty() {
        bail!("order {id} has nothing left to ship");
    }
    // The label is sealed before it is sent: sealed to a wrong account, the carrier could
    // not read where to deliver, and nothing on the chain could tell.
    let (org, roles) = member(&node, &carrier_account, "--carrier-account")?;
    if org != carrier || roles & role::CARRIER == 0 {
        bail!(
            "--carrier-account {carrier_account} is not a carrier account of {carrier} (it is an \
             account of {org}); give an account of {carrier} with the carrier's role"
        );
    }
    let regulator = checked_regulator(&node, reg)?;
    let me = crate::keys::account_of(key);
    let sealed_label = seal(
        &node,
        "label",
        label,
        &[me, buyer, carrier_account, regulator],
    )?;
    send(
        &node,
        key,
        CommerceCall::Ship {
            order: id,
            lines: List(ship_lines),
            carrier,
            label: sealed_label,
        },
    )?;
    println!("order {id} shipped with {carrier}");
    Ok(())
}

fn track(at: &Endpoints, id: &str, key: &ed25519::PrivateKey, follow: bool) -> anyhow::Result<()> {
    let shop = at.shop();
    let path = format!("/v1/shop/orders/{}", encode(id));
    if !follow {
        print_timeline(&shop.get_signed(&path, key)?, 0);
        return Ok(());
    }
    let mut shown = 0;
    // A stream lasts a few minutes; each is signed afresh. It is opened before the order is
    // read, so no change falls between the read and the stream.
    loop {
        let response = shop.send_signed(Method::GET, "/v1/shop/updates", None, key, None)?;
        if !response.status().is_success() {
            Client::check(response)?;
            bail!("the update stream was refused");
        }
        let view = shop.get_signed(&path, key)?;
        shown = print_timeline(&view, shown);
        if ended(&view) {
            return Ok(());
        }
        let mut event = String::new();
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else {
                break;
            };
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                let changed = match event.as_str() {
                    "order" => serde_json::from_str::<Value>(data.trim())
                        .ok()
                        .is_some_and(|v| v["order"]["id"].as_str() == Some(id)),
                    "lagged" => true,
                    _ => false,
                };
                if changed {
                    let view = shop.get_signed(&path, key)?;
                    shown = print_timeline(&view, shown);
                    if ended(&view) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn ended(view: &Value) -> bool {
    matches!(
        view["order"]["status"].as_str(),
        Some("completed" | "cancelled" | "expired" | "refunded")
    )
}

/// Print the timeline entries after the first `from`; returns how many there are.
fn print_timeline(view: &Value, from: usize) -> usize {
    let entries = view["timeline"].as_array().cloned().unwrap_or_default();
    if from == 0 {
        let order = &view["order"];
        println!(
            "order {} ({}): {} · payment {} · {}",
            order["id"].as_str().unwrap_or("?"),
            order["first_item_zh"].as_str().unwrap_or(""),
            order["status"].as_str().unwrap_or("?"),
            order["payment"].as_str().unwrap_or("?"),
            money(&order["total"], &order["currency"]),
        );
    }
    for entry in entries.iter().skip(from) {
        let what = match entry["event"].as_str() {
            // The carrier's own entries (below) say what each of its events did.
            Some("carrier_events") => continue,
            Some("shipment") => format!(
                "{} {}{}",
                shipment_name(&entry["shipment"]),
                entry["status"].as_str().unwrap_or("?"),
                entry["location"]
                    .as_str()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            ),
            Some(event) => format!("{event} → {}", entry["status"].as_str().unwrap_or("?")),
            None => "?".into(),
        };
        println!("  block {:>7}  {what}", entry["height"]);
    }
    entries.len()
}

fn print_results(answer: &Value) {
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    println!(
        "{} found; page {}, {} shown:",
        answer["total"],
        answer["page"],
        results.len()
    );
    for p in &results {
        println!(
            "  {:<10} {} / {}  {}  ★{}  stock {}  [{}]",
            p["id"].as_str().unwrap_or("?"),
            p["title_zh"].as_str().unwrap_or(""),
            p["title_en"].as_str().unwrap_or(""),
            money(&p["price_min"], &p["currency"]),
            p["rating"].as_str().unwrap_or("-"),
            p["available"],
            p["seller"].as_str().unwrap_or("")
        );
    }
    for facet in ["categories", "sellers"] {
        if let Some(counts) = answer["facets"][facet].as_array()
            && !counts.is_empty()
        {
            let list: Vec<String> = counts
                .iter()
                .map(|c| format!("{} ({})", c["name"].as_str().unwrap_or("?"), c["count"]))
                .collect();
            println!("{facet}: {}", list.join(", "));
        }
    }
}

fn print_product(answer: &Value) {
    let p = answer.get("product").unwrap_or(answer);
    println!(
        "{}  {} / {}",
        p["id"].as_str().unwrap_or("?"),
        p["title_zh"].as_str().unwrap_or(""),
        p["title_en"].as_str().unwrap_or("")
    );
    println!(
        "  {} · seller {} · {} · ★{} ({} reviews) · {} sold",
        p["category"].as_str().unwrap_or(""),
        p["seller"].as_str().unwrap_or(""),
        p["status"].as_str().unwrap_or(""),
        p["rating"].as_str().unwrap_or("-"),
        p["rating_count"],
        p["sold"]
    );
    for v in answer["variants"].as_array().into_iter().flatten() {
        println!(
            "  variant {}: {:<16} {}  stock {}",
            v["variant"],
            v["name"].as_str().unwrap_or(""),
            money(&v["price"], &v["currency"]),
            v["available"]
        );
    }
    for r in answer["reviews"]["latest"].as_array().into_iter().flatten() {
        println!(
            "  ★{} {}",
            r["rating"],
            r["text"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
}

fn print_comparison(answer: &Value) {
    let names: Vec<String> = answer["products"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["id"].as_str().unwrap_or("?").to_string())
        .collect();
    println!("{:<16} {}", "", names.join(" | "));
    for row in answer["rows"].as_array().into_iter().flatten() {
        let values: Vec<String> = row["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .collect();
        let mark = if row["differs"] == Value::Bool(true) {
            "*"
        } else {
            " "
        };
        println!(
            "{mark}{:<15} {}",
            row["name"].as_str().unwrap_or("?"),
            values.join(" | ")
        );
    }
}

fn print_cart(answer: &Value) {
    let lines = answer["lines"].as_array().cloned().unwrap_or_default();
    if lines.is_empty() {
        println!("the cart is empty");
        return;
    }
    for l in &lines {
        let warnings: Vec<&str> = l["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "  {} v{} × {}  {} {}  = {}{}",
            l["product"].as_str().unwrap_or("?"),
            l["variant"],
            l["quantity"],
            l["title_zh"].as_str().unwrap_or(""),
            money(&l["price"], &l["currency"]),
            l["subtotal"],
            if warnings.is_empty() {
                String::new()
            } else {
                format!("  ⚠ {}", warnings.join(", "))
            }
        );
    }
    if let Some(totals) = answer["totals"].as_object() {
        for (currency, total) in totals {
            println!("total: {total} {currency}");
        }
    }
    println!(
        "checkout places {} order(s)",
        answer["checkout"].as_array().map_or(0, Vec::len)
    );
}

fn print_orders(answer: &Value) {
    println!("{} ({} in all):", answer["role"], answer["total"]);
    for o in answer["orders"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:<10} {:<9} {:<16} {}",
            o["id"].as_str().unwrap_or("?"),
            o["status"].as_str().unwrap_or("?"),
            o["payment"].as_str().unwrap_or("?"),
            money(&o["total"], &o["currency"]),
            o["first_item_zh"].as_str().unwrap_or("")
        );
    }
    for s in answer["shipments"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {} {:<18} order {}",
            s["order"].as_str().unwrap_or("?"),
            shipment_name(&s["shipment"]),
            s["status"].as_str().unwrap_or("?"),
            s["order_status"].as_str().unwrap_or("?")
        );
    }
}

fn print_order(answer: &Value) {
    print_timeline(answer, 0);
    for l in answer["lines"].as_array().into_iter().flatten() {
        println!(
            "  line {}: {} ({}) × {} at {} · shipped {}",
            l["line"],
            l["title_zh"].as_str().unwrap_or(""),
            l["variant_name"].as_str().unwrap_or(""),
            l["quantity"],
            l["price"],
            l["shipped"]
        );
    }
    let o = &answer["order"];
    println!(
        "  paid {} · escrow {} · refunded {} · settled {} · fee {}",
        o["paid"], o["escrow"], o["refunded"], o["settled"], o["fee"]
    );
    let case = &answer["after_sale"];
    if case.is_object() {
        println!(
            "  after-sales: {} · {} of {} asked · refunded {} · case {} of at most {}",
            case["status"].as_str().unwrap_or("?"),
            if case["goods_back"] == true {
                "return and refund"
            } else {
                "refund only"
            },
            case["amount"],
            case["refunded"],
            case["cases"],
            consort_types::commerce::AFTER_SALES_PER_ORDER_MAX
        );
    }
}

/// A shipment as `consort shop event` takes it: its number, or `return-N` for the goods going
/// back under after-sales case N.
fn shipment_number(given: &str) -> anyhow::Result<u16> {
    let bad = || {
        anyhow::anyhow!(
            "shipment {given:?}: give its number (0, 1, ...) or return-N for the goods going \
             back under after-sales case N (see consort shop order)"
        )
    };
    match given.strip_prefix("return-") {
        Some(case) => {
            let case: u8 = case.parse().map_err(|_| bad())?;
            if case == 0 {
                return Err(bad());
            }
            Ok(consort_types::commerce::return_shipment(case))
        }
        None => given.parse().map_err(|_| bad()),
    }
}

/// How a shipment number reads: `shipment N`, or `return-N` for goods going back.
fn shipment_name(n: &Value) -> String {
    match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
        Some(n) if consort_types::commerce::is_return_shipment(n) => format!(
            "return-{}",
            n - consort_types::commerce::RETURN_SHIPMENT_BASE
        ),
        Some(n) => format!("shipment {n}"),
        None => format!("shipment {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_types::commerce::{RETURN_SHIPMENT_BASE, return_shipment};

    #[test]
    fn shipments_are_named_by_number_or_by_return_case() {
        assert_eq!(shipment_number("0").expect("a shipment"), 0);
        assert_eq!(shipment_number("3").expect("a shipment"), 3);
        assert_eq!(
            shipment_number("return-1").expect("a shipment"),
            RETURN_SHIPMENT_BASE + 1
        );
        assert_eq!(
            shipment_number("return-255").expect("a shipment"),
            return_shipment(255)
        );
        for bad in ["", "-1", "return-0", "return-256", "return-", "back-1", "x"] {
            let err = shipment_number(bad).expect_err("refused").to_string();
            assert!(err.contains("return-N"), "{bad:?}: {err}");
        }
        assert_eq!(shipment_name(&Value::from(2)), "shipment 2");
        assert_eq!(shipment_name(&Value::from(return_shipment(1))), "return-1");
    }
}
