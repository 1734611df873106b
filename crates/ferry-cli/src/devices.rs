//! Devices: `ferry id` (this one), `ferry devices` (the known ones, and mute, add-address,
//! auto-accept and remove on one of them), `ferry pair` and `ferry ping`.

use std::process::ExitCode;

use anyhow::Result;
use ferry_node::api::{
    AddAddressDto, AutoAcceptDto, DeviceDto, DeviceMuteDto, IdDto, LsScanDto, PairOutcomeDto, PairRequestDto,
    PairTicketDto, PingDto,
};
use ferry_node::client::Client;

use crate::args::{DevicesCmd, OnOff};
use crate::call;
use crate::output::print_json;

/// `ferry id`: this device's id, name and owner.
pub(crate) async fn id(c: &Client, json: bool) -> Result<ExitCode> {
    let id: IdDto = call(c.get("/v1/id").await)?;
    if json {
        print_json(&id)
    } else {
        println!("{}\nname:  {}\nowner: {}", id.device_id, id.name, id.owner);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices [mute|unmute|add-address|auto-accept|remove]`: without a subcommand, the list.
pub(crate) async fn devices(c: &Client, json: bool, cmd: Option<DevicesCmd>) -> Result<ExitCode> {
    match cmd {
        None => list(c, json).await,
        Some(DevicesCmd::Mute { device }) => mute(c, json, device, true).await,
        Some(DevicesCmd::Unmute { device }) => mute(c, json, device, false).await,
        Some(DevicesCmd::AddAddress { device, address }) => add_address(c, json, device, address).await,
        Some(DevicesCmd::AutoAccept { device, state }) => auto_accept(c, json, device, state).await,
        Some(DevicesCmd::Remove { device }) => remove(c, json, device).await,
        Some(DevicesCmd::Favorite { device, state }) => favorite(c, json, device, state).await,
        Some(DevicesCmd::Scan) => scan(c, json).await,
    }
}

/// Every known device: paired or only nearby, connected or not, with its addresses.
async fn list(c: &Client, json: bool) -> Result<ExitCode> {
    let list: Vec<DeviceDto> = call(c.get("/v1/devices").await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no devices yet: `ferry pair DEVICE` (a nearby name) or `ferry pair HOST:PORT`");
    } else {
        for d in list {
            let state = state(&d);
            let rtt = d.rtt_ms.map(|r| format!(" rtt {r:.1} ms")).unwrap_or_default();
            if d.kind == "kdeconnect" {
                // A KDE Connect device has no owner; its type says what it is.
                let what = format!("KDE Connect {}", d.device_type.as_deref().unwrap_or("device"));
                println!("{:<16} {:<10} {:<22} {}  {}", d.name, state, what, d.id, d.addresses.join(", "));
            } else if d.kind == "localsend" {
                // A LocalSend device is known by its certificate's fingerprint (no pairing).
                let what = format!("LocalSend {}", d.model.as_deref().or(d.device_type.as_deref()).unwrap_or("device"));
                let fp = d.fingerprint.as_deref().map(|f| &f[..f.len().min(16)]).unwrap_or("");
                let star = if d.favorite { " *" } else { "" };
                println!(
                    "{:<16} {:<10} {:<22} fingerprint {fp}…{star}  {}",
                    d.name,
                    state,
                    what,
                    d.addresses.join(", ")
                );
            } else {
                println!(
                    "{:<16} {:<10} owner {:<10} {}{}  {}",
                    d.name,
                    state,
                    d.owner,
                    d.id,
                    rtt,
                    d.addresses.join(", ")
                );
            }
            if let Some(w) = &d.warning {
                println!("  ! {w}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A device's state in one or two words.
fn state(d: &DeviceDto) -> String {
    if let Some(by) = &d.removed_by {
        return format!("removed by {by}");
    }
    let s = match (d.paired, d.connected, d.nearby, d.removed) {
        (_, _, _, true) => "removed",
        (true, true, _, _) => "connected",
        (true, false, _, _) => "offline",
        (false, _, true, _) => "nearby",
        _ => "not paired",
    };
    s.to_string()
}

/// `ferry devices remove DEVICE`: withdraws its trust; an unknown device exits 1 (via `call`).
async fn remove(c: &Client, json: bool, device: String) -> Result<ExitCode> {
    let d: DeviceDto = call(c.post("/v1/devices/remove", &serde_json::json!({ "name": device })).await)?;
    if json {
        print_json(&d)
    } else if d.kind == "localsend" {
        println!("forgot {} ({})", d.name, d.id);
        println!("It is listed again, as a new device, when it is next heard.");
    } else if d.kind == "kdeconnect" {
        println!("unpaired {} ({})", d.name, d.id);
        println!("It was told, and can ask to pair again; `ferry pair {}` pairs it again from here.", d.name);
    } else {
        println!("removed {} ({})", d.name, d.id);
        println!("It is no longer paired or in any share, and its connections are refused.");
        println!("No file was deleted. To pair with it again: `ferry pair` toward it.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices scan`: LocalSend devices found by asking every address of the network.
async fn scan(c: &Client, json: bool) -> Result<ExitCode> {
    let s: LsScanDto = call(c.post("/v1/devices/scan", &serde_json::json!({})).await)?;
    if json {
        print_json(&s)
    } else if s.found.is_empty() {
        println!("asked {} addresses: no LocalSend device answered", s.probed);
    } else {
        println!("asked {} addresses; LocalSend devices: {}", s.probed, s.found.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices favorite DEVICE on|off` (LocalSend devices).
async fn favorite(c: &Client, json: bool, device: String, state: OnOff) -> Result<ExitCode> {
    let on = matches!(state, OnOff::On);
    let d: DeviceDto = call(c.post("/v1/devices/favorite", &serde_json::json!({ "name": device, "on": on })).await)?;
    if json {
        print_json(&d)
    } else if d.favorite {
        println!("{} is a favorite: listed while away", d.name);
    } else {
        println!("{} is listed only while nearby", d.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices mute|unmute DEVICE`: refuse (or accept again) its notes.
async fn mute(c: &Client, json: bool, device: String, muted: bool) -> Result<ExitCode> {
    let m: DeviceMuteDto =
        call(c.post("/v1/devices/mute", &serde_json::json!({ "name": device, "muted": muted })).await)?;
    if json {
        print_json(&m)
    } else {
        println!("{} {}", m.name, if m.muted { "muted: its notes are refused" } else { "unmuted" });
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices add-address DEVICE HOST:PORT`: an address always dialed, kept across restarts.
async fn add_address(c: &Client, json: bool, device: String, address: String) -> Result<ExitCode> {
    let d: DeviceDto = call(c.post("/v1/devices/add-address", &AddAddressDto { device, address }).await)?;
    if json {
        print_json(&d)
    } else {
        println!("{} ({}) will be dialed at: {}", d.name, d.id, d.addresses.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry devices auto-accept DEVICE on|off`.
async fn auto_accept(c: &Client, json: bool, device: String, state: OnOff) -> Result<ExitCode> {
    let on = matches!(state, OnOff::On);
    let a: AutoAcceptDto =
        call(c.post("/v1/devices/auto-accept", &serde_json::json!({ "name": device, "on": on })).await)?;
    if json {
        print_json(&a)
    } else if a.auto_accept {
        println!("{}: sends are accepted without asking", a.name);
    } else {
        println!("{}: each send asks first", a.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry pair DEVICE|HOST:PORT`: prints the code at once, then waits for the other side's
/// answer; anything but "accepted" exits 1.
pub(crate) async fn pair(c: &Client, json: bool, address: String) -> Result<ExitCode> {
    let t: PairTicketDto = call(c.post("/v1/pair", &PairRequestDto { address }).await)?;
    if !json {
        println!("Pairing with {} ({})", t.device_name, t.device);
        println!("Code: {}", t.code);
        println!(
            "Check that {} shows the same code, then accept there (`ferry pending`, `ferry accept`).",
            t.device_name
        );
    }
    let o: PairOutcomeDto = call(c.get(&format!("/v1/pair/{}", t.ticket)).await)?;
    if json {
        print_json(&serde_json::json!({"device": t.device, "code": t.code, "state": o.state, "message": o.message}));
    } else {
        println!("{}: {}", o.state, o.message);
    }
    if o.state != "accepted" {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry ping DEVICE`: round-trip time to a connected device.
pub(crate) async fn ping(c: &Client, json: bool, device: String) -> Result<ExitCode> {
    let p: PingDto = call(c.post("/v1/ping", &serde_json::json!({ "name": device })).await)?;
    if json {
        print_json(&p)
    } else {
        println!("{}: {:.2} ms", p.device, p.rtt_ms);
    }
    Ok(ExitCode::SUCCESS)
}
