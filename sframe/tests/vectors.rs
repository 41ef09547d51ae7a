//! Runs the official RFC 9605 test vectors (`tests/fixtures/test-vectors.json`,
//! from `sframe-wg/sframe`). A missing or short fixture fails the tests.

use serde::Deserialize;
use sframe::key::{key_label, salt_label};
use sframe::{CipherSuite, Header, KeyMaterial, ReceiverContext, SenderContext};

#[derive(Deserialize)]
struct HeaderVector {
    kid: u64,
    ctr: u64,
    encoded: String,
}

#[derive(Deserialize)]
struct SframeVector {
    cipher_suite: u16,
    kid: u64,
    ctr: u64,
    base_key: String,
    sframe_key_label: String,
    sframe_salt_label: String,
    sframe_secret: String,
    sframe_key: String,
    sframe_salt: String,
    metadata: String,
    nonce: String,
    aad: String,
    pt: String,
    ct: String,
}

#[derive(Deserialize)]
struct Fixture {
    header: Vec<HeaderVector>,
    sframe: Vec<SframeVector>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-vectors.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("test-vector fixture {path} is required: {e}"));
    serde_json::from_str(&text).expect("fixture parses")
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

#[test]
fn header_vectors_both_ways() {
    let vectors = fixture().header;
    assert_eq!(
        vectors.len(),
        289,
        "the published file has 289 header vectors"
    );
    for v in &vectors {
        let want = h(&v.encoded);
        let header = Header::new(v.kid, v.ctr);
        assert_eq!(header.encode(), want, "encode kid={} ctr={}", v.kid, v.ctr);
        assert_eq!(header.encoded_len(), want.len());
        assert_eq!(
            Header::decode(&want),
            Ok((header, want.len())),
            "decode {}",
            v.encoded
        );
        // Any proper prefix is truncated.
        for cut in 0..want.len() {
            assert!(
                Header::decode(&want[..cut]).is_err(),
                "prefix {cut} of {}",
                v.encoded
            );
        }
    }
    println!("checked {} header vectors", vectors.len());
}

#[test]
fn sframe_vectors_all_suites() {
    let vectors = fixture().sframe;
    let mut seen: Vec<u16> = vectors.iter().map(|v| v.cipher_suite).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [1, 2, 3, 4, 5],
        "every implemented suite has a vector"
    );

    for v in &vectors {
        let suite = CipherSuite::from_id(v.cipher_suite).expect("suite implemented");
        let id = v.cipher_suite;
        let base_key = h(&v.base_key);

        assert_eq!(
            key_label(v.kid, suite),
            h(&v.sframe_key_label),
            "suite {id} key label"
        );
        assert_eq!(
            salt_label(v.kid, suite),
            h(&v.sframe_salt_label),
            "suite {id} salt label"
        );

        // sframe_secret = HKDF-Extract("", base_key) = HMAC-Hash(key = "", base_key);
        // checked independently, since ring keeps its PRK opaque.
        let alg = if suite.nh() == 64 {
            ring::hmac::HMAC_SHA512
        } else {
            ring::hmac::HMAC_SHA256
        };
        let secret = ring::hmac::sign(&ring::hmac::Key::new(alg, &[]), &base_key);
        assert_eq!(
            secret.as_ref(),
            h(&v.sframe_secret),
            "suite {id} sframe_secret"
        );

        let m = KeyMaterial::derive(suite, v.kid, &base_key);
        assert_eq!(m.key(), h(&v.sframe_key), "suite {id} sframe_key");
        assert_eq!(m.salt()[..], h(&v.sframe_salt), "suite {id} sframe_salt");
        assert_eq!(m.nonce(v.ctr)[..], h(&v.nonce), "suite {id} nonce");

        // AAD = header || metadata.
        let metadata = h(&v.metadata);
        let mut aad = Header::new(v.kid, v.ctr).encode();
        aad.extend_from_slice(&metadata);
        assert_eq!(aad, h(&v.aad), "suite {id} aad");

        let mut tx = SenderContext::new(suite);
        tx.add_key(v.kid, &base_key).unwrap();
        let ct = tx
            .encrypt(v.kid, Some(v.ctr), &metadata, &h(&v.pt))
            .unwrap();
        assert_eq!(hex::encode(&ct), v.ct, "suite {id} ciphertext");
        assert_eq!(tx.next_ctr(v.kid), Ok(v.ctr + 1));

        let mut rx = ReceiverContext::new(suite);
        rx.add_key(v.kid, &base_key).unwrap();
        let (kid, ctr, pt) = rx.decrypt(&metadata, &h(&v.ct)).unwrap();
        assert_eq!((kid, ctr), (v.kid, v.ctr), "suite {id} header");
        assert_eq!(pt, h(&v.pt), "suite {id} plaintext");
    }
    println!("checked {} sframe vectors", vectors.len());
}
