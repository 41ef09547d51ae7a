//! The static hooks rustls calls while it builds a REALITY ClientHello.
//!
//! rustls takes its randomness and key-exchange groups as `&'static dyn` from the
//! `CryptoProvider`, but the REALITY client needs per-connection values in them: the scripted
//! random bytes (so that two passes produce the same hello but for the session_id) and the
//! reusable key shares (so that both passes carry the same keys). Leaking a provider per
//! connection would grow memory without bound, so the provider holds the static forwarders
//! below, and they read this thread's [`FirstFlight`] slot.
//!
//! Why this is sound and cannot mix connections up: the slot is thread-local, and it is filled
//! and emptied by [`with_first_flight`] around one synchronous call (`ClientConnection::new`,
//! which builds and queues the whole ClientHello). No `.await` happens inside, so on a
//! thread-per-core executor no other task of this thread can run while the slot is full, and
//! other threads have slots of their own. Outside that window the forwarders fall back to
//! fresh randomness and fresh ephemeral keys (e.g. for a HelloRetryRequest's second hello),
//! which is what a plain TLS client would use. No `unsafe` is involved.

use std::cell::RefCell;

use ring::rand::{SecureRandom as _, SystemRandom};
use rustls::crypto::ring::kx_group;
use rustls::crypto::{
    ActiveKeyExchange, CompletedKeyExchange, GetRandomFailed, SecureRandom, SupportedKxGroup,
};
use rustls::{Error, NamedGroup, ProtocolVersion};

use crate::tunnel::pq::{ReusableKeys, X25519MLKEM768};

/// What rustls 0.23 draws, in order, while building a TLS 1.3 ClientHello without resumption
/// or ECH (client/hs.rs `ClientHelloInput::new`): the 32-byte legacy session_id, a `u16` that
/// seeds the extension order, then the 32-byte client random.
pub(super) const DRAWS: usize = 3;

/// The per-connection values for one ClientHello.
pub(super) struct FirstFlight {
    keys: ReusableKeys,
    /// The bytes to hand out, one entry per expected `fill`, in rustls' draw order.
    script: [Vec<u8>; DRAWS],
    served: usize,
    /// A `fill` of an unexpected length, or one draw too many: rustls changed its order.
    misdrawn: bool,
}

impl FirstFlight {
    pub(super) fn new(
        keys: ReusableKeys,
        session_id: [u8; 32],
        order_seed: [u8; 2],
        random: [u8; 32],
    ) -> Self {
        FirstFlight {
            keys,
            script: [session_id.to_vec(), order_seed.to_vec(), random.to_vec()],
            served: 0,
            misdrawn: false,
        }
    }

    /// Whether rustls drew exactly the scripted bytes, in order, and nothing else.
    pub(super) fn drawn_as_scripted(&self) -> bool {
        !self.misdrawn && self.served == DRAWS
    }

    fn serve(&mut self, dest: &mut [u8]) -> Result<(), GetRandomFailed> {
        match self.script.get(self.served) {
            Some(bytes) if bytes.len() == dest.len() => {
                dest.copy_from_slice(bytes);
                self.served += 1;
                Ok(())
            }
            // Failing (rather than making up bytes) stops `ClientConnection::new` at once.
            _ => {
                self.misdrawn = true;
                Err(GetRandomFailed)
            }
        }
    }
}

thread_local! {
    static SLOT: RefCell<Option<FirstFlight>> = const { RefCell::new(None) };
}

/// Runs `build` with `flight` in this thread's slot and returns the slot's final state with
/// `build`'s result. `build` must not await (it is a plain closure, so it cannot).
///
/// # Panics
/// If called from inside `build` (the slot is already in use): that would be a bug here.
pub(super) fn with_first_flight<T>(
    flight: FirstFlight,
    build: impl FnOnce() -> T,
) -> (T, FirstFlight) {
    /// Empties the slot even if `build` panics, so the next connection starts clean.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            SLOT.with_borrow_mut(|slot| slot.take());
        }
    }

    SLOT.with_borrow_mut(|slot| {
        assert!(slot.is_none(), "REALITY first-flight slot already in use");
        *slot = Some(flight);
    });
    let clear = Clear;
    let out = build();
    let flight = SLOT
        .with_borrow_mut(|slot| slot.take())
        .expect("the slot is only emptied here and by Clear");
    drop(clear);
    (out, flight)
}

fn active_keys() -> Option<ReusableKeys> {
    SLOT.with_borrow(|slot| slot.as_ref().map(|f| f.keys.clone()))
}

