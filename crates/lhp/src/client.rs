//! The client side of §10 on the blocking engine: `put`, `get`, `stat`, `list`, `exec`, with
//! progress bars on a terminal and digests verified end to end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lhp_blocking::{sha256_of, Client, ClientConfig};
use lhp_codec::conn::PeerError;
use lhp_codec::{hex_lower, Header, Limits, Profile, Value, MAX_SAFE_INTEGER};
use sha2::Digest;

use crate::app;
use crate::transfer::{self, ReadAhead, TrailerSplitter};

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection or the protocol failed.
    #[error("{0}")]
    Engine(lhp_blocking::Error),
    /// A local file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server answered with an `error` frame: a refusal, or a connection error (the
    /// engine's `Error::Refused` and `Error::Peer` become this, logged as received).
    #[error("server refused: {code}: {message}")]
    Server {
        /// The error code (§10.8).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server answered something this client did not expect.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// The octets received (or stored) do not have the expected digest.
    #[error("digest mismatch: expected sha256 {expected}, got {actual}")]
    Digest {
        /// What the other side declared.
        expected: String,
        /// What this side computed.
        actual: String,
    },
}

impl From<lhp_blocking::Error> for ClientError {
    fn from(e: lhp_blocking::Error) -> Self {
        match e {
            lhp_blocking::Error::Refused(p) | lhp_blocking::Error::Peer(p) => {
                crate::log::refusal_received(&p.code, &p.message);
                let PeerError { code, message, .. } = *p;
                ClientError::Server { code, message }
            }
            other => ClientError::Engine(other),
        }
    }
}

/// Connects to `addr` with limits fit for file transfer (bodies up to 2^53−1, streamed).
pub fn connect(addr: &str, profile: Profile) -> Result<Client, ClientError> {
    let mut config = ClientConfig::new();
    config
        .profile(profile)
        .limits(Limits::new().with_max_body_len(MAX_SAFE_INTEGER))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Some(Duration::from_secs(300)))
        .write_timeout(Some(Duration::from_secs(300)));
    Ok(Client::connect_with(addr, &config)?)
}

/// A progress bar with rate and ETA on a terminal's stderr; hidden when stderr is not a
/// terminal or `enabled` is false.
pub fn progress(len: u64, what: &str, enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// What a finished upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    /// The name stored.
    pub name: String,
    /// The whole file's size.
    pub size: u64,
    /// Octets sent this time (less than `size` when resumed).
    pub sent: u64,
    /// Where the upload resumed from (0: from the start).
    pub resumed_from: u64,
    /// The whole file's sha256, as the server confirmed it.
    pub sha256: String,
}

