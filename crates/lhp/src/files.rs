//! The file server (§10): `put`, `get`, `stat`, `list`, `exec` and `echo`, plus the seeds'
//! upload in `seed-compat`. The logic is engine-neutral ([`FileService::route`],
//! [`FileService::begin_upload`], [`open_download`], [`stat_reply`], [`list_reply`]); this
//! module also drives it on the blocking engine, and [`crate::tokio_serve`] on tokio.
//!
//! Uploads never leave a visible partial file and never clobber an existing file by
//! accident:
//!
//! ```text
//!   put "a/b.bin" ──> resolve (§10.2) ──> claim "a/b.bin" (one upload per name at a time, else in_use)
//!        ──> a/.lhp-partial-<sha256(b.bin)[..32]>   (hidden; kept if the connection breaks,
//!                                                    deleted if the disk is full: no_space)
//!        ──> sha256 of the whole file == declared?  (no: delete it, file_digest_mismatch)
//!        ──> fsync ──> link(2) to a/b.bin (fails if it exists: `exists`)
//!                      or rename(2) over it with "replace":true ──> fsync the directory
//! ```
//!
//! The file is hashed once on the server, as its octets arrive: by the codec when the header's
//! `sha256` is the whole file's digest, else by the upload itself (a digest trailer, §10.3, or
//! a resumed upload, whose held prefix is hashed first). Partial uploads that nobody resumes
//! are deleted by the [`Retention`] policy (age, then total size), never while in use.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lhp_blocking::{Error, Handler, Replies, Request, RequestBody};
use lhp_codec::{hex_lower, DecodeError, Frame, Header, Profile, Value};
use sha2::{Digest, Sha256};

use crate::app::{self, ErrorCode};
use crate::exec;
use crate::log;
use crate::names::{self, NameError, Resolved};
use crate::transfer::{self, AsyncReadAhead, ReadAhead, TrailerSplitter};

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
    /// When partial uploads are deleted.
    pub retention: Retention,
}

/// The retention policy for partial uploads (hidden `.lhp-partial-` files that an interrupted
/// `put` leaves for `--resume`): at startup and at most every [`SWEEP_INTERVAL`] (checked when
/// an upload begins), partials not written for `max_age` are deleted, then the oldest ones
/// until all partials together hold at most `max_total` octets. A partial whose upload is in
/// progress is never deleted (it still counts toward the total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Partials not modified for this long are deleted.
    pub max_age: Duration,
    /// The most octets all partials together may hold.
    pub max_total: u64,
}

impl Retention {
    /// The default `max_age`: one day to resume an interrupted upload.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
    /// The default `max_total`: 4 GiB.
    pub const DEFAULT_MAX_TOTAL: u64 = 4 << 30;
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Self::DEFAULT_MAX_AGE,
            max_total: Self::DEFAULT_MAX_TOTAL,
        }
    }
}

/// How often, at most, uploads trigger a sweep of partial files.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What a sweep of partial uploads did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Partial files deleted.
    pub removed: usize,
    /// Octets they held.
    pub freed: u64,
    /// Partial files kept.
    pub kept: usize,
    /// Octets the kept ones hold.
    pub kept_octets: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            root: None,
            allow_exec: Vec::new(),
            exec_timeout: Duration::from_secs(30),
            profile: Profile::Lhp1,
            retention: Retention::default(),
        }
    }
}

/// The file service behind `lhp serve`, whichever engine runs it: this type holds the
/// engine-neutral logic (request routing, name checks, uploads into hidden partial files,
/// downloads, `stat`, `list`), and implements the blocking engine's [`Handler`]. The tokio
/// engine's handler is [`crate::tokio_serve::TokioFileService`], built on the same pieces.
#[derive(Debug)]
pub struct FileService {
    root: Option<PathBuf>,
    allow_exec: Vec<String>,
    exec_timeout: Duration,
    profile: Profile,
    uploading: Arc<Mutex<HashSet<PathBuf>>>,
    retention: Retention,
    last_sweep: Mutex<Option<Instant>>,
}

/// A request refused with an application `error` frame (§10.8); the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The application error code.
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<NameError> for Refusal {
    fn from(e: NameError) -> Self {
        Refusal::new(e.code, e.message)
    }
}

