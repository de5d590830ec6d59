//! A tokio echo server on its own runtime thread, for tests written as plain `#[test]`s.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use lhp_tokio::{CancellationToken, Config, Server};

/// A running server; dropping it shuts the server down and joins its thread.
pub struct Running {
    pub addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the echo server with `config` on a two-worker runtime in a background thread.
pub fn start_echo(config: Config) -> Running {
    let server = Server::bind("127.0.0.1:0", config, lhp_tokio::EchoHandler::new())
        .expect("bind 127.0.0.1:0");
    let addr = server.local_addr();
    let stop = server.shutdown_token();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(server.run())
    });
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("server thread").expect("server run");
            }
        }
    }
}
