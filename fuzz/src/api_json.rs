//! Target `api_json`: a control API request body (JSON, from the CLI, the desktop app or
//! anything that can open the socket) decoded into every request DTO in turn, as the router's
//! `Json` extractor does (`serde_json::from_slice`); then the first checks the node runs on
//! what decoded (share policy, time arguments).
//!
//! Asserts: no panic; a body that decodes re-encodes and decodes again to the same JSON (no
//! DTO loses or invents a field on the way); the policy and time checks refuse rather than
//! panic.

use ferry_node::api::*;
use ferry_node::settings::{FirstRunDto, SettingsUpdateDto};
use ferry_node::{AutoAcceptArg, IdArg, MuteArg, NameArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fixed "now" for the time arguments (2026-01-01T00:00:00Z), so runs repeat.
const NOW_MS: i64 = 1_767_225_600_000;

pub fn check(data: &[u8]) {
    // Every body the router takes (crates/ferry-node/src/control.rs), and the desktop's first run.
    round_trip::<PairRequestDto>(data);
    round_trip::<AcceptDto>(data);
    round_trip::<IdArg>(data);
    round_trip::<ShareAddDto>(data);
    round_trip::<InviteDto>(data);
    round_trip::<NameArg>(data);
    round_trip::<VersionsQuery>(data);
    round_trip::<NoteSendDto>(data);
    round_trip::<NotesQuery>(data);
    round_trip::<NoteReadDto>(data);
    round_trip::<MuteArg>(data);
    round_trip::<SendDto>(data);
    round_trip::<AutoAcceptArg>(data);
    round_trip::<AddAddressDto>(data);
    round_trip::<RescanDto>(data);
    round_trip::<ConflictsQuery>(data);
    round_trip::<ResolveDto>(data);
    round_trip::<SettingsUpdateDto>(data);
    round_trip::<FirstRunDto>(data);
    if let Some(p) = round_trip::<SharePolicyDto>(data) {
        let _ = check_share_policy(p.conflict_policy.as_deref(), p.retention.as_deref(), p.mass_delete_percent);
    }
    if let Some(r) = round_trip::<RestoreDto>(data)
        && let Some(at) = r.at
    {
        let _ = ferry_engine::history::parse_time(&at, NOW_MS);
    }
    if let Some(r) = round_trip::<RewindReqDto>(data) {
        let _ = ferry_engine::history::parse_time(&r.to, NOW_MS);
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_value(&value).expect("a decoded body encodes");
    let again: T = serde_json::from_value(json.clone()).expect("an encoded body decodes");
    assert_eq!(serde_json::to_value(&again).expect("encodes"), json, "{}", std::any::type_name::<T>());
    Some(value)
}
