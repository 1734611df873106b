//! Length-prefixed frames on QUIC streams (see [`ferry_proto::wire`]).
//!
//! Blocks (up to 1 MiB each) are nearly all of the bytes a transfer moves, and every copy of
//! them costs CPU on both ends. So a [`Message::Block`] skips the generic path on both sides:
//! written, its data goes to the stream after a hand-made prefix instead of being copied into
//! an encoded frame first (and not copied at all by [`write_frame_owned`]); read, its data is
//! gathered straight into the message's buffer instead of into a frame buffer that is then
//! decoded into a second one. The bytes on the wire are exactly those of [`wire::encode`].

use std::sync::OnceLock;

use bytes::Bytes;
use ferry_proto::wire::{self, FrameError, MAX_FRAME, Message};

use crate::NetError;

/// Bytes of a frame body read before deciding whether it is a block: a block's prefix (tag and
/// length) is at most 1 + 10 bytes.
const HEAD: usize = 16;

/// Writes one frame (4-byte big-endian length, then the postcard body).
pub async fn write_frame(send: &mut quinn::SendStream, msg: &Message) -> Result<(), NetError> {
    if let Message::Block { data } = msg {
        send.write_all(&block_prefix(data.len())?).await?;
        send.write_all(data).await?;
        return Ok(());
    }
    let frame = wire::encode(msg)?;
    send.write_all(&frame).await?;
    Ok(())
}

/// Like [`write_frame`], taking the message: a block's data is handed to the stream as it is,
/// without a copy.
pub async fn write_frame_owned(send: &mut quinn::SendStream, msg: Message) -> Result<(), NetError> {
    match msg {
        Message::Block { data } => {
            let prefix = block_prefix(data.len())?;
            send.write_all_chunks(&mut [Bytes::from(prefix), Bytes::from(data)]).await?;
            Ok(())
        }
        other => write_frame(send, &other).await,
    }
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
    let mut head = [0u8; HEAD];
    let head = &mut head[..len.min(HEAD)];
    read_exact(recv, head, false).await?;
    if let Some(at) = block_data_at(head, len) {
        let mut data = Vec::with_capacity(len - at);
        data.extend_from_slice(&head[at..]);
        read_rest(recv, &mut data, len - at).await?;
        return Ok(Message::Block { data });
    }
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head);
    read_rest(recv, &mut body, len).await?;
    Ok(wire::decode(&body)?)
}

/// Decodes the frame at the start of `buf` by the same steps as [`read_frame`] (the header
/// checked with [`wire::body_len`], then the block fast path or the generic decoder): the
/// message and the bytes it took, or `None` when `buf` ends inside the frame. For fuzzing and
/// tests, which hold bytes rather than a QUIC stream; the node reads with [`read_frame`].
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, NetError> {
    let Some(header) = buf.first_chunk::<4>() else { return Ok(None) };
    let len = wire::body_len(*header)?;
    let Some(body) = buf.get(4..4 + len) else { return Ok(None) };
    if let Some(at) = block_data_at(&body[..len.min(HEAD)], len) {
        return Ok(Some((Message::Block { data: body[at..].to_vec() }, 4 + len)));
    }
    Ok(Some((wire::decode(body)?, 4 + len)))
}

/// The encoding of the [`Message::Block`] variant tag (postcard: a varint), found by encoding an
/// empty block rather than hard-coded, so it follows the enum.
fn block_tag() -> &'static [u8] {
    static TAG: OnceLock<Vec<u8>> = OnceLock::new();
    TAG.get_or_init(|| {
        let frame = wire::encode(&Message::Block { data: Vec::new() }).expect("an empty block encodes");
        // 4-byte length, the tag, then the data length 0 (one byte).
        frame[4..frame.len() - 1].to_vec()
    })
}

