//! The one error type of this crate: IO, the peer's protocol errors, the caller's encoding
//! errors, and timeouts.

use std::fmt;
use std::io;

use lhp_codec::conn::{PeerError, CONNECTION_CODES, REQUEST_CODES};
use lhp_codec::{DecodeError, EncodeError};

/// Everything that can go wrong reading, writing or serving LHP/1 frames.
///
/// A [`Decode`](Error::Decode) error means the peer broke LHP/1: the stream is over (the codec's
/// errors are sticky). [`Encode`](Error::Encode) means this side asked for a frame LHP/1 cannot
/// carry; nothing was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket or file failed.
    Io(io::Error),
    /// The peer sent something that is not LHP/1 (the codec's error: code, section, offset).
    Decode(DecodeError),
    /// This side asked for a frame LHP/1 cannot carry.
    Encode(EncodeError),
    /// A read or write deadline passed (the wrapped error says which).
    Timeout(io::Error),
    /// The peer closed the connection cleanly where a frame was expected.
    Closed,
    /// The server refused this one request: an error frame without `offset` (§7, decisions
    /// E2). The connection goes on.
    Refused(Box<PeerError>),
    /// The server sent a connection error: an error frame with `offset` (`busy`, `timeout`, a
    /// decode error it found in what this side sent). It closes the connection; every later
    /// request on this client fails with the same error.
    Peer(Box<PeerError>),
}

impl Error {
    /// The code of this error: the codec's code for a decode error, `timeout` for a timeout,
    /// the code the server sent for [`Refused`](Error::Refused) and [`Peer`](Error::Peer) (an
    /// unregistered one as `internal`, E2), `internal` otherwise (spec §7).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Decode(e) => e.code(),
            Error::Timeout(_) => "timeout",
            Error::Refused(p) | Error::Peer(p) => CONNECTION_CODES
                .iter()
                .chain(&REQUEST_CODES)
                .find(|c| **c == p.code)
                .copied()
                .unwrap_or("internal"),
            _ => "internal",
        }
    }

    /// The error a received error frame means (E2): [`Refused`](Error::Refused) without
    /// `offset`, [`Peer`](Error::Peer) with it.
    pub fn from_peer(p: PeerError) -> Error {
        match p.class {
            lhp_codec::conn::ErrorClass::Connection => Error::Peer(Box::new(p)),
            _ => Error::Refused(Box::new(p)),
        }
    }

    /// Converts back into an [`io::Error`], keeping a decode error reachable through
    /// [`io::Error::get_ref`] (this is what a body reader's `read` returns).
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) | Error::Timeout(e) => e,
            Error::Decode(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::Encode(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::Closed => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection where a frame was expected",
            ),
            Error::Refused(p) => io::Error::other(*p),
            Error::Peer(p) => io::Error::new(io::ErrorKind::ConnectionAborted, *p),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "IO error: {e}"),
            Error::Decode(e) => write!(f, "protocol error from the peer: {e}"),
            Error::Encode(e) => write!(f, "cannot encode the frame: {e}"),
            Error::Timeout(e) => write!(f, "timed out: {e}"),
            Error::Closed => {
                f.write_str("the peer closed the connection where a frame was expected")
            }
            Error::Refused(p) => write!(f, "the server refused the request: {p}"),
            Error::Peer(p) => write!(f, "the server closed the connection: {p}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Timeout(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Refused(p) | Error::Peer(p) => Some(&**p),
            Error::Closed => None,
        }
    }
}

impl From<io::Error> for Error {
    /// `WouldBlock` and `TimedOut` (what a socket timeout produces) become
    /// [`Error::Timeout`]; an `io::Error` that wraps a [`DecodeError`] (as a body reader returns
    /// it) becomes [`Error::Decode`] again.
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Error::Timeout(e),
            _ => {}
        }
        if e.get_ref().is_some_and(|inner| inner.is::<DecodeError>()) {
            if let Some(inner) = e.into_inner() {
                return match inner.downcast::<DecodeError>() {
                    Ok(d) => Error::Decode(*d),
                    Err(other) => Error::Io(io::Error::new(io::ErrorKind::InvalidData, other)),
                };
            }
            return Error::Io(io::Error::from(io::ErrorKind::InvalidData));
        }
        Error::Io(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use lhp_codec::Decoder;

    #[test]
    fn decode_error_survives_a_round_trip_through_io_error() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1][..]);
        let e = Decoder::new().decode(&mut buf).unwrap_err();
        let back = Error::from(Error::Decode(e.clone()).into_io());
        assert!(matches!(&back, Error::Decode(d) if *d == e), "{back:?}");
        assert_eq!(back.code(), "header_len_too_small");
    }

    #[test]
    fn socket_timeouts_are_timeouts() {
        let e = Error::from(io::Error::from(io::ErrorKind::WouldBlock));
        assert_eq!(e.code(), "timeout");
    }
}
