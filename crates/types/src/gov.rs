//! Consortium governance: organisations, the accounts they register with roles, proposals
//! and votes. Checks live in `consort-chain`.

use crate::{AccountId, codec_record, codec_util::List};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// Most member organisations.
pub const ORGS_MAX: usize = 256;
/// Most e-money assets a chain issues.
pub const ASSETS_MAX: usize = 256;
/// Most open proposals at once.
pub const OPEN_PROPOSALS_MAX: usize = 64;
/// Most open proposals of one organisation at once: one member cannot fill the global
/// [`OPEN_PROPOSALS_MAX`] and lock the others out of governance.
pub const OPEN_PROPOSALS_PER_ORG_MAX: usize = 4;
/// Blocks an admin's rotation of another account's key waits, during which the account may
/// cancel it, unless genesis sets [`GovernanceConfig::rotation_delay_blocks`]. At 500 ms to
/// 6 s a block, 5 minutes to an hour.
pub const ROTATION_DELAY_BLOCKS_DEFAULT: u64 = 600;
/// Most delayed rotations that fall due in one block (further ones are refused until the
/// next block).
pub const ROTATIONS_DUE_PER_BLOCK_MAX: usize = 64;

/// Most rotations of one account's key, and so most hops followed from one key: to the key
/// an account holds now, or back to the keys it held before. A rotation beyond it is refused
/// (`gov_rotation_limit`), so every walk reaches its end and each walk's reads stay fixed.
pub const ROTATION_HOPS_MAX: usize = 8;

/// How membership is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One founding organisation (the first in genesis) decides alone.
    Private,
    /// Decisions need votes of more than 2/3 of member organisations.
    Consortium,
}

/// An organisation's kind; it bounds the roles its admins may grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// The platform operator.
    Operator,
    /// A merchant.
    Seller,
    /// A member bank.
    Bank,
    /// A carrier.
    Logistics,
    /// The supervisory authority.
    Regulator,
}

impl OrgKind {
    /// Wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Operator => 0,
            Self::Seller => 1,
            Self::Bank => 2,
            Self::Logistics => 3,
            Self::Regulator => 4,
        }
    }

    /// From a wire tag.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => Self::Operator,
            1 => Self::Seller,
            2 => Self::Bank,
            3 => Self::Logistics,
            4 => Self::Regulator,
            _ => return None,
        })
    }

    /// The roles an organisation of this kind may grant.
    pub const fn grantable(self) -> u16 {
        role::ADMIN
            | match self {
                Self::Operator => role::OPERATOR | role::CUSTOMER,
                Self::Seller => role::SELLER,
                Self::Bank => role::BANK,
                Self::Logistics => role::CARRIER,
                Self::Regulator => role::REGULATOR,
            }
    }
}

impl Write for OrgKind {
    fn write(&self, buf: &mut impl BufMut) {
        self.tag().write(buf);
    }
}

impl EncodeSize for OrgKind {
    fn encode_size(&self) -> usize {
        1
    }
}

impl Read for OrgKind {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Self::from_tag(u8::read(buf)?).ok_or(CodecError::Invalid("OrgKind", "unknown kind"))
    }
}

/// Role bits of a registered account.
pub mod role {
    /// Administers its organisation: registers and revokes its accounts, proposes and votes.
    pub const ADMIN: u16 = 1;
    /// A registered person.
    pub const CUSTOMER: u16 = 1 << 1;
    /// Sells: products, stock, order handling.
    pub const SELLER: u16 = 1 << 2;
    /// Issues and redeems e-money.
    pub const BANK: u16 = 1 << 3;
    /// Posts shipment events.
    pub const CARRIER: u16 = 1 << 4;
    /// Supervises: freezes, reads sealed data sealed to it.
    pub const REGULATOR: u16 = 1 << 5;
    /// Runs the platform.
    pub const OPERATOR: u16 = 1 << 6;
    /// Every role.
    pub const ALL: u16 = (1 << 7) - 1;
}

