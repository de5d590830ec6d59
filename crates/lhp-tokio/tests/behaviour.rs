//! The behaviour table (`spec/vectors/conversations/behaviour.json`) against this engine's echo
//! server over loopback, each conversation on a server started with its `config`: the octets
//! received and the endings must be identical to the sans-IO machine's.

use lhp_tokio::{EchoHandler, Server};

/// Stops the server's runtime thread when dropped.
struct Running(
    Option<tokio_util::sync::CancellationToken>,
    Option<std::thread::JoinHandle<()>>,
);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
        }
        if let Some(j) = self.1.take() {
            let _ = j.join();
        }
    }
}

#[test]
fn behaviour_table_matches_the_machine() {
    let n = lhp_testkit::conversations::behaviour_table("tokio", |config| {
        let server = Server::bind("127.0.0.1:0", config, EchoHandler::new()).expect("bind");
        let (addr, stop) = (server.local_addr(), server.shutdown_token());
        let join = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(server.run()).expect("run");
        });
        (addr, Running(Some(stop), Some(join)))
    });
    assert!(n >= 40, "only {n} conversations");
}
