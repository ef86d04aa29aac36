//! Blocks: a header that commits to the transactions and to the state after executing them.

use crate::{BlockContext, Digest, SignedTx, limits::BLOCK_TXS_MAX, receipt::Outcome, sha256};
use bytes::BufMut;
use commonware_codec::{
    Buf, Encode, EncodeSize, Error as CodecError, FixedSize, RangeCfg, Read, ReadExt, Write,
};
use commonware_consensus::{
    Block as ConsensusBlock, BoundedBlock, CertifiableBlock, Heightable, types::Height,
};
use commonware_cryptography::{Digestible, Hasher, Sha256};
use commonware_storage::{bmt, mmr::Location};
use commonware_utils::range::NonEmptyRange;

/// Everything a light client needs: linkage, time, and the roots of transactions and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Consensus round, leader (the proposer) and parent view that produced this block.
    pub context: BlockContext,
    /// Digest of the parent block.
    pub parent: Digest,
    /// Height (genesis is 0).
    pub height: Height,
    /// Proposer's clock when building, in ms since the Unix epoch; never less than the parent's.
    pub timestamp_ms: u64,
    /// Number of transactions.
    pub tx_count: u32,
    /// Binary Merkle root over each transaction's hash and outcome (see [`tx_root`]).
    pub tx_root: Digest,
    /// Canonical root of the authenticated state after executing this block (proofs verify
    /// against it).
    pub state_root: Digest,
    /// Root of the state's operation log after this block (state sync target).
    pub ops_root: Digest,
    /// Operation range of the state after this block (state sync target).
    pub ops_range: NonEmptyRange<Location>,
    /// In the last block of an epoch: the committee of the next epoch, so that a light client
    /// follows validator-set changes from genesis through finalized boundary headers alone.
    pub next_committee: Option<crate::validators::ValidatorSet>,
}

impl Header {
    /// The block digest: SHA-256 of the header encoding.
    pub fn digest(&self) -> Digest {
        Sha256::hash(&[self.encode().as_ref()])
    }
}

impl Write for Header {
    fn write(&self, buf: &mut impl BufMut) {
        self.context.write(buf);
        self.parent.write(buf);
        self.height.write(buf);
        self.timestamp_ms.write(buf);
        self.tx_count.write(buf);
        self.tx_root.write(buf);
        self.state_root.write(buf);
        self.ops_root.write(buf);
        self.ops_range.write(buf);
        self.next_committee.write(buf);
    }
}

impl EncodeSize for Header {
    fn encode_size(&self) -> usize {
        self.context.encode_size()
            + Digest::SIZE
            + self.height.encode_size()
            + 8
            + 4
            + Digest::SIZE * 3
            + self.ops_range.encode_size()
            + self.next_committee.encode_size()
    }
}

impl Read for Header {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            context: BlockContext::read(buf)?,
            parent: Digest::read(buf)?,
            height: Height::read(buf)?,
            timestamp_ms: u64::read(buf)?,
            tx_count: u32::read(buf)?,
            tx_root: Digest::read(buf)?,
            state_root: Digest::read(buf)?,
            ops_root: Digest::read(buf)?,
            ops_range: NonEmptyRange::read(buf)?,
            next_committee: Option::read(buf)?,
        })
    }
}

/// The Merkle leaf of an included transaction: its hash and its outcome, so that one
/// inclusion proof shows both that a transaction is final and whether it applied.
pub fn tx_leaf(tx: &SignedTx, outcome: &Outcome) -> Digest {
    sha256(&[b"consort/tx-leaf", tx.hash().as_ref(), &outcome.encode()])
}

/// Binary Merkle root over [`tx_leaf`]s (the empty list has a fixed root). `txs` and
/// `outcomes` pair up by position.
pub fn tx_root(txs: &[SignedTx], outcomes: &[Outcome]) -> Digest {
    assert_eq!(txs.len(), outcomes.len(), "one outcome per transaction");
    if txs.is_empty() {
        return sha256(&[b"consort/empty-tx-root"]);
    }
    let mut builder = bmt::Builder::<Sha256>::new(txs.len());
    for (tx, outcome) in txs.iter().zip(outcomes) {
        builder.add(&tx_leaf(tx, outcome));
    }
    builder.build().root()
}

