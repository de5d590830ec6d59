//! The connection settings of §11.2 (decisions E4), shared by every engine.

use std::time::Duration;

use crate::{Limits, Profile};

/// Settings of one connection (and of a server's listener), with the defaults of §11.2.
///
/// Both engines use this very type (`lhp_blocking::Config` and `lhp_tokio::Config` are
/// re-exports), so a setting has one name, one default and one meaning everywhere.
///
/// ```
/// use std::time::Duration;
/// use lhp_codec::conn::Config;
///
/// let mut config = Config::new();
/// config.set_read_timeout(Duration::from_millis(400)).set_max_connections(1);
/// assert_eq!(config.read_timeout(), Duration::from_millis(400));
/// assert_eq!(config.idle_timeout(), Duration::from_secs(60));
/// assert_eq!(config.max_connections(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    profile: Profile,
    limits: Limits,
    idle_timeout: Duration,
    read_timeout: Duration,
    min_body_rate: u64,
    write_timeout: Duration,
    close_linger: Duration,
    max_connections: usize,
    shutdown_grace: Duration,
    stream_threshold: u64,
    deliver_whole: u64,
    backlog: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// `idle_timeout` default: 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `read_timeout` default: 30 s.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// `min_body_rate` default: 65 536 octets per second.
    pub const DEFAULT_MIN_BODY_RATE: u64 = 65_536;
    /// `write_timeout` default: 30 s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `close_linger` default: 250 ms.
    pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_millis(250);
    /// `max_connections` default: 1024.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    /// `shutdown_grace` default: 5 s.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
    /// Default body size above which an echo is streamed back as the request arrives: 64 MiB
    /// (the default `max_body_len`, so by default every echo is sent whole, after the request
    /// body is complete and its digest checked, and a client may write a whole frame before
    /// reading its echo).
    pub const DEFAULT_STREAM_THRESHOLD: u64 = 64 << 20;
    /// Default body size up to which a request is handed to the application whole: 64 KiB.
    pub const DEFAULT_DELIVER_WHOLE: u64 = 64 << 10;
    /// Default listen backlog: 1024.
    pub const DEFAULT_BACKLOG: i32 = 1024;

    /// The defaults of §11.2 for the `lhp1` profile with default [`Limits`].
    pub const fn new() -> Self {
        Config {
            profile: Profile::Lhp1,
            limits: Limits::new(),
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            min_body_rate: Self::DEFAULT_MIN_BODY_RATE,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            close_linger: Self::DEFAULT_CLOSE_LINGER,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            stream_threshold: Self::DEFAULT_STREAM_THRESHOLD,
            deliver_whole: Self::DEFAULT_DELIVER_WHOLE,
            backlog: Self::DEFAULT_BACKLOG,
        }
    }

    /// The wire profile received frames are decoded in and replies are sent in (E6).
    pub fn set_profile(&mut self, profile: Profile) -> &mut Self {
        self.profile = profile;
        self
    }
    /// The header and body limits (§5).
    pub fn set_limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }
    /// At a frame boundary with no request being handled, how long the peer may send nothing.
    pub fn set_idle_timeout(&mut self, d: Duration) -> &mut Self {
        self.idle_timeout = d;
        self
    }
    /// A begun frame's prefix and header must complete within this of its first octet; its
    /// body within this plus `body_len / min_body_rate` of the header's completion.
    pub fn set_read_timeout(&mut self, d: Duration) -> &mut Self {
        self.read_timeout = d;
        self
    }
    /// The slowest body a peer may send, in octets per second (0 is taken as 1).
    pub fn set_min_body_rate(&mut self, rate: u64) -> &mut Self {
        self.min_body_rate = rate.max(1);
        self
    }
    /// A write that makes no progress for this long ends the connection with no error frame.
    pub fn set_write_timeout(&mut self, d: Duration) -> &mut Self {
        self.write_timeout = d;
        self
    }
    /// After a connection error: how long sending the error frame and then discarding input
    /// may take before the connection is closed.
    pub fn set_close_linger(&mut self, d: Duration) -> &mut Self {
        self.close_linger = d;
        self
    }
    /// Connections served at once; one more gets `busy` and is closed.
    pub fn set_max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = max;
        self
    }
    /// On shutdown, how long requests in progress may still take.
    pub fn set_shutdown_grace(&mut self, d: Duration) -> &mut Self {
        self.shutdown_grace = d;
        self
    }
    /// The echo rule (E7): an `echo` whose body is longer than this is streamed back as it
    /// arrives; shorter ones are sent whole once the request is complete.
    pub fn set_stream_threshold(&mut self, len: u64) -> &mut Self {
        self.stream_threshold = len;
        self
    }
    /// Requests (and, for a client, replies) with bodies up to this are handed to the
    /// application whole ([`Event::Frame`](super::Event::Frame)); longer ones as a stream.
    pub fn set_deliver_whole(&mut self, len: u64) -> &mut Self {
        self.deliver_whole = len;
        self
    }
    /// The listen backlog a server asks the OS for.
    pub fn set_backlog(&mut self, backlog: i32) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// The profile.
    pub const fn profile(&self) -> Profile {
        self.profile
    }
    /// The limits.
    pub const fn limits(&self) -> Limits {
        self.limits
    }
    /// `idle_timeout`.
    pub const fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
    /// `read_timeout`.
    pub const fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
    /// `min_body_rate`, octets per second.
    pub const fn min_body_rate(&self) -> u64 {
        self.min_body_rate
    }
    /// `write_timeout`.
    pub const fn write_timeout(&self) -> Duration {
        self.write_timeout
    }
    /// `close_linger`.
    pub const fn close_linger(&self) -> Duration {
        self.close_linger
    }
    /// `max_connections`.
    pub const fn max_connections(&self) -> usize {
        self.max_connections
    }
    /// `shutdown_grace`.
    pub const fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
    /// The echo streaming threshold.
    pub const fn stream_threshold(&self) -> u64 {
        self.stream_threshold
    }
    /// The largest body handed to the application whole.
    pub const fn deliver_whole(&self) -> u64 {
        self.deliver_whole
    }
    /// The listen backlog.
    pub const fn backlog(&self) -> i32 {
        self.backlog
    }

    /// Whether a server with `open` connections accepts one more (E4: the one beyond
    /// `max_connections` gets `busy`).
    pub const fn admits(&self, open: usize) -> bool {
        open < self.max_connections
    }

    /// E4: the time a body of `body_len` octets may take after its header completed:
    /// `read_timeout + body_len / min_body_rate`.
    pub fn body_allowance(&self, body_len: u64) -> Duration {
        let secs = body_len / self.min_body_rate;
        let rem = body_len % self.min_body_rate;
        let nanos = u128::from(rem) * 1_000_000_000 / u128::from(self.min_body_rate);
        self.read_timeout
            .saturating_add(Duration::from_secs(secs))
            .saturating_add(Duration::from_nanos(nanos as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_the_e4_values() {
        let c = Config::new();
        assert_eq!(c, Config::default());
        assert_eq!(c.profile(), Profile::Lhp1);
        assert_eq!(c.limits(), Limits::new());
        assert_eq!(c.idle_timeout(), Duration::from_secs(60));
        assert_eq!(c.read_timeout(), Duration::from_secs(30));
        assert_eq!(c.min_body_rate(), 65_536);
        assert_eq!(c.write_timeout(), Duration::from_secs(30));
        assert_eq!(c.close_linger(), Duration::from_millis(250));
        assert_eq!(c.max_connections(), 1024);
        assert_eq!(c.shutdown_grace(), Duration::from_secs(5));
        assert_eq!(c.stream_threshold(), 64 << 20);
        assert_eq!(c.deliver_whole(), 64 << 10);
        assert_eq!(c.backlog(), 1024);
    }

    #[test]
    fn every_setter_changes_only_its_setting() {
        let limits = Limits::new().with_max_header_len(100).with_max_body_len(7);
        let mut c = Config::new();
        c.set_profile(Profile::SeedCompat)
            .set_limits(limits)
            .set_idle_timeout(Duration::from_millis(1))
            .set_read_timeout(Duration::from_millis(2))
            .set_min_body_rate(3)
            .set_write_timeout(Duration::from_millis(4))
            .set_close_linger(Duration::from_millis(5))
            .set_max_connections(6)
            .set_shutdown_grace(Duration::from_millis(7))
            .set_stream_threshold(8)
            .set_deliver_whole(9)
            .set_backlog(10);
        assert_eq!(c.profile(), Profile::SeedCompat);
        assert_eq!(c.limits(), limits);
        assert_eq!(c.idle_timeout(), Duration::from_millis(1));
        assert_eq!(c.read_timeout(), Duration::from_millis(2));
        assert_eq!(c.min_body_rate(), 3);
        assert_eq!(c.write_timeout(), Duration::from_millis(4));
        assert_eq!(c.close_linger(), Duration::from_millis(5));
        assert_eq!(c.max_connections(), 6);
        assert_eq!(c.shutdown_grace(), Duration::from_millis(7));
        assert_eq!(c.stream_threshold(), 8);
        assert_eq!(c.deliver_whole(), 9);
        assert_eq!(c.backlog(), 10);
    }

    /// E4: with `max_connections` = N, connections 1..=N are served and the N+1st gets `busy`.
    #[test]
    fn admits_up_to_max_connections() {
        let mut c = Config::new();
        c.set_max_connections(2);
        assert!(c.admits(0));
        assert!(c.admits(1));
        assert!(!c.admits(2));
        assert!(!c.admits(3));
        assert!(Config::new().admits(1023) && !Config::new().admits(1024));
    }

    /// E4: a body may take `read_timeout + B / min_body_rate`, to the nanosecond.
    #[test]
    fn body_allowance_is_read_timeout_plus_len_over_rate() {
        let mut c = Config::new();
        c.set_read_timeout(Duration::from_secs(30))
            .set_min_body_rate(1000);
        assert_eq!(c.body_allowance(0), Duration::from_secs(30));
        assert_eq!(
            c.body_allowance(1),
            Duration::from_secs(30) + Duration::from_millis(1)
        );
        assert_eq!(c.body_allowance(2500), Duration::from_millis(32_500));
        c.set_min_body_rate(3);
        // 7 / 3 s = 2 s + 333_333_333 ns (the remainder is rounded down).
        assert_eq!(c.body_allowance(7), Duration::new(32, 333_333_333));
        // The default rate: 64 MiB takes 1024 s on top of the read timeout.
        assert_eq!(
            Config::new().body_allowance(64 << 20),
            Duration::from_secs(30 + 1024)
        );
    }
}
