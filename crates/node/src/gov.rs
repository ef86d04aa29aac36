//! Read routes over governance records: organisations, proposals, registrations, e-money.

use crate::{
    commerce::snapshot,
    shared::{ApiError, Shared, read},
};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use consort_types::{
    AccountId, Asset,
    gov::{EMoney, FreezeTarget, GovState, Org, OrgId, Proposal, ProposalStatus, Registration},
    state_key::gov as key,
};
use serde_json::{Value, json};
use std::sync::Arc;

type AppState = State<Arc<Shared>>;

/// Governance routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/gov", get(overview))
        .route("/v1/gov/orgs/{id}", get(org))
        .route("/v1/gov/proposals/{id}", get(proposal))
        .route("/v1/accounts/{id}/registration", get(registration))
        .route("/v1/emoney/{asset}", get(emoney))
        .route("/v1/validators", get(validator_sets))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

fn governance(s: &Shared) -> Result<&consort_types::gov::GovernanceConfig, ApiError> {
    s.genesis.governance.as_ref().ok_or_else(|| {
        not_found(
            "no_governance",
            "this chain has no governance section in genesis: it runs open",
        )
    })
}

async fn overview(State(s): AppState) -> Result<Json<Value>, ApiError> {
    let config = governance(&s)?;
    let state: GovState = read(&s.databases, &key::state()).await?.unwrap_or_default();
    let mut members = Vec::new();
    for id in &state.members.0 {
        members.push(read::<Org>(&s.databases, &key::org(id)).await?);
    }
    let halted_at: Option<u64> = read(&s.databases, &key::halted()).await?;
    Ok(Json(json!({
        "mode": config.mode,
        "halted": halted_at.is_some(),
        "halted_at": halted_at,
        "registrar": config.registrar,
        "vote_period_blocks": config.vote_period_blocks,
        "alert_threshold": config.alert_threshold,
        "members": members,
        "open_proposals": state.open.0,
        "next_proposal": state.next_proposal,
    })))
}

async fn org(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    governance(&s)?;
    let id: OrgId = id.parse().map_err(|e| bad(format!("{e}")))?;
    let org: Org = read(&s.databases, &key::org(&id))
        .await?
        .ok_or_else(|| not_found("unknown_org", format!("no organisation {id}")))?;
    let frozen: bool = read(&s.databases, &key::frozen(&FreezeTarget::Org(id)))
        .await?
        .unwrap_or(false);
    Ok(Json(json!({"org": org, "frozen": frozen})))
}

async fn proposal(State(s): AppState, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    governance(&s)?;
    let proposal: Proposal = read(&s.databases, &key::proposal(id))
        .await?
        .ok_or_else(|| not_found("unknown_proposal", format!("no proposal {id}")))?;
    Ok(Json(json!({
        "proposal": proposal,
        "status": ProposalStatus::from_tag(proposal.status),
    })))
}

async fn registration(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    governance(&s)?;
    let id: AccountId = id
        .parse()
        .map_err(|e| bad(format!("account is not a hex ed25519 public key: {e}")))?;
    // One snapshot: the registration, the freeze and the walk agree with each other.
    type Found = (
        Option<Registration>,
        bool,
        Option<AccountId>,
        Vec<AccountId>,
    );
    let (registration, frozen, rotated_to, previous_keys): Found = snapshot!(s, |store| {
        let registration = store.get::<Registration>(&key::registration(&id)).await?;
        let frozen = store
            .get::<bool>(&key::frozen(&FreezeTarget::Account(id)))
            .await?
            .unwrap_or(false);
        let rotated_to = store.get::<AccountId>(&key::rotated_to(&id)).await?;
        // The keys this account held before, newest first: what it did under them is its own.
        let mut previous_keys: Vec<AccountId> = Vec::new();
        let mut at = id;
        while previous_keys.len() < consort_types::gov::ROTATION_HOPS_MAX {
            match store.get::<AccountId>(&key::rotated_from(&at)).await? {
                Some(before) => {
                    previous_keys.push(before);
                    at = before;
                }
                None => break,
            }
        }
        Ok((registration, frozen, rotated_to, previous_keys))
    })?;
    Ok(Json(json!({
        "account": id,
        "registration": registration,
        "frozen": frozen,
        "rotated_to": rotated_to,
        "previous_keys": previous_keys,
    })))
}

async fn emoney(State(s): AppState, Path(asset): Path<String>) -> Result<Json<Value>, ApiError> {
    let asset: Asset = asset.parse().map_err(|e| bad(format!("{e}")))?;
    let money: EMoney = read(&s.databases, &key::emoney(&asset))
        .await?
        .ok_or_else(|| not_found("unknown_asset", format!("{asset} is not e-money")))?;
    let frozen: bool = read(&s.databases, &key::frozen(&FreezeTarget::Asset(asset)))
        .await?
        .unwrap_or(false);
    Ok(Json(json!({
        "asset": asset,
        "issuer": money.issuer,
        "issued": money.issued,
        "redeemed": money.redeemed,
        "supply": money.issued - money.redeemed,
        "reserves": money.reserves,
        "reported_at": money.reported_at,
        "statement": hex::encode(money.statement),
        "frozen": frozen,
    })))
}

async fn validator_sets(State(s): AppState) -> Result<Json<Value>, ApiError> {
    use consort_types::{state_key::validators as vkey, validators::ValidatorSet};
    let height = s.observer.tip.lock().expect("tip lock").height;
    let epoch = consort_validators::epoch_of(&s.genesis, height + 1).get();
    let blocks = s.genesis.epoch_blocks();
    let registry: ValidatorSet = read(&s.databases, &vkey::registry())
        .await?
        .unwrap_or_else(|| s.genesis.validator_set());
    let committee: Option<ValidatorSet> = if epoch == 0 {
        Some(s.genesis.validator_set())
    } else {
        read(&s.databases, &vkey::committee(epoch)).await?
    };
    let pending_change = committee.as_ref() != Some(&registry);
    Ok(Json(json!({
        "finalized_height": height,
        "epoch": epoch,
        "epoch_blocks": blocks,
        "next_boundary": (epoch + 1) * blocks - 1,
        "committee": committee.map(|c| c.members.0),
        "registry": registry.members.0,
        "pending_change": pending_change,
    })))
}
