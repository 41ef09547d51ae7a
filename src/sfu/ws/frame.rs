//! WebSocket framing (RFC 6455 §5), sans-IO: an incremental decoder for what clients send
//! and encoders for what the server sends.
//!
//! The decoder is strict, since every deviation is either a broken client or someone
//! probing: client frames must be masked, lengths must use the shortest encoding, control
//! frames are short and never fragmented, no extension bits, text is UTF-8, and a message
//! (all its fragments together) is capped before its bytes are buffered. After an error
//! the connection must be closed with [`WsError::close_code`]; the decoder is not reused.

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    fn from_u8(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A complete message or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer's close: its code and reason, if it sent any.
    Close(Option<(u16, String)>),
}

/// Why the byte stream is not a valid client frame sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("reserved bits set (no extension was negotiated)")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("client frame not masked")]
    Unmasked,
    #[error("length not in its shortest encoding")]
    NonMinimalLength,
    #[error("64-bit length with the top bit set")]
    LengthTooLong,
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    #[error("new message before the previous one was finished")]
    UnfinishedMessage,
    #[error("message over the size limit")]
    TooLarge,
    #[error("text is not UTF-8")]
    InvalidUtf8,
    #[error("close payload of one byte")]
    BadClosePayload,
    #[error("close code {0} may not be sent")]
    BadCloseCode(u16),
}

impl WsError {
    /// The close code the server answers this error with (RFC 6455 §7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            WsError::TooLarge => 1009,
            WsError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

/// Longest control-frame payload.
const MAX_CONTROL: usize = 125;

/// Whether a peer may send `code` in a close frame (RFC 6455 §7.4; 1004-1006 and 1015
/// are reserved for local use, 1012-1014 are registered since).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

struct Partial {
    text: bool,
    data: Vec<u8>,
}

/// Incremental decoder of client frames, reassembling fragmented messages.
pub struct Decoder {
    max_message: usize,
    partial: Option<Partial>,
}

impl Decoder {
    /// A decoder refusing messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message,
            partial: None,
        }
    }

    /// Takes the next complete message or control frame off the front of `buf`.
    /// `Ok(None)`: more bytes are needed (nothing was consumed beyond whole fragments).
    pub fn decode(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, WsError> {
        loop {
            let Some((head, payload)) = self.next_frame(buf)? else {
                return Ok(None);
            };
            if let Some(frame) = self.on_frame(head, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    /// Parses one frame's header and, once all of it is buffered, its unmasked payload.
    fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<Option<(Head, Vec<u8>)>, WsError> {
        let Some(head) = parse_head(buf)? else {
            return Ok(None);
        };
        // Limits are checked from the header, before the payload is waited for, so a
        // claimed length is never buffered past the cap.
        if head.opcode.is_control() {
            if !head.fin {
                return Err(WsError::FragmentedControl);
            }
            if head.len > MAX_CONTROL as u64 {
                return Err(WsError::ControlTooLong);
            }
        } else {
            match (&self.partial, head.opcode) {
                (None, Opcode::Continuation) => return Err(WsError::UnexpectedContinuation),
                (Some(_), Opcode::Text | Opcode::Binary) => return Err(WsError::UnfinishedMessage),
                _ => {}
            }
            let so_far = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
            if so_far.saturating_add(head.len) > self.max_message as u64 {
                return Err(WsError::TooLarge);
            }
        }
        // Fits in usize: bounded by 125 or by max_message above.
        let len = head.len as usize;
        if buf.len() < head.header_len + len {
            return Ok(None);
        }
        let mut payload: Vec<u8> = buf[head.header_len..head.header_len + len].to_vec();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= head.mask[i % 4];
        }
        buf.drain(..head.header_len + len);
        Ok(Some((head, payload)))
    }

    fn on_frame(&mut self, head: Head, payload: Vec<u8>) -> Result<Option<Frame>, WsError> {
        match head.opcode {
            Opcode::Ping => Ok(Some(Frame::Ping(payload))),
            Opcode::Pong => Ok(Some(Frame::Pong(payload))),
            Opcode::Close => close_frame(payload).map(Some),
            Opcode::Text | Opcode::Binary => {
                let text = head.opcode == Opcode::Text;
                if head.fin {
                    return message(text, payload).map(Some);
                }
                self.partial = Some(Partial {
                    text,
                    data: payload,
                });
                Ok(None)
            }
            Opcode::Continuation => {
                // next_frame refused a continuation without a message in progress.
                let Some(p) = self.partial.as_mut() else {
                    return Err(WsError::UnexpectedContinuation);
                };
                p.data.extend_from_slice(&payload);
                if !head.fin {
                    return Ok(None);
                }
                let Partial { text, data } =
                    self.partial.take().ok_or(WsError::UnexpectedContinuation)?;
                message(text, data).map(Some)
            }
        }
    }
}

fn message(text: bool, data: Vec<u8>) -> Result<Frame, WsError> {
    if !text {
        return Ok(Frame::Binary(data));
    }
    String::from_utf8(data)
        .map(Frame::Text)
        .map_err(|_| WsError::InvalidUtf8)
}

fn close_frame(payload: Vec<u8>) -> Result<Frame, WsError> {
    match payload.len() {
        0 => Ok(Frame::Close(None)),
        1 => Err(WsError::BadClosePayload),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_allowed(code) {
                return Err(WsError::BadCloseCode(code));
            }
            let reason =
                String::from_utf8(payload[2..].to_vec()).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Frame::Close(Some((code, reason))))
        }
    }
}

