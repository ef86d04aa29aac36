//! Transactions: `{chain_id, sender, nonce, call}` signed by the sender's key.

use crate::{
    AccountId, Amount, Asset, Digest, TX_NAMESPACE, TxError,
    codec_util::{Blob, List},
    gov::{Action, FreezeTarget},
    limits::TX_SIZE_MAX,
    peg::{
        BATCH_INPUTS_MAX, CLAIM_OUTPUTS_MAX, CLAIM_TX_SIZE_MAX, DepositOutput, FEDERATION_KEY_SIZE,
        KEY_PROOF_SIZE, PAYOUT_SCRIPT_SIZE_MAX, PEG_SIGNATURE_SIZE_MAX, RELAY_HEADERS_MAX,
        TX_PROOF_SIZE_MAX,
    },
    sha256,
};
use bytes::BufMut;
use commonware_codec::{
    Buf, DecodeExt, Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write,
};
use commonware_cryptography::{Signer, Verifier, ed25519};
use serde::Serialize;

/// The hash of a signed transaction's canonical encoding.
pub type TxHash = Digest;

/// What a transaction asks the chain to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Call {
    /// Move `amount` of the native asset from the sender to `to`.
    Transfer {
        /// The recipient.
        to: AccountId,
        /// Base units moved.
        amount: Amount,
    },
    /// Move `amount` of another asset (the pegged coin, e-money) from the sender to `to`.
    TransferAsset {
        /// Which asset.
        asset: Asset,
        /// The recipient.
        to: AccountId,
        /// Base units moved.
        amount: Amount,
    },
    /// Extend the on-chain light client with main-chain headers (validators only).
    RelayHeaders {
        /// 80-byte headers, each the child of the one before; the first's parent must be known.
        #[serde(serialize_with = "headers_as_hex")]
        headers: List<[u8; 80], RELAY_HEADERS_MAX>,
    },
    /// Claim deposits: outputs of one main-chain transaction paying accounts' federation
    /// deposit addresses (anyone may submit). All or nothing.
    ClaimDeposit {
        /// The main-chain transaction, without MWEB data.
        transaction: Blob<CLAIM_TX_SIZE_MAX>,
        /// Its merkle proof (`gettxoutproof`).
        proof: Blob<TX_PROOF_SIZE_MAX>,
        /// The outputs claimed, each with the account its deposit script commits to; at
        /// least one, each output once.
        outputs: List<DepositOutput, CLAIM_OUTPUTS_MAX>,
    },
    /// Burn pegged coins and ask for them on the main chain.
    PegOut {
        /// Satoshis burned; the recipient gets this minus the quoted fee.
        amount: Amount,
        /// The main-chain output script to pay.
        script: Blob<PAYOUT_SCRIPT_SIZE_MAX>,
    },
    /// A validator's signatures over a peg-out batch, one per input.
    SignBatch {
        /// The batch.
        batch: u64,
        /// DER signatures with sighash byte, in input order.
        signatures: List<Blob<PEG_SIGNATURE_SIZE_MAX>, BATCH_INPUTS_MAX>,
    },
    /// Record a peg-out batch's confirmation on the main chain (anyone may submit).
    ConfirmBatch {
        /// The batch.
        batch: u64,
        /// Merkle proof of its transaction.
        proof: Blob<TX_PROOF_SIZE_MAX>,
    },
    /// Register the sender's federation key: the secp256k1 key it signs peg batches with
    /// once it is a validator (a validator-to-be registers it before `add_validator` is
    /// proposed). It cannot change while the sender is a validator.
    RegisterFederationKey {
        /// The compressed public key.
        key: Blob<FEDERATION_KEY_SIZE>,
        /// A compact ECDSA signature by the key of the chain id and the sender's account
        /// (`consort-mainchain`'s `key_possession_message`).
        proof: Blob<KEY_PROOF_SIZE>,
    },
    /// Give pegged coins to the peg's fee pool (they leave the supply): what pays main-chain
    /// fees beyond what deposits and quotes prepaid, e.g. sweeping coins to a new federation.
    FundPegFees {
        /// Satoshis given.
        amount: Amount,
    },
    /// Propose a governance decision (an organisation admin).
    Propose {
        /// What to decide.
        action: Action,
    },
    /// Vote on an open proposal for the sender's organisation (an organisation admin).
    Vote {
        /// The proposal.
        proposal: u64,
        /// In favour or against.
        approve: bool,
    },
    /// Register an account with the sender's organisation (an organisation admin).
    Register {
        /// The account.
        account: AccountId,
        /// Its role bits (within what the organisation's kind may grant).
        roles: u16,
    },
    /// Revoke an account of the sender's organisation (an organisation admin).
    Revoke {
        /// The account.
        account: AccountId,
    },
    /// Register the sender as a customer of the registrar organisation.
    SelfRegister,
    /// Freeze an account, asset or organisation (the regulator).
    Freeze {
        /// What.
        target: FreezeTarget,
    },
    /// Lift a freeze (the regulator).
    Unfreeze {
        /// What.
        target: FreezeTarget,
    },
    /// Issue e-money 1:1 against a fiat deposit (a bank; the first issue binds the code).
    Issue {
        /// The bank's asset code.
        asset: Asset,
        /// Who receives it.
        to: AccountId,
        /// Base units.
        amount: Amount,
    },
    /// Redeem (burn) e-money for a fiat withdrawal from the issuing bank (any holder).
    Redeem {
        /// The asset.
        asset: Asset,
        /// Base units.
        amount: Amount,
    },
    /// Publish a reserve report (the issuing bank).
    ReserveReport {
        /// The asset.
        asset: Asset,
        /// Reserves held, in base units.
        reserves: u64,
        /// Digest of the attestation document.
        statement: [u8; 32],
    },
    /// The sender, a validator, leaves the validator set at the next epoch boundary.
    LeaveValidator,
    /// Move an account's registration and every balance to a new key (the account itself, or
    /// an admin of its organisation when the old key is lost); the old key stops working.
    Rotate {
        /// The account whose key changes.
        account: AccountId,
        /// Its new key.
        new: AccountId,
    },
    /// The sender objects to a pending rotation of its key by an admin of its organisation
    /// (the key is not lost after all): the rotation is dropped.
    CancelRotation,
    /// Publish the sender's public sealing key (X25519, derived from its signing key).
    SetSealKey {
        /// The key.
        #[serde(with = "crate::hex_serde::bytes32")]
        key: [u8; 32],
    },
    /// A call of the shop: catalogue, orders, payment, fulfilment, settlement, reviews.
    Commerce(crate::commerce::CommerceCall),
    /// Put a private record on chain, sealed to its recipients (the author, the party it
    /// concerns and a regulator among them).
    PutPrivate {
        /// The other party it concerns.
        about: AccountId,
        /// What it is (`shipping-address`, `phone`, `note`…).
        label: Blob<{ crate::sealed::LABEL_MAX }>,
        /// The sealed payload.
        envelope: crate::sealed::Sealed,
    },
}

