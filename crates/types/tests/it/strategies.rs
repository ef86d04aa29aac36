//! Proptest strategies for valid values of every wire type.

use crate::codec::decode;
use commonware_consensus::types::{Epoch, Height, Round, View};
use commonware_cryptography::{Signer as _, ed25519};
use commonware_storage::mmr::Location;
use commonware_utils::range::NonEmptyRange;
use consort_types::{
    AccountId, Amount, Asset, Block, BlockContext, Call, Header, SignedTx, Tx,
    block::tx_root,
    codec_util::{Blob, List},
    gov::{Action, FreezeTarget, OrgId, OrgKind},
    sealed::{RECIPIENTS_MAX, Sealed, SealedCopy},
    validators::{ValidatorEntry, ValidatorSet},
};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Any 32 bytes: binary decoding does not ask an account id to be a valid key.
pub fn account() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(|bytes| decode(&bytes).expect("32 bytes are an account id"))
}

/// The account of a real ed25519 key, as text forms (JSON, API paths) require.
pub fn key_account() -> BoxedStrategy<AccountId> {
    public_key().prop_map(AccountId::new).boxed()
}

/// A real ed25519 key from one of a few seeds (key derivation is slow enough to keep few).
pub fn public_key() -> impl Strategy<Value = ed25519::PublicKey> {
    (0..16u64).prop_map(|seed| ed25519::PrivateKey::from_seed(seed).public_key())
}

/// Any amount.
pub fn amount() -> impl Strategy<Value = Amount> {
    any::<u64>().prop_map(Amount::new)
}

/// A valid asset code.
pub fn asset() -> impl Strategy<Value = Asset> {
    "[A-Z0-9]{1,8}".prop_map(|code| code.parse().expect("valid code"))
}

/// A valid organisation id.
pub fn org() -> impl Strategy<Value = OrgId> {
    "[a-z0-9-]{1,16}".prop_map(|id| id.parse().expect("valid id"))
}

/// Bytes of at most `MAX` (and at most `cap`, to keep cases small).
pub fn blob<const MAX: usize>(cap: usize) -> impl Strategy<Value = Blob<MAX>> {
    prop::collection::vec(any::<u8>(), 0..=MAX.min(cap))
        .prop_map(|bytes| Blob::new(bytes).expect("within MAX"))
}

/// A list of at most `MAX` (and at most `cap`) items.
pub fn list<T: std::fmt::Debug, const MAX: usize>(
    item: impl Strategy<Value = T>,
    cap: usize,
) -> impl Strategy<Value = List<T, MAX>> {
    prop::collection::vec(item, 0..=MAX.min(cap)).prop_map(List)
}

/// A socket address as the codec carries it (IPv6 flow info and scope are not on the wire).
pub fn socket_address() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            0,
            0
        ))),
    ]
}

/// Any organisation kind.
pub fn org_kind() -> impl Strategy<Value = OrgKind> {
    (0..5u8).prop_map(|tag| OrgKind::from_tag(tag).expect("known tag"))
}

/// Any governance action.
pub fn action() -> impl Strategy<Value = Action> {
    action_with(account().boxed())
}

/// Any governance action, its accounts drawn from `account`.
pub fn action_with(account: BoxedStrategy<AccountId>) -> impl Strategy<Value = Action> {
    prop_oneof![
        (org(), org_kind(), account.clone()).prop_map(|(org, kind, admin)| Action::AdmitOrg {
            org,
            kind,
            admin
        }),
        org().prop_map(|org| Action::RemoveOrg { org }),
        (account.clone(), socket_address())
            .prop_map(|(key, address)| Action::AddValidator { key, address }),
        account
            .clone()
            .prop_map(|key| Action::RemoveValidator { key }),
        Just(Action::Halt),
        Just(Action::Resume),
    ]
}

/// Any freeze target.
pub fn freeze_target() -> impl Strategy<Value = FreezeTarget> {
    freeze_target_with(account().boxed())
}

/// Any freeze target, its account drawn from `account`.
pub fn freeze_target_with(
    account: BoxedStrategy<AccountId>,
) -> impl Strategy<Value = FreezeTarget> {
    prop_oneof![
        account.prop_map(FreezeTarget::Account),
        asset().prop_map(FreezeTarget::Asset),
        org().prop_map(FreezeTarget::Org),
    ]
}

/// A sealed envelope of up to a few copies (its shape only; no real encryption).
pub fn sealed() -> impl Strategy<Value = Sealed> {
    sealed_with(account().boxed())
}

/// A sealed envelope, its recipients drawn from `account`.
pub fn sealed_with(account: BoxedStrategy<AccountId>) -> impl Strategy<Value = Sealed> {
    let copy =
        (account, any::<[u8; 32]>(), blob(96)).prop_map(|(recipient, encapped, ciphertext)| {
            SealedCopy {
                recipient,
                encapped,
                ciphertext,
            }
        });
    list::<_, RECIPIENTS_MAX>(copy, 3).prop_map(|copies| Sealed { copies })
}

