//! Quick notes: `ferry note send` (text or stdin) and `ferry notes` (the conversations, and
//! `read ID` to mark one read).

use std::process::ExitCode;

use anyhow::{Context, Result};
use ferry_node::api::{NoteDto, NoteReadDto, NoteSendDto, NotesQuery};
use ferry_node::client::Client;

use crate::args::{NoteCmd, NotesCmd};
use crate::call;
use crate::output::{fmt_ms, print_json};

/// `ferry note send DEVICE TEXT`; TEXT `-` reads the note from stdin.
pub(crate) async fn note(c: &Client, json: bool, cmd: NoteCmd) -> Result<ExitCode> {
    let NoteCmd::Send { device, text, pin } = cmd;
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf).context("reading the note from stdin")?;
        buf
    } else {
        text
    };
    let n: NoteDto = call(c.post("/v1/notes/send", &NoteSendDto { device, text, pin }).await)?;
    if json {
        print_json(&n)
    } else {
        println!("note {} to {}: {}", n.id, n.peer_name, n.state);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry notes [--device D]` lists the conversations; `ferry notes read ID` marks one read.
pub(crate) async fn notes(c: &Client, json: bool, device: Option<String>, cmd: Option<NotesCmd>) -> Result<ExitCode> {
    match cmd {
        Some(NotesCmd::Read { id }) => read(c, json, id).await,
        None => list(c, json, device).await,
    }
}

/// Mark a received note read (its sender gets a receipt).
async fn read(c: &Client, json: bool, id: String) -> Result<ExitCode> {
    let n: NoteDto = call(c.post("/v1/notes/read", &NoteReadDto { id }).await)?;
    if json {
        print_json(&n)
    } else {
        println!("{}  from {}: {}", n.id, n.peer_name, n.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// Notes by conversation: a header per device, then one line per note.
async fn list(c: &Client, json: bool, device: Option<String>) -> Result<ExitCode> {
    let list: Vec<NoteDto> = call(c.post("/v1/notes", &NotesQuery { device }).await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no notes yet: `ferry note send DEVICE TEXT`");
    } else {
        let mut peer = String::new();
        for n in list.iter() {
            if n.peer != peer {
                peer = n.peer.clone();
                println!("== {} ({})", n.peer_name, n.peer);
            }
            let dir = if n.outgoing { "->" } else { "<-" };
            let why = n.refused.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            println!("{}  {}  {dir} {:<9}{why} {}", &n.id[..8.min(n.id.len())], fmt_ms(n.sent_at), n.state, n.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}
