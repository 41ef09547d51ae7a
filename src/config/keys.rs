//! The config schema as the TOML walker sees it: every key, per section, with the kind
//! of value it takes. Mirrors the serde types in `schema.rs`; a test in `shape.rs`
//! serialises a fully populated `Config` and compares, so the two cannot drift.

/// What a setting's value must look like at the TOML level.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Bool,
    /// Non-negative integer.
    UInt,
    Str,
    /// `IP:port`, parsed here because serde would otherwise stop at the first bad one.
    Addr,
    /// A bare IP address (no port).
    Ip,
    /// A string from a fixed set (serde enums).
    OneOf(&'static [&'static str]),
    StrList,
    Table(&'static [Field]),
    /// `[[name]]`.
    TableList(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

pub(super) const POLICIES: &[&str] = &["strict", "heuristic"];
pub(super) const LOG_FORMATS: &[&str] = &["text", "json"];

const NODE: &[Field] = &[f("id", Kind::Str), f("dev", Kind::Bool)];
const RUNTIME: &[Field] = &[
    f("cores", Kind::UInt),
    f("io_memory_kib", Kind::UInt),
    f("ring_depth", Kind::UInt),
    f("bus_capacity", Kind::UInt),
];
const CERT: &[Field] = &[
    f("names", Kind::StrList),
    f("cert", Kind::Str),
    f("key", Kind::Str),
];
const SESSION: &[Field] = &[
    f("secret_file", Kind::Str),
    f("secret_env", Kind::Str),
    f("cookie_name", Kind::Str),
    f("cookie_ttl_secs", Kind::UInt),
    f("invite_ttl_secs", Kind::UInt),
];
const LIMITS: &[Field] = &[
    f("max_connections", Kind::UInt),
    f("handshake_timeout_ms", Kind::UInt),
    f("header_timeout_ms", Kind::UInt),
    f("idle_timeout_ms", Kind::UInt),
    f("max_header_bytes", Kind::UInt),
    f("max_body_bytes", Kind::UInt),
    f("max_requests_per_conn", Kind::UInt),
];
const FRONT: &[Field] = &[
    f("listen", Kind::Addr),
    f("domains", Kind::StrList),
    f("policy", Kind::OneOf(POLICIES)),
    f("cover_dir", Kind::Str),
    f("server_header", Kind::Str),
    f("certs", Kind::TableList(CERT)),
    f("session", Kind::Table(SESSION)),
    f("limits", Kind::Table(LIMITS)),
];
const ADMIN: &[Field] = &[f("listen", Kind::Addr)];
const SHUTDOWN: &[Field] = &[f("drain_timeout_secs", Kind::UInt)];
const LOG: &[Field] = &[f("level", Kind::Str), f("format", Kind::OneOf(LOG_FORMATS))];
const TUNNEL_CLIENT: &[Field] = &[
    f("server", Kind::Addr),
    f("public_key", Kind::Str),
    f("short_id", Kind::Str),
    f("uuid_file", Kind::Str),
    f("client_version", Kind::Str),
    f("pq", Kind::Bool),
    f("retry_min_ms", Kind::UInt),
    f("retry_max_secs", Kind::UInt),
    f("transport", Kind::OneOf(TRANSPORTS)),
    f("encryption", Kind::Str),
    f("xhttp", Kind::Table(XHTTP_CLIENT)),
];
const TRANSPORTS: &[&str] = &["raw", "xhttp"];
const XHTTP_CLIENT: &[Field] = &[
    f("path", Kind::Str),
    f("mode", Kind::OneOf(XHTTP_MODES)),
    f("host", Kind::Str),
    f("max_connections", Kind::UInt),
    f("max_concurrency", Kind::UInt),
    f("max_reuse", Kind::UInt),
    f("max_lifetime_secs", Kind::UInt),
];
/// Client modes; Xray's "auto" is left out on purpose: the edge states what it sends.
pub(super) const XHTTP_MODES: &[&str] = &["stream-up", "packet-up", "stream-one"];
const FORWARD: &[Field] = &[f("listen", Kind::Addr), f("target", Kind::Str)];
const TUNNEL: &[Field] = &[
    f("sni_pool", Kind::StrList),
    f("client", Kind::Table(TUNNEL_CLIENT)),
    f("forward", Kind::TableList(FORWARD)),
];

const SFU: &[Field] = &[
    f("secret_file", Kind::Str),
    f("max_participants", Kind::UInt),
    f("offer_timeout_secs", Kind::UInt),
    // media
    f("media_port_base", Kind::UInt),
    f("public_ip", Kind::Ip),
    f("private_ip", Kind::Ip),
    f("max_rooms_per_shard", Kind::UInt),
    f("max_participants_per_shard", Kind::UInt),
    f("media_timeout_secs", Kind::UInt),
];

/// The top level of the config file.
pub(super) const ROOT: &[Field] = &[
    f("node", Kind::Table(NODE)),
    f("runtime", Kind::Table(RUNTIME)),
    f("front", Kind::Table(FRONT)),
    f("admin", Kind::Table(ADMIN)),
    f("shutdown", Kind::Table(SHUTDOWN)),
    f("log", Kind::Table(LOG)),
    f("tunnel", Kind::Table(TUNNEL)),
    f("sfu", Kind::Table(SFU)),
];

/// `prefix.name`, or `name` at the top level.
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}