/// What a request asks for, once its kind, members, names and permissions are checked.
#[derive(Debug)]
#[non_exhaustive]
pub enum Route {
    /// `echo`: the frame comes back.
    Echo,
    /// `put`, or the seeds' upload in `seed-compat` (then `plan.name` is `None` and a
    /// successful upload gets no reply).
    Put(PutPlan),
    /// `get`, under this root.
    Get(PathBuf),
    /// `stat`, under this root.
    Stat(PathBuf),
    /// `list`, under this root.
    List(PathBuf),
    /// `exec` of an allowed program.
    Exec {
        /// The program and its arguments (no shell).
        argv: Vec<String>,
        /// Where it runs: the root, or `.` without one.
        cwd: PathBuf,
        /// Its time limit.
        timeout: Duration,
    },
}

/// A checked upload: where it goes and what it must hash to.
#[derive(Debug, Clone)]
pub struct PutPlan {
    /// The name as requested; `None` for the seeds' upload (which gets no reply).
    pub name: Option<String>,
    /// The resolved target.
    pub resolved: Resolved,
    /// Where the body starts in the file (resume).
    pub offset: u64,
    /// The whole file's sha256 (hex), if declared in the header.
    pub expected: Option<String>,
    /// Replace an existing file.
    pub replace: bool,
    /// The body's length.
    pub body_len: u64,
    /// The body ends with the whole file's sha256, 32 raw octets (§10.3 digest trailer).
    pub trailer: bool,
    /// The header's `sha256`, which the codec verifies as the body arrives, is the whole
    /// file's digest (no offset, no trailer): the upload need not hash the file again.
    pub codec_verified: bool,
}

/// `spec/lhp-1.md` §13.3: a request whose `crit` lists a member this server does not implement
/// for its `kind` (or that is malformed, lists a registered member, or names a member the
/// request lacks) is refused with `bad_request` and not acted on.
fn check_crit(head: &Header) -> Result<(), Refusal> {
    let Some(crit) = head.get("crit") else {
        return Ok(());
    };
    let refuse = |why: String| Err(Refusal::new(ErrorCode::BadRequest, why));
    let Some(list) = crit.as_array() else {
        return refuse("crit must be an array of member names (§13.3)".into());
    };
    let implemented: &[&str] = match head.kind() {
        Some(app::PUT) => &["name", "offset", "replace", "file_sha256", "trailer"],
        Some(app::GET) => &["name", "offset", "trailer"],
        Some(app::STAT) => &["name"],
        Some(app::EXEC) => &["argv"],
        _ => &[],
    };
    for member in list {
        let Some(member) = member.as_str() else {
            return refuse("crit must be an array of member names (§13.3)".into());
        };
        if ["kind", "id", "name", "sha256", "body_len", "v"].contains(&member) {
            return refuse(format!(
                "crit lists the registered member {member:?} (§13.3)"
            ));
        }
        if head.get(member).is_none() {
            return refuse(format!(
                "crit lists {member:?}, which the request lacks (§13.3)"
            ));
        }
        if !implemented.contains(&member) {
            return refuse(format!(
                "crit lists {member:?}, which this server does not implement (§13.3)"
            ));
        }
    }
    Ok(())
}

impl PutPlan {
    /// The file's octets this upload carries: the body without its digest trailer.
    pub fn file_octets(&self) -> u64 {
        if self.trailer {
            self.body_len.saturating_sub(32)
        } else {
            self.body_len
        }
    }
}

/// A file stored by an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its size.
    pub size: u64,
    /// Its sha256, lowercase hex.
    pub digest: String,
}

/// A file ready to be sent for a `get`: the `file` reply's header (with `body_len`), and the
/// file positioned at the requested offset with `len` octets to send.
#[derive(Debug)]
pub struct Download {
    /// The `file` reply's header.
    pub header: Header,
    /// The file, positioned at the offset.
    pub file: File,
    /// Octets to send from the file.
    pub len: u64,
    /// With a digest trailer (§10.5): the hasher over the octets before the offset; the file's
    /// octets are hashed as they are sent and the digest follows them.
    pub trailer: Option<Sha256>,
}

