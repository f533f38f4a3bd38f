use super::*;
use crate::policy::{Category, Construct};

fn unknown(host: &str, construct: Construct) -> Finding {
    Finding::unattributed(construct, Reason::Unvetted, host.to_string())
}

fn vendor(id: &str, host: &str, outcome: Outcome) -> Finding {
    Finding {
        vendor: Some(id.to_string()),
        category: Some(Category::Support),
        construct: Construct::Script,
        outcome,
        host: host.to_string(),
    }
}

#[test]
fn hosts_are_recorded_as_registrable_domains_with_vendor_decision_and_route() {
    let inv = Inventory::new(100);
    let r = inv.record(
        Some("/patient/**"),
        &[
            vendor("zendesk", "static.zdassets.com", Outcome::FirstParty),
            vendor("zendesk", "ekr.zdassets.com", Outcome::FirstParty),
            unknown("px.tracker.example", Construct::Img),
            unknown("cdn.tracker.example", Construct::Script),
        ],
        100,
    );
    assert_eq!(r.new_unknown, 1);
    assert_eq!(r.entries, (1, 1));
    let json = inv.to_json();
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{json}");
    let zd = entries.iter().find(|e| e["vendor"] == "zendesk").unwrap();
    assert_eq!(zd["domain"], "zdassets.com");
    assert_eq!(zd["decision"], "first_party");
    assert_eq!(zd["route"], "/patient/**");
    assert_eq!(zd["count"], 2);
    assert_eq!(zd["constructs"]["script"], 2);
    let tr = entries.iter().find(|e| e["vendor"] == "unknown").unwrap();
    assert_eq!(tr["domain"], "tracker.example");
    assert_eq!(tr["decision"], "removed");
    assert_eq!(tr["constructs"], serde_json::json!({"img": 1, "script": 1}));
    assert_eq!(tr["reasons"], serde_json::json!({"unvetted": 2}));
    assert_eq!((tr["first_seen"].as_u64(), tr["last_seen"].as_u64()), (Some(100), Some(100)));
}

#[test]
fn first_and_last_seen_follow_the_clock() {
    let inv = Inventory::new(10);
    inv.record(None, &[unknown("a.example", Construct::Img)], 5);
    inv.record(None, &[unknown("a.example", Construct::Img)], 9);
    let e = &inv.to_json()["entries"][0];
    assert_eq!((e["first_seen"].as_u64(), e["last_seen"].as_u64(), e["count"].as_u64()), (Some(5), Some(9), Some(2)));
    assert_eq!(e["route"], serde_json::Value::Null);
}

#[test]
fn a_line_is_written_for_each_new_construct_of_an_entry_only() {
    let inv = Inventory::new(10);
    let r = inv.record(Some("/**"), &[unknown("a.example", Construct::Img), unknown("b.a.example", Construct::Img)], 1);
    assert_eq!(r.new_lines.len(), 1, "{:?}", r.new_lines);
    let line: serde_json::Value = serde_json::from_str(&r.new_lines[0]).unwrap();
    assert_eq!(line["domain"], "a.example");
    assert_eq!(line["construct"], "img");
    assert_eq!(line["kind"], "reference");
    assert!(inv.record(Some("/**"), &[unknown("a.example", Construct::Img)], 2).new_lines.is_empty());
    assert_eq!(inv.record(Some("/**"), &[unknown("a.example", Construct::Script)], 3).new_lines.len(), 1);
}

#[test]
fn findings_that_name_no_third_party_are_not_entries() {
    let inv = Inventory::new(10);
    inv.record(
        None,
        &[
            Finding::unattributed(Construct::Script, Reason::UnsafeUrl, "javascript".into()),
            Finding::unattributed(Construct::InlineScript, Reason::Unparseable, String::new()),
            Finding::unattributed(Construct::EventHandler, Reason::CspInline, String::new()),
        ],
        1,
    );
    assert!(inv.is_empty());
    // An inline script a vendor signature matched is that vendor's, with no host.
    let mut inline = vendor("google_tag_manager", "", Outcome::Removed(Reason::InlineSignature));
    inline.construct = Construct::InlineScript;
    inv.record(None, &[inline], 1);
    assert_eq!(inv.to_json()["entries"][0]["domain"], INLINE);
}

