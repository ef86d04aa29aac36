//! `consort peg …`: deposit addresses, peg-outs with a fee quote first, the status of deposits
//! and withdrawals, and the conservation audit against the main chain.

use crate::client::Client;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use consort_types::{Amount, Call, codec_util::Blob};
use serde_json::{Value, json};
use std::{path::PathBuf, time::Duration};

#[derive(Subcommand)]
pub enum PegCommand {
    /// Print an account's deposit address. Pay it from any wallet or exchange; the validators
    /// claim the deposit after k confirmations and it is spendable after the contest period.
    Address {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// The Consort account credited (hex public key).
        account: String,
    },
    /// Burn pegged coins and receive them on the main chain. Shows the fee quote first; the
    /// recipient receives the amount minus that fee.
    Out {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the sender's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// Satoshis to burn.
        #[arg(long)]
        amount: u64,
        /// The main-chain address paid.
        #[arg(long)]
        to: String,
        /// Accept the quoted fee without asking.
        #[arg(long)]
        yes: bool,
    },
    /// The peg's state: main-chain tip, totals, the batch in flight.
    Status {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
    },
    /// The status of a deposit (claimed outpoint `TXID:VOUT`) with its confirmations so far.
    Deposit {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// `TXID:VOUT`.
        outpoint: String,
    },
    /// The status of a peg-out request.
    Request {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// The request id (`consort peg out` prints it).
        id: u64,
    },
    /// Check conservation now: pegged supply + pending claims + fee pool + pending peg-outs on
    /// Consort against the value the main-chain node reports for every federation coin.
    /// Exits non-zero if they differ.
    Audit {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// The main-chain node's JSON-RPC URL.
        #[arg(long)]
        rpc_url: String,
        /// Its `.cookie` file (or give --rpc-user and --rpc-password).
        #[arg(long)]
        rpc_cookie: Option<PathBuf>,
        /// RPC user.
        #[arg(long)]
        rpc_user: Option<String>,
        /// RPC password.
        #[arg(long, env = "CONSORT_RPC_PASSWORD")]
        rpc_password: Option<String>,
    },
}

pub fn run(command: PegCommand) -> anyhow::Result<()> {
    match command {
        PegCommand::Address { node, account } => {
            let answer = Client::new(&node).get(&format!("/v1/peg/address/{account}"))?;
            println!("{}", answer["address"].as_str().unwrap_or_default());
            eprintln!(
                "deposits to it are claimed for {account} after {} confirmations and spendable {} blocks later",
                answer["confirmations"], answer["contest_blocks"]
            );
            Ok(())
        }
        PegCommand::Out {
            node,
            key,
            amount,
            to,
            yes,
        } => peg_out(&node, &key, amount, &to, yes),
        PegCommand::Status { node } => print(&Client::new(&node).get("/v1/peg")?),
        PegCommand::Deposit { node, outpoint } => {
            let (txid, vout) = outpoint
                .split_once(':')
                .context("give the deposit as TXID:VOUT")?;
            print(&Client::new(&node).get(&format!("/v1/peg/claims/{txid}/{vout}"))?)
        }
        PegCommand::Request { node, id } => {
            print(&Client::new(&node).get(&format!("/v1/peg/requests/{id}"))?)
        }
        PegCommand::Audit {
            node,
            rpc_url,
            rpc_cookie,
            rpc_user,
            rpc_password,
        } => {
            let rpc = crate::mainchain::Rpc::new(rpc_url, rpc_cookie, rpc_user, rpc_password)?;
            let report = audit(&Client::new(&node), &rpc)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report["holds"] != json!(true) {
                bail!("the peg audit fails: Consort owes more or less than the federation holds");
            }
            Ok(())
        }
    }
}

fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn peg_out(
    node: &str,
    key: &std::path::Path,
    amount: u64,
    to: &str,
    yes: bool,
) -> anyhow::Result<()> {
    let key = consort_node::node::load_key(key)?;
    let client = Client::new(node);
    let quote = client.get(&format!("/v1/peg/quote/{to}"))?;
    let fee = quote["fee_sat"].as_u64().context("quote has no fee")?;
    let minimum = quote["minimum_sat"]
        .as_u64()
        .context("quote has no minimum")?;
    let script = quote["script_pubkey"]
        .as_str()
        .context("quote has no script")?;
    if amount < minimum {
        bail!("a peg-out to {to} must be at least {minimum} sat (fee {fee} plus the dust limit)");
    }
    eprintln!(
        "peg-out of {amount} sat to {to}: fee {fee} sat, {to} receives {} sat",
        amount - fee
    );
    if !yes {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            bail!("re-run with --yes to accept the quoted fee");
        }
        eprint!("proceed? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            bail!("cancelled");
        }
    }
    let script = hex::decode(script).context("quote script is not hex")?;
    let hash = client.submit(
        &key,
        Call::PegOut {
            amount: Amount::new(amount),
            script: Blob::new(script).context("script too long")?,
        },
        None,
    )?;
    let status = client.wait_finalized(&hash, Duration::from_secs(30))?;
    println!("peg-out finalized: {}", status["hash"]);
    let peg = client.get("/v1/peg")?;
    let next = peg["totals"]["next_request"].as_u64().unwrap_or(1);
    println!(
        "follow it with: consort peg request --node {node} {}",
        next.saturating_sub(1)
    );
    Ok(())
}

/// Both sides of the conservation equation, and whether it holds. The two chains move while
/// it reads them, so it is one snapshot only if neither the peg's records on Consort (its
/// totals, counts and batch in flight) nor the main chain's tip changed from its start to its
/// end: otherwise (or when a block spends or settles the item a page was to continue after)
/// it starts again, up to [`AUDIT_ATTEMPTS`] times.
pub fn audit(client: &Client, rpc: &crate::mainchain::Rpc) -> anyhow::Result<Value> {
    let moment = || -> anyhow::Result<Value> {
        let peg = client.get("/v1/peg")?;
        Ok(json!([
            rpc.call("getbestblockhash", json!([]))?,
            peg["totals"],
            peg["coins"],
            peg["pending_claims"],
            peg["in_flight_batch"],
        ]))
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = moment()?;
        let result = audit_once(client, rpc);
        let still = moment()? == before;
        match result {
            Err(error)
                if attempt < AUDIT_ATTEMPTS
                    && ["cursor_gone", "busy"]
                        .iter()
                        .any(|code| error.to_string().starts_with(code)) => {}
            Ok(_) if !still && attempt < AUDIT_ATTEMPTS => {}
            Ok(_) if !still => bail!(
                "the peg's records or the main chain moved during each of {AUDIT_ATTEMPTS} \
                 audits; run it again when they are quieter"
            ),
            result => return result,
        }
    }
}

/// Audits [`audit`] tries before it gives up on a snapshot of two moving chains.
const AUDIT_ATTEMPTS: u32 = 20;
/// Coins or claims per page the audit asks for.
const AUDIT_PAGE: usize = 250;