impl Download {
    /// The reply's body length: the file's octets, and the trailer if any.
    pub fn body_len(&self) -> u64 {
        self.len + self.trailer.as_ref().map_or(0, |_| transfer::TRAILER_LEN)
    }

    /// The header and the body as a [`Read`] (blocking engine). With a trailer, the file is
    /// read and hashed on a second thread while the connection's thread writes the socket.
    pub fn into_read(self) -> io::Result<(Header, Box<dyn Read + Send>)> {
        let body: Box<dyn Read + Send> = match self.trailer {
            Some(hasher) => Box::new(ReadAhead::spawn(self.file, self.len, hasher)?),
            None => Box::new(self.file.take(self.len)),
        };
        Ok((self.header, body))
    }

    /// The header, the body length and the body as an `AsyncRead` (tokio engine). With a
    /// trailer, the file is read and hashed on a second thread ([`AsyncReadAhead`]) while the
    /// connection's task writes the socket.
    pub fn into_async_read(
        self,
    ) -> io::Result<(Header, u64, Box<dyn tokio::io::AsyncRead + Unpin + Send>)> {
        let len = self.body_len();
        let body: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match self.trailer {
            Some(hasher) => Box::new(AsyncReadAhead::spawn(self.file, self.len, hasher)?),
            None => Box::new(tokio::io::AsyncReadExt::take(
                tokio::fs::File::from_std(self.file),
                self.len,
            )),
        };
        Ok((self.header, len, body))
    }
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
        let service = FileService {
            root,
            allow_exec: opts.allow_exec.clone(),
            exec_timeout: opts.exec_timeout,
            profile: opts.profile,
            uploading: Arc::new(Mutex::new(HashSet::new())),
            retention: opts.retention,
            last_sweep: Mutex::new(None),
        };
        service.sweep_partials(SystemTime::now());
        Ok(service)
    }

    /// Applies the [`Retention`] policy now: deletes partial uploads older than `max_age`,
    /// then the oldest until the rest fit in `max_total`. Partials of uploads in progress are
    /// kept (and counted).
    pub fn sweep_partials(&self, now: SystemTime) -> Sweep {
        if let Ok(mut last) = self.last_sweep.lock() {
            *last = Some(Instant::now());
        }
        let Some(root) = &self.root else {
            return Sweep::default();
        };
        let mut found = Vec::new();
        find_partials(root, &mut found, 0);
        // Oldest first.
        found.sort_by_key(|p| p.modified);
        // Held while deciding and deleting, so no upload claims a partial being deleted.
        let claims = lock(&self.uploading);
        let in_use: HashSet<PathBuf> = claims
            .iter()
            .filter_map(|target| {
                Some(
                    Resolved {
                        dir: target.parent()?.to_path_buf(),
                        file_name: target.file_name()?.to_string_lossy().into_owned(),
                    }
                    .partial_path(),
                )
            })
            .collect();
        let mut sweep = Sweep::default();
        let mut total: u64 = found.iter().map(|p| p.len).sum();
        for p in &found {
            let stale = now
                .duration_since(p.modified)
                .is_ok_and(|age| age > self.retention.max_age);
            let over = total > self.retention.max_total;
            if (stale || over) && !in_use.contains(&p.path) && fs::remove_file(&p.path).is_ok() {
                sweep.removed += 1;
                sweep.freed += p.len;
                total -= p.len;
            } else {
                sweep.kept += 1;
                sweep.kept_octets += p.len;
            }
        }
        drop(claims);
        sweep
    }

    /// Sweeps if the last sweep is older than [`SWEEP_INTERVAL`].
    fn maybe_sweep(&self) {
        let due = self
            .last_sweep
            .lock()
            .map(|last| last.is_none_or(|t| t.elapsed() >= SWEEP_INTERVAL))
            .unwrap_or(false);
        if due {
            self.sweep_partials(SystemTime::now());
        }
    }

    /// The canonical root.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Checks a request and says what to do with it (blocking: names are resolved on disk).
    pub fn route(&self, head: &Header) -> Result<Route, Refusal> {
        check_crit(head)?;
        match head.kind() {
            Some(app::ECHO) => Ok(Route::Echo),
            Some(app::EXEC) => self.exec_route(head),
            Some(kind @ (app::PUT | app::GET | app::STAT | app::LIST)) => {
                let Some(root) = self.root.clone() else {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        format!("this server has no --root: {kind} is not available"),
                    ));
                };
                match kind {
                    app::PUT => put_plan(&root, head).map(Route::Put),
                    app::GET => Ok(Route::Get(root)),
                    app::STAT => Ok(Route::Stat(root)),
                    _ => Ok(Route::List(root)),
                }
            }
            None if self.profile == Profile::SeedCompat && head.get("file_name").is_some() => {
                let Some(root) = self.root.clone() else {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        "this server has no --root",
                    ));
                };
                seed_plan(&root, head).map(Route::Put)
            }
            other => {
                let what = other.map_or_else(
                    || "a frame without kind".to_owned(),
                    |k| format!("kind {k:?}"),
                );
                Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("{what} is not a request this server knows"),
                ))
            }
        }
    }

    /// Starts an upload: refuses an existing name (unless `replace`) or one being uploaded,
    /// opens the hidden partial file, and hashes the octets it already holds up to `offset`.
    pub fn begin_upload(&self, plan: &PutPlan) -> Result<Partial, Refusal> {
        let resolved = &plan.resolved;
        let target = resolved.path();
        if let Ok(meta) = fs::symlink_metadata(&target) {
            if meta.file_type().is_symlink() || !meta.is_file() {
                return Err(Refusal::new(
                    ErrorCode::BadName,
                    format!("{:?} exists and is not a regular file", resolved.file_name),
                ));
            }
            if !plan.replace {
                return Err(Refusal::new(
                    ErrorCode::Exists,
                    format!(
                        "{:?} exists (send \"replace\":true to replace it)",
                        resolved.file_name
                    ),
                ));
            }
        }
        let Some(claim) = Claim::new(&self.uploading, target.clone()) else {
            return Err(Refusal::new(
                ErrorCode::InUse,
                format!(
                    "{:?} is being uploaded by another client",
                    resolved.file_name
                ),
            ));
        };
        // After the claim: this upload's own partial is never swept from under it.
        self.maybe_sweep();
        let partial_path = resolved.partial_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial_path)
            .map_err(|e| Refusal::from(names::open_error(&partial_path, e)))?;
        let internal = |e: io::Error| {
            Refusal::new(
                ErrorCode::Internal,
                format!("{:?}: {e}", resolved.file_name),
            )
        };
        let held = file.metadata().map_err(internal)?.len();
        let offset = plan.offset;
        if offset > held {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "cannot resume {:?} at octet {offset}: the server holds {held} (ask with stat)",
                    resolved.file_name
                ),
            ));
        }
        file.set_len(offset).map_err(internal)?;
        // One pass over the file: the held prefix now, the body as it arrives (unless the
        // codec already verifies the body's digest, which is then the whole file's).
        let hasher = if plan.codec_verified {
            None
        } else {
            Some(transfer::hash_prefix(&file, offset).map_err(internal)?)
        };
        file.seek(SeekFrom::Start(offset)).map_err(internal)?;
        let trailer = if plan.trailer {
            Some(TrailerSplitter::new(plan.body_len).ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BadRequest,
                    "a body with a trailer has at least 32 octets",
                )
            })?)
        } else {
            None
        };
        Ok(Partial {
            file,
            hasher,
            trailer,
            size: offset,
            partial_path,
            target,
            resolved: resolved.clone(),
            expected: plan.expected.clone(),
            replace: plan.replace,
            _claim: claim,
        })
    }
}