/// An organisation's id: 1 to 16 characters of `a-z`, `0-9` and `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId([u8; 16]);

/// Why text is not an organisation id.
#[derive(Debug, thiserror::Error)]
#[error("organisation id {0:?} is not 1 to 16 characters of a-z, 0-9 and -")]
pub struct BadOrgId(pub String);

impl OrgId {
    fn from_padded(bytes: [u8; 16]) -> Option<Self> {
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(16);
        let valid = len > 0
            && bytes[..len]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[len..].iter().all(|b| *b == 0);
        valid.then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..len]).expect("checked ASCII")
    }
}

impl FromStr for OrgId {
    type Err = BadOrgId;
    fn from_str(text: &str) -> Result<Self, BadOrgId> {
        let bytes = text.as_bytes();
        if bytes.len() > 16 {
            return Err(BadOrgId(text.into()));
        }
        let mut padded = [0u8; 16];
        padded[..bytes.len()].copy_from_slice(bytes);
        Self::from_padded(padded).ok_or_else(|| BadOrgId(text.into()))
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Write for OrgId {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl EncodeSize for OrgId {
    fn encode_size(&self) -> usize {
        16
    }
}

impl Read for OrgId {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Self::from_padded(<[u8; 16]>::read(buf)?).ok_or(CodecError::Invalid("OrgId", "bad id"))
    }
}

impl Serialize for OrgId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An organisation of genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisOrg {
    /// Its id.
    pub id: OrgId,
    /// Its kind.
    pub kind: OrgKind,
    /// Its first admin accounts.
    pub admins: Vec<AccountId>,
}

/// Governance as genesis configures it. Absent: an open chain with no permissions (tests,
/// benchmarks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceConfig {
    /// Private or consortium.
    pub mode: Mode,
    /// Founding organisations; in private mode the first decides alone.
    pub organisations: Vec<GenesisOrg>,
    /// The organisation customers self-register with (the operator by default).
    pub registrar: OrgId,
    /// Blocks a proposal stays open for votes.
    pub vote_period_blocks: u64,
    /// Transfers, issues, redemptions and peg-outs of at least this many base units raise an
    /// alert on the events stream for the regulator (absent: no alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_threshold: Option<u64>,
    /// Accounts registered at genesis as customers of the registrar.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<AccountId>,
    /// Blocks an admin's rotation of another account's key waits before it applies, so the
    /// account holder can cancel it (absent: [`ROTATION_DELAY_BLOCKS_DEFAULT`]; 0: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_delay_blocks: Option<u64>,
}

impl GovernanceConfig {
    /// Blocks an admin's rotation of another account's key waits.
    pub fn rotation_delay_blocks(&self) -> u64 {
        self.rotation_delay_blocks
            .unwrap_or(ROTATION_DELAY_BLOCKS_DEFAULT)
    }
}

/// A member organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Its id.
    pub id: OrgId,
    /// Its kind.
    pub kind: OrgKind,
    /// A member now (false once removed).
    pub active: bool,
    /// Consort height of its admission (0: genesis).
    pub admitted_at: u64,
}
codec_record!(Org {
    id: OrgId,
    kind: OrgKind,
    active: bool,
    admitted_at: u64,
});

/// An account's registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Its organisation.
    pub org: OrgId,
    /// [`role`] bits.
    pub roles: u16,
    /// False once revoked (or rotated away).
    pub active: bool,
}
codec_record!(Registration {
    org: OrgId,
    roles: u16,
    active: bool,
});

