//! `lhp udp serve`, `lhp udp send` and `lhp chat`: the seeds' UDP programs over LHP/UDP
//! (`spec/lhp-udp.md`).
//!
//! | seed program                                   | `lhp` equivalent                        |
//! |------------------------------------------------|-----------------------------------------|
//! | upper-casing server on `recvfrom(1024)` (000, 001, 002, 004; `ThreadingUDPServer`) | `lhp udp serve`, request `upper` |
//! | its client (`sendto` + `recvfrom(1024)`)        | `lhp udp send --kind upper TEXT`        |
//! | the time server (`strftime` of the client's format, 002) | `lhp udp send --kind time FORMAT` |
//! | the "QQ" chat (000, 002)                        | `lhp chat` in two terminals             |
//!
//! The application messages (`spec/lhp-udp.md` §11.1): `echo` (the frame back, verbatim),
//! `upper` (the body with ASCII letters upper-cased), `time` (the body is a format, see
//! [`strftime`]; empty means `%Y-%m-%d %X`, as in the seed), `chat` / `chat_ack`.

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use lhp_blocking::udp::{UdpClient, UdpError, UdpServer};
use lhp_codec::datagram::{error_code, DatagramConfig, Retry};
use lhp_codec::{Frame, Header, Profile, Value};

/// The longest `time` format accepted, in octets (`spec/lhp-udp.md` §11).
pub const MAX_TIME_FORMAT: usize = 256;

/// The format used when a `time` request's body is empty (the seed's default).
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %X";

/// `lhp udp ...`
#[derive(Args, Debug)]
pub struct UdpArgs {
    #[command(subcommand)]
    command: UdpCommand,
}

