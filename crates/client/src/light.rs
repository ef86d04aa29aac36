//! A light client: check an account's state proof against a finalized header and the
//! validators' finalization certificate, trusting only the genesis document.
//!
//! The chain of trust: genesis names the validators of epoch 0 → each epoch's committee signed
//! the finalization of its last block, whose header names the next epoch's committee → the
//! block's epoch committee signed a finalization of a block digest → that digest is the SHA-256
//! of the header served → the header commits to a state root → the QMDB proof shows the
//! account's value under that root.

use commonware_codec::{Copying, Decode as _, DecodeExt as _};
use commonware_consensus::simplex::{scheme::ed25519::Scheme, types::Finalization};
use commonware_cryptography::{Sha256, sha256};
use commonware_storage::{
    mmr,
    qmdb::{
        any::{
            unordered::{Update, fixed::Operation},
            value::FixedEncoding,
        },
        current::unordered::proof::constant::KeyValueProof,
    },
};
use consort_state::{CHUNK_BYTES, STATE_VALUE_SIZE, StateValue, from_value};
use consort_types::{Account, AccountId, CONSENSUS_NAMESPACE, Genesis, Header, state_key};
use consort_validators::participants;

/// Most digests accepted in a decoded state proof (the proof of a database of 2^64 operations
/// needs far fewer).
const PROOF_DIGESTS_MAX: usize = 1024;

/// The state proof proper.
type StateProof = KeyValueProof<mmr::Family, sha256::Digest, CHUNK_BYTES>;

/// Whether `proof` shows `key` holding `value` in the state under `root`.
fn proves(
    proof: &StateProof,
    key: sha256::Digest,
    value: StateValue,
    root: &sha256::Digest,
) -> bool {
    let op = Operation::<mmr::Family, sha256::Digest, StateValue>::Update(Update::<
        sha256::Digest,
        FixedEncoding<StateValue>,
    >(key, value));
    proof.verify::<Sha256, _>(op, root)
}

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
    /// For every epoch before the block's: the header and finalization of its last block
    /// (empty while the chain is in epoch 0).
    pub boundaries: &'a [(Vec<u8>, Vec<u8>)],
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
    /// The signatures are not a quorum of the epoch's committee.
    #[error("the finalization signatures do not verify for the epoch's validators")]
    BadSignatures,
    /// The proof bytes do not decode.
    #[error("the state proof does not decode: {0}")]
    BadProof(String),
    /// The proof does not show the claimed account under the header's state root.
    #[error("the state proof does not show this balance and nonce under the block's state root")]
    ProofMismatch,
    /// The epoch boundaries do not lead from genesis to the block's epoch.
    #[error("epoch boundary evidence is wrong: {0}")]
    BadBoundary(String),
    /// A record's chunks are not the ones its first chunk names, or do not make a record.
    #[error("the record's chunks do not make the record: {0}")]
    BadRecord(&'static str),
    /// A transaction is not proven under the block's transaction root.
    #[error("the transaction is not in the block: {0}")]
    BadInclusion(&'static str),
}

/// One chunk of a record as a node served it: its state key, its value (`STATE_VALUE_SIZE` bytes), the encoded
/// QMDB key-value proof.
pub struct ChunkEvidence {
    /// The chunk's state key.
    pub key: sha256::Digest,
    /// Its value.
    pub value: Vec<u8>,
    /// Its proof.
    pub proof: Vec<u8>,
}

/// What was verified of a record: the block and the record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// The finalized header the record is proven under.
    pub header: Header,
    /// Its digest.
    pub block: sha256::Digest,
    /// Validators whose signatures the certificate carries.
    pub signers: usize,
    /// The record's bytes (decode them as the record's type).
    pub bytes: Vec<u8>,
}

/// Verify that the record under `key` is `chunks` (assembled) in the state of a finalized
/// block: the header's finalization as [`verify_header`] checks it, every chunk's proof
/// against the header's state root, and the chunk keys exactly those the first chunk names.
///
/// # Errors
/// Why it does not verify.
pub fn verify_record(
    genesis: &Genesis,
    header: &[u8],
    finalization: &[u8],
    boundaries: &[(Vec<u8>, Vec<u8>)],
    key: &sha256::Digest,
    chunks: &[ChunkEvidence],
) -> Result<VerifiedRecord, LightError> {
    let (header, finalization) = verify_header(genesis, header, finalization, boundaries)?;
    let values: Vec<StateValue> = chunks
        .iter()
        .map(|c| {
            <[u8; STATE_VALUE_SIZE]>::try_from(c.value.as_slice())
                .map(StateValue::new)
                .map_err(|_| LightError::BadRecord("a chunk is not a state value's size"))
        })
        .collect::<Result<_, _>>()?;
    let first = values.first().ok_or(LightError::BadRecord("no chunks"))?;
    let keys = consort_state::record_chunk_keys(key, first)
        .ok_or(LightError::BadRecord("impossible length"))?;
    if keys.len() != chunks.len() || keys.iter().zip(chunks).any(|(k, c)| *k != c.key) {
        return Err(LightError::BadRecord("the chunk keys are not the record's"));
    }
    for (chunk, value) in chunks.iter().zip(&values) {
        let proof = StateProof::decode_cfg(Copying(chunk.proof.as_slice()), &PROOF_DIGESTS_MAX)
            .map_err(|e| LightError::BadProof(e.to_string()))?;
        if !proves(&proof, chunk.key, value.clone(), &header.state_root) {
            return Err(LightError::ProofMismatch);
        }
    }
    let bytes = consort_state::assemble_record(&values)
        .ok_or(LightError::BadRecord("the chunks do not assemble"))?;
    Ok(VerifiedRecord {
        block: header.digest(),
        signers: finalization.certificate.signers.count(),
        header,
        bytes,
    })
}

