//! The echo server of LHP/1 §8: the `socketserver.ThreadingTCPServer` of the tutorials, in
//! twenty lines, correct however TCP splits or joins the frames.
//!
//! ```text
//! cargo run -p lhp-blocking --example echo_server -- 127.0.0.1:7000
//! ```

use std::time::Duration;

use lhp_blocking::{Config, EchoHandler, Server};

fn main() -> Result<(), lhp_blocking::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let mut config = Config::new();
    config
        .set_max_connections(512)
        .set_idle_timeout(Duration::from_secs(300));
    let server = Server::bind(addr, config, EchoHandler::new())?;
    println!("listening on {}", server.local_addr());
    server.run()
}
