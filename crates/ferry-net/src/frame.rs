//! Length-prefixed frames on QUIC streams (see [`ferry_proto::wire`]).

use ferry_proto::wire::{self, Message};

use crate::NetError;

/// Writes one frame (4-byte big-endian length, then the postcard body).
pub async fn write_frame(send: &mut quinn::SendStream, msg: &Message) -> Result<(), NetError> {
    let frame = wire::encode(msg)?;
    send.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame: the 4-byte length is checked with [`wire::body_len`] before anything is
/// allocated, then the body is read and decoded.
///
/// A stream that ends cleanly before the first byte gives [`NetError::Closed`]; one that ends
/// inside a frame is a protocol error.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Message, NetError> {
    let mut header = [0u8; 4];
    read_exact(recv, &mut header, true).await?;
    let len = wire::body_len(header)?;
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body, false).await?;
    Ok(wire::decode(&body)?)
}

async fn read_exact(recv: &mut quinn::RecvStream, buf: &mut [u8], at_start: bool) -> Result<(), NetError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(0)) if at_start => Err(NetError::Closed),
        Err(quinn::ReadExactError::FinishedEarly(n)) => Err(NetError::Protocol(format!(
            "the peer ended the stream inside a frame ({n} of {} bytes received)",
            buf.len()
        ))),
        Err(quinn::ReadExactError::ReadError(e)) => Err(e.into()),
    }
}