/// Uploads `path` as `name`. In `seed-compat` this is seed 000's upload (see [`seed`]).
/// With `resume`, asks the server (`stat`) how much of a previous attempt it holds and sends
/// only the rest; the whole file's digest is checked either way.
///
/// The file is read once: hashed as it is sent, its digest sent as the body's trailer
/// (§10.3), checked by the server before the file appears, and confirmed in the `ok` reply.
/// A resumed upload hashes the prefix the server holds first.
pub fn put(
    client: &mut Client,
    path: &Path,
    name: &str,
    resume: bool,
    replace: bool,
    bar: &ProgressBar,
) -> Result<PutReport, ClientError> {
    if is_seed_compat(client) {
        let (digest, size) = file_digest(path)?;
        return seed::put(client, path, name, (&digest, size), resume, bar);
    }
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut offset = 0;
    if resume {
        let reply = request(client, app::stat(name))?;
        let partial = app::u64_member(&reply, "partial")
            .ok()
            .flatten()
            .unwrap_or(0);
        if partial <= size {
            offset = partial;
        }
    }
    let prefix = transfer::hash_prefix(&file, offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut header = Header::with_kind(app::PUT);
    header.set_name(name.to_owned());
    if offset > 0 {
        header.insert("offset", offset);
    }
    header.insert(transfer::TRAILER, transfer::FILE_SHA256);
    if replace {
        header.insert("replace", true);
    }
    header.set_body_len(size - offset + transfer::TRAILER_LEN);
    bar.set_length(size);
    bar.set_position(offset);
    // The file is read and hashed on a second thread while this one writes the socket.
    let mut body = ReadAhead::spawn(file, size - offset, prefix)?;
    let sent = client.upload(&header, bar.wrap_read(&mut body))?;
    bar.finish_and_clear();
    let digest = body
        .digest_hex()
        .ok_or_else(|| ClientError::Unexpected("the upload stopped before its trailer".into()))?;
    let reply = recv_reply(client)?;
    expect_kind(&reply, app::OK)?;
    let confirmed = app::str_member(&reply, "file_sha256").unwrap_or_default();
    if confirmed != digest {
        return Err(ClientError::Digest {
            expected: digest,
            actual: confirmed.to_owned(),
        });
    }
    Ok(PutReport {
        name: name.to_owned(),
        size,
        sent: sent.saturating_sub(transfer::TRAILER_LEN),
        resumed_from: offset,
        sha256: digest,
    })
}

/// The sha256 (lowercase hex) and length of a file.
pub fn file_digest(path: &Path) -> Result<(String, u64), ClientError> {
    let (digest, size) = sha256_of(File::open(path)?)?;
    Ok((hex_lower(&digest), size))
}

/// [`put`] of a file whose digest and size [`file_digest`] already computed, in the form
/// without a trailer: the digest goes in the header (`sha256`, or `file_sha256` with an
/// offset), for servers that do not know the trailer. The server checks it, so a file that
/// changed meanwhile is refused, not stored.
pub fn put_digested(
    client: &mut Client,
    path: &Path,
    name: &str,
    (digest, size): (&str, u64),
    resume: bool,
    replace: bool,
    bar: &ProgressBar,
) -> Result<PutReport, ClientError> {
    if is_seed_compat(client) {
        return seed::put(client, path, name, (digest, size), resume, bar);
    }
    let digest = digest.to_owned();
    let mut file = File::open(path)?;
    let mut offset = 0;
    if resume {
        let reply = request(client, app::stat(name))?;
        let partial = app::u64_member(&reply, "partial")
            .ok()
            .flatten()
            .unwrap_or(0);
        if partial <= size {
            offset = partial;
        }
    }
    let mut header = app::put(name, size - offset, &digest, (offset > 0).then_some(offset));
    if replace {
        header.insert("replace", true);
    }
    file.seek(SeekFrom::Start(offset))?;
    bar.set_length(size);
    bar.set_position(offset);
    let sent = client.upload(&header, bar.wrap_read(file.take(size - offset)))?;
    bar.finish_and_clear();
    let reply = recv_reply(client)?;
    expect_kind(&reply, app::OK)?;
    let confirmed = app::str_member(&reply, "file_sha256").unwrap_or_default();
    if confirmed != digest {
        return Err(ClientError::Digest {
            expected: digest,
            actual: confirmed.to_owned(),
        });
    }
    Ok(PutReport {
        name: name.to_owned(),
        size,
        sent,
        resumed_from: offset,
        sha256: digest,
    })
}

/// What a finished download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetReport {
    /// Where the file was written.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Octets received this time.
    pub received: u64,
    /// Where the download resumed from.
    pub resumed_from: u64,
    /// Its sha256, verified.
    pub sha256: String,
}

/// The hidden file a download goes to before it is verified and renamed to `out`: in
/// `out`'s directory, named after `out`'s file name (see [`check_output`]).
pub fn partial_download_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.lhp-partial"))
}

/// Where `lhp get NAME` writes without `-o`: NAME's last component, in the current directory.
/// A name whose last component is empty, `.` or `..` has none to offer.
pub fn default_output(name: &str) -> Result<PathBuf, ClientError> {
    match name.rsplit('/').next() {
        Some(last) if !last.is_empty() && last != "." && last != ".." => Ok(PathBuf::from(last)),
        _ => Err(ClientError::Unexpected(format!(
            "{name:?} does not end in a file name: say where to write it with -o PATH"
        ))),
    }
}

/// Checks a download's output path before anything is asked or created: it must end in a
/// file name (not `..`, `/` or empty) and must not be a directory.
pub fn check_output(out: &Path) -> Result<(), ClientError> {
    if out.file_name().is_none() {
        return Err(ClientError::Unexpected(format!(
            "{} does not end in a file name",
            out.display()
        )));
    }
    if out.is_dir() {
        return Err(ClientError::Unexpected(format!(
            "{} is a directory: give the file's path",
            out.display()
        )));
    }
    Ok(())
}

