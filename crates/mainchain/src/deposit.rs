//! Recognising payments to the federation: which outputs of a main-chain transaction or block
//! pay the base script or a known account's deposit script.
//!
//! Works on transactions rust-bitcoin can decode. After Litecoin's MWEB activation, full blocks
//! and the HogEx transaction decode only in the legacy serialization (`litecoind
//! -rpcserialversion=0`), which keeps every transparent output; a deposit paid from an MWEB
//! wallet appears as an output of the block's HogEx transaction, recognised by its first
//! output (the witness-version-8 "HogAddr").

use std::collections::BTreeMap;

use bitcoin::{Block, OutPoint, ScriptBuf, Transaction, WitnessVersion};

use crate::federation::{Custody, DepositAccount, Federation};
use crate::spend::Utxo;

/// The federation's output scripts, each mapped to its custody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositIndex {
    scripts: BTreeMap<ScriptBuf, Custody>,
}

impl DepositIndex {
    /// The base script and the deposit script of every account in `accounts`.
    pub fn new(
        federation: &Federation,
        accounts: impl IntoIterator<Item = DepositAccount>,
    ) -> Self {
        let mut scripts = BTreeMap::new();
        scripts.insert(federation.script_pubkey(&Custody::Base), Custody::Base);
        for account in accounts {
            let custody = Custody::Deposit(account);
            scripts.insert(federation.script_pubkey(&custody), custody);
        }
        Self { scripts }
    }

    /// The custody of an output script, if it is the federation's.
    pub fn custody(&self, script_pubkey: &ScriptBuf) -> Option<Custody> {
        self.scripts.get(script_pubkey).copied()
    }

    /// Scripts in the index (the base script included).
    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    /// Never true: the base script is always indexed.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// The federation's outputs in `transaction`, confirmed at `height`.
    pub fn scan_transaction(&self, transaction: &Transaction, height: u32) -> Vec<Utxo> {
        let txid = transaction.compute_txid();
        let mweb_peg_out = is_hogex(transaction);
        transaction
            .output
            .iter()
            .zip(0_u32..)
            .filter_map(|(output, vout)| {
                let custody = self.custody(&output.script_pubkey)?;
                Some(Utxo {
                    outpoint: OutPoint { txid, vout },
                    value: output.value,
                    custody,
                    height,
                    mweb_peg_out,
                })
            })
            .collect()
    }

    /// The federation's outputs in `block` at `height`, in block order.
    pub fn scan_block(&self, block: &Block, height: u32) -> Vec<Utxo> {
        block
            .txdata
            .iter()
            .flat_map(|transaction| self.scan_transaction(transaction, height))
            .collect()
    }
}

/// True for Litecoin's HogEx ("integrating") transaction: its first output is the HogAddr, a
/// witness version 8 program. No other standard transaction pays version 8.
pub fn is_hogex(transaction: &Transaction) -> bool {
    transaction
        .output
        .first()
        .and_then(|output| output.script_pubkey.witness_version())
        == Some(WitnessVersion::V8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, TxIn, TxOut, WitnessProgram};

    use super::*;
    use crate::federation::tests::federation;

    fn transaction(outputs: Vec<ScriptBuf>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn::default()],
            output: outputs
                .into_iter()
                .map(|script_pubkey| TxOut {
                    value: Amount::from_sat(10_000),
                    script_pubkey,
                })
                .collect(),
        }
    }

    #[test]
    fn deposits_to_known_accounts_and_the_base_are_found_and_others_ignored() {
        let federation = federation(4, 3);
        let known = DepositAccount::new([1; 32]);
        let unknown = DepositAccount::new([2; 32]);
        let index = DepositIndex::new(&federation, [known]);
        assert_eq!(index.len(), 2);
        let tx = transaction(vec![
            ScriptBuf::new_op_return([0; 4]),
            federation.script_pubkey(&Custody::Deposit(unknown)),
            federation.script_pubkey(&Custody::Deposit(known)),
            federation.script_pubkey(&Custody::Base),
        ]);
        let found = index.scan_transaction(&tx, 500);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].outpoint.vout, 2);
        assert_eq!(found[0].custody, Custody::Deposit(known));
        assert_eq!(found[0].height, 500);
        assert_eq!(found[0].spendable_height(), 501);
        assert_eq!(found[1].custody, Custody::Base);
        assert!(!found[0].mweb_peg_out);
    }

    #[test]
    fn outputs_of_a_hogex_transaction_mature_after_six_blocks() {
        let federation = federation(4, 3);
        let account = DepositAccount::new([1; 32]);
        let index = DepositIndex::new(&federation, [account]);
        let hog_addr = WitnessProgram::new(WitnessVersion::V8, &[7; 32]).unwrap();
        let tx = transaction(vec![
            ScriptBuf::new_witness_program(&hog_addr),
            federation.script_pubkey(&Custody::Deposit(account)),
        ]);
        assert!(is_hogex(&tx));
        let found = index.scan_transaction(&tx, 435);
        assert_eq!(found.len(), 1);
        assert!(found[0].mweb_peg_out);
        assert_eq!(found[0].spendable_height(), 441);
    }
}