/// What a proposal decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Admit an organisation with its first admin.
    AdmitOrg {
        /// The new organisation.
        org: OrgId,
        /// Its kind.
        kind: OrgKind,
        /// Its first admin account.
        admin: AccountId,
    },
    /// Remove an organisation: its accounts can no longer act.
    RemoveOrg {
        /// The organisation.
        org: OrgId,
    },
    /// Add a validator node; it joins consensus at the next epoch boundary.
    AddValidator {
        /// Its consensus key.
        key: AccountId,
        /// Its p2p address.
        address: std::net::SocketAddr,
    },
    /// Remove a validator node; its votes stop counting at the next epoch boundary.
    RemoveValidator {
        /// Its consensus key.
        key: AccountId,
    },
    /// The emergency brake: from the next transaction on, every call is refused
    /// (`chain_halted`) except governance itself (`propose`, `vote`) and the regulator's
    /// freezes. Blocks keep being finalized.
    Halt,
    /// Release the emergency brake.
    Resume,
}

impl Write for Action {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::AdmitOrg { org, kind, admin } => {
                0u8.write(buf);
                org.write(buf);
                kind.write(buf);
                admin.write(buf);
            }
            Self::RemoveOrg { org } => {
                1u8.write(buf);
                org.write(buf);
            }
            Self::AddValidator { key, address } => {
                2u8.write(buf);
                key.write(buf);
                address.write(buf);
            }
            Self::RemoveValidator { key } => {
                3u8.write(buf);
                key.write(buf);
            }
            Self::Halt => 4u8.write(buf),
            Self::Resume => 5u8.write(buf),
        }
    }
}

impl EncodeSize for Action {
    fn encode_size(&self) -> usize {
        match self {
            Self::AdmitOrg { .. } => 1 + 16 + 1 + 32,
            Self::RemoveOrg { .. } => 1 + 16,
            Self::AddValidator { address, .. } => 1 + 32 + address.encode_size(),
            Self::RemoveValidator { .. } => 1 + 32,
            Self::Halt | Self::Resume => 1,
        }
    }
}

impl Read for Action {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Self::AdmitOrg {
                org: OrgId::read(buf)?,
                kind: OrgKind::read(buf)?,
                admin: AccountId::read(buf)?,
            }),
            1 => Ok(Self::RemoveOrg {
                org: OrgId::read(buf)?,
            }),
            2 => Ok(Self::AddValidator {
                key: AccountId::read(buf)?,
                address: std::net::SocketAddr::read(buf)?,
            }),
            3 => Ok(Self::RemoveValidator {
                key: AccountId::read(buf)?,
            }),
            4 => Ok(Self::Halt),
            5 => Ok(Self::Resume),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

impl Action {
    /// Whether `self` and `other` decide the same thing: equal, or about the same
    /// organisation or validator key (two admissions of one organisation with different
    /// admins would both pass and count it twice), or both halts, or both resumes.
    pub fn conflicts_with(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::AdmitOrg { org: a, .. }, Self::AdmitOrg { org: b, .. })
            | (Self::RemoveOrg { org: a }, Self::RemoveOrg { org: b }) => a == b,
            (Self::AddValidator { key: a, .. }, Self::AddValidator { key: b, .. })
            | (Self::RemoveValidator { key: a }, Self::RemoveValidator { key: b }) => a == b,
            _ => self == other,
        }
    }
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Taking votes.
    Open,
    /// Passed and applied.
    Passed,
    /// Cannot pass any more.
    Rejected,
    /// The deadline passed without a decision.
    Expired,
}

impl ProposalStatus {
    /// Wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Open => 0,
            Self::Passed => 1,
            Self::Rejected => 2,
            Self::Expired => 3,
        }
    }

    /// From a wire tag.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => Self::Open,
            1 => Self::Passed,
            2 => Self::Rejected,
            3 => Self::Expired,
            _ => return None,
        })
    }
}

/// A governance proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its number.
    pub id: u64,
    /// What it decides.
    pub action: Action,
    /// The proposing organisation.
    pub proposer: OrgId,
    /// Last Consort height at which votes count.
    pub deadline: u64,
    /// Organisations in favour.
    pub yes: List<OrgId, ORGS_MAX>,
    /// Organisations against.
    pub no: List<OrgId, ORGS_MAX>,
    /// [`ProposalStatus`] tag.
    pub status: u8,
}
codec_record!(Proposal {
    id: u64,
    action: Action,
    proposer: OrgId,
    deadline: u64,
    yes: List<OrgId, ORGS_MAX>,
    no: List<OrgId, ORGS_MAX>,
    status: u8,
});

