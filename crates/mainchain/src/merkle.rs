//! Merkle inclusion proofs as `gettxoutproof` returns them: an 80-byte header followed by a
//! partial merkle tree (the same format on Litecoin, MWEB blocks included, and Bitcoin).

use bitcoin::consensus::encode;
use bitcoin::merkle_tree::{MerkleBlock, MerkleBlockError};
use bitcoin::{BlockHash, Txid};

/// The largest proof accepted. A proof naming one transaction holds at most two hashes per
/// tree level (about 1.2 KB for the largest blocks); this leaves room for proofs that name
/// many transactions while bounding the decode of untrusted bytes.
pub const TX_OUT_PROOF_SIZE_MAX_BYTES: usize = 65_536;

/// Why a transaction-inclusion proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleProofError {
    /// The proof is larger than [`TX_OUT_PROOF_SIZE_MAX_BYTES`].
    #[error("proof of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes received.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a header followed by a partial merkle tree, or have bytes left over.
    #[error("proof does not decode: {reason}")]
    Decode {
        /// The decoder's message.
        reason: String,
    },
    /// The proof is for a different block than the verified one.
    #[error("proof is for block {found}, expected block {expected}")]
    BlockMismatch {
        /// The block the caller verified.
        expected: BlockHash,
        /// The block the proof's header hashes to.
        found: BlockHash,
    },
    /// The partial merkle tree does not hash to the header's merkle root.
    #[error("partial merkle tree does not hash to the header's merkle root")]
    RootMismatch,
    /// The partial merkle tree is malformed (too many hashes, bits left over, duplicate
    /// branches, …).
    #[error("partial merkle tree is malformed: {0}")]
    Malformed(MerkleBlockError),
    /// The proof is valid but does not prove the transaction asked about.
    #[error("proof does not include transaction {txid}")]
    TxidNotProven {
        /// The transaction asked about.
        txid: Txid,
    },
}

/// A transaction proven to be in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxInclusion {
    /// The block that includes the transaction.
    pub block_hash: BlockHash,
    /// The transaction.
    pub txid: Txid,
    /// Its position in the block; 0 is the coinbase.
    pub index: u32,
    /// How many transactions the block holds, as the proof claims and the root commits to.
    pub total_transactions: u32,
}

/// Verifies that `proof` shows `txid` in the block `block_hash`.
///
/// `block_hash` must come from a verified header chain: the hash commits to the header's
/// merkle root, and the partial merkle tree must hash to that root.
///
/// # Errors
/// A [`MerkleProofError`] naming the first check that failed.
pub fn verify_tx_out_proof(
    proof: &[u8],
    block_hash: BlockHash,
    txid: Txid,
) -> Result<TxInclusion, MerkleProofError> {
    let merkle_block = decode_tx_out_proof(proof)?;
    let found = merkle_block.header.block_hash();
    if found != block_hash {
        return Err(MerkleProofError::BlockMismatch {
            expected: block_hash,
            found,
        });
    }
    let mut matches = Vec::new();
    let mut indexes = Vec::new();
    merkle_block
        .extract_matches(&mut matches, &mut indexes)
        .map_err(|error| match error {
            MerkleBlockError::MerkleRootMismatch => MerkleProofError::RootMismatch,
            other => MerkleProofError::Malformed(other),
        })?;
    let position = matches
        .iter()
        .position(|matched| *matched == txid)
        .ok_or(MerkleProofError::TxidNotProven { txid })?;
    Ok(TxInclusion {
        block_hash,
        txid,
        index: indexes[position],
        total_transactions: merkle_block.txn.num_transactions(),
    })
}

