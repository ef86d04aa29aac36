//! `docs/limits.md` stays true: each row's value is the value of the constant it names, each row
//! names a limit this test knows, and each `pub const *_MAX*` in the crates has a row.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

/// Every documented limit by the name its row shows, with its value in the row's unit.
fn limits() -> BTreeMap<&'static str, u64> {
    use consort_chain::{mempool, pipeline, validator};
    use consort_mainchain::{address, federation, keystore, merkle, rpc, spend};
    use consort_node::{api, gossip, observer, serve};
    use consort_state::{self as state, store};
    use consort_types::{changes, commerce, genesis, gov, limits, peg, receipt, sealed};
    let finality_bucket_largest = *observer::FINALITY_BUCKETS_MS
        .last()
        .expect("finality buckets are not empty");
    BTreeMap::from([
        ("TX_SIZE_MAX", bytes(limits::TX_SIZE_MAX)),
        ("BLOCK_SIZE_MAX", bytes(limits::BLOCK_SIZE_MAX)),
        ("GOSSIP_SIZE_MAX", bytes(limits::GOSSIP_SIZE_MAX)),
        ("BLOCK_TXS_MAX", bytes(limits::BLOCK_TXS_MAX)),
        ("GENESIS_ACCOUNTS_MAX", bytes(limits::GENESIS_ACCOUNTS_MAX)),
        ("VALIDATORS_MAX", bytes(limits::VALIDATORS_MAX)),
        ("NONCE_WINDOW_MAX", limits::NONCE_WINDOW_MAX),
        ("BLOCK_FUTURE_DRIFT_MS", limits::BLOCK_FUTURE_DRIFT_MS),
        ("MEMPOOL_TXS_MAX", bytes(mempool::MEMPOOL_TXS_MAX)),
        (
            "REJECTIONS_REMEMBERED_MAX",
            bytes(mempool::REJECTIONS_REMEMBERED_MAX),
        ),
        ("STATE_VALUE_SIZE", bytes(state::STATE_VALUE_SIZE)),
        ("RECORD_SIZE_MAX", bytes(store::RECORD_SIZE_MAX)),
        ("SPARE_MAPS_MAX", bytes(store::SPARE_MAPS_MAX)),
        ("SPARE_MAP_CHUNKS_MAX", bytes(store::SPARE_MAP_CHUNKS_MAX)),
        (
            "PAGE_CACHE_MIB_DEFAULT",
            u64::from(validator::PAGE_CACHE_MIB_DEFAULT),
        ),
        (
            "PAGE_CACHE_MIB_MIN",
            u64::from(validator::PAGE_CACHE_MIB_MIN),
        ),
        (
            "PAGE_CACHE_MIB_MAX",
            u64::from(validator::PAGE_CACHE_MIB_MAX),
        ),
        ("GOSSIP_BATCH_MAX", bytes(gossip::GOSSIP_BATCH_MAX)),
        (
            "GOSSIP_MESSAGES_PER_ROUND_MAX",
            bytes(gossip::GOSSIP_MESSAGES_PER_ROUND_MAX),
        ),
        ("REQUEST_BODY_MAX", bytes(api::REQUEST_BODY_MAX)),
        (
            "EMPTY_BLOCK_INTERVAL_MS_DEFAULT",
            genesis::EMPTY_BLOCK_INTERVAL_MS_DEFAULT,
        ),
        (
            "EMPTY_BLOCK_INTERVAL_MS_MIN",
            genesis::EMPTY_BLOCK_INTERVAL_MS_MIN,
        ),
        (
            "EMPTY_BLOCK_INTERVAL_MS_MAX",
            genesis::EMPTY_BLOCK_INTERVAL_MS_MAX,
        ),
        ("MEMPOOL_BYTES_MAX", bytes(mempool::MEMPOOL_BYTES_MAX)),
        ("SENDER_BYTES_MAX", bytes(mempool::SENDER_BYTES_MAX)),
        ("NONCE_GAP_BLOCKS_MAX", mempool::NONCE_GAP_BLOCKS_MAX),
        (
            "ELIGIBILITY_CACHE_MAX",
            bytes(mempool::ELIGIBILITY_CACHE_MAX),
        ),
        (
            "ELIGIBILITY_READS_MAX",
            bytes(mempool::ELIGIBILITY_READS_MAX),
        ),
        (
            "ELIGIBILITY_LINKS_MAX",
            bytes(mempool::ELIGIBILITY_LINKS_MAX),
        ),
        ("DECODED_KEYS_MAX", bytes(pipeline::DECODED_KEYS_MAX)),
        (
            "STALE_READ_RETRIES_MAX",
            u64::from(pipeline::STALE_READ_RETRIES_MAX),
        ),
        ("FAILURE_CODE_MAX", bytes(receipt::FAILURE_CODE_MAX)),
        (
            "TX_OUT_PROOF_SIZE_MAX_BYTES",
            bytes(merkle::TX_OUT_PROOF_SIZE_MAX_BYTES),
        ),
        (
            "RESPONSE_SIZE_MAX_BYTES_DEFAULT",
            bytes(rpc::RESPONSE_SIZE_MAX_BYTES_DEFAULT),
        ),
        (
            "REQUEST_TIMEOUT_DEFAULT",
            secs(rpc::REQUEST_TIMEOUT_DEFAULT),
        ),
        (
            "IDLE_CONNECTIONS_MAX_DEFAULT",
            bytes(rpc::IDLE_CONNECTIONS_MAX_DEFAULT),
        ),
        (
            "IDLE_CONNECTION_TIMEOUT",
            secs(rpc::IDLE_CONNECTION_TIMEOUT),
        ),
        ("BATCH_TXS_MAX", bytes(api::BATCH_TXS_MAX)),
        ("BATCH_BODY_MAX", bytes(api::BATCH_BODY_MAX)),
        ("BLOCKING_TASKS_MAX", bytes(api::BLOCKING_TASKS_MAX)),
        ("BLOCKING_WAIT_MAX_MS", api::BLOCKING_WAIT_MAX_MS),
        ("EVENT_SUBSCRIBERS_MAX", bytes(api::EVENT_SUBSCRIBERS_MAX)),
        ("EVENT_SEND_TIMEOUT", api::EVENT_SEND_TIMEOUT.as_secs()),
        ("API_CONNECTIONS_MAX", bytes(serve::API_CONNECTIONS_MAX)),
        ("HEADER_READ_TIMEOUT_MS", serve::HEADER_READ_TIMEOUT_MS),
        ("WRITE_STALL_TIMEOUT_MS", serve::WRITE_STALL_TIMEOUT_MS),
        ("EVENTS_BUFFERED", bytes(observer::EVENTS_BUFFERED)),
        ("FINALITY_BUCKETS_MS", finality_bucket_largest),
        ("ORGS_MAX", bytes(gov::ORGS_MAX)),
        ("ASSETS_MAX", bytes(gov::ASSETS_MAX)),
        ("OPEN_PROPOSALS_MAX", bytes(gov::OPEN_PROPOSALS_MAX)),
        (
            "OPEN_PROPOSALS_PER_ORG_MAX",
            bytes(gov::OPEN_PROPOSALS_PER_ORG_MAX),
        ),
        (
            "ROTATION_DELAY_BLOCKS_DEFAULT",
            gov::ROTATION_DELAY_BLOCKS_DEFAULT,
        ),
        (
            "ROTATIONS_DUE_PER_BLOCK_MAX",
            bytes(gov::ROTATIONS_DUE_PER_BLOCK_MAX),
        ),
        ("ROTATION_HOPS_MAX", bytes(gov::ROTATION_HOPS_MAX)),
        ("RECIPIENTS_MAX", bytes(sealed::RECIPIENTS_MAX)),
        ("PLAINTEXT_MAX", bytes(sealed::PLAINTEXT_MAX)),
        ("CIPHERTEXT_MAX", bytes(sealed::CIPHERTEXT_MAX)),
        ("LABEL_MAX", bytes(sealed::LABEL_MAX)),
        ("RELAY_HEADERS_MAX", bytes(peg::RELAY_HEADERS_MAX)),
        (
            "IGNORED_DEPOSITS_MAX",
            bytes(consort_watcher::IGNORED_DEPOSITS_MAX),
        ),
        ("WATCH_LIST_MAX", bytes(consort_node::peg::WATCH_LIST_MAX)),
        (
            "WATCH_ADDS_PER_SECOND_MAX",
            u64::from(consort_node::peg::WATCH_ADDS_PER_SECOND_MAX),
        ),
        (
            "RELAY_STANDBY_ROUNDS",
            u64::from(consort_watcher::RELAY_STANDBY_ROUNDS),
        ),
        ("CLAIM_TX_SIZE_MAX", bytes(peg::CLAIM_TX_SIZE_MAX)),
        ("TX_PROOF_SIZE_MAX", bytes(peg::TX_PROOF_SIZE_MAX)),
        ("PAYOUT_SCRIPT_SIZE_MAX", bytes(peg::PAYOUT_SCRIPT_SIZE_MAX)),
        ("PEG_SIGNATURE_SIZE_MAX", bytes(peg::PEG_SIGNATURE_SIZE_MAX)),
        ("BATCH_INPUTS_MAX", bytes(peg::BATCH_INPUTS_MAX)),
        ("BATCH_REQUESTS_MAX", bytes(peg::BATCH_REQUESTS_MAX)),
        ("PENDING_CLAIMS_MAX", bytes(peg::PENDING_CLAIMS_MAX)),
        ("SELECTION_COINS_MAX", bytes(peg::SELECTION_COINS_MAX)),
        (
            "BATCH_SCAN_REQUESTS_MAX",
            bytes(peg::BATCH_SCAN_REQUESTS_MAX),
        ),
        ("CLAIM_OUTPUTS_MAX", bytes(peg::CLAIM_OUTPUTS_MAX)),
        ("BATCH_BUMPS_MAX", bytes(peg::BATCH_BUMPS_MAX)),
        ("FEDERATION_MEMBERS_MAX", bytes(peg::FEDERATION_MEMBERS_MAX)),
        ("FEDERATIONS_LIVE_MAX", u64::from(peg::FEDERATIONS_LIVE_MAX)),
        (
            "BUMP_AFTER_EXTRA_BLOCKS",
            u64::from(peg::BUMP_AFTER_EXTRA_BLOCKS),
        ),
        (
            "FEDERATION_KEYS_MAX",
            bytes(federation::FEDERATION_KEYS_MAX),
        ),
        (
            "WITNESS_SCRIPT_SIZE_MAX_BYTES",
            bytes(federation::WITNESS_SCRIPT_SIZE_MAX_BYTES),
        ),
        // The recovery delay is bounded by its type (a BIP 68 block count), not a constant.
        ("recovery delay", u64::from(u16::MAX)),
        ("SPEND_INPUTS_MAX", bytes(spend::SPEND_INPUTS_MAX)),
        ("SPEND_PAYMENTS_MAX", bytes(spend::SPEND_PAYMENTS_MAX)),
        ("FEE_RATE_MAX_SAT_PER_VB", spend::FEE_RATE_MAX_SAT_PER_VB),
        (
            "SIGNATURE_SIZE_MAX_BYTES",
            bytes(spend::SIGNATURE_SIZE_MAX_BYTES),
        ),
        ("ADDRESS_LENGTH_MAX", bytes(address::ADDRESS_LENGTH_MAX)),
        (
            "KEYSTORE_FILE_SIZE_MAX_BYTES",
            keystore::KEYSTORE_FILE_SIZE_MAX_BYTES,
        ),
        (
            "KDF_MEMORY_MIN_KIB",
            u64::from(keystore::KDF_MEMORY_MIN_KIB),
        ),
        (
            "KDF_MEMORY_MAX_KIB",
            u64::from(keystore::KDF_MEMORY_MAX_KIB),
        ),
        (
            "KDF_ITERATIONS_MAX",
            u64::from(keystore::KDF_ITERATIONS_MAX),
        ),
        (
            "KDF_PARALLELISM_MAX",
            u64::from(keystore::KDF_PARALLELISM_MAX),
        ),
        ("TITLE_MAX", bytes(commerce::TITLE_MAX)),
        ("DESCRIPTION_MAX", bytes(commerce::DESCRIPTION_MAX)),
        ("CATEGORY_MAX", bytes(commerce::CATEGORY_MAX)),
        ("ATTRIBUTES_MAX", bytes(commerce::ATTRIBUTES_MAX)),
        ("NAME_MAX", bytes(commerce::NAME_MAX)),
        ("VALUE_MAX", bytes(commerce::VALUE_MAX)),
        ("IMAGES_MAX", bytes(commerce::IMAGES_MAX)),
        ("URL_MAX", bytes(commerce::URL_MAX)),
        ("VARIANTS_MAX", bytes(commerce::VARIANTS_MAX)),
        ("ORDER_LINES_MAX", bytes(commerce::ORDER_LINES_MAX)),
        ("LINE_QUANTITY_MAX", u64::from(commerce::LINE_QUANTITY_MAX)),
        ("ACCEPT_ORDERS_MAX", bytes(commerce::ACCEPT_ORDERS_MAX)),
        (
            "KEYS_READ_PER_CALL_MAX",
            bytes(consort_commerce::KEYS_READ_PER_CALL_MAX),
        ),
        (
            "KEYS_AHEAD_PER_BLOCK_MAX",
            bytes(consort_commerce::KEYS_AHEAD_PER_BLOCK_MAX),
        ),
        ("CARRIER_EVENTS_MAX", bytes(commerce::CARRIER_EVENTS_MAX)),
        ("STOCK_CHANGES_MAX", bytes(commerce::STOCK_CHANGES_MAX)),
        ("SHIPMENTS_MAX", u64::from(commerce::SHIPMENTS_MAX)),
        ("SHIP_ORDERS_MAX", bytes(commerce::SHIP_ORDERS_MAX)),
        ("REASON_MAX", bytes(commerce::REASON_MAX)),
        ("LOCATION_MAX", bytes(commerce::LOCATION_MAX)),
        ("TRACKING_MAX", bytes(commerce::TRACKING_MAX)),
        (
            "AFTER_SALES_PER_ORDER_MAX",
            u64::from(commerce::AFTER_SALES_PER_ORDER_MAX),
        ),
        ("REVIEW_TEXT_MAX", bytes(commerce::REVIEW_TEXT_MAX)),
        ("REVIEW_PHOTOS_MAX", bytes(commerce::REVIEW_PHOTOS_MAX)),
        (
            "REVIEW_VERSIONS_MAX",
            u64::from(commerce::REVIEW_VERSIONS_MAX),
        ),
        ("DUE_PER_BLOCK_MAX", commerce::DUE_PER_BLOCK_MAX),
        ("CHANGE_VALUE_MAX", bytes(changes::CHANGE_VALUE_MAX)),
        (
            "CHANGES_PER_BLOCK_MAX",
            bytes(changes::CHANGES_PER_BLOCK_MAX),
        ),
        (
            "PAGE_SIZE_MAX",
            bytes(consort_indexer::search::PAGE_SIZE_MAX),
        ),
        (
            "RESULT_DEPTH_MAX",
            bytes(consort_indexer::search::RESULT_DEPTH_MAX),
        ),
        (
            "QUERY_TEXT_MAX",
            bytes(consort_indexer::search::QUERY_TEXT_MAX),
        ),
        (
            "STOCK_SUMMED_MAX",
            u64::try_from(consort_indexer::search::STOCK_SUMMED_MAX).expect("positive"),
        ),
        ("COMPARE_MAX", bytes(consort_indexer::api::COMPARE_MAX)),
        (
            "UPDATE_STREAMS_MAX",
            bytes(consort_indexer::api::UPDATE_STREAMS_MAX),
        ),
        (
            "UPDATE_STREAMS_PER_ACCOUNT_MAX",
            bytes(consort_indexer::api::UPDATE_STREAMS_PER_ACCOUNT_MAX),
        ),
        (
            "SEARCHES_RUNNING_MAX",
            bytes(consort_indexer::api::SEARCHES_RUNNING_MAX),
        ),
        ("TIMELINE_MAX", bytes(consort_indexer::views::TIMELINE_MAX)),
        (
            "STREAM_BLOCK_ORDERS_MAX",
            bytes(consort_indexer::views::STREAM_BLOCK_ORDERS_MAX),
        ),
        (
            "CART_LINES_MAX",
            bytes(consort_indexer::carts::CART_LINES_MAX),
        ),
        (
            "CART_BODY_MAX",
            bytes(consort_indexer::carts::CART_BODY_MAX),
        ),
        (
            "CART_LINE_AGE_DAYS_MAX",
            consort_indexer::carts::CART_LINE_AGE_DAYS_MAX,
        ),
        (
            "CART_LINES_TOTAL_MAX",
            bytes(consort_indexer::carts::CART_LINES_TOTAL_MAX),
        ),
        (
            "DUE_SECONDS_PER_BLOCK_MAX",
            commerce::DUE_SECONDS_PER_BLOCK_MAX,
        ),
        ("FEE_RATE_BP_MAX", u64::from(commerce::FEE_RATE_BP_MAX)),
    ])
}