/// A partial upload found by a sweep.
struct FoundPartial {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// Collects the partial files under `dir` (symlinks not followed; depth and count bounded).
fn find_partials(dir: &Path, out: &mut Vec<FoundPartial>, depth: usize) {
    if depth > 64 || out.len() >= MAX_LISTING {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            find_partials(&entry.path(), out, depth + 1);
        } else if ft.is_file()
            && entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(app::PARTIAL_PREFIX))
        {
            if let Ok(m) = entry.metadata() {
                out.push(FoundPartial {
                    path: entry.path(),
                    len: m.len(),
                    modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
    }
}

/// Whether `e` says the file system is full (or the quota used up).
fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// An upload in progress: the hidden partial file, the running digest, and the claim on the
/// name (released when this is dropped). Dropped without [`finish`](Self::finish), the partial
/// file stays (hidden) for a resumed `put`.
#[derive(Debug)]
pub struct Partial {
    file: File,
    /// `None` when the codec verifies the whole file's digest (see [`PutPlan::codec_verified`]).
    hasher: Option<Sha256>,
    /// Splits the digest trailer off the body (§10.3).
    trailer: Option<TrailerSplitter>,
    size: u64,
    partial_path: PathBuf,
    target: PathBuf,
    resolved: Resolved,
    expected: Option<String>,
    replace: bool,
    _claim: Claim,
}

impl Partial {
    /// Appends body octets (a digest trailer is kept apart, not written). A full disk
    /// deletes the partial file at once (freeing what this upload took) and is `no_space`.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        let data = match self.trailer.as_mut() {
            Some(t) => t.split(chunk).0,
            None => chunk,
        };
        if let Err(e) = self.file.write_all(data) {
            return Err(self.write_failed("writing", &e));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(data);
        }
        self.size += data.len() as u64;
        Ok(())
    }

    /// The refusal for a failed write or sync; on a full disk the partial file goes.
    fn write_failed(&self, what: &str, e: &io::Error) -> Refusal {
        let name = &self.resolved.file_name;
        if is_no_space(e) {
            let _ = self.file.set_len(0);
            let _ = fs::remove_file(&self.partial_path);
            return Refusal::new(
                ErrorCode::NoSpace,
                format!("{what} {name:?}: the server's disk is full; nothing was kept"),
            );
        }
        Refusal::new(ErrorCode::Internal, format!("{what} {name:?}: {e}"))
    }

    /// Deletes the partial file: its octets are wrong (the body failed its frame digest), so
    /// there is nothing to resume from.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.partial_path);
    }

