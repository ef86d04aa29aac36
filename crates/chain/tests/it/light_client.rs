//! The peg's light client started from a checkpoint on a real network, across a difficulty
//! retarget whose rule reads a header before the checkpoint: Bitcoin mainnet at 32256 (its
//! first difficulty change) and 687456, Litecoin mainnet at 1957536 (where the rule reads the
//! block before the period's first, 2017 back). The checkpoint carries that timestamp and the
//! recent ones the median-time-past rule reads.
//!
//! Sources of the real headers: Bitcoin 30240/32255/32256 as in `consort-mainchain`'s header
//! tests; Bitcoin 685440..687456 rebuilt from `Near-One/btc-light-client-contract`
//! (`contract/tests/data/blocks_headers_685440-687456_mainnet.json`, every header re-hashed to
//! its recorded hash; heights pinned by Electrum's `checkpoints.json`); Litecoin 1957535/1957536
//! from `horizontalsystems/bitcoin-kit-android` (`MainNetLitecoin.checkpoint`), and the
//! timestamp of 1955519 from `pooler/electrum-ltc` (`checkpoints.json`, entry 969).

use super::peg::{Ledger, genesis, on_tokio, peg_error, validator};
use consort_types::{
    Call,
    codec_util::{Blob, List},
    peg::{Checkpoint, MainTip, PegError, PeriodStart},
    state_key::peg as key,
};

// Bitcoin mainnet headers (the same vectors as `consort-mainchain`'s header tests, where their
// hashes are checked against the known block hashes).
const BITCOIN_30240: &str = "01000000e6bf7fd7f7790a63786faa878d0dc7fd8f2ff365732e45862c66075100000000700d342f65c7b6834dffb615358a1897016f0448913372190cbe3d27a4b53355b1512b4bffff001dbfb02519";
const BITCOIN_32255: &str = "0100000049c1daab3b6536ff1b2633c3a316a6e06ec287676cdeec4ca7baae6b00000000ac10b36b8f354b3353207de15940a5edbc05bb8364af75b4b5409e7823f2b48923ec3a4bffff001dbd5fa412";
const BITCOIN_32256: &str = "010000004b0360d834a330ec7833e30e1f523ee05a0793361e29a73421964f980000000027b64a020af294e903feed93768705336a20090612a043f47af462a2f5e5b564f8ee3a4b6ad8001dd3a43707";

fn raw(hex_text: &str) -> [u8; 80] {
    hex::decode(hex_text)
        .expect("hex")
        .try_into()
        .expect("80 bytes")
}

fn time_of(header: &[u8; 80]) -> u32 {
    u32::from_le_bytes(header[68..72].try_into().expect("4 bytes"))
}

/// A Bitcoin mainnet peg whose light client starts at block 32255.
fn mainnet_genesis(period_start: bool) -> consort_types::Genesis {
    let mut genesis = genesis();
    let peg = genesis.peg.as_mut().expect("peg");
    peg.network = "bitcoin-mainnet".into();
    peg.asset = "BTC".parse().expect("asset");
    let checkpoint = raw(BITCOIN_32255);
    let time = time_of(&checkpoint);
    peg.checkpoint = Some(Checkpoint {
        height: 32_255,
        header: Blob(checkpoint.to_vec()),
        chainwork: Blob(vec![0; 32]),
        // Ten minutes apart before it (what the median-time-past rule reads; any times at
        // or below the checkpoint's give the same median here).
        recent_times: (1..=10).rev().map(|i| time - 600 * i).collect(),
        period_start: period_start.then(|| PeriodStart {
            height: 30_240,
            time: time_of(&raw(BITCOIN_30240)),
        }),
    });
    genesis
}

async fn relay(ledger: &mut Ledger, header: [u8; 80]) -> Result<(), consort_types::TxError> {
    ledger
        .submit(
            &validator(0),
            Call::RelayHeaders {
                headers: List(vec![header]),
            },
        )
        .await
}