fn headers_as_hex<S: serde::Serializer>(
    headers: &List<[u8; 80], RELAY_HEADERS_MAX>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(headers.0.iter().map(hex::encode))
}

impl Call {
    const TRANSFER: u8 = 0;
    const TRANSFER_ASSET: u8 = 1;
    const RELAY_HEADERS: u8 = 2;
    const CLAIM_DEPOSIT: u8 = 3;
    const PEG_OUT: u8 = 4;
    const SIGN_BATCH: u8 = 5;
    const CONFIRM_BATCH: u8 = 6;
    const PROPOSE: u8 = 7;
    const VOTE: u8 = 8;
    const REGISTER: u8 = 9;
    const REVOKE: u8 = 10;
    const SELF_REGISTER: u8 = 11;
    const FREEZE: u8 = 12;
    const UNFREEZE: u8 = 13;
    const ISSUE: u8 = 14;
    const REDEEM: u8 = 15;
    const RESERVE_REPORT: u8 = 16;
    const LEAVE_VALIDATOR: u8 = 17;
    const ROTATE: u8 = 18;
    const SET_SEAL_KEY: u8 = 19;
    const PUT_PRIVATE: u8 = 20;
    const CANCEL_ROTATION: u8 = 21;
    const REGISTER_FEDERATION_KEY: u8 = 22;
    const FUND_PEG_FEES: u8 = 23;
    const COMMERCE: u8 = 24;