    /// Checks the whole file's digest, syncs it, and links it into place (or renames it over
    /// the old file with `replace`), then syncs the directory.
    pub fn finish(self) -> Result<Stored, Refusal> {
        if let Err(e) = self.file.sync_all() {
            return Err(self.write_failed("syncing", &e));
        }
        let Partial {
            file,
            hasher,
            trailer,
            size,
            partial_path,
            target,
            resolved,
            expected,
            replace,
            _claim,
        } = self;
        let expected = match trailer {
            Some(t) => match t.digest() {
                Some(d) => Some(hex_lower(&d)),
                None => {
                    drop(file);
                    let _ = fs::remove_file(&partial_path);
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        "the body ended before its digest trailer",
                    ));
                }
            },
            None => expected,
        };
        // Without a hasher, the codec verified the body against `expected` as it arrived.
        let digest = match (hasher, &expected) {
            (Some(h), _) => hex_lower(&h.finalize()),
            (None, Some(want)) => want.clone(),
            (None, None) => {
                return Err(Refusal::new(
                    ErrorCode::Internal,
                    "an upload with neither a digest nor a hasher",
                ))
            }
        };
        if let Some(want) = expected {
            if digest != want {
                drop(file);
                let _ = fs::remove_file(&partial_path);
                return Err(Refusal::new(ErrorCode::FileDigestMismatch, format!(
                    "the {size} octets of {:?} have sha256 {digest}, not {want}; nothing was stored", resolved.file_name
                )));
            }
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
            } else if is_no_space(&e) {
                ErrorCode::NoSpace
            } else {
                ErrorCode::Internal
            };
            return Err(Refusal::new(
                code,
                format!("placing {:?}: {e}", resolved.file_name),
            ));
        }
        if let Ok(dir) = File::open(&resolved.dir) {
            let _ = dir.sync_all();
        }
        Ok(Stored { size, digest })
    }
}

/// The reply to a stored upload: `ok` with name, size and digest for a `put`; nothing for
/// the seeds' upload.
pub fn put_reply(head: &Header, plan: &PutPlan, stored: &Stored) -> Option<Frame> {
    let name = plan.name.as_deref()?;
    let mut h = app::reply_to(head, Header::with_kind(app::OK));
    h.set_name(name.to_owned());
    h.insert("size", stored.size)
        .insert("file_sha256", stored.digest.clone());
    Some(Frame::new(h, Bytes::new()))
}