/// Downloads `name` to `out` (in `seed-compat`: seed 002's FTP `get`, see [`seed`]), through
/// a hidden partial file next to `out`, verified against the server's whole-file digest
/// before it is renamed into place. The partial file is created only once the server has
/// accepted the request; a refusal leaves nothing behind. With `resume`, continues the
/// partial file a previous attempt left.
///
/// The file is hashed once, as it arrives: the request asks for the digest trailer (§10.5),
/// and a resumed download hashes the octets it already holds first. (From a server that
/// answers without a trailer, at offset 0, the codec verifies the body's `sha256`.)
pub fn get(
    client: &mut Client,
    name: &str,
    out: &Path,
    resume: bool,
    bar: &ProgressBar,
) -> Result<GetReport, ClientError> {
    check_output(out)?;
    if is_seed_compat(client) {
        return seed::get(client, name, out, resume, bar);
    }
    let partial = partial_download_path(out);
    let offset = if resume {
        fs::metadata(&partial).map_or(0, |m| m.len())
    } else {
        0
    };
    let mut request = app::get(name, (offset > 0).then_some(offset));
    request.insert(transfer::TRAILER, transfer::FILE_SHA256);
    client.send(&lhp_codec::Frame::new(request, Default::default()))?;
    // A refusal is `Error::Refused` (the engine classifies error frames, E2).
    let head = client.recv_head()?.ok_or(lhp_blocking::Error::Closed)?;
    expect_kind(&head, app::FILE)?;
    let size = app::u64_member(&head, "size").ok().flatten().unwrap_or(0);
    if app::u64_member(&head, "offset").ok().flatten() != Some(offset) {
        return Err(ClientError::Unexpected(format!(
            "file reply for offset {offset}: {head}"
        )));
    }
    let mut splitter = match transfer::wants_trailer(&head) {
        Ok(true) => Some(TrailerSplitter::new(head.body_len()).ok_or_else(|| {
            ClientError::Unexpected(format!("a trailer in a body of {}", head.body_len()))
        })?),
        Ok(false) => None,
        Err(m) => return Err(ClientError::Unexpected(m)),
    };
    let header_digest = app::str_member(&head, "file_sha256").map(str::to_owned);
    // Accepted: only now is the partial file created (or reopened to resume).
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(offset == 0)
        .open(&partial)?;
    file.set_len(offset)?;
    // Without a trailer, at offset 0 the codec verifies the body's sha256 (the file's).
    let codec_verifies = splitter.is_none() && offset == 0 && head.sha256().is_some();
    let hasher = if codec_verifies {
        None
    } else {
        Some(transfer::hash_prefix(&file, offset)?)
    };
    file.seek(SeekFrom::Start(offset))?;
    bar.set_length(size);
    bar.set_position(offset);
    // The socket is read on this thread while another writes and hashes (one pass).
    let (file, hasher, received) =
        transfer::receive_to_file(client.body(), file, hasher, splitter.as_mut(), |n| {
            bar.inc(n)
        })?;
    bar.finish_and_clear();
    let expected = match (&splitter, header_digest) {
        (Some(s), _) => s.digest().map(|d| hex_lower(&d)),
        (None, d) => d,
    }
    .unwrap_or_default();
    let actual = match hasher {
        Some(h) => hex_lower(&h.finalize()),
        None => expected.clone(),
    };
    if actual != expected || !app::is_sha256_hex(&expected) {
        drop(file);
        let _ = fs::remove_file(&partial);
        return Err(ClientError::Digest { expected, actual });
    }
    file.sync_all()?;
    drop(file);
    fs::rename(&partial, out)?;
    Ok(GetReport {
        path: out.to_owned(),
        size: offset + received,
        received,
        resumed_from: offset,
        sha256: actual,
    })
}

/// `stat`: (size of the complete file if any, octets of a partial upload).
pub fn stat(client: &mut Client, name: &str) -> Result<(Option<u64>, u64), ClientError> {
    let reply = request(client, app::stat(name))?;
    expect_kind(&reply, app::OK)?;
    let size = reply.get("size").and_then(Value::as_u64);
    let partial = app::u64_member(&reply, "partial")
        .ok()
        .flatten()
        .unwrap_or(0);
    Ok((size, partial))
}

