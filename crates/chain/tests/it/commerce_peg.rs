//! A shop order paid in the pegged coin, against a real `litecoind -regtest`: litecoins
//! deposited to the federation are credited by the validators' watchers, spent on one order's
//! whole life (placed and paid, accepted, shipped, carried, delivered, confirmed), settled to
//! the seller less the platform fee, and the seller's proceeds pegged back out to litecoind.
//! After every step each balance is checked and the conservation audit holds from both sides:
//! the ledger's totals (escrow included) against the federation's coins on litecoind.

use super::peg::{
    CONFIRMATIONS, Ledger, deposit, genesis as peg_genesis, on_tokio, start_litecoind,
    three_watchers, watcher_round,
};
use anyhow::ensure;
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_mainchain::script_pubkey_for_address;
use consort_types::{
    AccountId, Amount, Asset, Call,
    codec_util::{Blob, List, Text},
    commerce::{
        CarrierEvent, CommerceCall, CommerceConfig, Holdings, LineRequest, Order, OrderStatus,
        PaymentMethod, PaymentState, ProductContent, ProductKind, RecordId, ShipLine,
        ShipmentStatus, VariantSpec,
    },
    gov::{GenesisOrg, GovernanceConfig, Mode, OrgKind},
    sealed::{self, Sealed},
    state_key::commerce as key,
};

const FEE_BP: u32 = 200;
const PRICE: u64 = 12_000_000;
const DEPOSIT: u64 = 50_000_000;

fn party(seed: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(7_700 + seed)
}

fn id(seed: u64) -> AccountId {
    AccountId::new(party(seed).public_key())
}

const BUYER: u64 = 1;
const OPERATOR: u64 = 2;
const SELLER: u64 = 3;
const CARRIER: u64 = 4;
const REGULATOR: u64 = 5;

fn seal(payload: &[u8], to: &[u64]) -> Sealed {
    let recipients: Vec<_> = to
        .iter()
        .map(|w| (id(*w), sealed::keypair(&party(*w).encode()).1))
        .collect();
    sealed::seal(payload, &recipients, b"consort/test/pegged-order").expect("seals")
}

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).expect("fits")
}

/// The peg tests' chain, with governance (a platform, a seller, a carrier, a regulator, and
/// the buyer registered as a customer) and the shop.
fn genesis() -> consort_types::Genesis {
    let founder = |name: &str, kind, admin| GenesisOrg {
        id: name.parse().expect("organisation id"),
        kind,
        admins: vec![id(admin)],
    };
    let mut genesis = peg_genesis();
    genesis.governance = Some(GovernanceConfig {
        mode: Mode::Consortium,
        organisations: vec![
            founder("platform", OrgKind::Operator, OPERATOR),
            founder("shop", OrgKind::Seller, SELLER),
            founder("express", OrgKind::Logistics, CARRIER),
            founder("reg", OrgKind::Regulator, REGULATOR),
        ],
        registrar: "platform".parse().expect("organisation id"),
        vote_period_blocks: 10,
        alert_threshold: None,
        customers: vec![id(BUYER)],
        rotation_delay_blocks: None,
    });
    genesis.commerce = Some(CommerceConfig {
        fee_rate_bp: FEE_BP,
        fee_account: id(OPERATOR),
        payment_window_ms: 60_000,
        receipt_window_ms: 600_000,
        after_sale_window_ms: 600_000,
    });
    genesis
}

async fn order(ledger: &Ledger, id: &RecordId) -> Order {
    ledger
        .read(&key::order(id))
        .await
        .expect("the order exists")
}

/// Conservation with escrow: the parties' pegged balances plus what the shop's escrow holds
/// on chain (which must be `escrow`) are the pegged supply, which the audit then matches
/// against the federation's coins on litecoind.
async fn conserved(
    ledger: &Ledger,
    rpc: &consort_mainchain::RpcClient,
    escrow: u64,
) -> anyhow::Result<()> {
    let holdings: Holdings = ledger
        .read(&key::holdings(&ledger.peg.asset()))
        .await
        .unwrap_or_default();
    ensure!(
        holdings.escrow == escrow && holdings.payouts == 0,
        "the shop holds {holdings:?}, expected {escrow} in escrow"
    );
    let mut held = holdings.escrow;
    for who in [BUYER, OPERATOR, SELLER, CARRIER, REGULATOR] {
        held += ledger.pegged(&id(who)).await;
    }
    let supply = ledger.totals().await.supply;
    ensure!(
        held == supply,
        "balances and escrow hold {held}, the supply is {supply}"
    );
    ledger.audit(rpc).await?;
    Ok(())
}

async fn submit(ledger: &mut Ledger, who: u64, call: CommerceCall) -> anyhow::Result<RecordId> {
    ledger
        .submit(&party(who), Call::Commerce(call))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(RecordId {
        height: ledger.height,
        index: 0,
    })
}

#[test]
fn an_order_paid_in_the_pegged_coin_lives_its_whole_life_and_its_proceeds_peg_out() {
    on_tokio(pegged_order);
}