struct Head {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// The frame header at the start of `buf`, `None` if not all of it is there yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, WsError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::ReservedBits);
    }
    let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(WsError::UnknownOpcode(b0 & 0x0F))?;
    if b1 & 0x80 == 0 {
        return Err(WsError::Unmasked);
    }
    let (len, at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let n = u64::from(u16::from_be_bytes([b[0], b[1]]));
            if n < 126 {
                return Err(WsError::NonMinimalLength);
            }
            (n, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            let n = u64::from_be_bytes(be);
            if n >> 63 != 0 {
                return Err(WsError::LengthTooLong);
            }
            if n <= u64::from(u16::MAX) {
                return Err(WsError::NonMinimalLength);
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(m) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin: b0 & 0x80 != 0,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        len,
        header_len: at + 4,
    }))
}

/// One frame as a client sends it (masked with `mask`); for tests, fuzzing and the load
/// generator. Lengths use the shortest encoding.
pub fn encode_client_frame(opcode: Opcode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = header(opcode, fin, payload.len(), true);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn header(opcode: Opcode, fin: bool, len: usize, masked: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + len);
    out.push(if fin { 0x80 } else { 0 } | opcode as u8);
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out
}

/// A server frame: unmasked, unfragmented.
fn server_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = header(opcode, true, payload.len(), false);
    out.extend_from_slice(payload);
    out
}

/// A text message from the server.
pub fn encode_text(text: &str) -> Vec<u8> {
    server_frame(Opcode::Text, text.as_bytes())
}

/// The answer to a ping: the same payload (at most 125 bytes, as the ping was).
pub fn encode_pong(payload: &[u8]) -> Vec<u8> {
    server_frame(Opcode::Pong, &payload[..payload.len().min(MAX_CONTROL)])
}

/// A ping from the server.
pub fn encode_ping(payload: &[u8]) -> Vec<u8> {
    server_frame(Opcode::Ping, &payload[..payload.len().min(MAX_CONTROL)])
}