/// The provider's `secure_random`: the script while a hello is built, the system RNG
/// otherwise.
#[derive(Debug)]
struct ScriptedRandom;

impl SecureRandom for ScriptedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), GetRandomFailed> {
        let scripted = SLOT.with_borrow_mut(|slot| slot.as_mut().map(|f| f.serve(dest)));
        match scripted {
            Some(result) => result,
            None => SystemRandom::new().fill(dest).map_err(|_| GetRandomFailed),
        }
    }
}

pub(super) static SCRIPTED_RANDOM: &dyn SecureRandom = &ScriptedRandom;

/// X25519 (0x001D): the connection's reusable key while a hello is built.
#[derive(Debug)]
struct ForwardX25519;

impl SupportedKxGroup for ForwardX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        match active_keys() {
            Some(keys) => keys.x25519_group().start(),
            None => kx_group::X25519.start(),
        }
    }

    // Server side, never used by the client: plain ephemeral X25519.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        kx_group::X25519.start_and_complete(client_share)
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// X25519MLKEM768 (0x11EC): the connection's reusable keys while a hello is built.
#[derive(Debug)]
struct ForwardHybrid;

impl SupportedKxGroup for ForwardHybrid {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        match active_keys() {
            Some(keys) => keys.hybrid_group().start(),
            None => X25519MLKEM768.start(),
        }
    }

    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        X25519MLKEM768.start_and_complete(client_share)
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

pub(super) static REALITY_X25519: &dyn SupportedKxGroup = &ForwardX25519;
pub(super) static REALITY_X25519MLKEM768: &dyn SupportedKxGroup = &ForwardHybrid;

#[cfg(test)]
mod tests {
    use super::*;

    fn flight() -> FirstFlight {
        FirstFlight::new(ReusableKeys::generate().unwrap(), [1; 32], [2; 2], [3; 32])
    }

    #[test]
    fn serves_the_script_in_order_then_refuses() {
        let ((), state) = with_first_flight(flight(), || {
            let (mut sid, mut seed, mut random) = ([0; 32], [0; 2], [0; 32]);
            SCRIPTED_RANDOM.fill(&mut sid).unwrap();
            SCRIPTED_RANDOM.fill(&mut seed).unwrap();
            SCRIPTED_RANDOM.fill(&mut random).unwrap();
            assert_eq!((sid, seed, random), ([1; 32], [2; 2], [3; 32]));
            assert!(SCRIPTED_RANDOM.fill(&mut [0; 4]).is_err());
        });
        assert!(!state.drawn_as_scripted(), "a fourth draw is a misdraw");
    }

    #[test]
    fn a_draw_of_the_wrong_length_is_reported() {
        let ((), state) = with_first_flight(flight(), || {
            assert!(SCRIPTED_RANDOM.fill(&mut [0; 16]).is_err());
        });
        assert!(!state.drawn_as_scripted());
        let ((), state) = with_first_flight(flight(), || {
            SCRIPTED_RANDOM.fill(&mut [0; 32]).unwrap();
        });
        assert!(!state.drawn_as_scripted(), "two draws missing");
    }

    #[test]
    fn outside_a_flight_everything_is_fresh() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        SCRIPTED_RANDOM.fill(&mut a).unwrap();
        SCRIPTED_RANDOM.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
        let one = REALITY_X25519.start().unwrap();
        let two = REALITY_X25519.start().unwrap();
        assert_ne!(one.pub_key(), two.pub_key());
    }

    #[test]
    fn inside_a_flight_the_groups_reuse_the_keys() {
        let keys = ReusableKeys::generate().unwrap();
        let expected = (keys.x25519_public(), keys.hybrid_share());
        let flight = FirstFlight::new(keys, [0; 32], [0; 2], [0; 32]);
        let (shares, _) = with_first_flight(flight, || {
            let x = REALITY_X25519.start().unwrap().pub_key().to_vec();
            let h = REALITY_X25519MLKEM768.start().unwrap().pub_key().to_vec();
            (x, h)
        });
        assert_eq!(shares.0, expected.0);
        assert_eq!(shares.1, expected.1);
        // And the slot is empty again.
        assert!(active_keys().is_none());
    }

    #[test]
    fn the_slot_is_emptied_after_a_panic() {
        let caught = std::panic::catch_unwind(|| {
            with_first_flight(flight(), || panic!("inside the build"));
        });
        assert!(caught.is_err());
        assert!(active_keys().is_none());
    }
}
