//! UDP discovery: identity packets broadcast to port 1716 and received there. We bind without
//! SO_REUSEADDR/SO_REUSEPORT on purpose: if another KDE Connect (kdeconnectd, GSConnect) holds
//! the port, two programs would answer for one computer, so we report [`KdeError::PortTaken`]
//! and the caller leaves KDE Connect off.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use tokio::net::UdpSocket;

use crate::{Identity, KdeError, MAX_IDENTITY, Packet};

pub struct Discovery {
    socket: UdpSocket,
    /// Set by [`Discovery::announce`]: our own broadcasts come back to us and are skipped.
    own_id: Mutex<Option<String>>,
}

impl Discovery {
    pub async fn bind(bind: IpAddr, port: u16) -> Result<Discovery, KdeError> {
        let socket = match UdpSocket::bind((bind, port)).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(KdeError::PortTaken(port)),
            Err(e) => return Err(e.into()),
        };
        socket.set_broadcast(true)?;
        Ok(Discovery { socket, own_id: Mutex::new(None) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, KdeError> {
        Ok(self.socket.local_addr()?)
    }

    /// Sends our identity (with our TCP port in it) to `to`, e.g. 255.255.255.255:1716.
    pub async fn announce(&self, ours: &Identity, to: SocketAddr) -> Result<(), KdeError> {
        *self.own_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(ours.device_id.clone());
        self.socket.send_to(&ours.packet().to_line(), to).await?;
        Ok(())
    }

    /// The next valid identity from another device, with the address it came from. Malformed
    /// datagrams and our own are skipped (and logged).
    pub async fn recv(&self) -> Result<(Identity, SocketAddr), KdeError> {
        // A datagram cannot exceed 64 KiB; one byte more tells us it was cut.
        let mut buf = vec![0u8; MAX_IDENTITY + 1];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).await?;
            let parsed = if n > MAX_IDENTITY {
                Err(KdeError::TooLarge { what: "an identity", cap: MAX_IDENTITY as u64 })
            } else {
                Packet::parse(buf[..n].trim_ascii_end()).and_then(|p| Identity::from_packet(&p))
            };
            match parsed {
                Ok(id) if Some(&id.device_id) == self.own_id.lock().unwrap_or_else(|e| e.into_inner()).as_ref() => {}
                Ok(id) => return Ok((id, from)),
                Err(e) => tracing::debug!("kdeconnect: skipped a datagram from {from}: {e}"),
            }
        }
    }
}