/// Checks a `put`: name, offset, the whole file's digest, replace.
pub fn put_plan(root: &Path, head: &Header) -> Result<PutPlan, Refusal> {
    let bad = |m: &str| Refusal::new(ErrorCode::BadRequest, m);
    let Some(name) = head.name() else {
        return Err(bad("put needs a name"));
    };
    let offset = app::u64_member(head, "offset")
        .map_err(|m| bad(&m))?
        .unwrap_or(0);
    let trailer = transfer::wants_trailer(head).map_err(|m| bad(&m))?;
    let body_len = head.body_len();
    if trailer {
        if app::str_member(head, "file_sha256").is_some() {
            return Err(bad(
                "put has a digest trailer and a file_sha256: send one of them",
            ));
        }
        if body_len < transfer::TRAILER_LEN {
            return Err(bad("a body with a digest trailer has at least 32 octets"));
        }
    }
    let expected =
        match (app::str_member(head, "file_sha256"), head.sha256()) {
            _ if trailer => None,
            (Some(d), _) if app::is_sha256_hex(d) => Some(d.to_owned()),
            (Some(_), _) => return Err(bad("file_sha256 must be 64 lowercase hex digits")),
            (None, Some(d)) if offset == 0 => Some(d.to_owned()),
            _ => return Err(bad(
                "put needs sha256 (the whole file's digest), file_sha256 when it has an offset, or \"trailer\":\"file_sha256\"",
            )),
        };
    let codec_verified =
        !trailer && offset == 0 && head.sha256().is_some() && head.sha256() == expected.as_deref();
    Ok(PutPlan {
        name: Some(name.to_owned()),
        resolved: names::resolve(root, name)?,
        offset,
        expected,
        replace: app::bool_member(head, "replace"),
        body_len,
        trailer,
        codec_verified,
    })
}

/// Checks seed 000's upload: `{"file_name": ..., "file_size": n}` and the file. Stored like a
/// `put` that replaces (the seeds overwrite), without a digest.
pub fn seed_plan(root: &Path, head: &Header) -> Result<PutPlan, Refusal> {
    let Some(name) = head.get("file_name").and_then(Value::as_str) else {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "file_name must be a string",
        ));
    };
    Ok(PutPlan {
        name: None,
        resolved: names::resolve(root, name)?,
        offset: 0,
        expected: None,
        replace: true,
        body_len: head.body_len(),
        trailer: false,
        codec_verified: false,
    })
}