/// Every call variant, with small collections.
pub fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (account(), amount()).prop_map(|(to, amount)| Call::Transfer { to, amount }),
        (asset(), account(), amount()).prop_map(|(asset, to, amount)| Call::TransferAsset {
            asset,
            to,
            amount
        }),
        list(any::<[u8; 80]>(), 3).prop_map(|headers| Call::RelayHeaders { headers }),
        (account(), blob(300), blob(200), any::<u32>()).prop_map(
            |(account, transaction, proof, vout)| Call::ClaimDeposit {
                transaction,
                proof,
                outputs: List(vec![consort_types::peg::DepositOutput { account, vout }]),
            }
        ),
        (amount(), blob(64)).prop_map(|(amount, script)| Call::PegOut { amount, script }),
        (any::<u64>(), list(blob(73), 4))
            .prop_map(|(batch, signatures)| Call::SignBatch { batch, signatures }),
        (any::<u64>(), blob(200)).prop_map(|(batch, proof)| Call::ConfirmBatch { batch, proof }),
        action().prop_map(|action| Call::Propose { action }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(proposal, approve)| Call::Vote { proposal, approve }),
        (account(), any::<u16>()).prop_map(|(account, roles)| Call::Register { account, roles }),
        account().prop_map(|account| Call::Revoke { account }),
        Just(Call::SelfRegister),
        freeze_target().prop_map(|target| Call::Freeze { target }),
        freeze_target().prop_map(|target| Call::Unfreeze { target }),
        (asset(), account(), amount()).prop_map(|(asset, to, amount)| Call::Issue {
            asset,
            to,
            amount
        }),
        (asset(), amount()).prop_map(|(asset, amount)| Call::Redeem { asset, amount }),
        (asset(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(asset, reserves, statement)| {
            Call::ReserveReport {
                asset,
                reserves,
                statement,
            }
        }),
        Just(Call::LeaveValidator),
        (account(), account()).prop_map(|(account, new)| Call::Rotate { account, new }),
        any::<[u8; 32]>().prop_map(|key| Call::SetSealKey { key }),
        (account(), blob(32), sealed()).prop_map(|(about, label, envelope)| Call::PutPrivate {
            about,
            label,
            envelope
        }),
    ]
}

/// Any unsigned transaction.
pub fn tx() -> impl Strategy<Value = Tx> {
    (any::<u64>(), account(), any::<u64>(), call()).prop_map(|(chain_id, sender, nonce, call)| Tx {
        chain_id,
        sender,
        nonce,
        call,
    })
}

/// Any 64 bytes as a signature: decoding never checks it.
pub fn signature() -> impl Strategy<Value = ed25519::Signature> {
    any::<[u8; 64]>().prop_map(|bytes| decode(&bytes).expect("64 bytes are a signature"))
}

/// A transaction with an arbitrary (unchecked) signature.
pub fn signed_tx() -> impl Strategy<Value = SignedTx> {
    (tx(), signature()).prop_map(|(tx, signature)| SignedTx::new(tx, signature))
}

/// A transaction really signed by its sender.
pub fn properly_signed_tx() -> impl Strategy<Value = SignedTx> {
    (0..16u64, tx()).prop_map(|(seed, mut tx)| {
        let key = ed25519::PrivateKey::from_seed(seed);
        tx.sender = AccountId::new(key.public_key());
        tx.sign(&key)
    })
}

fn digest() -> impl Strategy<Value = consort_types::Digest> {
    any::<[u8; 32]>().prop_map(Into::into)
}

/// A validator set of a few members.
pub fn validator_set() -> impl Strategy<Value = ValidatorSet> {
    let entry =
        (account(), socket_address()).prop_map(|(key, address)| ValidatorEntry { key, address });
    list(entry, 4).prop_map(|members| ValidatorSet { members })
}

/// A block of up to a few transactions, its header consistent with them.
pub fn block() -> impl Strategy<Value = Block> {
    let context = (
        any::<u64>(),
        any::<u64>(),
        public_key(),
        any::<u64>(),
        digest(),
    )
        .prop_map(|(epoch, view, leader, parent_view, parent)| BlockContext {
            round: Round::new(Epoch::new(epoch), View::new(view)),
            leader,
            parent: (View::new(parent_view), parent),
        });
    let roots = (digest(), digest(), digest());
    let ops_range = (0..1u64 << 40, 1..1u64 << 20).prop_map(|(start, length)| {
        NonEmptyRange::new(Location::new(start)..Location::new(start + length)).expect("non-empty")
    });
    (
        context,
        (any::<u64>(), any::<u64>()),
        roots,
        ops_range,
        prop::option::of(validator_set()),
        prop::collection::vec(signed_tx(), 0..4),
    )
        .prop_map(
            |(
                context,
                (height, timestamp_ms),
                (parent, state_root, ops_root),
                ops_range,
                next_committee,
                txs,
            )| {
                // Applied and failed outcomes alternate, so both encodings are exercised.
                let outcomes: Vec<consort_types::Outcome> = (0..txs.len())
                    .map(|i| match i % 2 {
                        0 => consort_types::Outcome::Applied,
                        _ => consort_types::Outcome::failed(&consort_types::TxError::Duplicate),
                    })
                    .collect();
                let header = Header {
                    context,
                    parent,
                    height: Height::new(height),
                    timestamp_ms,
                    tx_count: u32::try_from(txs.len()).expect("few"),
                    tx_root: tx_root(&txs, &outcomes),
                    state_root,
                    ops_root,
                    ops_range,
                    next_committee,
                };
                Block::new(header, txs, outcomes)
            },
        )
}

/// A value's canonical encoding, as bytes to mutate.
pub fn encoded<T: commonware_codec::Encode>(value: &T) -> Vec<u8> {
    value.encode().to_vec()
}