#[derive(Subcommand, Debug)]
enum UdpCommand {
    /// Answer echo, upper and time requests, one frame per datagram.
    ///
    /// The first line on stdout is exactly "listening on HOST:PORT". Replies are never more
    /// than 3 times the request (spec/lhp-udp.md §6); each source is rate limited (§7); a bad
    /// datagram gets an error frame naming the rule and the offset. Stops on SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Send one request and print the reply's body on stdout.
    ///
    /// Exit 0: a reply; 1: the server refused the request or rejected the datagram, or no
    /// reply came (echo, upper and time are sent again, up to --tries times); 2: usage.
    Send(SendArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// std::net (lhp-blocking).
    Blocking,
    /// tokio (lhp-tokio).
    Tokio,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileArg {
    /// LHP/1 proper.
    Lhp1,
    /// The seeds' format (little-endian prefix).
    SeedCompat,
}

#[derive(Args, Debug)]
struct Datagram {
    /// The largest datagram sent or accepted (512..=65507); longer ones are refused with
    /// datagram_too_large, never cut.
    #[arg(long, value_name = "OCTETS", default_value_t = 65_507)]
    max_datagram: usize,
    /// Wire dialect.
    #[arg(long, value_enum, default_value_t = ProfileArg::Lhp1)]
    profile: ProfileArg,
}

impl Datagram {
    fn config(&self) -> DatagramConfig {
        DatagramConfig::new()
            .with_profile(match self.profile {
                ProfileArg::Lhp1 => Profile::Lhp1,
                ProfileArg::SeedCompat => Profile::SeedCompat,
            })
            .with_max_datagram_len(self.max_datagram)
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on (port 0: an ephemeral port, printed on the first line).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    addr: String,
    /// Which engine serves.
    #[arg(long, value_enum, default_value_t = Engine::Blocking)]
    engine: Engine,
    /// Echo every valid frame, whatever its kind (the server `lhp-conformance --udp-server`
    /// tests).
    #[arg(long)]
    echo: bool,
    #[command(flatten)]
    datagram: Datagram,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// The server.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    addr: String,
    /// The request kind: echo, upper, time (or any other; the server refuses unknown kinds).
    #[arg(long, default_value = "echo")]
    kind: String,
    /// The body (for time: the format; empty means %Y-%m-%d %X).
    #[arg(default_value = "")]
    text: String,
    /// How long to wait for a reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    timeout: u64,
    /// How many times to send an idempotent request (echo, upper, time) without a reply.
    #[arg(long, default_value_t = 3)]
    tries: u32,
    #[command(flatten)]
    datagram: Datagram,
}

/// `lhp chat`
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// This side's address (the peer sends here).
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// The other side's address.
    #[arg(long, value_name = "HOST:PORT")]
    peer: String,
    /// The name shown to the peer.
    #[arg(long, default_value = "me")]
    name: String,
    /// How long to wait for the peer's acknowledgement, in milliseconds (3 tries).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    timeout: u64,
}

/// Runs `lhp udp ...`.
pub fn run_udp(a: UdpArgs) -> io::Result<ExitCode> {
    match a.command {
        UdpCommand::Serve(s) => serve(s),
        UdpCommand::Send(s) => send(s),
    }
}

fn serve(a: ServeArgs) -> io::Result<ExitCode> {
    let config = a.datagram.config();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let echo = a.echo;
    let handler = move |f: Frame, _from: SocketAddr| {
        if echo {
            Some(f)
        } else {
            handle(f, SystemTime::now())
        }
    };
    match a.engine {
        Engine::Blocking => {
            let mut server = UdpServer::bind(&a.addr, config)?;
            announce(server.local_addr()?)?;
            server.serve_until(&stop, handler)?;
        }
        Engine::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut server = lhp_tokio::udp::UdpServer::bind(&a.addr, config).await?;
                announce(server.local_addr()?)?;
                let token = lhp_tokio::CancellationToken::new();
                let t = token.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    t.cancel();
                });
                server.serve_until(token, handler).await
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

/// The `lhp udp serve` application (`spec/lhp-udp.md` §11.1): the reply to one request at
/// time `now`, or a request error (`bad_request`) for an unknown kind or a bad time format.
pub fn handle(request: Frame, now: SystemTime) -> Option<Frame> {
    let id = request.header.id();
    let reply_header = |kind: &str| {
        let mut h = Header::with_kind(kind.to_owned());
        if let Some(id) = id {
            h.set_id(id);
        }
        h
    };
    match request.header.kind() {
        // LHP/1 §8: the header text and body back, octet for octet.
        Some("echo") => Some(request),
        Some("upper") => Some(Frame::new(
            reply_header("upper"),
            request.body.to_ascii_uppercase().into(),
        )),
        Some("time") => {
            let secs = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let result = std::str::from_utf8(&request.body)
                .map_err(|_| "the format is not UTF-8".to_owned())
                .and_then(|f| strftime(if f.is_empty() { DEFAULT_TIME_FORMAT } else { f }, secs));
            Some(match result {
                Ok(text) => Frame::new(reply_header("time"), text.into()),
                Err(why) => request_error(id, "bad_request", &why),
            })
        }
        Some("chat") | Some("chat_ack") => None,
        other => Some(request_error(
            id,
            "bad_request",
            &format!(
                "unknown kind {:?}: this server answers echo, upper and time",
                other.unwrap_or("")
            ),
        )),
    }
}

/// A request error frame (LHP/1 §7, request class): `id` iff the request had one, no `offset`.
pub fn request_error(id: Option<u64>, code: &str, message: &str) -> Frame {
    let mut h = Header::with_kind("error");
    if let Some(id) = id {
        h.set_id(id);
    }
    h.insert("code", code).insert("message", message);
    Frame::new(h, Bytes::new())
}

/// Formats the UTC time `unix_secs` like C's `strftime`, but only with a fixed set of
/// conversions, so a client's format can never reach undefined behaviour (the seed passes it
/// to `time.strftime` unchecked): `%Y %m %d %H %M %S %X %x %j %a %A %b %B %y %p %s %%`.
/// Anything else, or a format over [`MAX_TIME_FORMAT`] octets, is an error.
///
/// ```
/// use lhp::udp::strftime;
/// assert_eq!(strftime("%Y-%m-%d %X", 0).unwrap(), "1970-01-01 00:00:00");
/// assert_eq!(strftime("%a %d %b %Y, day %j, %p", 951_782_400).unwrap(), "Tue 29 Feb 2000, day 060, AM");
/// assert!(strftime("%n", 0).is_err());
/// ```
pub fn strftime(format: &str, unix_secs: i64) -> Result<String, String> {
    if format.len() > MAX_TIME_FORMAT {
        return Err(format!(
            "the format is {} octets; at most {MAX_TIME_FORMAT}",
            format.len()
        ));
    }
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let weekday = DAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("");
    let month = MONTHS
        .get(usize::try_from(m - 1).unwrap_or(0))
        .copied()
        .unwrap_or("");
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(conv) = chars.next() else {
            return Err("the format ends with a lone %".into());
        };
        let piece = match conv {
            'Y' => y.to_string(),
            'y' => format!("{:02}", y.rem_euclid(100)),
            'm' => format!("{m:02}"),
            'd' => format!("{d:02}"),
            'H' => format!("{hh:02}"),
            'M' => format!("{mm:02}"),
            'S' => format!("{ss:02}"),
            'X' => format!("{hh:02}:{mm:02}:{ss:02}"),
            'x' => format!("{m:02}/{d:02}/{:02}", y.rem_euclid(100)),
            'j' => format!("{yday:03}"),
            'a' => weekday.chars().take(3).collect(),
            'A' => weekday.to_owned(),
            'b' => month.chars().take(3).collect(),
            'B' => month.to_owned(),
            'p' => (if hh < 12 { "AM" } else { "PM" }).to_owned(),
            's' => unix_secs.to_string(),
            '%' => "%".to_owned(),
            other => {
                return Err(format!(
                    "unsupported conversion %{other} (supported: %Y %m %d %H %M %S %X %x %j %a \
                     %A %b %B %y %p %s %%)"
                ))
            }
        };
        out.push_str(&piece);
    }
    Ok(out)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn send(a: SendArgs) -> io::Result<ExitCode> {
    let config = a.datagram.config();
    let client = UdpClient::connect(&a.addr, config)?;
    let retry = Retry {
        timeout: Duration::from_millis(a.timeout),
        tries: a.tries,
    };
    match client.request(
        Header::with_kind(a.kind.clone()),
        Bytes::from(a.text.into_bytes()),
        retry,
    ) {
        Ok(reply) if reply.header.kind() == Some("error") => {
            eprintln!(
                "lhp: the server refused the request: {}: {}",
                error_code(&reply.header).unwrap_or("internal"),
                reply
                    .header
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
            Ok(ExitCode::from(1))
        }
        Ok(reply) => {
            let mut out = io::stdout().lock();
            out.write_all(&reply.body)?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (UdpError::Io(_) | UdpError::Encode(_))) => {
            eprintln!("lhp: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("lhp: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

enum FromReceiver {
    Ack(u64),
    Unreachable,
}

/// Runs `lhp chat`: each line typed is one `chat` frame (`sender`, the text as body), sent to
/// the peer and acknowledged by a `chat_ack` with the same `id`; messages from the peer are
/// printed as `[sender] text`. A message with no acknowledgement after 3 tries is reported
/// ("the peer ... is not there"); the peer drops repeats of a message it already printed, so
/// retrying is safe (`spec/lhp-udp.md` §5.2). Exit 0 when stdin ends and every message was
/// acknowledged, 1 otherwise.
pub fn run_chat(a: ChatArgs) -> io::Result<ExitCode> {
    let client = Arc::new(UdpClient::bind_connect(
        &a.listen,
        &a.peer,
        DatagramConfig::new(),
    )?);
    let peer = client.peer_addr();
    eprintln!(
        "chat: {} at {} with {peer}; type a line and press Enter (end of input quits)",
        a.name,
        client.local_addr()?
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let receiver = {
        let client = client.clone();
        let stop = stop.clone();
        std::thread::spawn(move || receive_loop(&client, &stop, &tx))
    };
    let timeout = Duration::from_millis(a.timeout);
    let mut undelivered = 0u32;
    for line in io::stdin().lock().lines() {
        let text = line?;
        let id = client.next_id();
        let mut h = Header::with_kind("chat");
        h.set_id(id).insert("sender", a.name.as_str());
        let frame = Frame::new(h, Bytes::from(text.into_bytes()));
        let mut outcome = None;
        'tries: for _ in 0..3 {
            if let Err(e) = client.send(&frame) {
                outcome = Some(e.to_string());
                break;
            }
            let deadline = std::time::Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(FromReceiver::Ack(got)) if got == id => {
                        outcome = None;
                        break 'tries;
                    }
                    Ok(FromReceiver::Ack(_)) => continue,
                    Ok(FromReceiver::Unreachable) => {
                        outcome = Some(format!("nothing is listening at {peer}"));
                        break;
                    }
                    Err(_) => {
                        outcome = Some("no acknowledgement after 3 tries".into());
                        break;
                    }
                }
            }
        }
        if let Some(why) = outcome {
            undelivered += 1;
            eprintln!("chat: the peer {peer} is not there ({why}); the message was not delivered");
        }
    }
    stop.store(true, Ordering::Relaxed);
    receiver
        .join()
        .map_err(|_| io::Error::other("the receiving thread panicked"))??;
    Ok(if undelivered == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn receive_loop(
    client: &UdpClient,
    stop: &AtomicBool,
    tx: &mpsc::Sender<FromReceiver>,
) -> io::Result<()> {
    // Recent message ids, to print a retried message once (bounded).
    let mut seen: VecDeque<u64> = VecDeque::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        match client.recv(Duration::from_millis(100)) {
            Ok(f) => match f.header.kind() {
                Some("chat") => {
                    let Some(id) = f.header.id() else { continue };
                    let mut ack = Header::with_kind("chat_ack");
                    ack.set_id(id);
                    let _ = client.send(&Frame::new(ack, Bytes::new()));
                    if seen.contains(&id) {
                        continue;
                    }
                    if seen.len() == 64 {
                        seen.pop_front();
                    }
                    seen.push_back(id);
                    let sender = f
                        .header
                        .get("sender")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    let mut out = io::stdout().lock();
                    writeln!(out, "[{sender}] {}", String::from_utf8_lossy(&f.body))?;
                    out.flush()?;
                }
                Some("chat_ack") => {
                    if let Some(id) = f.header.id() {
                        let _ = tx.send(FromReceiver::Ack(id));
                    }
                }
                _ => eprintln!("chat: ignored a {:?} frame", f.header.kind()),
            },
            // §5.3: a bad datagram is reported, never answered.
            Err(UdpError::Datagram(e)) => eprintln!("chat: ignored a bad datagram: {e}"),
            Err(UdpError::Timeout { .. }) => {}
            Err(UdpError::PeerUnreachable(_)) => {
                let _ = tx.send(FromReceiver::Unreachable);
            }
            Err(UdpError::Io(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_matches_known_dates() {
        // 2026-12-01 22:32:18 UTC, a Tuesday.
        let t = 1_796_164_338;
        assert_eq!(strftime("%Y-%m-%d %X", t).unwrap(), "2026-12-01 22:32:18");
        assert_eq!(
            strftime("%A %B %j %y %p %x %%", t).unwrap(),
            "Tuesday December 335 26 PM 12/01/26 %"
        );
        assert_eq!(strftime("%s", t).unwrap(), t.to_string());
        assert_eq!(strftime("%Y-%m-%d", -1).unwrap(), "1969-12-31");
        assert_eq!(strftime("年%Y", 0).unwrap(), "年1970");
        for bad in ["%", "%q", "%E", &"%Y".repeat(200)] {
            assert!(strftime(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn handle_answers_the_three_kinds_and_refuses_others() {
        let now = UNIX_EPOCH + Duration::from_secs(86_400);
        let mut h = Header::with_kind("upper");
        h.set_id(4);
        let r = handle(Frame::new(h, "abc 粘包".into()), now).unwrap();
        assert_eq!(
            (r.header.id(), &r.body[..]),
            (Some(4), "ABC 粘包".as_bytes())
        );
        let r = handle(Frame::new(Header::with_kind("time"), Bytes::new()), now).unwrap();
        assert_eq!(&r.body[..], b"1970-01-02 00:00:00");
        let r = handle(Frame::new(Header::with_kind("time"), "%n".into()), now).unwrap();
        assert_eq!(error_code(&r.header), Some("bad_request"));
        let r = handle(Frame::new(Header::with_kind("put"), Bytes::new()), now).unwrap();
        assert_eq!(error_code(&r.header), Some("bad_request"));
        let req = Frame::new(Header::with_kind("echo"), "x".into());
        assert_eq!(handle(req.clone(), now), Some(req));
    }
}