/// A close frame with `code` and as much of `reason` as fits in a control frame.
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    server_frame(Opcode::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn client(op: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        encode_client_frame(op, fin, payload, MASK)
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, WsError> {
        let mut d = Decoder::new(64 * 1024);
        let mut buf = bytes.to_vec();
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn one_error(bytes: &[u8]) -> WsError {
        let mut d = Decoder::new(64 * 1024);
        d.decode(&mut bytes.to_vec()).unwrap_err()
    }

    #[test]
    fn rfc_6455_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode_all(&bytes), Ok(vec![Frame::Text("Hello".into())]));
        assert_eq!(client(Opcode::Text, true, b"Hello"), bytes);
        // And the unmasked server form.
        assert_eq!(
            encode_text("Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
    }

    #[test]
    fn decoding_is_incremental_byte_by_byte() {
        let mut stream = client(Opcode::Text, false, b"Hel");
        stream.extend(client(Opcode::Ping, true, b"p"));
        stream.extend(client(Opcode::Continuation, true, b"lo"));
        stream.extend(client(Opcode::Binary, true, &[0u8; 300]));
        stream.extend(client(Opcode::Close, true, &[0x03, 0xe8, b'b', b'y', b'e']));
        let mut d = Decoder::new(64 * 1024);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in stream {
            buf.push(b);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::Ping(b"p".to_vec()),
                Frame::Text("Hello".into()),
                Frame::Binary(vec![0u8; 300]),
                Frame::Close(Some((1000, "bye".into()))),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn lengths_of_each_width_and_their_minimal_form() {
        for len in [0, 125, 126, 65535, 65536, 70000] {
            let payload = vec![b'a'; len];
            let mut d = Decoder::new(100_000);
            let mut buf = client(Opcode::Binary, true, &payload);
            assert_eq!(
                d.decode(&mut buf),
                Ok(Some(Frame::Binary(payload))),
                "{len}"
            );
        }
        // 16-bit length used for 125 bytes.
        let mut f = vec![0x82, 0x80 | 126, 0, 125];
        f.extend_from_slice(&MASK);
        f.extend(vec![0; 125]);
        assert_eq!(one_error(&f), WsError::NonMinimalLength);
        // 64-bit length used for 65535 bytes (rejected from the header alone).
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&65535u64.to_be_bytes());
        f.extend_from_slice(&MASK);
        assert_eq!(one_error(&f), WsError::NonMinimalLength);
        // Top bit of the 64-bit length.
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        f.extend_from_slice(&MASK);
        assert_eq!(one_error(&f), WsError::LengthTooLong);
    }

    #[test]
    fn client_frames_must_be_masked() {
        assert_eq!(one_error(&encode_text("hi")), WsError::Unmasked);
    }

    #[test]
    fn reserved_bits_and_opcodes_are_refused() {
        let mut f = client(Opcode::Text, true, b"x");
        f[0] |= 0x40; // RSV1, as permessage-deflate would set
        assert_eq!(one_error(&f), WsError::ReservedBits);
        for op in [0x3u8, 0x7, 0xB, 0xF] {
            let mut f = client(Opcode::Text, true, b"x");
            f[0] = 0x80 | op;
            assert_eq!(one_error(&f), WsError::UnknownOpcode(op));
        }
    }

    #[test]
    fn control_frame_rules() {
        assert_eq!(
            decode_all(&client(Opcode::Ping, true, &[7; 125])),
            Ok(vec![Frame::Ping(vec![7; 125])])
        );
        assert_eq!(
            one_error(&client(Opcode::Ping, true, &[7; 126])),
            WsError::ControlTooLong
        );
        assert_eq!(
            one_error(&client(Opcode::Pong, false, b"x")),
            WsError::FragmentedControl
        );
        assert_eq!(
            one_error(&client(Opcode::Close, false, &[3, 232])),
            WsError::FragmentedControl
        );
    }

    #[test]
    fn fragmentation_rules() {
        assert_eq!(
            one_error(&client(Opcode::Continuation, true, b"x")),
            WsError::UnexpectedContinuation
        );
        let mut f = client(Opcode::Text, false, b"a");
        f.extend(client(Opcode::Text, true, b"b"));
        assert_eq!(decode_all(&f), Err(WsError::UnfinishedMessage));
        let mut f = client(Opcode::Binary, false, b"a");
        f.extend(client(Opcode::Continuation, false, b"b"));
        f.extend(client(Opcode::Continuation, true, b"c"));
        assert_eq!(decode_all(&f), Ok(vec![Frame::Binary(b"abc".to_vec())]));
    }

    #[test]
    fn the_message_cap_counts_all_fragments_before_buffering() {
        let mut d = Decoder::new(10);
        let mut buf = client(Opcode::Text, false, b"123456");
        buf.extend(client(Opcode::Continuation, true, b"78901"));
        assert_eq!(d.decode(&mut buf), Err(WsError::TooLarge));
        // The header alone is enough to refuse an oversized frame.
        let mut d = Decoder::new(10);
        let mut head = vec![0x81, 0x80 | 126, 0x10, 0x00];
        head.extend_from_slice(&MASK);
        assert_eq!(d.decode(&mut head), Err(WsError::TooLarge));
        assert_eq!(WsError::TooLarge.close_code(), 1009);
        let mut d = Decoder::new(10);
        let mut buf = client(Opcode::Text, true, b"0123456789");
        assert_eq!(
            d.decode(&mut buf),
            Ok(Some(Frame::Text("0123456789".into())))
        );
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(
            one_error(&client(Opcode::Text, true, &[0xff, 0xfe])),
            WsError::InvalidUtf8
        );
        // A character split across fragments is fine.
        let mut f = client(Opcode::Text, false, &[0xc3]);
        f.extend(client(Opcode::Continuation, true, &[0xa9]));
        assert_eq!(decode_all(&f), Ok(vec![Frame::Text("é".into())]));
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    }

    #[test]
    fn close_payload_rules() {
        assert_eq!(
            decode_all(&client(Opcode::Close, true, b"")),
            Ok(vec![Frame::Close(None)])
        );
        assert_eq!(
            one_error(&client(Opcode::Close, true, &[3])),
            WsError::BadClosePayload
        );
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert_eq!(
                one_error(&client(Opcode::Close, true, &code.to_be_bytes())),
                WsError::BadCloseCode(code)
            );
        }
        for code in [1000u16, 1001, 1011, 3000, 4000, 4999] {
            assert_eq!(
                decode_all(&client(Opcode::Close, true, &code.to_be_bytes())),
                Ok(vec![Frame::Close(Some((code, String::new())))])
            );
        }
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xff);
        assert_eq!(
            one_error(&client(Opcode::Close, true, &bad_reason)),
            WsError::InvalidUtf8
        );
    }

    #[test]
    fn server_frames() {
        assert_eq!(encode_pong(b"ab"), [0x8A, 2, b'a', b'b']);
        assert_eq!(encode_ping(b""), [0x89, 0]);
        assert_eq!(
            encode_close(4000, "bad"),
            [0x88, 5, 0x0f, 0xa0, b'b', b'a', b'd']
        );
        let long = "é".repeat(100);
        let c = encode_close(1000, &long);
        assert_eq!(c[1] as usize, c.len() - 2);
        assert!(c.len() - 2 <= 125);
        assert!(
            std::str::from_utf8(&c[4..]).is_ok(),
            "cut at a char boundary"
        );
        let big = "x".repeat(70_000);
        let t = encode_text(&big);
        assert_eq!(&t[..2], &[0x81, 127]);
        assert_eq!(t.len(), 10 + 70_000);
        let t = encode_text(&big[..300]);
        assert_eq!(&t[..4], &[0x81, 126, 1, 44]);
    }
}