async fn pegged_order(context: commonware_runtime::tokio::Context) -> anyhow::Result<()> {
    let node = start_litecoind().await?;
    let rpc = node.rpc().clone();
    node.mine(101).await?;
    let mut ledger = Ledger::with_genesis(context, genesis()).await;
    let ltc: Asset = ledger.peg.asset();
    // The buyer deposits litecoins; three validators' watchers claim them.
    let mut watchers = three_watchers(&ledger, &rpc, id(BUYER));
    deposit(&node, &ledger, &id(BUYER), DEPOSIT).await?;
    node.mine(CONFIRMATIONS).await?;
    let credited = DEPOSIT - ledger.peg.deposit_fee(&ledger.fed().await);
    let mut rounds = 0;
    while ledger.pegged(&id(BUYER)).await < credited {
        rounds += 1;
        ensure!(rounds < 30, "the deposit was not credited");
        node.mine(1).await?;
        watcher_round(&mut ledger, &mut watchers).await?;
    }
    ensure!(ledger.pegged(&id(BUYER)).await == credited);
    conserved(&ledger, &rpc, 0).await?;

    // Everyone who receives a sealed copy publishes a sealing key.
    for who in [BUYER, SELLER, CARRIER, REGULATOR] {
        let key = sealed::keypair(&party(who).encode()).1;
        ledger
            .submit(&party(who), Call::SetSealKey { key })
            .await
            .map_err(|e| anyhow::anyhow!("seal key: {e}"))?;
    }
    // The seller prices a product in the pegged coin.
    let product = submit(
        &mut ledger,
        SELLER,
        CommerceCall::PublishProduct {
            content: ProductContent {
                kind: ProductKind::Physical,
                title_zh: text("机械键盘"),
                title_en: text("Mechanical keyboard"),
                description_zh: text("红轴"),
                description_en: text("Red switches"),
                category: text("electronics/keyboards"),
                attributes: List(Vec::new()),
                images: List(Vec::new()),
                variants: List(vec![VariantSpec {
                    name: text("87 keys"),
                    price: PRICE,
                    currency: ltc,
                    stock: 5,
                }]),
            },
        },
    )
    .await?;
    // Placed and paid in one transaction: the price leaves the buyer for escrow.
    let placed = submit(
        &mut ledger,
        BUYER,
        CommerceCall::PlaceOrder {
            lines: List(vec![LineRequest {
                product,
                variant: 0,
                quantity: 1,
                price: PRICE,
            }]),
            method: PaymentMethod::Wallet,
            pay: true,
            address: seal(b"Room 8, 1 Century Avenue", &[BUYER, SELLER, REGULATOR]),
        },
    )
    .await?;
    let o = order(&ledger, &placed).await;
    ensure!(o.status == OrderStatus::Paid && o.payment == PaymentState::Escrowed);
    ensure!(o.escrow == PRICE && o.currency == ltc);
    ensure!(ledger.pegged(&id(BUYER)).await == credited - PRICE);
    conserved(&ledger, &rpc, PRICE).await?;

    // Accepted, shipped with a label for the carrier, carried and delivered.
    submit(
        &mut ledger,
        SELLER,
        CommerceCall::AcceptOrders {
            orders: List(vec![placed]),
        },
    )
    .await?;
    submit(
        &mut ledger,
        SELLER,
        CommerceCall::Ship {
            order: placed,
            lines: List(vec![ShipLine {
                line: 0,
                quantity: 1,
            }]),
            carrier: "express".parse().expect("organisation id"),
            label: seal(
                b"Buyer 1, Room 8, 1 Century Avenue",
                &[SELLER, BUYER, CARRIER, REGULATOR],
            ),
        },
    )
    .await?;
    let step = |status| CarrierEvent {
        order: placed,
        shipment: 0,
        status,
        location: text("Pudong depot"),
    };
    submit(
        &mut ledger,
        CARRIER,
        CommerceCall::CarrierEvents {
            events: List(vec![
                step(ShipmentStatus::PickedUp),
                step(ShipmentStatus::InTransit),
                step(ShipmentStatus::OutForDelivery),
                step(ShipmentStatus::Delivered),
            ]),
        },
    )
    .await?;
    ensure!(order(&ledger, &placed).await.status == OrderStatus::Delivered);
    ensure!(
        ledger.pegged(&id(SELLER)).await == 0,
        "nothing settles before receipt"
    );
    conserved(&ledger, &rpc, PRICE).await?;

    // Receipt settles: the seller gets the price less the fee, the platform the fee.
    submit(
        &mut ledger,
        BUYER,
        CommerceCall::ConfirmReceipt { order: placed },
    )
    .await?;
    let fee = PRICE * u64::from(FEE_BP) / 10_000;
    let o = order(&ledger, &placed).await;
    ensure!(o.status == OrderStatus::Completed && o.payment == PaymentState::Released);
    ensure!(o.escrow == 0 && o.settled == PRICE - fee && o.fee == fee);
    ensure!(ledger.pegged(&id(SELLER)).await == PRICE - fee);
    ensure!(ledger.pegged(&id(OPERATOR)).await == fee);
    ensure!(ledger.pegged(&id(BUYER)).await == credited - PRICE);
    conserved(&ledger, &rpc, 0).await?;

    // The seller takes the proceeds back to the main chain.
    let payee = node
        .wallet_rpc()?
        .get_new_address("", Some("bech32"))
        .await?;
    let script = script_pubkey_for_address(&node.network(), &payee)?;
    ledger
        .submit(
            &party(SELLER),
            Call::PegOut {
                amount: Amount::new(PRICE - fee),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    ensure!(ledger.pegged(&id(SELLER)).await == 0);
    let mut rounds = 0;
    while ledger.totals().await.pending_peg_outs > 0 {
        rounds += 1;
        ensure!(rounds < 30, "the peg-out was not completed by the watchers");
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.audit(&rpc).await?;
        node.mine(1).await?;
    }
    let received: f64 = node
        .wallet_rpc()?
        .call(
            "getreceivedbyaddress",
            vec![serde_json::json!(payee), serde_json::json!(1)],
        )
        .await?;
    let (quoted, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    ensure!(
        bitcoin::Amount::from_btc(received)?.to_sat() == PRICE - fee - quoted,
        "the seller's payee received the proceeds less the quoted peg-out fee"
    );
    ledger.audit(&rpc).await?;
    Ok(())
}
