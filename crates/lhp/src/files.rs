//! The file server's handler (§10): `put`, `get`, `stat`, `list`, `exec` and `echo` on the
//! blocking engine, plus the seeds' upload in `seed-compat`.
//!
//! Uploads never leave a visible partial file and never clobber an existing file by
//! accident:
//!
//! ```text
//!   put "a/b.bin" ──> resolve (§10.2) ──> claim "a/b.bin" (one upload per name at a time, else busy)
//!        ──> a/.lhp-partial-<sha256(b.bin)[..32]>   (hidden; kept if the connection breaks)
//!        ──> sha256 of the whole file == declared?  (no: delete it, digest_mismatch)
//!        ──> fsync ──> link(2) to a/b.bin (fails if it exists: `exists`)
//!                      or rename(2) over it with "replace":true ──> fsync the directory
//! ```

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use lhp_blocking::{Body, ConnReader, Error, Handler, Replies, Request};
use lhp_codec::{hex_lower, DecodeError, Frame, Header, Profile, Value};
use sha2::{Digest, Sha256};

use crate::app::{self, ErrorCode};
use crate::exec;
use crate::names::{self, NameError, Resolved};

/// Most entries a `listing` reports.
pub const MAX_LISTING: usize = 100_000;

/// What `lhp serve` serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The directory served; `None`: a pure echo server.
    pub root: Option<PathBuf>,
    /// Programs `exec` may run (matched against `argv[0]` exactly).
    pub allow_exec: Vec<String>,
    /// Time limit of one `exec`.
    pub exec_timeout: Duration,
    /// The wire profile (in `seed-compat`, a frame with `file_name` and no `kind` is the
    /// seeds' upload).
    pub profile: Profile,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            root: None,
            allow_exec: Vec::new(),
            exec_timeout: Duration::from_secs(30),
            profile: Profile::Lhp1,
        }
    }
}

/// The handler behind `lhp serve`.
#[derive(Debug)]
pub struct FileService {
    root: Option<PathBuf>,
    allow_exec: Vec<String>,
    exec_timeout: Duration,
    profile: Profile,
    uploading: Mutex<HashSet<PathBuf>>,
}

