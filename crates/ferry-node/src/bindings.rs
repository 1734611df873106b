//! The desktop UI's TypeScript types, generated from the DTOs with ts-rs and checked in at
//! `ui/src/lib/bindings.ts`. The test fails when the file is stale;
//! `FERRY_UPDATE_BINDINGS=1 cargo test -p ferry-node bindings` rewrites it.
//!
//! 64-bit integers map to `number`: the control API is JSON, and such values (prompt ids,
//! sizes, milliseconds) stay far below 2^53. Version ids (nanosecond timestamps) do not: they
//! also cross as text (`VersionDto::id_text`), and restore takes that text back.

use ts_rs::{Config, TS};

use crate::api::*;
use crate::events::Event;
use crate::settings::{FirstRunDto, SettingsDto, SettingsUpdateDto};

fn render() -> String {
    let cfg = Config::new().with_large_int("number");
    let decls = [
        ApiError::decl(&cfg),
        ErrorCode::decl(&cfg),
        IdDto::decl(&cfg),
        StatusDto::decl(&cfg),
        ShareStatusDto::decl(&cfg),
        FailedItemDto::decl(&cfg),
        DeviceDto::decl(&cfg),
        PendingDto::decl(&cfg),
        ShareDto::decl(&cfg),
        VersionDto::decl(&cfg),
        PairTicketDto::decl(&cfg),
        PairOutcomeDto::decl(&cfg),
        AcceptDto::decl(&cfg),
        ShareAddDto::decl(&cfg),
        InviteDto::decl(&cfg),
        PingDto::decl(&cfg),
        NoteDto::decl(&cfg),
        NoteSendDto::decl(&cfg),
        DeviceMuteDto::decl(&cfg),
        AddAddressDto::decl(&cfg),
        DoctorDto::decl(&cfg),
        MdnsDoctorDto::decl(&cfg),
        KdeDoctorDto::decl(&cfg),
        LsDoctorDto::decl(&cfg),
        InterfaceDto::decl(&cfg),
        NearbyDto::decl(&cfg),
        InotifyDto::decl(&cfg),
        SendDto::decl(&cfg),
        TransferDto::decl(&cfg),
        AutoAcceptDto::decl(&cfg),
        SummaryCountsDto::decl(&cfg),
        SummaryDto::decl(&cfg),
        RestoreDto::decl(&cfg),
        RestoredDto::decl(&cfg),
        RewindReqDto::decl(&cfg),
        RewindStepDto::decl(&cfg),
        RewindDto::decl(&cfg),
        PruneDto::decl(&cfg),
        ModeActionDto::decl(&cfg),
        ConflictDto::decl(&cfg),
        ConflictsQuery::decl(&cfg),
        ResolveDto::decl(&cfg),
        ResolvedDto::decl(&cfg),
        SharePolicyDto::decl(&cfg),
        ShareSettingsDto::decl(&cfg),
        RescanDto::decl(&cfg),
        SettingsDto::decl(&cfg),
        SettingsUpdateDto::decl(&cfg),
        FirstRunDto::decl(&cfg),
        Event::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust DTOs in crates/ferry-node (src/bindings.rs). Do not edit:\n\
         // FERRY_UPDATE_BINDINGS=1 cargo test -p ferry-node bindings\n",
    );
    for d in decls {
        out.push('\n');
        out.push_str("export ");
        out.push_str(d.trim());
        out.push('\n');
    }
    out
}

#[test]
fn bindings_are_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/bindings.ts");
    let fresh = render();
    if std::env::var_os("FERRY_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "{} is stale: run `FERRY_UPDATE_BINDINGS=1 cargo test -p ferry-node bindings` and commit it",
        path.display()
    );
}