#[test]
fn a_mainnet_checkpoint_carries_what_the_first_retarget_after_it_reads() {
    on_tokio(|context| async move {
        let mut ledger = Ledger::with_genesis(context, mainnet_genesis(true)).await;
        let child = raw(BITCOIN_32256);

        // The wrong retarget: the parent's bits carried over.
        let mut wrong_bits = child;
        wrong_bits[72..76].copy_from_slice(&raw(BITCOIN_32255)[72..76]);
        let error = peg_error(relay(&mut ledger, wrong_bits).await);
        assert!(
            matches!(&error, PegError::BadHeader { reason, .. } if reason.contains("difficulty rule requires")),
            "{error:?}"
        );

        // A timestamp at the median time past.
        let mut stale = child;
        let median = time_of(&raw(BITCOIN_32255)) - 600 * 5;
        stale[68..72].copy_from_slice(&median.to_le_bytes());
        let error = peg_error(relay(&mut ledger, stale).await);
        assert!(
            matches!(error, PegError::TimeTooOld { median: m, .. } if m == median),
            "{error:?}"
        );

        // The real block 32256: the new bits follow from the period's timespan.
        relay(&mut ledger, child).await.expect("block 32256 relays");
        let tip: MainTip = ledger.read(&key::tip()).await.expect("tip");
        assert_eq!(tip.height, 32_256);
        Ok(())
    });
}

#[test]
fn without_the_period_start_the_retarget_is_refused_not_guessed() {
    on_tokio(|context| async move {
        let mut ledger = Ledger::with_genesis(context, mainnet_genesis(false)).await;
        let error = peg_error(relay(&mut ledger, raw(BITCOIN_32256)).await);
        assert!(
            matches!(&error, PegError::BadHeader { reason, .. } if reason.contains("30240")),
            "{error:?}"
        );
        let tip: MainTip = ledger.read(&key::tip()).await.expect("tip");
        assert_eq!(tip.height, 32_255, "nothing changed");
        Ok(())
    });
}

/// A peg on `network` whose light client starts at `checkpoint` (raw header, height).
fn checkpoint_genesis(
    network: &str,
    checkpoint: (&str, u32),
    recent_times: Vec<u32>,
    period_start: Option<PeriodStart>,
) -> consort_types::Genesis {
    let mut genesis = genesis();
    let peg = genesis.peg.as_mut().expect("peg");
    peg.network = network.into();
    peg.checkpoint = Some(Checkpoint {
        height: checkpoint.1,
        header: Blob(raw(checkpoint.0).to_vec()),
        chainwork: Blob(vec![0; 32]),
        recent_times,
        period_start,
    });
    genesis
}

// Bitcoin mainnet 687455 and 687456 (a retarget from 0x170d5f7b to 0x170e1ef9 over 1,277,260
// s), the timestamps of 687445..687454 and of the period's first block, 685440.
const BITCOIN_687455: &str = "04e0ff27ffeb8e5c20a63a4a739c5c3a56886635584697a70ef20a0000000000000000004fee981c6739fd642e689521a3ab194a7bd0904867f6419c6948f29e9bbed2003d65c6607b5f0d17f4aff423";
const BITCOIN_687456: &str = "040000207346ca53de43c0a2176e8a12f3bf1788613b892844460100000000000000000018c096ec291c41b8192048a22398bcbcb238fb5e52a4a5c37ca318a536fff92e7465c660f91e0e175f89e127";
const BITCOIN_687445_TO_687454_TIMES: [u32; 10] = [
    1_623_607_526,
    1_623_608_171,
    1_623_609_056,
    1_623_609_167,
    1_623_609_946,
    1_623_610_246,
    1_623_613_511,
    1_623_613_853,
    1_623_613_863,
    1_623_613_911,
];
const BITCOIN_685440_TIME: u32 = 1_622_337_521;