impl FileService {
    /// A handler for `opts`; the root (if any) must exist and is canonicalized now.
    pub fn new(opts: &ServeOptions) -> io::Result<Self> {
        let root = match &opts.root {
            Some(r) => {
                let c = fs::canonicalize(r).map_err(|e| {
                    io::Error::new(e.kind(), format!("--root {}: {e}", r.display()))
                })?;
                if !c.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("--root {} is not a directory", r.display()),
                    ));
                }
                Some(c)
            }
            None => None,
        };
        Ok(FileService {
            root,
            allow_exec: opts.allow_exec.clone(),
            exec_timeout: opts.exec_timeout,
            profile: opts.profile,
            uploading: Mutex::new(HashSet::new()),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

impl Handler for FileService {
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let head = request.head().clone();
        match head.kind() {
            Some(app::ECHO) => {
                let (head, mut body) = request.into_parts();
                if head.body_len() <= lhp_codec::Limits::DEFAULT_MAX_BODY_LEN {
                    let frame = body.into_frame(head)?;
                    replies.send(&frame.echo_reply())
                } else {
                    replies.send_stream(&head, &mut body).map(drop)
                }
            }
            Some(app::EXEC) => self.exec(&head, replies),
            Some(kind @ (app::PUT | app::GET | app::STAT | app::LIST)) => {
                let Some(root) = self.root.clone() else {
                    return reply_error(
                        &head,
                        replies,
                        ErrorCode::BadRequest,
                        &format!("this server has no --root: {kind} is not available"),
                    );
                };
                match kind {
                    app::PUT => {
                        let (head, body) = request.into_parts();
                        self.put(&root, &head, body, replies)
                    }
                    app::GET => self.get(&root, &head, replies),
                    app::STAT => self.stat(&root, &head, replies),
                    _ => self.list(&root, &head, replies),
                }
            }
            None if self.profile == Profile::SeedCompat && head.get("file_name").is_some() => {
                let Some(root) = self.root.clone() else {
                    return reply_error(
                        &head,
                        replies,
                        ErrorCode::BadRequest,
                        "this server has no --root",
                    );
                };
                let (head, body) = request.into_parts();
                self.seed_upload(&root, &head, body, replies)
            }
            other => {
                let what = other.map_or_else(
                    || "a frame without kind".to_owned(),
                    |k| format!("kind {k:?}"),
                );
                reply_error(
                    &head,
                    replies,
                    ErrorCode::BadRequest,
                    &format!("{what} is not a request this server knows"),
                )
            }
        }
    }
}

/// How an upload ended, when the connection survived it.
enum Upload {
    Stored { size: u64, digest: String },
    Refused(ErrorCode, String),
}

impl FileService {
    fn put(
        &self,
        root: &Path,
        head: &Header,
        body: Body<'_, ConnReader>,
        replies: &mut Replies<'_>,
    ) -> Result<(), Error> {
        let Some(name) = head.name() else {
            return reply_error(head, replies, ErrorCode::BadRequest, "put needs a name");
        };
        let offset = match app::u64_member(head, "offset") {
            Ok(o) => o.unwrap_or(0),
            Err(m) => return reply_error(head, replies, ErrorCode::BadRequest, &m),
        };
        let expected = match (app::str_member(head, "file_sha256"), head.sha256()) {
            (Some(d), _) if app::is_sha256_hex(d) => d.to_owned(),
            (Some(_), _) => {
                return reply_error(
                    head,
                    replies,
                    ErrorCode::BadRequest,
                    "file_sha256 must be 64 lowercase hex digits",
                )
            }
            (None, Some(d)) if offset == 0 => d.to_owned(),
            _ => return reply_error(
                head,
                replies,
                ErrorCode::BadRequest,
                "put needs sha256 (the whole file's digest), or file_sha256 when it has an offset",
            ),
        };
        let replace = app::bool_member(head, "replace");
        let resolved = match names::resolve(root, name) {
            Ok(r) => r,
            Err(e) => return reply_name_error(head, replies, e),
        };
        match self.receive(&resolved, body, offset, Some(&expected), replace)? {
            Upload::Stored { size, digest } => {
                let mut h = app::reply_to(head, Header::with_kind(app::OK));
                h.set_name(name);
                h.insert("size", size).insert("file_sha256", digest);
                replies.send(&Frame::new(h, Bytes::new()))
            }
            Upload::Refused(code, message) => reply_error(head, replies, code, &message),
        }
    }

    /// Seed 000's upload: `{"file_name": ..., "file_size": n}` and the file. Stored like a
    /// `put` that replaces (the seeds overwrite), without a digest; no reply on success.
    fn seed_upload(
        &self,
        root: &Path,
        head: &Header,
        body: Body<'_, ConnReader>,
        replies: &mut Replies<'_>,
    ) -> Result<(), Error> {
        let Some(name) = head.get("file_name").and_then(Value::as_str) else {
            return reply_error(
                head,
                replies,
                ErrorCode::BadRequest,
                "file_name must be a string",
            );
        };
        let resolved = match names::resolve(root, name) {
            Ok(r) => r,
            Err(e) => return reply_name_error(head, replies, e),
        };
        match self.receive(&resolved, body, 0, None, true)? {
            Upload::Stored { .. } => Ok(()),
            Upload::Refused(code, message) => reply_error(head, replies, code, &message),
        }
    }

    /// Streams a body into the name's hidden partial file from `offset`, checks the whole
    /// file's digest, and links or renames it into place.
    fn receive(
        &self,
        resolved: &Resolved,
        mut body: Body<'_, ConnReader>,
        offset: u64,
        expected: Option<&str>,
        replace: bool,
    ) -> Result<Upload, Error> {
        let target = resolved.path();
        if let Ok(meta) = fs::symlink_metadata(&target) {
            if meta.file_type().is_symlink() || !meta.is_file() {
                return Ok(Upload::Refused(
                    ErrorCode::BadName,
                    format!("{:?} exists and is not a regular file", resolved.file_name),
                ));
            }
            if !replace {
                return Ok(Upload::Refused(
                    ErrorCode::Exists,
                    format!(
                        "{:?} exists (send \"replace\":true to replace it)",
                        resolved.file_name
                    ),
                ));
            }
        }
        let Some(_claim) = Claim::new(&self.uploading, target.clone()) else {
            return Ok(Upload::Refused(
                ErrorCode::Busy,
                format!(
                    "{:?} is being uploaded by another client",
                    resolved.file_name
                ),
            ));
        };
        let partial_path = resolved.partial_path();
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial_path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                let e = names::open_error(&partial_path, e);
                return Ok(Upload::Refused(e.code, e.message));
            }
        };
        let held = file.metadata().map_err(Error::Io)?.len();
        if offset > held {
            return Ok(Upload::Refused(
                ErrorCode::BadRequest,
                format!(
                    "cannot resume {:?} at octet {offset}: the server holds {held} (ask with stat)",
                    resolved.file_name
                ),
            ));
        }
        file.set_len(offset).map_err(Error::Io)?;
        let mut hasher = Sha256::new();
        io::copy(&mut (&file).take(offset), &mut hasher).map_err(Error::Io)?;
        file.seek(SeekFrom::Start(offset)).map_err(Error::Io)?;

        let mut buf = vec![0u8; 64 << 10];
        let mut size = offset;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let err = body_error(e);
                    if matches!(&err, Error::Decode(d) if d.code() == "digest_mismatch") {
                        // The octets are wrong: nothing to resume from.
                        let _ = fs::remove_file(&partial_path);
                    }
                    // Otherwise the partial file stays (hidden) for a resumed put.
                    return Err(err);
                }
            };
            let chunk = buf.get(..n).unwrap_or_default();
            if let Err(e) = file.write_all(chunk) {
                return Ok(Upload::Refused(
                    ErrorCode::Internal,
                    format!("writing {:?}: {e}", resolved.file_name),
                ));
            }
            hasher.update(chunk);
            size += n as u64;
        }
        let digest = hex_lower(&hasher.finalize());
        if let Some(want) = expected {
            if digest != want {
                drop(file);
                let _ = fs::remove_file(&partial_path);
                return Ok(Upload::Refused(ErrorCode::DigestMismatch, format!(
                    "the {size} octets of {:?} have sha256 {digest}, not {want}; nothing was stored", resolved.file_name
                )));
            }
        }
        if let Err(e) = file.sync_all() {
            return Ok(Upload::Refused(ErrorCode::Internal, format!("fsync: {e}")));
        }
        drop(file);
        let placed = if replace {
            fs::rename(&partial_path, &target)
        } else {
            // link(2) never replaces: if another upload placed the name first, we lose cleanly.
            fs::hard_link(&partial_path, &target).and_then(|()| fs::remove_file(&partial_path))
        };
        if let Err(e) = placed {
            let _ = fs::remove_file(&partial_path);
            let code = if e.kind() == io::ErrorKind::AlreadyExists {
                ErrorCode::Exists
            } else {
                ErrorCode::Internal
            };
            return Ok(Upload::Refused(
                code,
                format!("placing {:?}: {e}", resolved.file_name),
            ));
        }
        if let Ok(dir) = File::open(&resolved.dir) {
            let _ = dir.sync_all();
        }
        Ok(Upload::Stored { size, digest })
    }

    fn get(&self, root: &Path, head: &Header, replies: &mut Replies<'_>) -> Result<(), Error> {
        let Some(name) = head.name() else {
            return reply_error(head, replies, ErrorCode::BadRequest, "get needs a name");
        };
        let offset = match app::u64_member(head, "offset") {
            Ok(o) => o.unwrap_or(0),
            Err(m) => return reply_error(head, replies, ErrorCode::BadRequest, &m),
        };
        let mut file = match names::resolve(root, name).and_then(|r| names::open_regular(&r.path()))
        {
            Ok(f) => f,
            Err(e) => return reply_name_error(head, replies, e),
        };
        let size = file.metadata().map_err(Error::Io)?.len();
        if offset > size {
            return reply_error(
                head,
                replies,
                ErrorCode::BadRequest,
                &format!("offset {offset} is past the end ({size} octets)"),
            );
        }
        let (digest, hashed) = lhp_blocking::sha256_of(&mut file).map_err(Error::Io)?;
        if hashed != size {
            return reply_error(
                head,
                replies,
                ErrorCode::Internal,
                &format!("{name:?} changed while being read"),
            );
        }
        file.seek(SeekFrom::Start(offset)).map_err(Error::Io)?;
        let mut h = app::reply_to(head, Header::with_kind(app::FILE));
        h.set_name(name);
        h.insert("size", size)
            .insert("offset", offset)
            .insert("file_sha256", hex_lower(&digest));
        if offset == 0 {
            h.set_sha256(&digest);
        }
        h.set_body_len(size - offset);
        replies.send_stream(&h, file.take(size - offset)).map(drop)
    }

    fn stat(&self, root: &Path, head: &Header, replies: &mut Replies<'_>) -> Result<(), Error> {
        let Some(name) = head.name() else {
            return reply_error(head, replies, ErrorCode::BadRequest, "stat needs a name");
        };
        let resolved = match names::resolve(root, name) {
            Ok(r) => r,
            Err(e) => return reply_name_error(head, replies, e),
        };
        let size = match names::open_regular(&resolved.path()) {
            Ok(f) => Value::from(f.metadata().map_err(Error::Io)?.len()),
            Err(e)
                if e.code == ErrorCode::NotFound && !names::exists_no_follow(&resolved.path()) =>
            {
                Value::Null
            }
            Err(e) => return reply_name_error(head, replies, e),
        };
        let partial = fs::symlink_metadata(resolved.partial_path())
            .ok()
            .filter(|m| m.is_file())
            .map_or(0, |m| m.len());
        let mut h = app::reply_to(head, Header::with_kind(app::OK));
        h.set_name(name);
        h.insert("size", size).insert("partial", partial);
        replies.send(&Frame::new(h, Bytes::new()))
    }

    fn list(&self, root: &Path, head: &Header, replies: &mut Replies<'_>) -> Result<(), Error> {
        let mut entries = Vec::new();
        let mut truncated = false;
        walk(root, "", &mut entries, &mut truncated);
        entries.sort_by(|a: &(String, u64), b| a.0.cmp(&b.0));
        let body: Vec<Value> = entries
            .iter()
            .map(|(n, s)| serde_json::json!({"name": n, "size": s}))
            .collect();
        let body = serde_json::to_vec(&body).map_err(|e| Error::Io(io::Error::other(e)))?;
        let mut h = app::reply_to(head, Header::with_kind(app::LISTING));
        h.insert("count", entries.len())
            .insert("truncated", truncated);
        replies.send(&Frame::new(h, body.into()))
    }

    fn exec(&self, head: &Header, replies: &mut Replies<'_>) -> Result<(), Error> {
        let argv: Option<Vec<String>> = head.get("argv").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        });
        let argv = match argv {
            Some(v)
                if !v.is_empty()
                    && Some(v.len())
                        == head.get("argv").and_then(Value::as_array).map(Vec::len) =>
            {
                v
            }
            _ => {
                return reply_error(
                    head,
                    replies,
                    ErrorCode::BadRequest,
                    "argv must be a non-empty array of strings",
                )
            }
        };
        let program = argv.first().map(String::as_str).unwrap_or_default();
        if !self.allow_exec.iter().any(|p| p == program) {
            let why = if self.allow_exec.is_empty() {
                "exec is off on this server (start it with --allow-exec PROGRAM)".to_owned()
            } else {
                format!("{program:?} is not an allowed program")
            };
            return reply_error(head, replies, ErrorCode::ExecDenied, &why);
        }
        let cwd = self.root.clone().unwrap_or_else(|| PathBuf::from("."));
        exec::run(head, &argv, &cwd, self.exec_timeout, replies).map(drop)
    }
}

