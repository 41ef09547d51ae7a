//! The request header a client sends first:
//! `ver(1) | uuid(16) | addons_len(1) | addons | cmd(1) | [port(2) | atyp(1) | addr]`.

use uuid::Uuid;

use super::addons::{self, MAX_ADDONS_LEN};
use super::address::{Target, MAX_TARGET_LEN};
use super::cursor::{Cursor, Stop};
use super::{Decoded, VlessError, VERSION};

const CMD_TCP: u8 = 0x01;
const CMD_UDP: u8 = 0x02;
const CMD_MUX: u8 = 0x03;
/// Xray's reverse proxy (`v1.rvs.cool`): valid on the wire, not served here.
const CMD_RVS: u8 = 0x04;

const UUID_LEN: usize = 16;
/// Longest header: the largest addons and the longest target.
pub const MAX_REQUEST_LEN: usize = 1 + UUID_LEN + 1 + MAX_ADDONS_LEN + 1 + MAX_TARGET_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Tcp,
    Udp,
    /// Mux.Cool: many streams in one connection; the sessions carry the
    /// destinations, so the header has none.
    Mux,
}

impl Command {
    pub fn code(self) -> u8 {
        match self {
            Command::Tcp => CMD_TCP,
            Command::Udp => CMD_UDP,
            Command::Mux => CMD_MUX,
        }
    }

    fn from_code(code: u8) -> Result<Command, VlessError> {
        match code {
            CMD_TCP => Ok(Command::Tcp),
            CMD_UDP => Ok(Command::Udp),
            CMD_MUX => Ok(Command::Mux),
            CMD_RVS => Err(VlessError::Unsupported("reverse proxy command")),
            other => Err(VlessError::UnknownCommand(other)),
        }
    }

    fn has_target(self) -> bool {
        self != Command::Mux
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The user id; check it with [`super::authorize`].
    pub uuid: Uuid,
    /// The flow from the addons (`xtls-rprx-vision` or none). Decoding never
    /// yields an empty string, and encoding writes one as no flow.
    pub flow: Option<String>,
    pub command: Command,
    /// The destination: present for TCP and UDP, absent for Mux.
    pub target: Option<Target>,
}

impl Request {
    /// Appends the header to `out`. Refuses (leaving `out` as it was) a
    /// request that could not be decoded back: a target that disagrees with
    /// the command, a domain Xray would refuse, a flow too long for the addons.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), VlessError> {
        match (&self.target, self.command.has_target()) {
            (None, true) => return Err(VlessError::BadTarget("TCP and UDP need a target")),
            (Some(_), false) => return Err(VlessError::BadTarget("Mux takes no target")),
            (Some(target), true) => target.validate()?,
            (None, false) => {}
        }
        addons::validate(self.flow.as_deref())?;

        out.push(VERSION);
        out.extend_from_slice(self.uuid.as_bytes());
        addons::encode(self.flow.as_deref(), out);
        out.push(self.command.code());
        if let Some(target) = &self.target {
            target.encode(out);
        }
        Ok(())
    }

    /// Parses a header from the start of `buf`; on `Complete`, the bytes from
    /// `consumed` on are the first payload. Every byte is checked as soon as
    /// it arrives, so a wrong version or command is refused without waiting
    /// for the rest.
    pub fn decode(buf: &[u8]) -> Result<Decoded<Request>, VlessError> {
        Cursor::run(buf, parse)
    }
}