fn audit_once(client: &Client, rpc: &crate::mainchain::Rpc) -> anyhow::Result<Value> {
    let peg = client.get("/v1/peg")?;
    let totals = &peg["totals"];
    let field = |name: &str| totals[name].as_u64().unwrap_or(0);
    let mut owed = i128::from(field("supply"))
        + i128::from(field("pending_claims"))
        + i128::from(field("fee_pool"))
        + i128::from(field("pending_peg_outs"));
    let mut coins = Vec::new();
    let mut held: i128 = 0;
    // Every coin the federation holds and every claim in its contest period (its output is
    // held too), a page at a time.
    let mut outpoints: Vec<(String, u64)> = Vec::new();
    for (route, items) in [("/v1/peg/coins", "coins"), ("/v1/peg/pending", "claims")] {
        let mut after: Option<String> = None;
        loop {
            // Small pages: each is read from one snapshot of a chain that keeps moving.
            let path = match &after {
                Some(cursor) => format!("{route}?limit={AUDIT_PAGE}&after={cursor}"),
                None => format!("{route}?limit={AUDIT_PAGE}"),
            };
            let page = client.get(&path)?;
            for item in page[items].as_array().cloned().unwrap_or_default() {
                let txid = item["txid"].as_str().context("a listed txid")?.to_string();
                outpoints.push((txid, item["vout"].as_u64().context("a listed vout")?));
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
    }
    let batch = &peg["in_flight_batch"];
    let mut in_flight = Value::Null;
    if !batch.is_null() {
        let txid = batch["txid"].as_str().context("batch txid")?.to_string();
        let mined = rpc.call("gettxout", json!([txid, 0, false]))?;
        // Its change goes to the federation current when it was built (a live one).
        let change_to = batch["change_to"].as_u64();
        let base = peg["federations"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["generation"].as_u64() == change_to))
            .and_then(|f| f["script_pubkey"].as_str())
            .unwrap_or_default();
        let outputs = batch["outputs"].as_array().cloned().unwrap_or_default();
        if mined.is_null() {
            for input in batch["inputs"].as_array().cloned().unwrap_or_default() {
                let o = &input["outpoint"];
                outpoints.push((
                    o["txid"].as_str().unwrap_or_default().to_string(),
                    o["vout"].as_u64().unwrap_or(0),
                ));
            }
        } else {
            // Paid on the main chain, not yet recorded on Consort: count the change, and
            // take off what Consort will when it records the confirmation.
            let mut payments: i128 = 0;
            for (vout, output) in outputs.iter().enumerate() {
                let value = i128::from(output["value"].as_u64().unwrap_or(0));
                if output["script"].as_str() == Some(base) {
                    let out = rpc.call("gettxout", json!([txid, vout, false]))?;
                    held += sats(&out["value"]);
                } else {
                    payments += value;
                }
            }
            let quoted = i128::from(batch["quoted"].as_u64().unwrap_or(0));
            let fee = i128::from(batch["fee"].as_u64().unwrap_or(0));
            owed -= payments + quoted;
            owed += quoted - fee;
        }
        in_flight = json!({"txid": txid, "mined": !mined.is_null()});
    }
    for (txid, vout) in outpoints {
        let out = rpc.call("gettxout", json!([txid, vout, false]))?;
        let value = if out.is_null() {
            0
        } else {
            sats(&out["value"])
        };
        held += value;
        coins.push(
            json!({"txid": txid, "vout": vout, "value_sat": value, "unspent": !out.is_null()}),
        );
    }
    Ok(json!({
        "consort": {
            "supply": field("supply"),
            "pending_claims": field("pending_claims"),
            "fee_pool": field("fee_pool"),
            "pending_peg_outs": field("pending_peg_outs"),
            "owed_sat": owed,
        },
        "main_chain": {"coins": coins, "held_sat": held, "batch_in_flight": in_flight},
        "holds": owed == held,
    }))
}

/// A JSON BTC/LTC amount in satoshis, exactly (via its decimal text, never a float).
fn sats(value: &Value) -> i128 {
    let text = value.to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut fraction = fraction.to_string();
    fraction.truncate(8);
    while fraction.len() < 8 {
        fraction.push('0');
    }
    whole.parse::<i128>().unwrap_or(0) * 100_000_000 + fraction.parse::<i128>().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly() {
        assert_eq!(sats(&json!(1.0)), 100_000_000);
        assert_eq!(sats(&json!(0.3)), 30_000_000);
        assert_eq!(sats(&json!(0.0001)), 10_000);
        assert_eq!(sats(&json!(12.345_678_91)), 1_234_567_891);
    }
}