    /// The module the call belongs to. Written out for every call: a new call does not compile
    /// until it has a home, and everything that groups calls by module (routing, events) asks
    /// here.
    pub const fn module(&self) -> Module {
        match self {
            Self::Transfer { .. } | Self::TransferAsset { .. } => Module::Assets,
            Self::RelayHeaders { .. }
            | Self::ClaimDeposit { .. }
            | Self::PegOut { .. }
            | Self::SignBatch { .. }
            | Self::ConfirmBatch { .. }
            | Self::RegisterFederationKey { .. }
            | Self::FundPegFees { .. } => Module::Peg,
            Self::Propose { .. }
            | Self::Vote { .. }
            | Self::Register { .. }
            | Self::Revoke { .. }
            | Self::SelfRegister
            | Self::Rotate { .. }
            | Self::CancelRotation => Module::Governance,
            Self::Freeze { .. } | Self::Unfreeze { .. } => Module::Supervision,
            Self::Issue { .. } | Self::Redeem { .. } | Self::ReserveReport { .. } => Module::Bank,
            Self::LeaveValidator => Module::Validators,
            Self::SetSealKey { .. } | Self::PutPrivate { .. } => Module::Private,
            Self::Commerce(_) => Module::Commerce,
        }
    }

    /// The call's kind, as named in errors and permissions.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Transfer { .. } => "transfer",
            Self::TransferAsset { .. } => "transfer_asset",
            Self::RelayHeaders { .. } => "relay_headers",
            Self::ClaimDeposit { .. } => "claim_deposit",
            Self::PegOut { .. } => "peg_out",
            Self::SignBatch { .. } => "sign_batch",
            Self::ConfirmBatch { .. } => "confirm_batch",
            Self::RegisterFederationKey { .. } => "register_federation_key",
            Self::FundPegFees { .. } => "fund_peg_fees",
            Self::Propose { .. } => "propose",
            Self::Vote { .. } => "vote",
            Self::Register { .. } => "register",
            Self::Revoke { .. } => "revoke",
            Self::SelfRegister => "self_register",
            Self::Freeze { .. } => "freeze",
            Self::Unfreeze { .. } => "unfreeze",
            Self::Issue { .. } => "issue",
            Self::Redeem { .. } => "redeem",
            Self::ReserveReport { .. } => "reserve_report",
            Self::LeaveValidator => "leave_validator",
            Self::Rotate { .. } => "rotate",
            Self::CancelRotation => "cancel_rotation",
            Self::SetSealKey { .. } => "set_seal_key",
            Self::PutPrivate { .. } => "put_private",
            Self::Commerce(call) => call.kind(),
        }
    }
}

/// The modules calls belong to ([`Call::module`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    /// Native and asset transfers.
    Assets,
    /// Organisations, accounts, roles, proposals and votes, key rotation.
    Governance,
    /// The regulator's freezes.
    Supervision,
    /// Banks' e-money: issue, redeem, reserve reports.
    Bank,
    /// The two-way peg.
    Peg,
    /// Records sealed to their recipients.
    Private,
    /// The validator registry.
    Validators,
    /// The shop.
    Commerce,
}

impl Module {
    /// The module's name, as the API and events stream show it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Assets => "assets",
            Self::Governance => "governance",
            Self::Supervision => "supervision",
            Self::Bank => "bank",
            Self::Peg => "peg",
            Self::Private => "private",
            Self::Validators => "validators",
            Self::Commerce => "commerce",
        }
    }
}

