//! Governance actions, freeze targets, sealed envelopes, validator sets, peg and governance
//! records, and the bounded `Blob` and `List` they are built from.

use crate::{
    codec::{check_canonical, check_round_trip, config, mutate, mutations, random_bytes},
    strategies::{action, encoded, freeze_target, sealed, validator_set},
};
use consort_types::{
    Account, AccountId, Amount, Asset,
    codec_util::{Blob, List},
    gov::{Action, EMoney, FreezeTarget, GovState, Org, OrgId, OrgKind, Proposal, Registration},
    peg::{
        Batch, BatchOutput, ClaimRecord, FederationCoin, HeaderEntry, MainTip, Outpoint,
        PegOutRequest, PegTotals,
    },
    sealed::{PrivateRecord, Sealed, SealedCopy},
    state_key::TxLocation,
    validators::{ValidatorEntry, ValidatorSet},
};
use proptest::prelude::*;

/// Every record type, fed the same bytes.
fn check_every_record(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_canonical::<Action>(bytes)?;
    check_canonical::<FreezeTarget>(bytes)?;
    check_canonical::<OrgId>(bytes)?;
    check_canonical::<OrgKind>(bytes)?;
    check_canonical::<Asset>(bytes)?;
    check_canonical::<AccountId>(bytes)?;
    check_canonical::<Amount>(bytes)?;
    check_canonical::<Account>(bytes)?;
    check_canonical::<Sealed>(bytes)?;
    check_canonical::<SealedCopy>(bytes)?;
    check_canonical::<PrivateRecord>(bytes)?;
    check_canonical::<ValidatorEntry>(bytes)?;
    check_canonical::<ValidatorSet>(bytes)?;
    check_canonical::<Org>(bytes)?;
    check_canonical::<Registration>(bytes)?;
    check_canonical::<Proposal>(bytes)?;
    check_canonical::<GovState>(bytes)?;
    check_canonical::<EMoney>(bytes)?;
    check_canonical::<Outpoint>(bytes)?;
    check_canonical::<HeaderEntry>(bytes)?;
    check_canonical::<ClaimRecord>(bytes)?;
    check_canonical::<FederationCoin>(bytes)?;
    check_canonical::<PegOutRequest>(bytes)?;
    check_canonical::<BatchOutput>(bytes)?;
    check_canonical::<Batch>(bytes)?;
    check_canonical::<PegTotals>(bytes)?;
    check_canonical::<MainTip>(bytes)?;
    check_canonical::<TxLocation>(bytes)?;
    check_canonical::<Blob<4>>(bytes)?;
    check_canonical::<Blob<64>>(bytes)?;
    check_canonical::<List<u16, 3>>(bytes)?;
    check_canonical::<List<Blob<2>, 4>>(bytes)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn random_bytes_never_panic_a_record_decoder(bytes in random_bytes(256)) {
        check_every_record(&bytes)?;
    }

    #[test]
    fn mutated_actions_targets_envelopes_and_validator_sets_decode_canonically_or_not_at_all(
        action in action(),
        target in freeze_target(),
        sealed in sealed(),
        set in validator_set(),
        mutations in mutations(),
    ) {
        check_canonical::<Action>(&mutate(encoded(&action), &mutations))?;
        check_canonical::<FreezeTarget>(&mutate(encoded(&target), &mutations))?;
        check_canonical::<Sealed>(&mutate(encoded(&sealed), &mutations))?;
        check_canonical::<ValidatorSet>(&mutate(encoded(&set), &mutations))?;
    }

    #[test]
    fn actions_targets_envelopes_and_validator_sets_round_trip(
        action in action(),
        target in freeze_target(),
        sealed in sealed(),
        set in validator_set(),
    ) {
        check_round_trip(&action)?;
        check_round_trip(&target)?;
        check_round_trip(&sealed)?;
        check_round_trip(&set)?;
    }

    #[test]
    fn random_seal_keys_and_envelopes_never_panic_the_checks_or_the_opener(
        key in any::<[u8; 32]>(),
        sealed in sealed(),
        seed in any::<[u8; 32]>(),
    ) {
        let _ = consort_types::sealed::valid_key(&key);
        let (secret, _) = consort_types::sealed::keypair(&seed);
        for recipient in sealed.recipients() {
            let opened = consort_types::sealed::open(&sealed, recipient, &secret, b"info");
            prop_assert!(opened.is_err(), "random bytes opened as a sealed copy");
        }
    }

    #[test]
    fn blobs_and_lists_refuse_one_item_past_their_bound(
        bytes in prop::collection::vec(any::<u8>(), 0..=8),
    ) {
        let blob = Blob::<8>::new(bytes.clone()).expect("within bound");
        check_round_trip(&blob)?;
        let mut longer = bytes.clone();
        longer.resize(9, 0);
        prop_assert!(Blob::<8>::new(longer.clone()).is_none());
        let over = commonware_codec::Encode::encode(&longer);
        prop_assert!(crate::codec::decode::<Blob<8>>(&over).is_err());
        let list = List::<u8, 8>(bytes);
        check_round_trip(&list)?;
        prop_assert!(crate::codec::decode::<List<u8, 8>>(&over).is_err());
    }
}
