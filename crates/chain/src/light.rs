//! A light client: check an account's state proof against a finalized header and the
//! validators' finalization certificate, trusting only the genesis document.
//!
//! The chain of trust: genesis names the validators → a quorum of them signed a finalization
//! of a block digest → that digest is the SHA-256 of the header served → the header commits to a
//! state root → the QMDB proof shows the account's value under that root.

use crate::{
    state::{CHUNK_BYTES, StateValue, from_value},
    validator::participants,
};
use commonware_codec::{Copying, Decode as _, DecodeExt as _};
use commonware_consensus::simplex::{scheme::ed25519::Scheme, types::Finalization};
use commonware_cryptography::{Sha256, sha256};
use commonware_storage::{
    mmr,
    qmdb::{any::value::FixedEncoding, current::ordered::proof::KeyValueProof},
};
use consort_types::{Account, AccountId, CONSENSUS_NAMESPACE, Genesis, Header, state_key};

/// Most digests accepted in a decoded state proof (the proof of a database of 2^64 operations
/// needs far fewer).
const PROOF_DIGESTS_MAX: usize = 1024;

/// The state proof proper.
type StateProof = KeyValueProof<mmr::Family, sha256::Digest, sha256::Digest, [u8; CHUNK_BYTES]>;

/// What a node served for one account (all binary fields as bytes).
pub struct AccountEvidence<'a> {
    /// The account.
    pub id: AccountId,
    /// The balance and nonce the node claims.
    pub account: Account,
    /// The header encoding of the block whose state root the proof is against.
    pub header: &'a [u8],
    /// The encoded finalization certificate of that block.
    pub finalization: &'a [u8],
    /// The encoded QMDB key-value proof.
    pub proof: &'a [u8],
}

/// What was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Height of the finalized block.
    pub height: u64,
    /// Its digest.
    pub block: sha256::Digest,
    /// The state root the account was proven under.
    pub state_root: sha256::Digest,
    /// Validators whose signatures the certificate carries.
    pub signers: usize,
    /// The proven account.
    pub account: Account,
}

/// Why evidence does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightError {
    /// The header bytes do not decode.
    #[error("the header does not decode: {0}")]
    BadHeader(String),
    /// The certificate bytes do not decode.
    #[error("the finalization certificate does not decode: {0}")]
    BadFinalization(String),
    /// The certificate finalizes another block.
    #[error("the finalization certifies block {certified}, not the served header {header}")]
    WrongBlock {
        /// Digest in the certificate.
        certified: String,
        /// Digest of the served header.
        header: String,
    },
    /// The signatures are not a quorum of the genesis validators.
    #[error("the finalization signatures do not verify for the genesis validators")]
    BadSignatures,
    /// The proof bytes do not decode.
    #[error("the state proof does not decode: {0}")]
    BadProof(String),
    /// The proof does not show the claimed account under the header's state root.
    #[error("the state proof does not show this balance and nonce under the block's state root")]
    ProofMismatch,
}

/// Verify `evidence` for a chain with `genesis`.
pub fn verify_account(
    genesis: &Genesis,
    evidence: &AccountEvidence<'_>,
) -> Result<Verified, LightError> {
    let header = Header::decode(Copying(evidence.header))
        .map_err(|e| LightError::BadHeader(e.to_string()))?;
    let validators = participants(genesis);
    let finalization = Finalization::<Scheme, sha256::Digest>::decode_cfg(
        Copying(evidence.finalization),
        &validators.len(),
    )
    .map_err(|e| LightError::BadFinalization(e.to_string()))?;
    let digest = header.digest();
    if finalization.proposal.payload != digest {
        return Err(LightError::WrongBlock {
            certified: finalization.proposal.payload.to_string(),
            header: digest.to_string(),
        });
    }
    let scheme = Scheme::verifier(CONSENSUS_NAMESPACE, validators);
    let mut rng = rand::rng();
    if !finalization.verify(&mut rng, &scheme, &commonware_parallel::Sequential) {
        return Err(LightError::BadSignatures);
    }
    let proof = StateProof::decode_cfg(Copying(evidence.proof), &(PROOF_DIGESTS_MAX, ()))
        .map_err(|e| LightError::BadProof(e.to_string()))?;
    let key = state_key::account(&evidence.id);
    let value: StateValue = crate::state::to_value(&evidence.account);
    if from_value::<Account>(&value) != Some(evidence.account)
        || !proof.verify::<Sha256, FixedEncoding<StateValue>>(key, value, &header.state_root)
    {
        return Err(LightError::ProofMismatch);
    }
    Ok(Verified {
        height: header.height.get(),
        block: digest,
        state_root: header.state_root,
        signers: finalization.certificate.signers.count(),
        account: evidence.account,
    })
}
