//! Writes the seed corpora, `corpus/<target>/`, from scratch: a few valid encodings per target
//! (every wire message variant, a frame stream, compact-index cases, paths, one body per control
//! API request, ferry.toml files), each run through its target's checks first. Run from `fuzz/`
//! with `cargo run --example seeds` after changing the wire format or a DTO, and commit the
//! result; the corpora stay this small (fuzzing writes what it finds to a scratch directory,
//! see `.ci/fuzz-smoke`).

use std::collections::BTreeSet;
use std::path::Path;

use ferry_fuzz::{TARGETS, api_json, compact, config, frame, message, relpath};
use ferry_proto::wire::{
    self, BlockRef, BlockReply, ChunksFrom, ErrorCode, Hello, Message, SendFile, SendUpdate, ShareAnnounce,
};
use ferry_proto::{
    ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, NoteId, RelPath, Seq, ShareId, TransferId, VersionVector,
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for target in TARGETS {
        let seeds = seeds(target);
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in &seeds {
            run(target, bytes);
            std::fs::write(dir.join(name), bytes).expect("write a seed");
            total += bytes.len();
        }
        println!("{target}: {} seeds", seeds.len());
    }
    println!("{total} bytes in all");
}

fn run(target: &str, data: &[u8]) {
    match target {
        "frame" => frame::check(data),
        "message" => message::check(data),
        "compact" => compact::check(data),
        "relpath" => relpath::check(data),
        "api_json" => api_json::check(data),
        "config" => config::check(data),
        other => panic!("no checks for target {other}"),
    }
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |v: Vec<(&str, Vec<u8>)>| v.into_iter().map(|(n, b)| (n.to_string(), b)).collect();
    match target {
        "message" => messages().into_iter().map(|m| (message::variant(&m).to_string(), body(&m))).collect(),
        "frame" => {
            let all = messages();
            let frames = |ms: &[Message]| ms.iter().flat_map(|m| wire::encode(m).expect("encodes")).collect();
            let block = Message::Block { data: (0..200u8).collect() };
            let mut cut = wire::encode(&all[4]).expect("encodes");
            cut.truncate(cut.len() / 2);
            named(vec![
                ("block", frames(std::slice::from_ref(&block))),
                ("hello-then-cluster", frames(&all[..4])),
                ("every-message", frames(&all)),
                ("cut-short", cut),
                ("over-the-cap", ((wire::MAX_FRAME + 1) as u32).to_be_bytes().to_vec()),
            ])
        }
        "compact" => named(vec![
            // Choices as `compact` reads them: mode, batch, then what the receiver holds.
            ("echo", vec![0, 1, 0, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0]),
            ("rename", vec![0, 2, 0, 0, 1, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0]),
            ("edit", vec![0, 1, 0, 2, 10, 1, 1, 7, 1, 0, 2, 0, 0, 0]),
            ("hostile", vec![1, 2, 0, 2, 0, 0, 0, 0, 1, 1, 2, 1, 0, 2, 0, 0, 0, 1, 2, 0, 0, 0, 2, 5, 24, 20, 4, 1, 9]),
        ]),
        "relpath" => {
            let long = vec!["d".repeat(200); 20].join("/") + "/name.txt";
            let mut v: Vec<(String, Vec<u8>)> = ["a", "a/b/c.txt", "dir/.ferry", "sp ace/ü.txt", "x..y", ".bashrc"]
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("ok-{i}"), s.as_bytes().to_vec()))
                .collect();
            v.push(("long".into(), long.into_bytes()));
            for (i, bad) in ["../x", "/etc/passwd", ".ferry/x", "a//b"].iter().enumerate() {
                v.push((format!("refused-{i}"), bad.as_bytes().to_vec()));
            }
            // Valid everywhere on the wire; only Windows cannot hold them (`problem_on`).
            for (i, name) in ["a\\b", "C:x", "docs/con.txt"].iter().enumerate() {
                v.push((format!("not-on-windows-{i}"), name.as_bytes().to_vec()));
            }
            v
        }
        "api_json" => [
            ("pair", r#"{"address":"192.168.1.20:22010"}"#),
            ("accept", r#"{"id":3,"path":"/home/me/Shared"}"#),
            ("id", r#"{"id":7}"#),
            ("share-add", r#"{"path":"/home/me/Photos","label":"Photos","mode":"send-receive"}"#),
            ("invite", r#"{"share":"Photos","device":"ABCDEFG"}"#),
            ("name", r#"{"name":"laptop"}"#),
            ("versions", r#"{"path":"/home/me/Photos/a.jpg"}"#),
            ("note-send", r#"{"device":"laptop","text":"hello ü"}"#),
            ("notes", r#"{"device":null}"#),
            ("mute", r#"{"name":"laptop","muted":true}"#),
            ("send", r#"{"device":"laptop","paths":["/tmp/a","/tmp/b"]}"#),
            ("auto-accept", r#"{"name":"laptop","on":false}"#),
            ("add-address", r#"{"device":"laptop","address":"10.0.0.2:22010"}"#),
            ("rescan", r#"{"share":"Photos","full":true}"#),
            ("restore", r#"{"path":"/home/me/a.txt","version":"1795465472354762123","at":"10m"}"#),
            ("rewind", r#"{"target":"Photos/2024","to":"2026-11-23T10:00:00Z","dry_run":true}"#),
            ("resolve", r#"{"path":"/home/me/a.txt","keep":"both"}"#),
            ("policy", r#"{"share":"Photos","conflict_policy":"newest-wins","retention":"staggered:30:1000","mass_delete_percent":50}"#),
            ("settings", r#"{"name":"desk","owner":"me","listen":"0.0.0.0:22010","mdns":true,"inbox":"/home/me/In"}"#),
            ("first-run", r#"{"name":"desk","owner":"me","folder":"/home/me/Ferry"}"#),
        ]
        .iter()
        .map(|(n, j)| (n.to_string(), j.as_bytes().to_vec()))
        .collect(),
        "config" => {
            let id = DeviceId([1; 32]);
            let full = format!(
                "listen = \"0.0.0.0:22010\"\nname = \"desk\"\nowner = \"me\"\nlog = \"info\"\nlog_file = \"/tmp/ferry.log\"\n\
                 rescan_secs = 3600\nmdns = true\nmdns_interfaces = [\"eth0\"]\ninbox = \"/home/me/In\"\n\
                 mass_delete_percent = 40\nprune_secs = 600\n\n[static_addresses]\n\"{id}\" = [\"10.1.2.3:22010\"]\n"
            );
            named(vec![
                ("full", full.into_bytes()),
                ("empty", Vec::new()),
                ("name-only", b"name = \"laptop\"\n".to_vec()),
                ("unknown-key", b"nmae = 1\n".to_vec()),
            ])
        }
        other => panic!("no seeds for target {other}"),
    }
}

fn body(m: &Message) -> Vec<u8> {
    wire::encode(m).expect("encodes")[4..].to_vec()
}

/// One of every message, with small but realistic contents.
fn messages() -> Vec<Message> {
    let d = DeviceId([3; 32]);
    let share = ShareId([1; 10]);
    let path = |s: &str| RelPath::new(s).expect("a valid path");
    let chunk = |i: u8| ChunkInfo { hash: ChunkHash([i; 32]), len: 100 };
    let list: Vec<ChunkInfo> = (0..10).map(chunk).collect();
    let record = FileRecord {
        path: path("docs/a.txt"),
        kind: FileKind::File,
        deleted: false,
        size: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        executable: false,
        version: VersionVector::new().bumped(d),
        seq: Seq(4),
        hash: ChunkHash::of(b"a"),
        chunks: list.clone(),
        modified_by: d,
    };
    let link = FileRecord {
        path: path("link"),
        kind: FileKind::Symlink { target: "docs/a.txt".into() },
        size: 0,
        chunks: vec![],
        ..record.clone()
    };
    let gone = FileRecord { path: path("old.txt"), deleted: true, size: 0, chunks: vec![], ..record.clone() };
    let moved = FileRecord { path: path("docs/b.txt"), chunks: vec![], ..record.clone() };
    let all = vec![
        Message::Hello(Hello { protocol: wire::PROTOCOL_VERSION, name: "desk".into(), owner: "me".into() }),
        Message::PairRequest { name: "laptop".into(), owner: "me".into() },
        Message::PairResponse { accepted: true, message: "ok".into() },
        Message::ClusterConfig {
            shares: vec![ShareAnnounce { share, label: "Photos".into(), my_epoch: 1, your_epoch: 2, your_seq: 3 }],
        },
        Message::IndexUpdate { share, epoch: 1, records: vec![record.clone(), link, gone.clone()] },
        Message::Ack,
        Message::BlockRequest { share, path: path("docs/a.txt"), offset: 100, len: 100, hash: ChunkHash([1; 32]) },
        Message::Block { data: b"hello".to_vec() },
        Message::Ping { nonce: 7 },
        Message::Pong { nonce: 7 },
        Message::Error { code: ErrorCode::NotFound, message: "gone".into() },
        Message::Unpaired { device: d },
        Message::Note { id: NoteId([2; 16]), sent_at: 1_700_000_000_000, text: "hi".into() },
        Message::NoteAck { id: NoteId([2; 16]) },
        Message::NoteRead { id: NoteId([2; 16]) },
        Message::SendOffer {
            id: TransferId([5; 16]),
            files: vec![SendFile {
                path: path("dir/a.txt"),
                size: 1000,
                mtime_ns: 3,
                executable: true,
                hash: ChunkHash::of(b"a"),
                chunks: list.clone(),
            }],
            dirs: vec![path("dir/empty")],
        },
        Message::SendBlockRequest { id: TransferId([5; 16]), file: 0, offset: 0, len: 100, hash: ChunkHash([0; 32]) },
        Message::SendUpdate { id: TransferId([5; 16]), update: SendUpdate::Progress(500) },
        Message::BlocksRequest {
            share,
            blocks: vec![BlockRef { path: path("a"), offset: 0, len: 10, hash: ChunkHash([9; 32]) }],
        },
        Message::Blocks { blocks: vec![BlockReply::Data(b"abc".to_vec()), BlockReply::Missing("changed".into())] },
        Message::IndexUpdateCompact {
            share,
            epoch: 1,
            records: vec![gone, moved],
            chunks_from: vec![ChunksFrom::between(1, path("old.txt"), record.hash, &list, &list)],
        },
        Message::VersionBlockRequest { share, path: path("notes/old.txt"), hash: ChunkHash([7; 32]), offset: 0, len: 4096 },
    ];
    let covered: BTreeSet<&str> = all.iter().map(message::variant).collect();
    let missing: Vec<&str> = message::VARIANTS.iter().filter(|v| !covered.contains(*v)).copied().collect();
    assert!(missing.is_empty(), "no seed for {missing:?}");
    all
}
