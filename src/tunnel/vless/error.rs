//! Everything that can make a VLESS header or UDP frame unusable.

use thiserror::Error;

/// Why a VLESS header or frame was refused. The variants name the field, not
/// its value, except for single bytes: logging them cannot leak a secret.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VlessError {
    /// The first byte of a header was not version 0.
    #[error("unsupported VLESS version {0}")]
    BadVersion(u8),
    #[error("unknown VLESS command {0:#04x}")]
    UnknownCommand(u8),
    #[error("unknown VLESS address type {0:#04x}")]
    BadAddressType(u8),
    /// Empty, not UTF-8, or not a host name (or IP literal) as Xray accepts.
    #[error("invalid domain name in VLESS target")]
    BadDomain,
    /// The addons do not fit the one-byte length field.
    #[error("VLESS addons longer than 255 bytes")]
    AddonsTooLong,
    /// The addons are not a valid protobuf `Addons` message.
    #[error("malformed VLESS addons: {0}")]
    BadAddons(&'static str),
    /// The command and the presence of a target disagree (encoding only).
    #[error("VLESS target does not match the command: {0}")]
    BadTarget(&'static str),
    /// The request's UUID is not one of the allowed users.
    #[error("unknown VLESS user")]
    UnknownUser,
    /// Valid on the wire but not something this node does.
    #[error("unsupported VLESS feature: {0}")]
    Unsupported(&'static str),
    /// A UDP payload does not fit the two-byte length prefix.
    #[error("UDP packet larger than 65535 bytes")]
    PacketTooLarge,
}