fn parse(c: &mut Cursor<'_>) -> Result<Request, Stop> {
    // Each read asks for its field plus the shortest valid rest: addons_len
    // and cmd after the uuid, cmd after the addons.
    let version = c.byte(UUID_LEN + 2)?;
    if version != VERSION {
        return Err(VlessError::BadVersion(version).into());
    }
    let uuid = Uuid::from_bytes(c.array(2)?);
    let addons_len = c.byte(1)?;
    let flow = addons::decode(c.take(usize::from(addons_len), 1)?)?;
    // A target's bytes must follow TCP and UDP; only Mux may end here, and
    // its byte is not known yet.
    let command = Command::from_code(c.byte(0)?)?;
    let target = if command.has_target() {
        Some(Target::decode(c)?)
    } else {
        None
    };
    Ok(Request {
        uuid,
        flow,
        command,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vless::address::MIN_TARGET_LEN;
    use crate::tunnel::vless::Address;

    const ID: Uuid = Uuid::from_bytes([
        0x27, 0x84, 0x8f, 0x5e, 0x3c, 0x1a, 0x4b, 0x9d, 0x8e, 0x2f, 0x6a, 0x71, 0x0c, 0xd3, 0x95,
        0x44,
    ]);

    fn encoded(req: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        req.encode(&mut out).unwrap();
        out
    }

    fn complete(bytes: &[u8]) -> (Request, usize) {
        match Request::decode(bytes) {
            Ok(Decoded::Complete { value, consumed }) => (value, consumed),
            other => panic!("{other:?}"),
        }
    }

    /// Header bytes: version, uuid, then `rest`.
    fn header(rest: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00];
        out.extend_from_slice(ID.as_bytes());
        out.extend_from_slice(rest);
        out
    }

    fn golden(req: Request, rest: &[u8]) {
        let want = header(rest);
        assert_eq!(encoded(&req), want);
        assert_eq!(complete(&want), (req, want.len()));
    }

    #[test]
    fn xray_vision_tcp_to_loopback() {
        // TUNNEL.md §1: Xray 24.11.21 client, Vision, TCP to 127.0.0.1:8080.
        let mut rest = vec![0x12, 0x0a, 0x10];
        rest.extend_from_slice(b"xtls-rprx-vision");
        rest.extend_from_slice(&[0x01, 0x1f, 0x90, 0x01, 0x7f, 0x00, 0x00, 0x01]);
        let req = Request {
            uuid: ID,
            flow: Some("xtls-rprx-vision".into()),
            command: Command::Tcp,
            target: Some(Target {
                addr: Address::Ipv4([127, 0, 0, 1]),
                port: 8080,
            }),
        };
        golden(req, &rest);
    }

    #[test]
    fn tcp_to_a_domain_without_flow() {
        let req = Request {
            uuid: ID,
            flow: None,
            command: Command::Tcp,
            target: Some(Target {
                addr: Address::Domain("example.com".into()),
                port: 443,
            }),
        };
        golden(req, b"\x00\x01\x01\xbb\x02\x0bexample.com");
    }

    #[test]
    fn tcp_to_ipv6() {
        let mut ip = [0; 16];
        ip[0] = 0x20;
        ip[1] = 0x01;
        ip[15] = 0x01;
        let req = Request {
            uuid: ID,
            flow: None,
            command: Command::Tcp,
            target: Some(Target {
                addr: Address::Ipv6(ip),
                port: 22,
            }),
        };
        let mut rest = vec![0x00, 0x01, 0x00, 0x16, 0x03];
        rest.extend_from_slice(&ip);
        golden(req, &rest);
    }

    #[test]
    fn udp_to_a_resolver() {
        let req = Request {
            uuid: ID,
            flow: None,
            command: Command::Udp,
            target: Some(Target {
                addr: Address::Ipv4([1, 1, 1, 1]),
                port: 53,
            }),
        };
        golden(req, b"\x00\x02\x00\x35\x01\x01\x01\x01\x01");
    }

    #[test]
    fn mux_has_no_address() {
        let req = Request {
            uuid: ID,
            flow: Some("xtls-rprx-vision".into()),
            command: Command::Mux,
            target: None,
        };
        let mut rest = b"\x12\x0a\x10xtls-rprx-vision".to_vec();
        rest.push(0x03);
        golden(req, &rest);
    }

    #[test]
    fn payload_after_the_header_is_left_alone() {
        let mut bytes = header(b"\x00\x01\x00\x50\x01\x0a\x00\x00\x01");
        let header_len = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (_, consumed) = complete(&bytes);
        assert_eq!(consumed, header_len);
        assert_eq!(&bytes[consumed..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_wrong_version_is_refused_at_the_first_byte() {
        assert_eq!(Request::decode(&[0x01]), Err(VlessError::BadVersion(1)));
        assert_eq!(
            Request::decode(b"\x16\x03\x01"),
            Err(VlessError::BadVersion(0x16))
        );
    }

    #[test]
    fn commands_are_checked_before_the_target_arrives() {
        assert_eq!(
            Request::decode(&header(b"\x00\x05")),
            Err(VlessError::UnknownCommand(5))
        );
        assert_eq!(
            Request::decode(&header(b"\x00\x04")),
            Err(VlessError::Unsupported("reverse proxy command"))
        );
        assert_eq!(
            Request::decode(&header(b"\x00\x01")),
            Ok(Decoded::Incomplete {
                need_at_least: 19 + MIN_TARGET_LEN
            })
        );
    }

    #[test]
    fn bad_addons_are_refused() {
        assert_eq!(
            Request::decode(&header(b"\x01\x0e\x03")),
            Err(VlessError::BadAddons("invalid wire type"))
        );
    }

    #[test]
    fn the_smallest_header_is_asked_for_up_front() {
        for len in 0..19 {
            let bytes = header(b"\x00\x03");
            assert_eq!(
                Request::decode(&bytes[..len]),
                Ok(Decoded::Incomplete { need_at_least: 19 })
            );
        }
        let bytes = header(b"\x07\x0a\x05hello\x03");
        assert_eq!(
            Request::decode(&bytes[..18]),
            Ok(Decoded::Incomplete { need_at_least: 26 })
        );
    }

    #[test]
    fn encode_refuses_requests_it_could_not_decode() {
        let target = Some(Target {
            addr: Address::Ipv4([1, 2, 3, 4]),
            port: 1,
        });
        let mut req = Request {
            uuid: ID,
            flow: None,
            command: Command::Mux,
            target,
        };
        let mut out = b"kept".to_vec();
        assert!(matches!(
            req.encode(&mut out),
            Err(VlessError::BadTarget(_))
        ));
        req.command = Command::Udp;
        req.target = None;
        assert!(matches!(
            req.encode(&mut out),
            Err(VlessError::BadTarget(_))
        ));
        req.target = Some(Target {
            addr: Address::Domain("no spaces".into()),
            port: 1,
        });
        assert_eq!(req.encode(&mut out), Err(VlessError::BadDomain));
        req.target = Some(Target {
            addr: Address::Domain("ok".into()),
            port: 1,
        });
        req.flow = Some("f".repeat(300));
        assert_eq!(req.encode(&mut out), Err(VlessError::AddonsTooLong));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn an_empty_flow_is_written_as_none() {
        let req = Request {
            uuid: ID,
            flow: Some(String::new()),
            command: Command::Mux,
            target: None,
        };
        let (back, _) = complete(&encoded(&req));
        assert_eq!(back.flow, None);
    }

    #[test]
    fn the_largest_header_fits_the_bound() {
        let req = Request {
            uuid: ID,
            flow: Some("f".repeat(252)),
            command: Command::Tcp,
            target: Some(Target {
                addr: Address::Domain("d".repeat(255)),
                port: 1,
            }),
        };
        let bytes = encoded(&req);
        assert_eq!(bytes.len(), MAX_REQUEST_LEN);
        assert_eq!(complete(&bytes), (req, MAX_REQUEST_LEN));
    }
}