/// Opens a `get`'s file and builds the `file` reply. With a digest trailer (§10.5) it hashes
/// only the octets before the offset now (the rest is hashed as it is sent); without, it
/// hashes the whole file (its digest goes in the header), then positions it at the offset.
pub fn open_download(root: &Path, head: &Header) -> Result<Download, Refusal> {
    let bad = |m: &str| Refusal::new(ErrorCode::BadRequest, m);
    let Some(name) = head.name() else {
        return Err(bad("get needs a name"));
    };
    let offset = app::u64_member(head, "offset")
        .map_err(|m| bad(&m))?
        .unwrap_or(0);
    let mut file = names::resolve(root, name).and_then(|r| names::open_regular(&r.path()))?;
    let internal = |e: io::Error| Refusal::new(ErrorCode::Internal, format!("{name:?}: {e}"));
    let size = file.metadata().map_err(internal)?.len();
    if offset > size {
        return Err(bad(&format!(
            "offset {offset} is past the end ({size} octets)"
        )));
    }
    if transfer::wants_trailer(head).map_err(|m| bad(&m))? {
        let prefix = transfer::hash_prefix(&file, offset).map_err(internal)?;
        file.seek(SeekFrom::Start(offset)).map_err(internal)?;
        let mut h = app::reply_to(head, Header::with_kind(app::FILE));
        h.set_name(name.to_owned());
        h.insert("size", size)
            .insert("offset", offset)
            .insert(transfer::TRAILER, transfer::FILE_SHA256);
        h.set_body_len(size - offset + transfer::TRAILER_LEN);
        return Ok(Download {
            header: h,
            file,
            len: size - offset,
            trailer: Some(prefix),
        });
    }
    let (digest, hashed) = lhp_blocking::sha256_of(&mut file).map_err(internal)?;
    if hashed != size {
        return Err(Refusal::new(
            ErrorCode::Internal,
            format!("{name:?} changed while being read"),
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(internal)?;
    let mut h = app::reply_to(head, Header::with_kind(app::FILE));
    h.set_name(name.to_owned());
    h.insert("size", size)
        .insert("offset", offset)
        .insert("file_sha256", hex_lower(&digest));
    if offset == 0 {
        h.set_sha256(&digest);
    }
    h.set_body_len(size - offset);
    Ok(Download {
        header: h,
        file,
        len: size - offset,
        trailer: None,
    })
}

/// Answers a `stat`: the file's size (`null` if there is none) and how much of a partial
/// upload the server holds.
pub fn stat_reply(root: &Path, head: &Header) -> Result<Frame, Refusal> {
    let Some(name) = head.name() else {
        return Err(Refusal::new(ErrorCode::BadRequest, "stat needs a name"));
    };
    let resolved = names::resolve(root, name)?;
    let size = match names::open_regular(&resolved.path()) {
        Ok(f) => Value::from(
            f.metadata()
                .map_err(|e| Refusal::new(ErrorCode::Internal, format!("{name:?}: {e}")))?
                .len(),
        ),
        Err(e) if e.code == ErrorCode::NotFound && !names::exists_no_follow(&resolved.path()) => {
            Value::Null
        }
        Err(e) => return Err(e.into()),
    };
    let partial = fs::symlink_metadata(resolved.partial_path())
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len());
    let mut h = app::reply_to(head, Header::with_kind(app::OK));
    h.set_name(name.to_owned());
    h.insert("size", size).insert("partial", partial);
    Ok(Frame::new(h, Bytes::new()))
}

/// Answers a `list`: every regular file under the root (partial uploads hidden), sorted, as a
/// JSON array of `{"name","size"}` in the body.
pub fn list_reply(root: &Path, head: &Header) -> Result<Frame, Refusal> {
    let mut entries = Vec::new();
    let mut truncated = false;
    walk(root, "", &mut entries, &mut truncated);
    entries.sort_by(|a: &(String, u64), b| a.0.cmp(&b.0));
    let body: Vec<Value> = entries
        .iter()
        .map(|(n, s)| serde_json::json!({"name": n, "size": s}))
        .collect();
    let body =
        serde_json::to_vec(&body).map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    let mut h = app::reply_to(head, Header::with_kind(app::LISTING));
    h.insert("count", entries.len())
        .insert("truncated", truncated);
    Ok(Frame::new(h, body.into()))
}

impl FileService {
    fn exec_route(&self, head: &Header) -> Result<Route, Refusal> {
        let argv = exec::argv(head)?;
        let program = argv.first().map(String::as_str).unwrap_or_default();
        if !self.allow_exec.iter().any(|p| p == program) {
            let why = if self.allow_exec.is_empty() {
                "exec is off on this server (start it with --allow-exec PROGRAM)".to_owned()
            } else {
                format!("{program:?} is not an allowed program")
            };
            return Err(Refusal::new(ErrorCode::ExecDenied, why));
        }
        Ok(Route::Exec {
            argv,
            cwd: self.root.clone().unwrap_or_else(|| PathBuf::from(".")),
            timeout: self.exec_timeout,
        })
    }

    /// A blocking `put`: the body streamed into the partial file. The connection's thread
    /// reads the socket while a second thread writes and hashes ([`Partial::write`]), at most
    /// [`transfer::PIPE_DEPTH`] buffers behind.
    fn put(
        &self,
        head: &Header,
        plan: &PutPlan,
        mut body: RequestBody<'_>,
        replies: &mut Replies<'_>,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let partial = match self.begin_upload(plan) {
            Ok(p) => p,
            Err(r) => return reply_refusal(head, replies, r),
        };
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(transfer::PIPE_DEPTH);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let (read, written) = thread::scope(|scope| {
            let writer = scope.spawn(move || {
                let mut partial = partial;
                for (buf, n) in full_rx {
                    if let Err(r) = partial.write(buf.get(..n).unwrap_or_default()) {
                        return (partial, Err(r));
                    }
                    let _ = empty_tx.send(buf);
                }
                (partial, Ok(()))
            });
            let read = loop {
                let mut buf = empty_rx
                    .try_recv()
                    .unwrap_or_else(|_| vec![0u8; transfer::PIPE_CHUNK]);
                // Whole buffers, not each socket read's few dozen KiB: one wake-up of the
                // writer and one `write` per PIPE_CHUNK.
                let (n, how) = transfer::fill(&mut body, &mut buf);
                let ended = n < buf.len();
                if n > 0 && full_tx.send((buf, n)).is_err() {
                    break Ok(()); // the writer stopped: its refusal is the answer
                }
                if how.is_err() || ended {
                    break how;
                }
            };
            drop(full_tx);
            (read, writer.join())
        });
        let Ok((partial, written)) = written else {
            return Err(Error::Io(io::Error::other(
                "the upload's writer thread panicked",
            )));
        };
        if let Err(r) = written {
            return reply_refusal(head, replies, r);
        }
        if let Err(e) = read {
            let err = body_error(e);
            if matches!(&err, Error::Decode(d) if d.code() == "digest_mismatch") {
                partial.discard();
            }
            // Otherwise the partial file stays (hidden) for a resumed put.
            return Err(err);
        }
        match partial.finish() {
            Ok(stored) => {
                log::served(head, plan.file_octets(), started.elapsed());
                match put_reply(head, plan, &stored) {
                    Some(reply) => replies.send(&reply),
                    None => Ok(()),
                }
            }
            Err(r) => reply_refusal(head, replies, r),
        }
    }
}

impl Handler for FileService {
    fn handle(&self, request: Request<'_>, replies: &mut Replies<'_>) -> Result<(), Error> {
        let head = request.head().clone();
        let route = match self.route(&head) {
            Ok(route) => route,
            Err(r) => return reply_refusal(&head, replies, r),
        };
        match route {
            Route::Echo => {
                let (head, mut body) = request.into_parts();
                if head.body_len() <= lhp_codec::Limits::DEFAULT_MAX_BODY_LEN {
                    let frame = body.into_frame(head)?;
                    replies.send(&frame.echo_reply())
                } else {
                    replies.send_stream(&head, &mut body).map(drop)
                }
            }
            Route::Put(plan) => {
                let (head, body) = request.into_parts();
                self.put(&head, &plan, body, replies)
            }
            Route::Get(root) => match open_download(&root, &head) {
                // The file's octets (the body may also carry the 32-octet digest trailer).
                Ok(d) => match (d.len, d.into_read()) {
                    (octets, Ok((header, body))) => {
                        let started = Instant::now();
                        replies.send_stream(&header, body)?;
                        log::served(&head, octets, started.elapsed());
                        Ok(())
                    }
                    (_, Err(e)) => reply_refusal(
                        &head,
                        replies,
                        Refusal::new(ErrorCode::Internal, format!("starting the download: {e}")),
                    ),
                },
                Err(r) => reply_refusal(&head, replies, r),
            },
            Route::Stat(root) => match stat_reply(&root, &head) {
                Ok(reply) => replies.send(&reply),
                Err(r) => reply_refusal(&head, replies, r),
            },
            Route::List(root) => match list_reply(&root, &head) {
                Ok(reply) => replies.send(&reply),
                Err(r) => reply_refusal(&head, replies, r),
            },
            Route::Exec { argv, cwd, timeout } => {
                exec::run(&head, &argv, &cwd, timeout, replies).map(drop)
            }
        }
    }
}

/// One upload per target path at a time.
#[derive(Debug)]
struct Claim {
    set: Arc<Mutex<HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Claim {
    fn new(set: &Arc<Mutex<HashSet<PathBuf>>>, path: PathBuf) -> Option<Self> {
        // Decide under the lock, build the claim after releasing it: a claim dropped while the
        // guard is alive would deadlock in its own `drop`.
        let inserted = lock(set).insert(path.clone());
        inserted.then(|| Claim {
            set: Arc::clone(set),
            path,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.path);
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

fn reply_refusal(head: &Header, replies: &mut Replies<'_>, r: Refusal) -> Result<(), Error> {
    log::refused(head, r.code.as_str(), &r.message);
    exec::send_error(head, replies, r.code, &r.message)
}