/// Verify that `tx` (its signed encoding) with `outcome` is transaction `index` of the block
/// of `header` (already verified), by `proof` under its transaction root. Returns the
/// transaction and whether it applied.
///
/// # Errors
/// [`LightError::BadInclusion`].
pub fn verify_tx(
    header: &Header,
    index: u32,
    tx: &[u8],
    outcome: &[u8],
    proof: &[u8],
) -> Result<(consort_types::SignedTx, consort_types::Outcome), LightError> {
    let tx = consort_types::SignedTx::decode_untrusted(tx)
        .map_err(|_| LightError::BadInclusion("the transaction does not decode"))?;
    let outcome = consort_types::Outcome::decode(Copying(outcome))
        .map_err(|_| LightError::BadInclusion("the outcome does not decode"))?;
    let proof = commonware_storage::bmt::Proof::<sha256::Digest>::decode_cfg(Copying(proof), &1)
        .map_err(|_| LightError::BadInclusion("the proof does not decode"))?;
    if !consort_types::block::verify_tx_inclusion(&tx, &outcome, index, &proof, &header.tx_root) {
        return Err(LightError::BadInclusion(
            "the proof does not lead to the block's transaction root",
        ));
    }
    Ok((tx, outcome))
}

/// Check a finalization of `header` by `committee`, in epoch `epoch`.
fn check_finalized(
    header: &Header,
    finalization: &[u8],
    committee: commonware_utils::ordered::Set<commonware_cryptography::ed25519::PublicKey>,
    epoch: u64,
) -> Result<Finalization<Scheme, sha256::Digest>, LightError> {
    let finalization =
        Finalization::<Scheme, sha256::Digest>::decode_cfg(Copying(finalization), &committee.len())
            .map_err(|e| LightError::BadFinalization(e.to_string()))?;
    let digest = header.digest();
    if finalization.proposal.payload != digest {
        return Err(LightError::WrongBlock {
            certified: finalization.proposal.payload.to_string(),
            header: digest.to_string(),
        });
    }
    if finalization.proposal.round.epoch().get() != epoch {
        return Err(LightError::BadBoundary(format!(
            "block {} was finalized in epoch {}, expected {epoch}",
            header.height.get(),
            finalization.proposal.round.epoch().get()
        )));
    }
    let scheme = Scheme::verifier(CONSENSUS_NAMESPACE, committee);
    let mut rng = rand::rng();
    if !finalization.verify(&mut rng, &scheme, &commonware_parallel::Sequential) {
        return Err(LightError::BadSignatures);
    }
    Ok(finalization)
}

/// The committee of every epoch up to the one after the last boundary, from genesis.
fn follow_committees(
    genesis: &Genesis,
    boundaries: &[(Vec<u8>, Vec<u8>)],
) -> Result<commonware_utils::ordered::Set<commonware_cryptography::ed25519::PublicKey>, LightError>
{
    use commonware_consensus::types::{Epoch, Epocher as _};
    let epocher = consort_validators::epocher(genesis);
    let mut committee = consort_validators::genesis_participants(genesis);
    for (epoch, (header, finalization)) in boundaries.iter().enumerate() {
        let epoch = epoch as u64;
        let header = Header::decode(Copying(header.as_slice()))
            .map_err(|e| LightError::BadHeader(e.to_string()))?;
        let last = epocher.last(Epoch::new(epoch)).map(|h| h.get());
        if Some(header.height.get()) != last {
            return Err(LightError::BadBoundary(format!(
                "the header of epoch {epoch}'s boundary is at height {}",
                header.height.get()
            )));
        }
        check_finalized(&header, finalization, committee, epoch)?;
        let next = header.next_committee.ok_or_else(|| {
            LightError::BadBoundary(format!("epoch {epoch}'s last block names no committee"))
        })?;
        committee = participants(&next);
    }
    Ok(committee)
}

/// Verify that `header` is finalized on the chain of `genesis`: follow the committee from
/// genesis through `boundaries` (the last block of every earlier epoch, with its finalization)
/// and check `finalization` against the committee of the header's epoch.
pub fn verify_header(
    genesis: &Genesis,
    header: &[u8],
    finalization: &[u8],
    boundaries: &[(Vec<u8>, Vec<u8>)],
) -> Result<(Header, Finalization<Scheme, sha256::Digest>), LightError> {
    let header =
        Header::decode(Copying(header)).map_err(|e| LightError::BadHeader(e.to_string()))?;
    let epoch = consort_validators::epoch_of(genesis, header.height.get()).get();
    if boundaries.len() as u64 != epoch {
        return Err(LightError::BadBoundary(format!(
            "block {} is in epoch {epoch}, but {} boundaries were given",
            header.height.get(),
            boundaries.len()
        )));
    }
    let committee = follow_committees(genesis, boundaries)?;
    let finalization = check_finalized(&header, finalization, committee, epoch)?;
    Ok((header, finalization))
}

/// Verify `evidence` for a chain with `genesis`.
pub fn verify_account(
    genesis: &Genesis,
    evidence: &AccountEvidence<'_>,
) -> Result<Verified, LightError> {
    let (header, finalization) = verify_header(
        genesis,
        evidence.header,
        evidence.finalization,
        evidence.boundaries,
    )?;
    let digest = header.digest();
    let proof = StateProof::decode_cfg(Copying(evidence.proof), &PROOF_DIGESTS_MAX)
        .map_err(|e| LightError::BadProof(e.to_string()))?;
    let key = state_key::account(&evidence.id);
    let value: StateValue = consort_state::to_value(&evidence.account);
    if from_value::<Account>(&value) != Some(evidence.account)
        || !proves(&proof, key, value, &header.state_root)
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