/// A `usize` limit (a count or a size) as the doc's number.
fn bytes(value: usize) -> u64 {
    u64::try_from(value).expect("a limit fits in u64")
}

/// A duration limit as the doc's number of seconds.
fn secs(value: Duration) -> u64 {
    assert_eq!(
        value.subsec_nanos(),
        0,
        "documented durations are whole seconds"
    );
    value.as_secs()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One row of the table: the name column without backticks, whether it named a constant,
/// the leading number of the value column, and the file it points to.
struct Row {
    name: String,
    constant: bool,
    value: Option<u64>,
    file: String,
}

fn rows(doc: &str) -> Vec<Row> {
    doc.lines()
        .filter_map(|line| line.trim().strip_prefix('|'))
        .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 3 && cells[0] != "name" && !cells[0].starts_with("---"))
        .map(|cells| {
            let constant = cells[0].starts_with('`') && cells[0].ends_with('`');
            let number: String = cells[1]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(char::is_ascii_digit)
                .collect();
            Row {
                name: cells[0].trim_matches('`').to_string(),
                constant,
                value: number.parse().ok(),
                file: cells[2].trim_matches('`').to_string(),
            }
        })
        .collect()
}

fn read_doc() -> String {
    std::fs::read_to_string(repository().join("docs/limits.md"))
        .expect("docs/limits.md is readable")
}

