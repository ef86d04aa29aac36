//! Main-chain address strings for a [`Network`]: segwit (bech32 / bech32m) and base58 forms.
//!
//! rust-bitcoin's `Address` knows only Bitcoin's prefixes, so Litecoin's (`rltc1…`, `L…`,
//! `M…`) are handled here with the `bech32` and `base58` crates it re-exports. Addresses are
//! user input (a peg-out destination), so decoding is bounded and checks the network.

use bitcoin::bech32::{self, Fe32, Hrp};
use bitcoin::hashes::Hash;
use bitcoin::script::{Script, ScriptBuf};
use bitcoin::{PubkeyHash, ScriptHash, WitnessProgram, WitnessVersion, base58};

use crate::network::Network;

/// The longest address string accepted: bech32's limit of 90 characters (base58 addresses
/// are shorter).
pub const ADDRESS_LENGTH_MAX: usize = 90;

/// Why an address string or output script was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Longer than [`ADDRESS_LENGTH_MAX`].
    #[error("address of {length} characters exceeds the limit of {max}")]
    TooLong {
        /// Characters given.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A bech32 address for another network (e.g. `tltc1…` on regtest, or a Bitcoin address
    /// on Litecoin).
    #[error("address prefix {found:?} is not this network's {expected:?}")]
    WrongNetwork {
        /// The prefix found.
        found: String,
        /// This network's segwit prefix.
        expected: &'static str,
    },
    /// A Litecoin MWEB address: it has no output script, so the main chain cannot be paid to
    /// it from a transparent transaction.
    #[error("MWEB addresses cannot receive a peg-out; use a bech32 ({expected}1…) address")]
    Mweb {
        /// This network's segwit prefix.
        expected: &'static str,
    },
    /// Neither a valid segwit address nor a base58 address of this network.
    #[error("not a valid address for this network: {reason}")]
    Invalid {
        /// What did not decode.
        reason: String,
    },
    /// The script has no address form (only witness programs are encoded here).
    #[error("script is not a witness program, so it has no segwit address")]
    NotWitnessProgram,
}

/// The segwit address of `script_pubkey` (a witness program) on `network`.
///
/// # Errors
/// [`AddressError::NotWitnessProgram`] for any other script.
pub fn segwit_address(network: &Network, script_pubkey: &Script) -> Result<String, AddressError> {
    let version = script_pubkey
        .witness_version()
        .ok_or(AddressError::NotWitnessProgram)?;
    // A witness program is `OP_n <push of 2..40 bytes>`: the program is everything after the
    // version opcode and the one-byte push length.
    let program = script_pubkey
        .as_bytes()
        .get(2..)
        .ok_or(AddressError::NotWitnessProgram)?;
    let hrp = Hrp::parse(network.bech32_hrp()).expect("network prefixes are valid bech32 hrps");
    let version = Fe32::try_from(version.to_num()).expect("witness versions are 0..=16");
    bech32::segwit::encode(hrp, version, program).map_err(|error| AddressError::Invalid {
        reason: error.to_string(),
    })
}

/// The output script an address on `network` pays to: segwit (any version) or base58
/// P2PKH / P2SH.
///
/// # Errors
/// [`AddressError`] for an address of another network, an MWEB address, or garbage.
pub fn script_pubkey_for_address(
    network: &Network,
    address: &str,
) -> Result<ScriptBuf, AddressError> {
    if address.len() > ADDRESS_LENGTH_MAX {
        return Err(AddressError::TooLong {
            length: address.len(),
            max: ADDRESS_LENGTH_MAX,
        });
    }
    let expected = network.bech32_hrp();
    let lowercase = address.to_ascii_lowercase();
    if lowercase.starts_with(&format!("{}mweb1", mweb_hrp_stem(expected))) {
        return Err(AddressError::Mweb { expected });
    }
    if lowercase.starts_with(&format!("{expected}1")) {
        return decode_segwit(address, expected);
    }
    match base58::decode_check(address) {
        Ok(payload) => decode_base58(network, &payload),
        Err(error) => match address.rsplit_once('1') {
            // Looks like bech32 with another prefix: say so rather than "bad base58".
            Some((prefix, _)) if bech32::segwit::decode(address).is_ok() => {
                Err(AddressError::WrongNetwork {
                    found: prefix.to_ascii_lowercase(),
                    expected,
                })
            }
            _ => Err(AddressError::Invalid {
                reason: error.to_string(),
            }),
        },
    }
}

/// `ltc` → `ltc`, `tltc` → `t`, `rltc` → `t`: Litecoin's MWEB prefixes are `ltcmweb` and
/// `tmweb`. For Bitcoin prefixes this yields strings no Bitcoin address starts with.
fn mweb_hrp_stem(hrp: &str) -> &str {
    match hrp {
        "ltc" => "ltc",
        "tltc" | "rltc" => "t",
        other => other,
    }
}

fn decode_segwit(address: &str, expected: &'static str) -> Result<ScriptBuf, AddressError> {
    let (hrp, version, program) =
        bech32::segwit::decode(address).map_err(|error| AddressError::Invalid {
            reason: error.to_string(),
        })?;
    if hrp.to_lowercase() != expected {
        return Err(AddressError::WrongNetwork {
            found: hrp.to_lowercase(),
            expected,
        });
    }
    let invalid = |reason: String| AddressError::Invalid { reason };
    let version =
        WitnessVersion::try_from(version.to_u8()).map_err(|error| invalid(error.to_string()))?;
    let program =
        WitnessProgram::new(version, &program).map_err(|error| invalid(error.to_string()))?;
    Ok(ScriptBuf::new_witness_program(&program))
}