/// `list`: every file under the root, `(name, size)`, sorted by name.
pub fn list(client: &mut Client) -> Result<Vec<(String, u64)>, ClientError> {
    client.send(&lhp_codec::Frame::new(app::list(), Default::default()))?;
    let frame = client.recv()?.ok_or(lhp_blocking::Error::Closed)?;
    expect_kind(&frame.header, app::LISTING)?;
    let entries: Vec<Value> = serde_json::from_slice(&frame.body)
        .map_err(|e| ClientError::Unexpected(format!("listing body: {e}")))?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_owned(),
                e.get("size")?.as_u64()?,
            ))
        })
        .collect())
}

/// How a remote program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReport {
    /// Its exit code, if it exited.
    pub code: Option<i64>,
    /// The signal that ended it, if one did.
    pub signal: Option<i64>,
    /// Whether the server's time limit killed it.
    pub timed_out: bool,
    /// Octets of stdout and stderr received.
    pub received: (u64, u64),
}

/// `exec` (in `seed-compat`: seed 002's remote command, see [`seed`]): runs `argv` on the
/// server, writing its stdout and stderr to `out` and `err` as
/// the `output` frames arrive (each body streamed, never the whole output in memory).
pub fn exec<O: Write, E: Write>(
    client: &mut Client,
    argv: &[String],
    out: &mut O,
    err: &mut E,
) -> Result<ExecReport, ClientError> {
    if is_seed_compat(client) {
        return seed::exec(client, argv, out);
    }
    client.send(&lhp_codec::Frame::new(app::exec(argv), Default::default()))?;
    let mut received = (0u64, 0u64);
    loop {
        let head = client.recv_head()?.ok_or(lhp_blocking::Error::Closed)?;
        match head.kind() {
            Some(app::OUTPUT) => {
                let mut body = client.body();
                if app::str_member(&head, "stream") == Some("stderr") {
                    received.1 += io::copy(&mut body, err)?;
                    err.flush()?;
                } else {
                    received.0 += io::copy(&mut body, out)?;
                    out.flush()?;
                }
            }
            Some(app::EXIT) => {
                return Ok(ExecReport {
                    code: head.get("code").and_then(Value::as_i64),
                    signal: head.get("signal").and_then(Value::as_i64),
                    timed_out: app::bool_member(&head, "timed_out"),
                    received,
                })
            }
            _ => return Err(ClientError::Unexpected(head.to_string())),
        }
    }
}

/// Sends a body-less request and reads a whole reply; an `error` reply becomes
/// [`ClientError::Server`].
pub fn request(client: &mut Client, header: Header) -> Result<Header, ClientError> {
    client.send(&lhp_codec::Frame::new(header, Default::default()))?;
    recv_reply(client)
}

/// The next whole reply; an `error` reply (classified by the engine, E2) becomes
/// [`ClientError::Server`].
fn recv_reply(client: &mut Client) -> Result<Header, ClientError> {
    let frame = client.recv()?.ok_or(lhp_blocking::Error::Closed)?;
    Ok(frame.header)
}

