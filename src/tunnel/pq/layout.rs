//! Byte layout of X25519MLKEM768 (0x11EC) key shares and secrets, as fixed by
//! draft-ietf-tls-ecdhe-mlkem: the ML-KEM part comes first and X25519 last, in
//! both shares and in the combined secret. (SecP256r1MLKEM768 uses the
//! opposite order, so the order is spelled out here rather than assumed.)

/// ML-KEM-768 encapsulation key, the client's post-quantum half.
pub const MLKEM768_EK_LEN: usize = 1184;
/// ML-KEM-768 ciphertext, the server's post-quantum half.
pub const MLKEM768_CT_LEN: usize = 1088;
/// An X25519 public key, the classical half of either share.
pub const X25519_LEN: usize = 32;
/// The client's key share: encapsulation key ‖ X25519 public key.
pub const CLIENT_SHARE_LEN: usize = MLKEM768_EK_LEN + X25519_LEN;
/// The server's key share: ciphertext ‖ X25519 public key.
pub const SERVER_SHARE_LEN: usize = MLKEM768_CT_LEN + X25519_LEN;
/// The TLS shared secret: ML-KEM shared key ‖ X25519 shared secret.
pub const SECRET_LEN: usize = 32 + 32;

/// Splits a client share into (encapsulation key, X25519 public key), or
/// `None` if its length is wrong.
pub(super) fn split_client_share(share: &[u8]) -> Option<(&[u8], &[u8])> {
    split_exact(share, MLKEM768_EK_LEN, CLIENT_SHARE_LEN)
}

/// Splits a server share into (ciphertext, X25519 public key), or `None` if
/// its length is wrong.
pub(super) fn split_server_share(share: &[u8]) -> Option<(&[u8], &[u8])> {
    split_exact(share, MLKEM768_CT_LEN, SERVER_SHARE_LEN)
}

fn split_exact(share: &[u8], first_len: usize, total_len: usize) -> Option<(&[u8], &[u8])> {
    (share.len() == total_len).then(|| share.split_at(first_len))
}

/// `mlkem ‖ x25519`, the order of both shares and secrets for this group.
pub(super) fn join(mlkem: &[u8], x25519: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mlkem.len() + x25519.len());
    out.extend_from_slice(mlkem);
    out.extend_from_slice(x25519);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_the_draft() {
        assert_eq!(CLIENT_SHARE_LEN, 1216);
        assert_eq!(SERVER_SHARE_LEN, 1120);
        assert_eq!(SECRET_LEN, 64);
    }

    #[test]
    fn client_share_splits_at_the_encapsulation_key() {
        let mut share = vec![1u8; MLKEM768_EK_LEN];
        share.extend_from_slice(&[2u8; X25519_LEN]);
        let (ek, x) = split_client_share(&share).unwrap();
        assert!(ek.len() == MLKEM768_EK_LEN && ek.iter().all(|&b| b == 1));
        assert!(x.len() == X25519_LEN && x.iter().all(|&b| b == 2));
    }

    #[test]
    fn server_share_splits_at_the_ciphertext() {
        let share = join(&[3u8; MLKEM768_CT_LEN], &[4u8; X25519_LEN]);
        let (ct, x) = split_server_share(&share).unwrap();
        assert_eq!(ct, &[3u8; MLKEM768_CT_LEN][..]);
        assert_eq!(x, &[4u8; X25519_LEN][..]);
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for len in [0, 32, CLIENT_SHARE_LEN - 1, CLIENT_SHARE_LEN + 1] {
            assert!(split_client_share(&vec![0; len]).is_none(), "{len}");
        }
        for len in [
            0,
            32,
            SERVER_SHARE_LEN - 1,
            SERVER_SHARE_LEN + 1,
            CLIENT_SHARE_LEN,
        ] {
            assert!(split_server_share(&vec![0; len]).is_none(), "{len}");
        }
    }
}
