//! The behaviour table (`spec/vectors/conversations/behaviour.json`) against this engine's echo
//! server over loopback, each conversation on a server started with its `config`: the octets
//! received and the endings must be identical to the sans-IO machine's.

use lhp_blocking::{EchoHandler, Server};

#[test]
fn behaviour_table_matches_the_machine() {
    let n = lhp_testkit::conversations::behaviour_table("blocking", |config| {
        let server = Server::bind("127.0.0.1:0", config, EchoHandler::new())
            .expect("bind")
            .spawn()
            .expect("spawn");
        (server.local_addr(), server)
    });
    assert!(n >= 40, "only {n} conversations");
}