impl Write for Call {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Transfer { to, amount } => {
                Self::TRANSFER.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Self::TransferAsset { asset, to, amount } => {
                Self::TRANSFER_ASSET.write(buf);
                asset.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Self::RelayHeaders { headers } => {
                Self::RELAY_HEADERS.write(buf);
                headers.write(buf);
            }
            Self::ClaimDeposit {
                transaction,
                proof,
                outputs,
            } => {
                Self::CLAIM_DEPOSIT.write(buf);
                transaction.write(buf);
                proof.write(buf);
                outputs.write(buf);
            }
            Self::PegOut { amount, script } => {
                Self::PEG_OUT.write(buf);
                amount.write(buf);
                script.write(buf);
            }
            Self::SignBatch { batch, signatures } => {
                Self::SIGN_BATCH.write(buf);
                batch.write(buf);
                signatures.write(buf);
            }
            Self::ConfirmBatch { batch, proof } => {
                Self::CONFIRM_BATCH.write(buf);
                batch.write(buf);
                proof.write(buf);
            }
            Self::RegisterFederationKey { key, proof } => {
                Self::REGISTER_FEDERATION_KEY.write(buf);
                key.write(buf);
                proof.write(buf);
            }
            Self::FundPegFees { amount } => {
                Self::FUND_PEG_FEES.write(buf);
                amount.write(buf);
            }
            Self::Propose { action } => {
                Self::PROPOSE.write(buf);
                action.write(buf);
            }
            Self::Vote { proposal, approve } => {
                Self::VOTE.write(buf);
                proposal.write(buf);
                approve.write(buf);
            }
            Self::Register { account, roles } => {
                Self::REGISTER.write(buf);
                account.write(buf);
                roles.write(buf);
            }
            Self::Revoke { account } => {
                Self::REVOKE.write(buf);
                account.write(buf);
            }
            Self::SelfRegister => Self::SELF_REGISTER.write(buf),
            Self::LeaveValidator => Self::LEAVE_VALIDATOR.write(buf),
            Self::CancelRotation => Self::CANCEL_ROTATION.write(buf),
            Self::Freeze { target } => {
                Self::FREEZE.write(buf);
                target.write(buf);
            }
            Self::Unfreeze { target } => {
                Self::UNFREEZE.write(buf);
                target.write(buf);
            }
            Self::Issue { asset, to, amount } => {
                Self::ISSUE.write(buf);
                asset.write(buf);
                to.write(buf);
                amount.write(buf);
            }
            Self::Redeem { asset, amount } => {
                Self::REDEEM.write(buf);
                asset.write(buf);
                amount.write(buf);
            }
            Self::ReserveReport {
                asset,
                reserves,
                statement,
            } => {
                Self::RESERVE_REPORT.write(buf);
                asset.write(buf);
                reserves.write(buf);
                statement.write(buf);
            }
            Self::Rotate { account, new } => {
                Self::ROTATE.write(buf);
                account.write(buf);
                new.write(buf);
            }
            Self::SetSealKey { key } => {
                Self::SET_SEAL_KEY.write(buf);
                key.write(buf);
            }
            Self::PutPrivate {
                about,
                label,
                envelope,
            } => {
                Self::PUT_PRIVATE.write(buf);
                about.write(buf);
                label.write(buf);
                envelope.write(buf);
            }
            Self::Commerce(call) => {
                Self::COMMERCE.write(buf);
                call.write(buf);
            }
        }
    }
}

impl EncodeSize for Call {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::Transfer { to, amount } => to.encode_size() + amount.encode_size(),
            Self::TransferAsset { asset, to, amount } => {
                asset.encode_size() + to.encode_size() + amount.encode_size()
            }
            Self::RelayHeaders { headers } => headers.encode_size(),
            Self::ClaimDeposit {
                transaction,
                proof,
                outputs,
            } => transaction.encode_size() + proof.encode_size() + outputs.encode_size(),
            Self::PegOut { amount, script } => amount.encode_size() + script.encode_size(),
            Self::SignBatch { batch, signatures } => batch.encode_size() + signatures.encode_size(),
            Self::ConfirmBatch { batch, proof } => batch.encode_size() + proof.encode_size(),
            Self::RegisterFederationKey { key, proof } => key.encode_size() + proof.encode_size(),
            Self::FundPegFees { amount } => amount.encode_size(),
            Self::Propose { action } => action.encode_size(),
            Self::Vote { .. } => 8 + 1,
            Self::Register { .. } => 32 + 2,
            Self::Revoke { .. } => 32,
            Self::SelfRegister | Self::LeaveValidator | Self::CancelRotation => 0,
            Self::Freeze { target } | Self::Unfreeze { target } => target.encode_size(),
            Self::Issue { .. } => 8 + 32 + 8,
            Self::Redeem { .. } => 8 + 8,
            Self::ReserveReport { .. } => 8 + 8 + 32,
            Self::SetSealKey { .. } => 32,
            Self::Rotate { .. } => 64,
            Self::PutPrivate {
                about,
                label,
                envelope,
            } => about.encode_size() + label.encode_size() + envelope.encode_size(),
            Self::Commerce(call) => call.encode_size(),
        }
    }
}