/// Parses a proof, bounded by [`TX_OUT_PROOF_SIZE_MAX_BYTES`], refusing trailing bytes.
///
/// # Errors
/// [`MerkleProofError::TooLarge`] or [`MerkleProofError::Decode`].
pub fn decode_tx_out_proof(proof: &[u8]) -> Result<MerkleBlock, MerkleProofError> {
    if proof.len() > TX_OUT_PROOF_SIZE_MAX_BYTES {
        return Err(MerkleProofError::TooLarge {
            length: proof.len(),
            max: TX_OUT_PROOF_SIZE_MAX_BYTES,
        });
    }
    encode::deserialize(proof).map_err(|error| MerkleProofError::Decode {
        reason: error.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::str::FromStr;

    use bitcoin::Block;

    use super::*;

    /// Bitcoin mainnet block 170, the first with a payment (coinbase + one tx), as a full block
    /// from a public test suite; `check_merkle_root` below confirms it is intact.
    const BITCOIN_BLOCK_170: &str = "0100000055bd840a78798ad0da853f68974f3d183e2bd1db6a842c1feecf222a00000000ff104ccb05421ab93e63f8c3ce5c2c2e9dbb37de2764b3a3175c8166562cac7d51b96a49ffff001d283e9e700201000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff001d0102ffffffff0100f2052a01000000434104d46c4968bde02899d2aa0963367c7a6ce34eec332b32e42e5f3407e052d64ac625da6f0718e7b302140434bd725706957c092db53805b821a85b23a7ac61725bac000000000100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000";
    const BITCOIN_BLOCK_170_HASH: &str =
        "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee";
    const BITCOIN_TX_170_1: &str =
        "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16";

    /// Proofs recorded from `litecoind -regtest` 0.21.2.1 on the development machine:
    /// a wallet payment in block 102, and the HogEx (MWEB integration) transaction that ends
    /// block 432, the first MWEB block (coinbase, peg-in, HogEx).
    const LITECOIN_REGTEST_102_PROOF: &str = "000000205bfb929b3b423a49e3b0f8f5f584402e1609a39be1cc2d8ea19e9af44976861b337d5df701d0d4305eb96bf5a698ebc4865413ffae12810a74577d406ce0ee586ffc046bffff7f2000000000020000000285a1fad068e478204533b3dcb555daef092f9dcfb005b2feb6748bda63a5fc0cd0fc4b709969294053070349e67690d4ed8ec68afeb1b0102d90d1cea3cb96d70105";
    const LITECOIN_REGTEST_102_HASH: &str =
        "450f862e01e2d43fed5216dd13a9d37ee0477b45d5ce4e8129042abb4928e2b6";
    const LITECOIN_REGTEST_102_PAYMENT: &str =
        "d796cba3ced1902d10b0b1fe8ac68eedd49076e64903075340296999704bfcd0";
    const LITECOIN_REGTEST_432_HOGEX_PROOF: &str = "000000206045a73d8236bef5a348e2d330f3c7bb7a2da5ee50743cce4774a419d3be1304adbbc8efa626b39ffe5850880e161f551077ef07377f45459493db4b6babf2f4a6fc046bffff7f200000000003000000022f95ee7eafb1dc947d740a47f534e44a18b6702212289b67cc2009ba62007a5fd217f9922c0b216fa0adbb55f64a74c5b14c0432d2e0cd4f36ac2f76062dec9f010d";
    const LITECOIN_REGTEST_432_HASH: &str =
        "dab8a0ea1665ccd26965066c9ef1934aa3e5b4b05dcb9d062d98752390f4df23";
    const LITECOIN_REGTEST_432_HOGEX: &str =
        "9fec2d06762fac364fcde0d232044cb1c5744af655bbada06f210b2c92f917d2";

    fn verify_recorded(
        proof: &str,
        block: &str,
        txid: &str,
    ) -> Result<TxInclusion, MerkleProofError> {
        let proof = hex::decode(proof).unwrap();
        let block = BlockHash::from_str(block).unwrap();
        verify_tx_out_proof(&proof, block, Txid::from_str(txid).unwrap())
    }

    #[test]
    fn a_litecoin_regtest_payment_proof_verifies_at_index_1_of_2() {
        let inclusion = verify_recorded(
            LITECOIN_REGTEST_102_PROOF,
            LITECOIN_REGTEST_102_HASH,
            LITECOIN_REGTEST_102_PAYMENT,
        )
        .unwrap();
        assert_eq!((inclusion.index, inclusion.total_transactions), (1, 2));
    }

    #[test]
    fn a_proof_of_the_hogex_transaction_in_the_first_mweb_block_verifies() {
        let inclusion = verify_recorded(
            LITECOIN_REGTEST_432_HOGEX_PROOF,
            LITECOIN_REGTEST_432_HASH,
            LITECOIN_REGTEST_432_HOGEX,
        )
        .unwrap();
        // The HogEx transaction is always the last one.
        assert_eq!((inclusion.index, inclusion.total_transactions), (2, 3));
    }

    #[test]
    fn recorded_litecoin_proof_headers_meet_their_target_under_scrypt() {
        for proof in [LITECOIN_REGTEST_102_PROOF, LITECOIN_REGTEST_432_HOGEX_PROOF] {
            let merkle_block = decode_tx_out_proof(&hex::decode(proof).unwrap()).unwrap();
            let network = crate::Network::LITECOIN_REGTEST;
            assert!(crate::check_proof_of_work(&network, &merkle_block.header).is_ok());
        }
    }

    fn block_170() -> Block {
        let block: Block = encode::deserialize(&hex::decode(BITCOIN_BLOCK_170).unwrap()).unwrap();
        assert!(block.check_merkle_root());
        assert_eq!(
            block.block_hash(),
            BlockHash::from_str(BITCOIN_BLOCK_170_HASH).unwrap()
        );
        block
    }

    /// A one-match proof in Core's format, built with rust-bitcoin's `MerkleBlock` builder.
    fn proof_for(block: &Block, txid: Txid) -> Vec<u8> {
        let merkle_block =
            MerkleBlock::from_block_with_predicate(block, |candidate| *candidate == txid);
        encode::serialize(&merkle_block)
    }

    #[test]
    fn a_proof_of_the_first_bitcoin_payment_verifies_at_index_1_of_2() {
        let block = block_170();
        let payment = Txid::from_str(BITCOIN_TX_170_1).unwrap();
        let proof = proof_for(&block, payment);
        let inclusion = verify_tx_out_proof(&proof, block.block_hash(), payment).unwrap();
        assert_eq!(inclusion.index, 1);
        assert_eq!(inclusion.total_transactions, 2);
        assert_eq!(inclusion.txid, payment);
    }

    #[test]
    fn no_single_bit_flip_in_a_proof_proves_anything_false() {
        let block = block_170();
        let payment = Txid::from_str(BITCOIN_TX_170_1).unwrap();
        let proof = proof_for(&block, payment);
        let honest = verify_tx_out_proof(&proof, block.block_hash(), payment).unwrap();
        // The last byte holds the flag bits 1, 0, 1 (root, coinbase, payment) and padding.
        // Setting the coinbase's flag marks it matched too, which is true, and Core ignores
        // padding; every other flip, anywhere else, must be refused.
        let flags_start_bit = (proof.len() - 1) * 8;
        for bit in 0..proof.len() * 8 {
            let mut forged = proof.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            let result = verify_tx_out_proof(&forged, block.block_hash(), payment);
            if bit < flags_start_bit {
                assert!(result.is_err(), "bit {bit} flipped was accepted");
            } else {
                assert!(
                    result.is_err() || result == Ok(honest),
                    "bit {bit}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn a_forged_sibling_hash_fails_the_root_check() {
        let block = block_170();
        let payment = Txid::from_str(BITCOIN_TX_170_1).unwrap();
        let mut forged = proof_for(&block, payment);
        // Header (80) + nTx (4) + hash count (1): the first hash is the coinbase sibling.
        forged[85] ^= 0xff;
        let result = verify_tx_out_proof(&forged, block.block_hash(), payment);
        assert_eq!(result, Err(MerkleProofError::RootMismatch));
    }

    #[test]
    fn a_proof_for_another_block_or_another_txid_is_refused() {
        let block = block_170();
        let payment = Txid::from_str(BITCOIN_TX_170_1).unwrap();
        let proof = proof_for(&block, payment);
        let other_block = block.header.prev_blockhash;
        assert!(matches!(
            verify_tx_out_proof(&proof, other_block, payment),
            Err(MerkleProofError::BlockMismatch { .. })
        ));
        let coinbase = block.txdata[0].compute_txid();
        assert_eq!(
            verify_tx_out_proof(&proof, block.block_hash(), coinbase),
            Err(MerkleProofError::TxidNotProven { txid: coinbase })
        );
    }

    #[test]
    fn oversized_truncated_or_padded_proofs_do_not_decode() {
        let too_large = vec![0_u8; TX_OUT_PROOF_SIZE_MAX_BYTES + 1];
        assert!(matches!(
            decode_tx_out_proof(&too_large),
            Err(MerkleProofError::TooLarge { .. })
        ));
        let block = block_170();
        let proof = proof_for(&block, block.txdata[1].compute_txid());
        let truncated = decode_tx_out_proof(&proof[..proof.len() - 1]);
        assert!(matches!(truncated, Err(MerkleProofError::Decode { .. })));
        let mut padded = proof.clone();
        padded.push(0);
        assert!(matches!(
            decode_tx_out_proof(&padded),
            Err(MerkleProofError::Decode { .. })
        ));
    }
}