/// An admin's rotation of another account's key, waiting out the rotation delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRotation {
    /// The new key.
    pub new: AccountId,
    /// The admin who asked for it.
    pub admin: AccountId,
    /// The height at whose end it applies.
    pub due: u64,
}
codec_record!(PendingRotation {
    new: AccountId,
    admin: AccountId,
    due: u64,
});

/// Governance counters and lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovState {
    /// Active member organisations.
    pub members: List<OrgId, ORGS_MAX>,
    /// Open proposal ids.
    pub open: List<u64, OPEN_PROPOSALS_MAX>,
    /// Next proposal id.
    pub next_proposal: u64,
}
codec_record!(GovState {
    members: List<OrgId, ORGS_MAX>,
    open: List<u64, OPEN_PROPOSALS_MAX>,
    next_proposal: u64,
});

/// Why a governance call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovError {
    /// No such organisation, or not a member.
    #[error("organisation {0} is not a member")]
    UnknownOrg(String),
    /// The organisation already exists.
    #[error("organisation {0} already exists")]
    OrgExists(String),
    /// No such open proposal.
    #[error("proposal {0} does not exist or is closed")]
    NoSuchProposal(u64),
    /// The organisation already voted.
    #[error("organisation {0} already voted on this proposal")]
    AlreadyVoted(String),
    /// The account is already registered.
    #[error("account {0} is already registered")]
    AlreadyRegistered(String),
    /// The account is not registered (or not with this organisation).
    #[error("account {0} is not registered with this organisation")]
    NotRegistered(String),
    /// Roles the organisation's kind may not grant.
    #[error("an organisation of kind {kind:?} cannot grant roles {roles:#x}")]
    RolesNotGrantable {
        /// The kind.
        kind: OrgKind,
        /// Asked roles.
        roles: u16,
    },
    /// The account, asset or organisation is frozen by the regulator.
    #[error("{0} is frozen by the regulator")]
    Frozen(String),
    /// Not the issuer of this e-money asset (or the code belongs to another bank).
    #[error("asset {0} is issued by another bank or is not e-money")]
    NotIssuer(String),
    /// Redeeming more than is outstanding.
    #[error("cannot redeem more {0} than the sender holds")]
    RedeemTooMuch(String),
    /// Too many open proposals or members.
    #[error("governance is at capacity: {0}")]
    AtCapacity(&'static str),
    /// A key cannot rotate to itself.
    #[error("the new key must differ from the old one")]
    SameKey,
    /// The account already rotated its key [`ROTATION_HOPS_MAX`] times: a further rotation
    /// would put its earliest orders out of reach of its current key.
    #[error(
        "account {0} has already rotated its key {ROTATION_HOPS_MAX} times, the most one \
         account may: register a new account and move its funds there by transfer"
    )]
    RotationLimit(String),
    /// The key is already a validator.
    #[error("{0} is already a validator")]
    ValidatorExists(String),
    /// The chain has a peg and the validator-to-be registered no federation key.
    #[error(
        "validator {0} has no federation key: it must send register_federation_key before it is proposed"
    )]
    NoFederationKey(String),
    /// The key is not a validator.
    #[error("{0} is not a validator")]
    UnknownValidator(String),
    /// Removing the validator would leave none.
    #[error("the last validator cannot leave or be removed")]
    LastValidator,
    /// Governance pulled the emergency brake: only governance and freezes go through.
    #[error(
        "the chain is halted by governance: only proposals, votes and the regulator's freezes \
         are accepted until a resume proposal passes"
    )]
    Halted,
    /// A halt proposed while halted, or a resume while running.
    #[error("the chain is already {0}")]
    AlreadyInState(&'static str),
    /// An open proposal already decides the same thing.
    #[error("proposal {0} already decides this: vote on it instead of proposing it again")]
    DuplicateProposal(u64),
    /// An admin's rotation of the account is already waiting.
    #[error(
        "a rotation of {0} is already pending: a second admin of its organisation confirms it \
         by sending the same rotation, or the account cancels it"
    )]
    RotationPending(String),
    /// The sender has no pending rotation to cancel.
    #[error("no rotation of {0} is pending")]
    NoPendingRotation(String),
    /// The recipient's key was rotated away: nothing sent to it could ever be spent.
    #[error("account {old} rotated its key to {new}: send to {new} instead")]
    RotatedAway {
        /// The rotated-away key.
        old: String,
        /// Its successor.
        new: String,
    },
}