#[test]
fn every_documented_limit_matches_its_constant() {
    let known = limits();
    let rows = rows(&read_doc());
    assert!(rows.len() >= known.len(), "docs/limits.md has too few rows");
    let mut wrong = Vec::new();
    for row in &rows {
        let Some(&value) = known.get(row.name.as_str()) else {
            wrong.push(format!(
                "`{}` has a row but this test does not know it: add it to `limits()` in {}",
                row.name,
                file!()
            ));
            continue;
        };
        match row.value {
            None => wrong.push(format!(
                "`{}`: the value column must start with the exact number ({value})",
                row.name
            )),
            Some(documented) if documented != value => wrong.push(format!(
                "`{}`: docs/limits.md says {documented}, the code says {value}",
                row.name
            )),
            Some(_) => {}
        }
        let source = std::fs::read_to_string(repository().join(&row.file)).unwrap_or_default();
        if row.constant && !source.contains(&format!("const {}:", row.name)) {
            wrong.push(format!("`{}` is not defined in {}", row.name, row.file));
        }
    }
    for name in known.keys() {
        if !rows.iter().any(|row| row.name == *name) {
            wrong.push(format!(
                "`{name}` is checked here but has no row in docs/limits.md"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/limits.md has drifted:\n{}",
        wrong.join("\n")
    );
}

/// The `pub const` names in `.rs` files under `dir` that look like limits (`*_MAX*`).
fn limit_constants(dir: &std::path::Path, found: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).expect("crate directories are readable");
    for entry in entries.map(|e| e.expect("directory entry")) {
        let path = entry.path();
        if path.is_dir() {
            limit_constants(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).expect("source is readable");
            for line in source.lines() {
                let Some(rest) = line.trim().strip_prefix("pub const ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name.contains("_MAX") {
                    found.push((name, path.clone()));
                }
            }
        }
    }
}

#[test]
fn every_limit_constant_in_the_crates_has_a_row() {
    let known = limits();
    let mut found = Vec::new();
    limit_constants(&repository().join("crates"), &mut found);
    assert!(found.len() > 10, "found limit constants: {found:?}");
    let missing: Vec<String> = found
        .into_iter()
        .filter(|(name, _)| !known.contains_key(name.as_str()))
        .map(|(name, path)| format!("{name} ({})", path.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "limits without a row in docs/limits.md (and in this test's `limits()`): {missing:?}"
    );
}