#[test]
fn ten_thousand_random_hosts_stay_within_the_bound_and_known_vendors_stay() {
    let inv = Inventory::new(DEFAULT_MAX_ENTRIES);
    inv.record(Some("/**"), &[vendor("zendesk", "static.zdassets.com", Outcome::FirstParty)], 1);
    // A pseudo-random sequence (xorshift), reproducible.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut evicted = 0;
    for i in 0..10_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = inv.record(Some("/**"), &[unknown(&format!("h{x:x}.example{}", i % 7), Construct::Img)], 2 + i);
        evicted += r.evicted;
        assert!(inv.len() <= DEFAULT_MAX_ENTRIES);
    }
    assert_eq!(inv.len(), DEFAULT_MAX_ENTRIES);
    // Every reference is still counted: in the table or in `other`.
    let json = inv.to_json();
    let in_table: u64 = json["entries"].as_array().unwrap().iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(in_table + inv.other().count, 10_001);
    assert_eq!(json["other"]["entries_folded"].as_u64(), Some(evicted));
    assert!(json["entries"].as_array().unwrap().iter().any(|e| e["vendor"] == "zendesk"), "the vendor entry stays");
    assert!(json.to_string().len() < 400 * DEFAULT_MAX_ENTRIES, "the JSON is bounded too");
}

#[test]
fn a_frequent_unknown_host_outlives_a_flood_of_one_off_hosts() {
    let inv = Inventory::new(50);
    for t in 0..5 {
        inv.record(Some("/**"), &[unknown("steady.example", Construct::Script)], t);
    }
    for i in 0..5_000u64 {
        inv.record(Some("/**"), &[unknown(&format!("x{i}.example"), Construct::Img)], 10 + i);
    }
    let json = inv.to_json();
    let steady = json["entries"].as_array().unwrap().iter().find(|e| e["domain"] == "steady.example");
    assert_eq!(steady.map(|e| e["count"].as_u64()), Some(Some(5)), "{json}");
}

#[test]
fn the_file_sink_appends_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.jsonl");
    let file = JsonLinesFile::open(&path).unwrap();
    file.append(&["{\"a\":1}".to_string(), "{\"b\":2}".to_string()]).unwrap();
    file.append(&[]).unwrap();
    file.append(&["{\"c\":3}".to_string()]).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
}

#[test]
fn one_chunk_of_ten_thousand_made_up_hosts_folds_a_bounded_number_of_entries() {
    let inv = Inventory::new(100);
    let fill: Vec<Finding> = (0..100).map(|i| unknown(&format!("f{i}.example"), Construct::Img)).collect();
    inv.record(Some("/**"), &fill, 1);
    let flood: Vec<Finding> = (0..10_000).map(|i| unknown(&format!("x{i}.example"), Construct::Img)).collect();
    let r = inv.record(Some("/**"), &flood, 2);
    assert_eq!(r.evicted, MAX_FOLDS_PER_RECORD);
    assert_eq!(inv.len(), 100);
    let json = inv.to_json();
    let in_table: u64 = json["entries"].as_array().unwrap().iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(in_table + inv.other().count, 10_100, "every reference is counted somewhere");
    // 32 folded entries (one reference each) and the 9,968 new hosts that found no room.
    assert_eq!(inv.other().count, MAX_FOLDS_PER_RECORD + (10_000 - MAX_FOLDS_PER_RECORD));
    assert_eq!(json["other"]["entries_folded"].as_u64(), Some(MAX_FOLDS_PER_RECORD));
}