/// Postcard's varint (LEB128) of `n`.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The frame header and body prefix of a block of `len` bytes: what [`wire::encode`] writes
/// before the data.
fn block_prefix(len: usize) -> Result<Vec<u8>, NetError> {
    let mut body = block_tag().to_vec();
    varint(len, &mut body);
    let body_len = body.len() + len;
    if body_len > MAX_FRAME {
        return Err(FrameError::TooLarge(body_len).into());
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// If a body of `len` bytes starting with `head` is a block in canonical encoding (the
/// block tag, the shortest varint of the data length, and exactly that many bytes to the end
/// of the frame), where its data starts. Anything else takes the generic decoder.
fn block_data_at(head: &[u8], len: usize) -> Option<usize> {
    let tag = block_tag();
    let rest = head.strip_prefix(tag)?;
    let mut n = 0usize;
    for (i, b) in rest.iter().enumerate().take(10) {
        n |= ((b & 0x7f) as usize).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            let at = tag.len() + i + 1;
            let mut canonical = Vec::new();
            varint(n, &mut canonical);
            return (canonical == rest[..=i] && at.checked_add(n) == Some(len)).then_some(at);
        }
    }
    None
}

/// Appends stream data to `buf` until it holds `want` bytes, without zero-filling a buffer
/// first.
async fn read_rest(recv: &mut quinn::RecvStream, buf: &mut Vec<u8>, want: usize) -> Result<(), NetError> {
    while buf.len() < want {
        match recv.read_chunk(want - buf.len(), true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None => {
                return Err(NetError::Protocol(format!(
                    "the peer ended the stream inside a frame ({} of {want} bytes received)",
                    buf.len()
                )));
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const LENS: [usize; 9] = [0, 1, 5, 127, 128, 16383, 16384, 300_000, 1 << 20];

    #[test]
    fn block_prefix_is_what_encode_writes() {
        for len in LENS {
            let data = vec![0xab; len];
            let frame = wire::encode(&Message::Block { data: data.clone() }).unwrap();
            let prefix = block_prefix(len).unwrap();
            assert_eq!([prefix.as_slice(), &data].concat(), frame, "len {len}");
            // And the reader finds the data where it starts.
            let body = &frame[4..];
            assert_eq!(block_data_at(&body[..body.len().min(HEAD)], body.len()), Some(prefix.len() - 4), "len {len}");
        }
        assert!(matches!(block_prefix(MAX_FRAME), Err(NetError::Frame(FrameError::TooLarge(_)))));
    }

    #[test]
    fn decode_frame_reads_what_encode_writes() {
        let block = Message::Block { data: vec![9; 300] };
        let ping = Message::Ping { nonce: 7 };
        let stream = [wire::encode(&block).unwrap(), wire::encode(&ping).unwrap()].concat();
        let (first, used) = decode_frame(&stream).unwrap().unwrap();
        assert_eq!(first, block);
        assert_eq!(decode_frame(&stream[used..]).unwrap().unwrap(), (ping, stream.len() - used));
        // A frame cut short is not a frame yet; a hostile length is refused.
        assert!(decode_frame(&stream[..used - 1]).unwrap().is_none());
        assert!(decode_frame(&stream[..3]).unwrap().is_none());
        assert!(decode_frame(&u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn other_bodies_take_the_generic_decoder() {
        let ping = wire::encode(&Message::Ping { nonce: 7 }).unwrap();
        assert_eq!(block_data_at(&ping[4..], ping.len() - 4), None);
        let tag = block_tag();
        // A length that does not reach exactly the end of the frame (short, long).
        let body = [tag, &[3u8], b"abcd"].concat();
        assert_eq!(block_data_at(&body, body.len()), None);
        let body = [tag, &[5u8], b"abcd"].concat();
        assert_eq!(block_data_at(&body, body.len()), None);
        // A non-canonical (overlong) length varint, an unterminated one, an overflowing one.
        let body = [tag, &[0x84u8, 0x00], b"abcd"].concat();
        assert_eq!(block_data_at(&body, body.len()), None);
        assert_eq!(block_data_at(&[tag, &[0x80u8; 12]].concat(), 1 << 20), None);
        assert_eq!(block_data_at(&[tag, &[0xffu8; 9], &[0x7f]].concat(), usize::MAX), None);
        // The canonical form is accepted.
        let body = [tag, &[4u8], b"abcd"].concat();
        assert_eq!(block_data_at(&body, body.len()), Some(tag.len() + 1));
    }
}