/// The proof that transaction `index` of `txs` (with its outcome) is under their
/// [`tx_root`]; `None` if there is no such transaction.
pub fn tx_proof(txs: &[SignedTx], outcomes: &[Outcome], index: u32) -> Option<bmt::Proof<Digest>> {
    if txs.len() != outcomes.len() || index as usize >= txs.len() {
        return None;
    }
    let mut builder = bmt::Builder::<Sha256>::new(txs.len());
    for (tx, outcome) in txs.iter().zip(outcomes) {
        builder.add(&tx_leaf(tx, outcome));
    }
    builder.build().proof(index).ok()
}

/// Whether `proof` shows `tx` with `outcome` at position `index` under `tx_root`.
pub fn verify_tx_inclusion(
    tx: &SignedTx,
    outcome: &Outcome,
    index: u32,
    proof: &bmt::Proof<Digest>,
    tx_root: &Digest,
) -> bool {
    proof
        .verify_element_inclusion::<Sha256>(&tx_leaf(tx, outcome), index, tx_root)
        .is_ok()
}

/// A header and the transactions it commits to, each with its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Transactions in execution order, shared: clones of a block (marshal's caches, the
    /// observers) copy no transaction.
    pub txs: std::sync::Arc<Vec<SignedTx>>,
    /// What executing each transaction did, by position (failed ones used only their nonce).
    pub outcomes: std::sync::Arc<Vec<Outcome>>,
    digest: Digest,
}

impl Block {
    /// Assemble a block; the header's `tx_count` and `tx_root` must match `txs` and
    /// `outcomes`.
    pub fn new(
        header: Header,
        txs: impl Into<std::sync::Arc<Vec<SignedTx>>>,
        outcomes: Vec<Outcome>,
    ) -> Self {
        let txs = txs.into();
        assert_eq!(header.tx_count as usize, txs.len(), "tx_count matches txs");
        assert_eq!(txs.len(), outcomes.len(), "one outcome per transaction");
        let digest = header.digest();
        Self {
            header,
            txs,
            outcomes: std::sync::Arc::new(outcomes),
            digest,
        }
    }

    /// The block's height.
    pub fn number(&self) -> u64 {
        self.header.height.get()
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.header.write(buf);
        self.txs.write(buf);
        for outcome in self.outcomes.iter() {
            outcome.write(buf);
        }
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.header.encode_size()
            + self.txs.encode_size()
            + self
                .outcomes
                .iter()
                .map(EncodeSize::encode_size)
                .sum::<usize>()
    }
}

impl Read for Block {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let header = Header::read(buf)?;
        let cfg = (RangeCfg::new(0..=BLOCK_TXS_MAX), ());
        let txs = Vec::<SignedTx>::read_cfg(buf, &cfg)?;
        if txs.len() != header.tx_count as usize {
            return Err(CodecError::Invalid("Block", "tx_count does not match"));
        }
        let outcomes = (0..txs.len())
            .map(|_| Outcome::read(buf))
            .collect::<Result<Vec<_>, _>>()?;
        if tx_root(&txs, &outcomes) != header.tx_root {
            return Err(CodecError::Invalid("Block", "tx_root does not match"));
        }
        let digest = header.digest();
        Ok(Self {
            header,
            txs: std::sync::Arc::new(txs),
            outcomes: std::sync::Arc::new(outcomes),
            digest,
        })
    }
}

impl Digestible for Block {
    type Digest = Digest;
    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        self.header.height
    }
}

impl ConsensusBlock for Block {
    fn parent(&self) -> Digest {
        self.header.parent
    }
}

impl CertifiableBlock for Block {
    type Context = BlockContext;
    fn context(&self) -> BlockContext {
        self.header.context.clone()
    }
}

impl BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        crate::limits::BLOCK_SIZE_MAX
    }
}
