//! Target `frame`: a byte stream as a peer would send it, cut into frames the way the node's
//! reader does ([`ferry_net::decode_frame`], the same steps as `read_frame`: the length checked
//! against [`MAX_FRAME`] before anything is allocated, then the block fast path or postcard).
//!
//! Asserts: no panic; a frame never claims more than the cap; the block fast path gives
//! exactly what the generic decoder gives for the same body (it is only an optimisation), and
//! refuses nothing the generic decoder accepts; every decoded message passes the `message`
//! target's round trip.

use ferry_net::{NetError, decode_frame};
use ferry_proto::wire::{self, FrameError, MAX_FRAME};

pub fn check(data: &[u8]) {
    let mut rest = data;
    loop {
        match decode_frame(rest) {
            Ok(Some((msg, used))) => {
                assert!((4..=rest.len()).contains(&used) && used - 4 <= MAX_FRAME, "frame of {used} bytes");
                let generic = wire::decode(&rest[4..used]).expect("the generic decoder takes what the fast path took");
                assert_eq!(generic, msg, "fast path and generic decoder disagree");
                crate::message::round_trip(&msg);
                rest = &rest[used..];
            }
            Ok(None) => {
                // Only a frame cut short is waited for.
                let whole = rest.first_chunk::<4>().map(|h| 4 + u32::from_be_bytes(*h) as usize);
                assert!(whole.is_none_or(|n| n > rest.len()), "a whole frame was not decoded");
                return;
            }
            Err(NetError::Frame(FrameError::TooLarge(n))) => {
                assert!(n > MAX_FRAME, "a frame of {n} bytes was refused as too large");
                return;
            }
            Err(NetError::Frame(FrameError::Malformed(_))) => {
                let len = u32::from_be_bytes(*rest.first_chunk::<4>().expect("a header was read")) as usize;
                assert!(wire::decode(&rest[4..4 + len]).is_err(), "the fast path refused a valid body");
                return;
            }
            Err(e) => panic!("decode_frame gave an error it never should: {e}"),
        }
    }
}