/// The [`ClientError::Server`] an `error` header describes.
pub fn server_error(h: &Header) -> ClientError {
    let code = app::str_member(h, "code").unwrap_or("unknown");
    let message = app::str_member(h, "message").unwrap_or_default();
    crate::log::refusal_received(code, message);
    ClientError::Server {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn is_seed_compat(client: &mut Client) -> bool {
    client.writer().encoder().profile() == Profile::SeedCompat
}

fn expect_kind(h: &Header, kind: &str) -> Result<(), ClientError> {
    if h.kind() == Some(app::ERROR) {
        return Err(server_error(h));
    }
    if h.kind() != Some(kind) {
        return Err(ClientError::Unexpected(format!("expected {kind}, got {h}")));
    }
    Ok(())
}

/// Seconds and MB/s, for reports.
pub fn rate(octets: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!("{:.2} s, {:.1} MB/s", secs, octets as f64 / secs / 1e6)
}

/// A timer for reports.
pub fn timer() -> Instant {
    Instant::now()
}

/// The seeds' programs, spoken by `lhp put`/`get`/`exec --profile seed-compat` (§3.3).
///
/// None of them has a request frame, a reply status or a whole-file digest, so these paths
/// check what can be checked and say what cannot:
///
/// ```text
/// put   (seed 000 upload):  i32le len | {"file_name": NAME, "file_size": N} | N octets
///                           (no reply; a refusal from `lhp serve` is an error frame)
/// get   (seed 002 FTP):     -> "get NAME" (raw, no frame)
///                           <- i32le SIZE, then per line: i32le len | {"file_name", "file_size",
///                              "md5"} | line        (every line's md5 verified by the codec)
/// exec  (seed 002 command): -> "CMD ARGS" (raw, no frame, at most one recv(1024))
///                           <- i32le len | {"file_name": "a.txt", "total_size": N,
///                              "md5": "hih1jk5jk151jk51"} | N octets of stdout then stderr
/// ```
pub mod seed {
    use std::fs::{self, OpenOptions};
    use std::io::{self, Read, Write};
    use std::net::Shutdown;
    use std::path::Path;
    use std::time::Duration;

    use indicatif::ProgressBar;
    use lhp_blocking::{Client, FrameReader};
    use lhp_codec::{hex_lower, Decoder, Header, Limits, Profile};
    use sha2::{Digest, Sha256};

    use super::{
        partial_download_path, server_error, ClientError, ExecReport, GetReport, PutReport,
    };
    use crate::app;

    /// The seeds' servers read a command with one `recv(1024)`: a longer one arrives cut.
    pub const MAX_COMMAND_LEN: usize = 1024;
    /// How long [`put`] waits, after its last octet, for a refusal: the seeds' server never
    /// answers (and never closes), `lhp serve` answers a refused name with an `error` frame.
    pub const REFUSAL_WAIT: Duration = Duration::from_secs(2);

    /// Seed 000's upload of `path` as `name`: `{"file_name", "file_size"}` and the file,
    /// then the write side is shut. The seeds confirm nothing, so the report's `sha256` is
    /// the local file's, not a server's confirmation; a refusal that arrives within
    /// [`REFUSAL_WAIT`] is returned as [`ClientError::Server`].
    pub fn put(
        client: &mut Client,
        path: &Path,
        name: &str,
        (digest, size): (&str, u64),
        resume: bool,
        bar: &ProgressBar,
    ) -> Result<PutReport, ClientError> {
        if resume {
            return Err(ClientError::Unexpected(
                "--resume needs the lhp1 profile: the seeds' upload has no offset".into(),
            ));
        }
        let mut header = Header::new();
        header.insert("file_name", name).insert("file_size", size);
        header.set_body_len_for(Profile::SeedCompat, size);
        let file = fs::File::open(path)?;
        bar.set_length(size);
        let sent = client.upload(&header, bar.wrap_read(file.take(size)))?;
        bar.finish_and_clear();
        client.writer().flush()?;
        client.writer().get_ref().shutdown(Shutdown::Write)?;
        client
            .reader()
            .get_ref()
            .set_read_timeout(Some(REFUSAL_WAIT))?;
        match client.recv() {
            Ok(None) => {}
            Ok(Some(frame)) if frame.header.kind() == Some(app::ERROR) => {
                return Err(server_error(&frame.header))
            }
            Ok(Some(frame)) => return Err(ClientError::Unexpected(frame.header.to_string())),
            Err(lhp_blocking::Error::Timeout(_)) => {}
            Err(lhp_blocking::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(PutReport {
            name: name.to_owned(),
            size,
            sent,
            resumed_from: 0,
            sha256: digest.to_owned(),
        })
    }

    /// Seed 002's FTP `get NAME`: a bare 4-octet size, then one frame per line whose `md5`
    /// the codec verifies. The lines go to a hidden partial file, renamed to `out` only when
    /// exactly the announced size arrived; any failure removes it. The report's `sha256` is
    /// computed here (the seed sends none).
    pub fn get(
        client: &mut Client,
        name: &str,
        out: &Path,
        resume: bool,
        bar: &ProgressBar,
    ) -> Result<GetReport, ClientError> {
        if resume {
            return Err(ClientError::Unexpected(
                "--resume needs the lhp1 profile: the seeds' get has no offset".into(),
            ));
        }
        // The seed server splits the command on ' ' and wants exactly two parts.
        if name.is_empty() || name.contains(' ') {
            return Err(ClientError::Unexpected(format!(
                "{name:?}: the seeds' get cannot carry an empty name or one with a space"
            )));
        }
        send_command(client, &format!("get {name}"))?;
        let mut stream = client.reader().get_ref().try_clone()?;
        let mut prefix = [0u8; 4];
        if let Err(e) = stream.read_exact(&mut prefix) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return Err(ClientError::Unexpected(format!(
                    "the seed server closed without a size: it has no file {name:?}"
                )));
            }
            return Err(e.into());
        }
        let size = u64::try_from(i32::from_le_bytes(prefix)).map_err(|_| {
            ClientError::Unexpected(format!("negative file size {}", i32::from_le_bytes(prefix)))
        })?;
        let mut decoder = Decoder::with(
            Profile::SeedCompat,
            Limits::new().with_max_body_len(size.max(1)),
        );
        decoder.set_stream_offset(4);
        let mut reader = FrameReader::with_decoder(stream, decoder);
        let partial = partial_download_path(out);
        let result = receive_lines(&mut reader, &partial, size, bar);
        match result {
            Ok(sha256) => {
                fs::rename(&partial, out)?;
                Ok(GetReport {
                    path: out.to_owned(),
                    size,
                    received: size,
                    resumed_from: 0,
                    sha256,
                })
            }
            Err(e) => {
                let _ = fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// Seed 002's remote command: `argv` joined by spaces, sent raw (as the seed client's
    /// `input().strip()`), and the reply frame's body (stdout then stderr, `total_size`
    /// octets) streamed to `out` exactly. The seed reply has no exit status: `code` is
    /// `Some(0)` when the whole reply arrived.
    pub fn exec<O: Write>(
        client: &mut Client,
        argv: &[String],
        out: &mut O,
    ) -> Result<ExecReport, ClientError> {
        let joined = argv.join(" ");
        let command = joined.trim();
        if command.is_empty() {
            return Err(ClientError::Unexpected("an empty command".into()));
        }
        send_command(client, command)?;
        let head = client.recv_head()?.ok_or(lhp_blocking::Error::Closed)?;
        if head.get("total_size").is_none() {
            return Err(ClientError::Unexpected(format!(
                "expected a seed command reply with total_size, got {head}"
            )));
        }
        let received = io::copy(&mut client.body(), out)?;
        out.flush()?;
        Ok(ExecReport {
            code: Some(0),
            signal: None,
            timed_out: false,
            received: (received, 0),
        })
    }

    /// Writes a command as the seeds do: its UTF-8 octets, no frame.
    fn send_command(client: &mut Client, command: &str) -> Result<(), ClientError> {
        if command.len() > MAX_COMMAND_LEN {
            return Err(ClientError::Unexpected(format!(
                "a command of {} octets: the seeds' server reads at most {MAX_COMMAND_LEN}",
                command.len()
            )));
        }
        let stream = client.writer().get_mut();
        stream.write_all(command.as_bytes())?;
        stream.flush()?;
        Ok(())
    }

    /// Reads line frames until `size` octets arrived; returns their sha256.
    fn receive_lines<R: Read>(
        reader: &mut FrameReader<R>,
        partial: &Path,
        size: u64,
        bar: &ProgressBar,
    ) -> Result<String, ClientError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(partial)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        bar.set_length(size);
        while received < size {
            let head = reader.read_head()?.ok_or_else(|| {
                ClientError::Unexpected(format!("the server stopped at {received} of {size}"))
            })?;
            let md5_ok = head
                .get("md5")
                .and_then(lhp_codec::Value::as_str)
                .is_some_and(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()));
            let len = head.body_len();
            if !md5_ok || len == 0 || len > size - received {
                return Err(ClientError::Unexpected(format!(
                    "a line frame without an md5, empty, or past the size {size}: {head}"
                )));
            }
            let mut body = reader.body();
            let mut buf = [0u8; 16 << 10];
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                let chunk = buf.get(..n).unwrap_or_default();
                file.write_all(chunk)?;
                hasher.update(chunk);
                bar.inc(n as u64);
            }
            received += len;
        }
        bar.finish_and_clear();
        file.sync_all()?;
        Ok(hex_lower(&hasher.finalize()))
    }
}