#[test]
fn bitcoin_mainnet_687456_retargets_from_a_checkpoint_with_the_real_median_time_past() {
    on_tokio(|context| async move {
        let genesis = checkpoint_genesis(
            "bitcoin-mainnet",
            (BITCOIN_687455, 687_455),
            BITCOIN_687445_TO_687454_TIMES.to_vec(),
            Some(PeriodStart {
                height: 685_440,
                time: BITCOIN_685440_TIME,
            }),
        );
        let mut ledger = Ledger::with_genesis(context, genesis).await;
        let child = raw(BITCOIN_687456);
        // The median of 687445..687455's timestamps is 687450's.
        let median: u32 = 1_623_610_246;
        let mut stale = child;
        stale[68..72].copy_from_slice(&median.to_le_bytes());
        let error = peg_error(relay(&mut ledger, stale).await);
        assert!(
            matches!(error, PegError::TimeTooOld { median: m, .. } if m == median),
            "{error:?}"
        );
        let mut wrong_bits = child;
        wrong_bits[72..76].copy_from_slice(&raw(BITCOIN_687455)[72..76]);
        let error = peg_error(relay(&mut ledger, wrong_bits).await);
        assert!(
            matches!(&error, PegError::BadHeader { reason, .. } if reason.contains("0x170e1ef9")),
            "{error:?}"
        );
        relay(&mut ledger, child)
            .await
            .expect("block 687456 relays");
        let tip: MainTip = ledger.read(&key::tip()).await.expect("tip");
        assert_eq!(tip.height, 687_456);
        Ok(())
    });
}

// Litecoin mainnet 1957535 and 1957536 (0x1a0245ad to 0x1a023097 over 291,439 s), and the
// timestamp of 1955519: Litecoin's rule goes back 2016 blocks from 1957535, one further than
// Bitcoin's.
const LITECOIN_1957535: &str = "000000204747c637c3964edf68ca292e5ace76c6622b2f15a2d376d0b5a2b73e89372466136bf3b197726c9f57d60653c6503f6209158eadc43eacea1d75ee844494feaa8ca0c75fad45021aa7e6f5c9";
const LITECOIN_1957536: &str = "0000002073d25b3069f9f410f9fd399bdb5d3db4ae3de7f568bc75357579a806dd536784d907251f2744dce132b17c22e2862cf9dbc7508650a2be13f53c6bb9177ae71621a1c75f9730021adabc2830";
const LITECOIN_1955519_TIME: u32 = 1_606_626_845;

fn litecoin_genesis(period_start: u32) -> consort_types::Genesis {
    checkpoint_genesis(
        "litecoin-mainnet",
        (LITECOIN_1957535, 1_957_535),
        Vec::new(),
        Some(PeriodStart {
            height: period_start,
            time: LITECOIN_1955519_TIME,
        }),
    )
}

#[test]
fn litecoin_mainnet_1957536_retargets_from_the_block_before_the_period_start() {
    on_tokio(|context| async move {
        let mut ledger = Ledger::with_genesis(context, litecoin_genesis(1_955_519)).await;
        relay(&mut ledger, raw(LITECOIN_1957536))
            .await
            .expect("block 1957536 relays (scrypt proof of work, retargeted bits)");
        let tip: MainTip = ledger.read(&key::tip()).await.expect("tip");
        assert_eq!(tip.height, 1_957_536);
        Ok(())
    });
}

#[test]
fn litecoin_mainnet_retarget_reads_2017_back_not_bitcoins_2016() {
    on_tokio(|context| async move {
        // Given the first block of the period (Bitcoin's rule), the retarget asks for the one
        // before it.
        let mut ledger = Ledger::with_genesis(context, litecoin_genesis(1_955_520)).await;
        let error = peg_error(relay(&mut ledger, raw(LITECOIN_1957536)).await);
        assert!(
            matches!(&error, PegError::BadHeader { reason, .. } if reason.contains("1955519")),
            "{error:?}"
        );
        Ok(())
    });
}
