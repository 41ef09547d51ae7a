//! Feeds arbitrary bytes to VLESS Encryption's parsers where a peer's bytes
//! arrive: the client's reading of a server hello and of the records after
//! it, and the server's reading of a client's first flight. None may panic;
//! forged bytes must fail to open.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::tunnel::vlessenc::aead::{Aead, Cipher};
use oxpulse_edge::tunnel::vlessenc::client::{self, ClientStart, SERVER_HELLO_LEN};
use oxpulse_edge::tunnel::vlessenc::record::{united_key, Receiver};
use oxpulse_edge::tunnel::vlessenc::server::{self, ServerFirst};
use oxpulse_edge::tunnel::vlessenc::{
    ClientKeys, ClientTickets, KeyPair, ServerKeys, ServerTickets,
};

struct Keys {
    client: ClientKeys,
    server: ServerKeys,
    tickets: ServerTickets,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = KeyPair::x25519().expect("rng");
        let server = ServerKeys::parse(&pair.server_config("600s")).expect("server");
        let tickets = ServerTickets::new(server.tickets);
        Keys {
            client: ClientKeys::parse(&pair.client_config("1rtt")).expect("client"),
            server,
            tickets,
        }
    })
}

/// Feeds `wire` to `r` unit by unit until it runs out or fails.
fn feed(r: &mut Receiver, mut wire: &[u8]) {
    loop {
        let n = r.wants();
        if n > wire.len() {
            return;
        }
        let mut unit = wire[..n].to_vec();
        wire = &wire[n..];
        if r.input(&mut unit).is_err() {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let k = keys();

    // Client: a server hello after a real client hello.
    let tickets = ClientTickets::new();
    if let Ok(ClientStart::OneRtt { hello, .. }) = client::start(&k.client, &tickets) {
        if let Some(head) = data.get(..SERVER_HELLO_LEN) {
            let head: &[u8; SERVER_HELLO_LEN] = head.try_into().expect("length checked");
            if let Ok(mut session) = hello.finish(head, &tickets) {
                feed(&mut session.receiver, &data[SERVER_HELLO_LEN..]);
            }
        }
    }

    // Records under some key: headers parse, bodies never open.
    let key = united_key(&[1; 64], &[2; 32]);
    let mut r = Receiver::records(
        Aead::new(b"ctx", &key[..], Cipher::Aes256Gcm),
        key,
        Cipher::Aes256Gcm,
    );
    feed(&mut r, data);
    let mut r0 = Receiver::zero_rtt_client(united_key(&[3; 64], &[4; 32]), Cipher::Aes256Gcm);
    feed(&mut r0, data);

    // Server: a client's first flight.
    let first = server::first_len(&k.server);
    if let Some(head) = data.get(..first) {
        match server::read_first(&k.server, &k.tickets, head) {
            Ok(ServerFirst::OneRtt(kex)) => {
                if let Some(body) = data.get(first..first + kex.wants()) {
                    let _ = kex.finish(body, &k.server, &k.tickets);
                }
            }
            Ok(ServerFirst::ZeroRtt(_)) | Err(_) => {}
        }
    }
});
