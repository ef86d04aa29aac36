//! The committee that follows the current one towards the registry.

use consort_types::{
    limits::VALIDATORS_MAX,
    validators::{ValidatorEntry, ValidatorSet},
};

/// Faults a committee of `n` tolerates: `n = 3f + 1`, rounded down.
const fn faults(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// The committee that follows `current` towards `registry`: registry members already in
/// `current` stay; newcomers join, in registry order, while the stayers alone still make a
/// quorum (`n - f`) of the result, and at least one joins. If no member stays, the current
/// ones stay until newcomers have joined, and then newcomers join only while the committee
/// stays within [`VALIDATORS_MAX`] (a whole committee of more than 22 replaced at once would
/// otherwise overflow it).
pub fn next_committee(current: &ValidatorSet, registry: &ValidatorSet) -> ValidatorSet {
    let mut staying: Vec<ValidatorEntry> = registry
        .members
        .0
        .iter()
        .filter(|v| current.contains(&v.key))
        .copied()
        .collect();
    if staying.is_empty() {
        staying.clone_from(&current.members.0);
    }
    let base = staying.len();
    for newcomer in registry
        .members
        .0
        .iter()
        .filter(|v| !current.contains(&v.key))
    {
        // A committee of fewer than four tolerates no fault, so it grows one newcomer at a
        // time: that newcomer must be online for the next epoch to make progress.
        let joined = staying.len() - base + 1;
        if joined > faults(staying.len() + 1).max(1) || staying.len() >= VALIDATORS_MAX {
            break;
        }
        staying.push(*newcomer);
    }
    let mut next = ValidatorSet::default();
    next.members.0 = staying;
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use consort_types::AccountId;

    fn set(ids: &[u8]) -> ValidatorSet {
        let mut set = ValidatorSet::default();
        for id in ids {
            set.members.0.push(ValidatorEntry {
                key: AccountId::new(commonware_cryptography::Signer::public_key(
                    &commonware_cryptography::ed25519::PrivateKey::from_seed(u64::from(*id)),
                )),
                address: ([127, 0, 0, 1], 9000 + u16::from(*id)).into(),
            });
        }
        set
    }

    fn ids(set: &ValidatorSet) -> Vec<u8> {
        // The port names the validator.
        set.members
            .0
            .iter()
            .map(|v| u8::try_from(v.address.port() - 9000).expect("small id"))
            .collect()
    }

    #[test]
    fn newcomers_join_only_while_the_stayers_alone_make_a_quorum() {
        let four = set(&[1, 2, 3, 4]);
        // One newcomer to four: 4 of 5 is a quorum.
        assert_eq!(
            ids(&next_committee(&four, &set(&[1, 2, 3, 4, 5]))),
            [1, 2, 3, 4, 5]
        );
        // Three newcomers at once: one now, the next two when the five may lose one more.
        let wanted = set(&[1, 2, 3, 4, 5, 6, 7]);
        let first = next_committee(&four, &wanted);
        assert_eq!(ids(&first), [1, 2, 3, 4, 5]);
        let second = next_committee(&first, &wanted);
        assert_eq!(ids(&second), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(next_committee(&second, &wanted), second);
        // Removals take effect at once; a swap is a removal and a newcomer.
        assert_eq!(ids(&next_committee(&four, &set(&[2, 3]))), [2, 3]);
        assert_eq!(
            ids(&next_committee(&four, &set(&[2, 3, 4, 9]))),
            [2, 3, 4, 9]
        );
    }

    #[test]
    fn small_committees_grow_one_at_a_time_and_a_full_replacement_waits() {
        let one = set(&[1]);
        let wanted = set(&[1, 2, 3]);
        let two = next_committee(&one, &wanted);
        assert_eq!(ids(&two), [1, 2]);
        assert_eq!(ids(&next_committee(&two, &wanted)), [1, 2, 3]);
        // Every member replaced: the old ones stay until one newcomer is in, then go.
        let replaced = set(&[7, 8, 9]);
        let step = next_committee(&set(&[1, 2, 3]), &replaced);
        assert_eq!(ids(&step), [1, 2, 3, 7]);
        assert_eq!(ids(&next_committee(&step, &replaced)), [7, 8]);
    }

    #[test]
    fn replacing_a_whole_committee_of_thirty_never_exceeds_validators_max() {
        let wanted = set(&(101..=130).collect::<Vec<u8>>());
        let mut committee = set(&(1..=30).collect::<Vec<u8>>());
        for _ in 0..64 {
            committee = next_committee(&committee, &wanted);
            assert!(
                committee.members.0.len() <= VALIDATORS_MAX,
                "a committee of {} exceeds VALIDATORS_MAX",
                committee.members.0.len()
            );
        }
        assert_eq!(ids(&committee), ids(&wanted), "the replacement completes");
    }
}