fn decode_base58(network: &Network, payload: &[u8]) -> Result<ScriptBuf, AddressError> {
    let invalid = |reason: &str| AddressError::Invalid {
        reason: reason.into(),
    };
    let (prefix, hash) = payload
        .split_first()
        .ok_or_else(|| invalid("empty base58 payload"))?;
    let hash: [u8; 20] = hash
        .try_into()
        .map_err(|_| invalid("base58 payload is not a version byte and a 20-byte hash"))?;
    if *prefix == network.base58_p2pkh_prefix() {
        return Ok(ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(hash)));
    }
    if network.base58_p2sh_prefixes().contains(prefix) {
        return Ok(ScriptBuf::new_p2sh(&ScriptHash::from_byte_array(hash)));
    }
    Err(invalid("base58 version byte belongs to another network"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const MULTISIG_ADDRESS: &str =
        "rltc1qk5vq69xx5mj09e2rn6afjfvq47msg7pdc636tntrqudtks20ssdslfx0u8";

    #[test]
    fn a_litecoin_core_p2wsh_address_round_trips() {
        // From `createmultisig` on litecoind regtest (docs: MAINCHAIN.md 6.1).
        let network = Network::LITECOIN_REGTEST;
        let script = script_pubkey_for_address(&network, MULTISIG_ADDRESS).unwrap();
        assert!(script.is_p2wsh());
        assert_eq!(segwit_address(&network, &script).unwrap(), MULTISIG_ADDRESS);
        let upper = MULTISIG_ADDRESS.to_ascii_uppercase();
        assert_eq!(script_pubkey_for_address(&network, &upper).unwrap(), script);
    }

    #[test]
    fn bitcoin_addresses_decode_like_rust_bitcoin() {
        use std::str::FromStr;
        let cases = [
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        ];
        for text in cases {
            let expected = bitcoin::Address::from_str(text)
                .unwrap()
                .require_network(bitcoin::Network::Bitcoin)
                .unwrap()
                .script_pubkey();
            let ours = script_pubkey_for_address(&Network::BITCOIN_MAINNET, text).unwrap();
            assert_eq!(ours, expected, "{text}");
        }
    }

    #[test]
    fn litecoin_base58_addresses_use_litecoin_version_bytes() {
        let hash = [0x11; 20];
        for (network, prefix, expect_p2sh) in [
            (Network::LITECOIN_MAINNET, 48, false),
            (Network::LITECOIN_MAINNET, 50, true),
            (Network::LITECOIN_MAINNET, 5, true),
            (Network::LITECOIN_REGTEST, 111, false),
            (Network::LITECOIN_REGTEST, 58, true),
        ] {
            let mut payload = vec![prefix];
            payload.extend_from_slice(&hash);
            let text = base58::encode_check(&payload);
            let script = script_pubkey_for_address(&network, &text).unwrap();
            assert_eq!(script.is_p2sh(), expect_p2sh, "{text}");
            assert_eq!(script.is_p2pkh(), !expect_p2sh, "{text}");
        }
        let mut bitcoin_mainnet = vec![0];
        bitcoin_mainnet.extend_from_slice(&hash);
        let text = base58::encode_check(&bitcoin_mainnet);
        assert!(matches!(
            script_pubkey_for_address(&Network::LITECOIN_MAINNET, &text),
            Err(AddressError::Invalid { .. })
        ));
    }

    #[test]
    fn an_address_of_another_network_is_refused_by_name() {
        let error =
            script_pubkey_for_address(&Network::LITECOIN_MAINNET, MULTISIG_ADDRESS).unwrap_err();
        assert_eq!(
            error,
            AddressError::WrongNetwork {
                found: "rltc".into(),
                expected: "ltc"
            }
        );
        let error = script_pubkey_for_address(
            &Network::LITECOIN_MAINNET,
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        )
        .unwrap_err();
        assert!(
            matches!(error, AddressError::WrongNetwork { .. }),
            "{error}"
        );
    }

    #[test]
    fn mweb_addresses_and_garbage_are_refused() {
        let mweb = "tmweb1qqtxfh76abcdefghjklmnpqrstuvwxyz023456789acdefghjklmnpqrstuvwxyz0";
        assert_eq!(
            script_pubkey_for_address(&Network::LITECOIN_REGTEST, mweb),
            Err(AddressError::Mweb { expected: "rltc" })
        );
        assert!(matches!(
            script_pubkey_for_address(&Network::LITECOIN_REGTEST, "hello"),
            Err(AddressError::Invalid { .. })
        ));
        let mut broken = MULTISIG_ADDRESS.to_owned();
        broken.pop();
        broken.push('9');
        assert!(matches!(
            script_pubkey_for_address(&Network::LITECOIN_REGTEST, &broken),
            Err(AddressError::Invalid { .. })
        ));
        let long = "a".repeat(ADDRESS_LENGTH_MAX + 1);
        assert!(matches!(
            script_pubkey_for_address(&Network::LITECOIN_REGTEST, &long),
            Err(AddressError::TooLong { .. })
        ));
    }

    #[test]
    fn only_witness_programs_have_segwit_addresses() {
        let script = ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([1; 20]));
        assert_eq!(
            segwit_address(&Network::LITECOIN_REGTEST, &script),
            Err(AddressError::NotWitnessProgram)
        );
    }
}