impl Read for Call {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            Self::TRANSFER => Ok(Self::Transfer {
                to: AccountId::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            Self::TRANSFER_ASSET => Ok(Self::TransferAsset {
                asset: Asset::read(buf)?,
                to: AccountId::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            Self::RELAY_HEADERS => Ok(Self::RelayHeaders {
                headers: List::read(buf)?,
            }),
            Self::CLAIM_DEPOSIT => Ok(Self::ClaimDeposit {
                transaction: Blob::read(buf)?,
                proof: Blob::read(buf)?,
                outputs: List::read(buf)?,
            }),
            Self::PEG_OUT => Ok(Self::PegOut {
                amount: Amount::read(buf)?,
                script: Blob::read(buf)?,
            }),
            Self::SIGN_BATCH => Ok(Self::SignBatch {
                batch: u64::read(buf)?,
                signatures: List::read(buf)?,
            }),
            Self::CONFIRM_BATCH => Ok(Self::ConfirmBatch {
                batch: u64::read(buf)?,
                proof: Blob::read(buf)?,
            }),
            Self::REGISTER_FEDERATION_KEY => Ok(Self::RegisterFederationKey {
                key: Blob::read(buf)?,
                proof: Blob::read(buf)?,
            }),
            Self::FUND_PEG_FEES => Ok(Self::FundPegFees {
                amount: Amount::read(buf)?,
            }),
            Self::PROPOSE => Ok(Self::Propose {
                action: Action::read(buf)?,
            }),
            Self::VOTE => Ok(Self::Vote {
                proposal: u64::read(buf)?,
                approve: bool::read(buf)?,
            }),
            Self::REGISTER => Ok(Self::Register {
                account: AccountId::read(buf)?,
                roles: u16::read(buf)?,
            }),
            Self::REVOKE => Ok(Self::Revoke {
                account: AccountId::read(buf)?,
            }),
            Self::SELF_REGISTER => Ok(Self::SelfRegister),
            Self::LEAVE_VALIDATOR => Ok(Self::LeaveValidator),
            Self::CANCEL_ROTATION => Ok(Self::CancelRotation),
            Self::FREEZE => Ok(Self::Freeze {
                target: FreezeTarget::read(buf)?,
            }),
            Self::UNFREEZE => Ok(Self::Unfreeze {
                target: FreezeTarget::read(buf)?,
            }),
            Self::ISSUE => Ok(Self::Issue {
                asset: Asset::read(buf)?,
                to: AccountId::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            Self::REDEEM => Ok(Self::Redeem {
                asset: Asset::read(buf)?,
                amount: Amount::read(buf)?,
            }),
            Self::RESERVE_REPORT => Ok(Self::ReserveReport {
                asset: Asset::read(buf)?,
                reserves: u64::read(buf)?,
                statement: <[u8; 32]>::read(buf)?,
            }),
            Self::ROTATE => Ok(Self::Rotate {
                account: AccountId::read(buf)?,
                new: AccountId::read(buf)?,
            }),
            Self::SET_SEAL_KEY => Ok(Self::SetSealKey {
                key: <[u8; 32]>::read(buf)?,
            }),
            Self::PUT_PRIVATE => Ok(Self::PutPrivate {
                about: AccountId::read(buf)?,
                label: Blob::read(buf)?,
                envelope: crate::sealed::Sealed::read(buf)?,
            }),
            Self::COMMERCE => Ok(Self::Commerce(crate::commerce::CommerceCall::read(buf)?)),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tx {
    /// The chain this transaction is for (stops cross-chain replay).
    pub chain_id: u64,
    /// Who pays and signs.
    pub sender: AccountId,
    /// Must equal the sender's next nonce (stops replay).
    pub nonce: u64,
    /// What to do.
    pub call: Call,
}

impl Tx {
    /// Sign with the sender's key.
    pub fn sign(self, key: &ed25519::PrivateKey) -> SignedTx {
        let signature = key.sign(TX_NAMESPACE, &self.encode());
        SignedTx::new(self, signature)
    }
}

impl Write for Tx {
    fn write(&self, buf: &mut impl BufMut) {
        self.chain_id.write(buf);
        self.sender.write(buf);
        self.nonce.write(buf);
        self.call.write(buf);
    }
}

impl EncodeSize for Tx {
    fn encode_size(&self) -> usize {
        8 + self.sender.encode_size() + 8 + self.call.encode_size()
    }
}

impl Read for Tx {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            chain_id: u64::read(buf)?,
            sender: AccountId::read(buf)?,
            nonce: u64::read(buf)?,
            call: Call::read(buf)?,
        })
    }
}

/// A transaction with its signature; its hash is computed once, on construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// The signed content.
    pub tx: Tx,
    /// The sender's signature over the encoding of `tx` under [`TX_NAMESPACE`].
    pub signature: ed25519::Signature,
    hash: TxHash,
}

impl SignedTx {
    /// Attach a signature (not checked here; see [`SignedTx::verify_signature`]).
    pub fn new(tx: Tx, signature: ed25519::Signature) -> Self {
        let hash = sha256(&[&tx.encode(), signature.as_ref()]);
        Self {
            tx,
            signature,
            hash,
        }
    }

    /// The transaction's hash.
    pub const fn hash(&self) -> TxHash {
        self.hash
    }

    /// Whether the signature verifies for the sender.
    pub fn verify_signature(&self) -> bool {
        self.tx
            .sender
            .public_key()
            .is_some_and(|key| key.verify(TX_NAMESPACE, &self.tx.encode(), &self.signature))
    }

    /// Decode untrusted bytes: size-limited, canonical, no trailing bytes. The signature is not
    /// checked here.
    pub fn decode_untrusted(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > TX_SIZE_MAX {
            return Err(TxError::Oversized {
                size: bytes.len(),
                max: TX_SIZE_MAX,
            });
        }
        Self::decode(commonware_codec::Copying(bytes))
            .map_err(|e| TxError::Malformed(e.to_string()))
    }

    /// Checks that need no state: size, chain id, amount, signature.
    pub fn check_stateless(&self, chain_id: u64) -> Result<(), TxError> {
        self.check_without_signature(chain_id)?;
        if !self.verify_signature() {
            return Err(TxError::BadSignature);
        }
        Ok(())
    }

    /// Stateless checks except the signature (for callers that verify signatures in batches).
    pub fn check_without_signature(&self, chain_id: u64) -> Result<(), TxError> {
        let size = self.encode_size();
        if size > TX_SIZE_MAX {
            return Err(TxError::Oversized {
                size,
                max: TX_SIZE_MAX,
            });
        }
        if self.tx.chain_id != chain_id {
            return Err(TxError::WrongChainId {
                expected: chain_id,
                got: self.tx.chain_id,
            });
        }
        match &self.tx.call {
            Call::Transfer { amount, .. } | Call::TransferAsset { amount, .. }
                if amount.is_zero() =>
            {
                Err(TxError::InvalidAmount(
                    "a transfer must move more than zero",
                ))
            }
            Call::Issue { amount, .. } | Call::Redeem { amount, .. } if amount.is_zero() => {
                Err(TxError::InvalidAmount("an amount must be more than zero"))
            }
            Call::PegOut { amount, .. } if amount.is_zero() => {
                Err(TxError::InvalidAmount("a peg-out must move more than zero"))
            }
            Call::FundPegFees { amount } if amount.is_zero() => Err(TxError::InvalidAmount(
                "a fee pool gift must be more than zero",
            )),
            Call::RelayHeaders { headers } if headers.0.is_empty() => Err(TxError::InvalidAmount(
                "a relay must carry at least one header",
            )),
            _ => Ok(()),
        }
    }

    /// What the transaction spends of the sender's native balance.
    pub fn spend(&self) -> Amount {
        match &self.tx.call {
            Call::Transfer { amount, .. } => *amount,
            _ => Amount::ZERO,
        }
    }
}

impl Write for SignedTx {
    fn write(&self, buf: &mut impl BufMut) {
        self.tx.write(buf);
        self.signature.write(buf);
    }
}

impl EncodeSize for SignedTx {
    fn encode_size(&self) -> usize {
        self.tx.encode_size() + self.signature.encode_size()
    }
}

impl Read for SignedTx {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let tx = Tx::read(buf)?;
        let signature = ed25519::Signature::read(buf)?;
        Ok(Self::new(tx, signature))
    }
}

/// Verify many transactions' signatures in one batch; `true` only if every one verifies.
pub fn verify_batch(txs: &[&SignedTx], rng: &mut impl rand_core::CryptoRng) -> bool {
    if txs.is_empty() {
        return true;
    }
    // A sender id that is not a valid key cannot have signed anything.
    let Some(keys) = txs
        .iter()
        .map(|t| t.tx.sender.public_key())
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    verify_batch_with_keys(txs, &keys, rng)
}

/// [`verify_batch`] given each sender's decoded key (`keys[i]` must be the key of
/// `txs[i].tx.sender`): decoding a key costs about as much as a batched signature check, so
/// callers that see the same senders again keep their keys decoded.
///
/// # Panics
/// If `keys` and `txs` differ in length.
pub fn verify_batch_with_keys(
    txs: &[&SignedTx],
    keys: &[ed25519::PublicKey],
    rng: &mut impl rand_core::CryptoRng,
) -> bool {
    use commonware_cryptography::{BatchEntry, BatchVerifier};
    assert_eq!(txs.len(), keys.len(), "one key per transaction");
    if txs.is_empty() {
        return true;
    }
    // Checking a signature against another account's key would be a forgery: never.
    assert!(
        txs.iter()
            .zip(keys)
            .all(|(tx, key)| tx.tx.sender.as_ref() == key.as_ref()),
        "each key is its transaction's sender"
    );
    let messages: Vec<_> = txs.iter().map(|t| t.tx.encode()).collect();
    ed25519::PublicKey::verify_batch(
        rng,
        &messages,
        |i, message| BatchEntry {
            namespace: TX_NAMESPACE,
            message: message.as_ref(),
            public_key: &keys[i],
            signature: &txs[i].signature,
        },
        &commonware_parallel::Sequential,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u64) -> ed25519::PrivateKey {
        ed25519::PrivateKey::from_seed(seed)
    }

    fn transfer(nonce: u64) -> SignedTx {
        Tx {
            chain_id: 7,
            sender: AccountId::new(key(1).public_key()),
            nonce,
            call: Call::Transfer {
                to: AccountId::new(key(2).public_key()),
                amount: Amount::new(5),
            },
        }
        .sign(&key(1))
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let tx = transfer(3);
        let bytes = tx.encode();
        let back = SignedTx::decode_untrusted(&bytes).expect("decodes");
        assert_eq!(back, tx);
        assert_eq!(back.hash(), tx.hash());
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn trailing_and_truncated_bytes_are_malformed() {
        let mut bytes = transfer(0).encode().to_vec();
        bytes.push(0);
        assert!(matches!(
            SignedTx::decode_untrusted(&bytes),
            Err(TxError::Malformed(_))
        ));
        bytes.truncate(bytes.len() - 10);
        assert!(matches!(
            SignedTx::decode_untrusted(&bytes),
            Err(TxError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_bytes_are_refused_before_decoding() {
        let bytes = vec![0u8; TX_SIZE_MAX + 1];
        assert!(matches!(
            SignedTx::decode_untrusted(&bytes),
            Err(TxError::Oversized { .. })
        ));
    }

    #[test]
    fn tampered_transaction_fails_signature_check() {
        let mut tx = transfer(0);
        tx.check_stateless(7).expect("valid");
        tx.tx.nonce = 1;
        assert_eq!(tx.check_stateless(7), Err(TxError::BadSignature));
    }

    #[test]
    fn wrong_chain_id_is_refused() {
        let tx = transfer(0);
        assert!(matches!(
            tx.check_stateless(8),
            Err(TxError::WrongChainId {
                expected: 8,
                got: 7
            })
        ));
    }

    #[test]
    fn batch_verification_finds_one_bad_signature() {
        let good: Vec<SignedTx> = (0..8).map(transfer).collect();
        let refs: Vec<&SignedTx> = good.iter().collect();
        let mut rng = commonware_utils::test_rng();
        assert!(verify_batch(&refs, &mut rng));
        let mut bad = good.clone();
        bad[5].tx.nonce = 99;
        let refs: Vec<&SignedTx> = bad.iter().collect();
        assert!(!verify_batch(&refs, &mut rng));
    }

    #[test]
    fn batch_verification_with_decoded_keys_agrees_and_refuses_another_senders_key() {
        let good: Vec<SignedTx> = (0..8).map(transfer).collect();
        let keys = vec![key(1).public_key(); good.len()];
        let mut rng = commonware_utils::test_rng();
        let refs: Vec<&SignedTx> = good.iter().collect();
        assert!(verify_batch_with_keys(&refs, &keys, &mut rng));
        let mut bad = good.clone();
        bad[2].tx.nonce = 99;
        let refs: Vec<&SignedTx> = bad.iter().collect();
        assert!(!verify_batch_with_keys(&refs, &keys, &mut rng));
        let wrong = vec![key(2).public_key(); good.len()];
        let refs: Vec<&SignedTx> = good.iter().collect();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            verify_batch_with_keys(&refs, &wrong, &mut commonware_utils::test_rng())
        }));
        assert!(
            refused.is_err(),
            "a key that is not the sender's is a bug, not a check"
        );
    }
}