/// One upload per target path at a time.
struct Claim<'a> {
    set: &'a Mutex<HashSet<PathBuf>>,
    path: PathBuf,
}

impl<'a> Claim<'a> {
    fn new(set: &'a Mutex<HashSet<PathBuf>>, path: PathBuf) -> Option<Self> {
        // Decide under the lock, build the claim after releasing it: a claim dropped while the
        // guard is alive would deadlock in its own `drop`.
        let inserted = lock(set).insert(path.clone());
        inserted.then(|| Claim { set, path })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.path);
    }
}

fn lock(set: &Mutex<HashSet<PathBuf>>) -> MutexGuard<'_, HashSet<PathBuf>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>, truncated: &mut bool) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        if out.len() >= MAX_LISTING {
            *truncated = true;
            return;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(app::PARTIAL_PREFIX) {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if ft.is_dir() {
            walk(&entry.path(), &full, out, truncated);
        } else if ft.is_file() {
            if let Ok(m) = entry.metadata() {
                out.push((full, m.len()));
            }
        }
    }
}

/// Maps a body read error back to the engine's error, so the server reports the codec's code
/// (`digest_mismatch`, `unexpected_eof`, ...) or `timeout`.
fn body_error(e: io::Error) -> Error {
    if let Some(d) = e.get_ref().and_then(|r| r.downcast_ref::<DecodeError>()) {
        return Error::Decode(d.clone());
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(e),
        _ => Error::Io(e),
    }
}

fn reply_error(
    head: &Header,
    replies: &mut Replies<'_>,
    code: ErrorCode,
    message: &str,
) -> Result<(), Error> {
    exec::send_error(head, replies, code, message)
}

fn reply_name_error(head: &Header, replies: &mut Replies<'_>, e: NameError) -> Result<(), Error> {
    exec::send_error(head, replies, e.code, &e.message)
}