impl GovError {
    /// A stable machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownOrg(_) => "gov_unknown_org",
            Self::OrgExists(_) => "gov_org_exists",
            Self::NoSuchProposal(_) => "gov_no_such_proposal",
            Self::AlreadyVoted(_) => "gov_already_voted",
            Self::AlreadyRegistered(_) => "gov_already_registered",
            Self::NotRegistered(_) => "gov_not_registered",
            Self::RolesNotGrantable { .. } => "gov_roles_not_grantable",
            Self::AtCapacity(_) => "gov_at_capacity",
            Self::SameKey => "gov_same_key",
            Self::RotationLimit(_) => "gov_rotation_limit",
            Self::ValidatorExists(_) => "gov_validator_exists",
            Self::NoFederationKey(_) => "gov_no_federation_key",
            Self::UnknownValidator(_) => "gov_unknown_validator",
            Self::LastValidator => "gov_last_validator",
            Self::Halted => "chain_halted",
            Self::AlreadyInState(_) => "gov_already_in_state",
            Self::DuplicateProposal(_) => "gov_duplicate_proposal",
            Self::RotationPending(_) => "gov_rotation_pending",
            Self::NoPendingRotation(_) => "gov_no_pending_rotation",
            Self::RotatedAway { .. } => "gov_rotated_away",
            Self::Frozen(_) => "frozen",
            Self::NotIssuer(_) => "emoney_not_issuer",
            Self::RedeemTooMuch(_) => "insufficient_balance",
        }
    }
}

/// What a regulator freezes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum FreezeTarget {
    /// An account: it cannot send or be paid.
    Account(AccountId),
    /// An asset: it cannot move, be issued or redeemed.
    Asset(crate::Asset),
    /// An organisation: its accounts cannot act; a bank cannot issue.
    Org(OrgId),
}

impl Write for FreezeTarget {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Account(id) => {
                0u8.write(buf);
                id.write(buf);
            }
            Self::Asset(asset) => {
                1u8.write(buf);
                asset.write(buf);
            }
            Self::Org(org) => {
                2u8.write(buf);
                org.write(buf);
            }
        }
    }
}

impl EncodeSize for FreezeTarget {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::Account(_) => 32,
            Self::Asset(_) => 8,
            Self::Org(_) => 16,
        }
    }
}

impl Read for FreezeTarget {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            0 => Ok(Self::Account(AccountId::read(buf)?)),
            1 => Ok(Self::Asset(crate::Asset::read(buf)?)),
            2 => Ok(Self::Org(OrgId::read(buf)?)),
            other => Err(CodecError::InvalidEnum(other)),
        }
    }
}

/// A bank's e-money asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EMoney {
    /// The issuing bank organisation.
    pub issuer: OrgId,
    /// Ever issued (base units).
    pub issued: u64,
    /// Ever redeemed.
    pub redeemed: u64,
    /// Last reserve report: reserves held (base units).
    pub reserves: u64,
    /// Height of the last reserve report (0: none).
    pub reported_at: u64,
    /// Digest of the last report's attestation document.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub statement: [u8; 32],
}
codec_record!(EMoney {
    issuer: OrgId,
    issued: u64,
    redeemed: u64,
    reserves: u64,
    reported_at: u64,
    statement: [u8; 32],
});
