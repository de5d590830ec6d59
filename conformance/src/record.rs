//! `lhp-conformance record`: a loopback TCP proxy that saves both directions of each
//! conversation as vectors (`spec/conformance.md` §10).
//!
//! Every accepted connection is relayed to the upstream address; each direction's octets and
//! the sizes of the reads as they arrived are kept, decoded with the codec under the chosen
//! profile when the connection ends, and written as two vectors in the `spec/vectors` format
//! plus a `reads` array.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::BytesMut;
use lhp_codec::{Decoder, Frame, Limits, Profile};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// The upstream server.
    pub upstream: SocketAddr,
    /// Stop after this many connections have ended.
    pub connections: usize,
    /// The profile the expected frames are decoded with.
    pub profile: Profile,
    /// The limits they are decoded with.
    pub limits: Limits,
}

/// One direction of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Every octet, in order.
    pub data: Vec<u8>,
    /// The size of each read as it arrived.
    pub reads: Vec<usize>,
}

/// One relayed connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    /// Client to server.
    pub client: Direction,
    /// Server to client.
    pub server: Direction,
}

/// Accepts on `listener` and relays to `opts.upstream` until `opts.connections` connections
/// have ended or `stop` is set (then connections in flight are finished first). Returns the
/// conversations in the order they were accepted.
pub fn proxy(
    listener: &TcpListener,
    opts: &RecordOptions,
    stop: &AtomicBool,
) -> io::Result<Vec<Conversation>> {
    listener.set_nonblocking(true)?;
    let mut running: Vec<JoinHandle<io::Result<Conversation>>> = Vec::new();
    let mut accepted = 0;
    while accepted < opts.connections && !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                accepted += 1;
                client.set_nonblocking(false)?;
                let upstream = opts.upstream;
                running.push(thread::spawn(move || relay(client, upstream)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for h in running {
        match h.join() {
            Ok(Ok(c)) => out.push(c),
            Ok(Err(e)) => eprintln!("record: a connection failed: {e}"),
            Err(_) => eprintln!("record: a relay thread panicked"),
        }
    }
    Ok(out)
}

/// Relays one connection until both directions have ended.
fn relay(client: TcpStream, upstream: SocketAddr) -> io::Result<Conversation> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    let up = thread::spawn(move || pump(c2, s2));
    let down = pump(server, client);
    let up = up
        .join()
        .map_err(|_| io::Error::other("relay thread panicked"))?;
    Ok(Conversation {
        client: up,
        server: down,
    })
}

/// Copies `from` to `to`, recording each read, until `from` ends; then half-closes `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) -> Direction {
    let mut d = Direction::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let got = buf.get(..n).unwrap_or_default();
                d.data.extend_from_slice(got);
                d.reads.push(n);
                if to.write_all(got).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    d
}

/// The vectors of recorded conversations: two per connection (`recorded/conn-N-client` and
/// `recorded/conn-N-server`), expectations decoded under `profile` and `limits`.
pub fn to_vectors(convs: &[Conversation], profile: Profile, limits: Limits, via: &str) -> Value {
    let mut vectors = Vec::new();
    for (i, c) in convs.iter().enumerate() {
        for (side, d, what) in [
            ("client", &c.client, "client to server"),
            ("server", &c.server, "server to client"),
        ] {
            vectors.push(json!({
                "id": format!("recorded/conn-{}-{side}", i + 1),
                "spec": "3",
                "description": format!(
                    "Connection {} through {via}: the {what} octets as recorded, {} reads.",
                    i + 1, d.reads.len()
                ),
                "profile": profile.name(),
                "tier": "recommended",
                "skip_bytes": 0,
                "input": {"hex": hex::encode(&d.data)},
                "reads": d.reads,
                "expect": expect_json(&d.data, profile, limits),
            }));
        }
    }
    json!({"group": "recorded", "vectors": vectors})
}

/// The `expect` member for `data`: what the codec decodes from it.
pub fn expect_json(data: &[u8], profile: Profile, limits: Limits) -> Value {
    let mut dec = Decoder::with(profile, limits);
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    loop {
        match dec.decode_eof(&mut buf) {
            Ok(Some(f)) => frames.push(frame_json(&f)),
            Ok(None) => return json!({"result": "valid", "frames": frames}),
            Err(e) => {
                return json!({"result": "invalid", "frames": frames, "error": {
                    "code": e.code(), "offset": e.offset(), "missing": e.missing(),
                }})
            }
        }
    }
}

fn frame_json(f: &Frame) -> Value {
    let mut v = json!({"header": f.header.members(), "body_len": f.body.len()});
    if let Some(o) = v.as_object_mut() {
        if f.body.len() > 4096 {
            o.insert(
                "body_sha256".into(),
                hex::encode(Sha256::digest(&f.body)).into(),
            );
        } else {
            o.insert("body_hex".into(), hex::encode(&f.body).into());
        }
    }
    v
}

/// Runs the proxy on `listen` and writes `out`; stops on SIGINT or after
/// `opts.connections` connections.
pub fn record(listen: SocketAddr, out: &Path, opts: &RecordOptions) -> Result<usize, String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))
        .map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    println!("listening on {local}");
    let convs = proxy(&listener, opts, &stop).map_err(|e| format!("proxy: {e}"))?;
    let via = format!("{local} to {}", opts.upstream);
    let doc = to_vectors(&convs, opts.profile, opts.limits, &via);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(convs.len())
}
