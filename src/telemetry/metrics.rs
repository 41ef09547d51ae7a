//! Per-shard counters with no locks on the hot path.
//!
//! Every shard owns one [`ShardMetrics`] (plain `Cell`s: the shard is a single
//! thread, so an increment is one add). A scrape asks every shard for a
//! [`Snapshot`] over the cross-shard bus and [`render_prometheus`] sums them.
//! Labels are fixed kinds (class, reason), never identities: no IPs, rooms or
//! peers ever become label values.

use std::cell::Cell;
use std::fmt::Write as _;

/// Whether a metric only goes up or can go down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One series: its family name, a fixed label set, help text and kind.
pub struct Series {
    pub family: &'static str,
    pub labels: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

macro_rules! metrics {
    ($( $id:ident => ($family:literal, $labels:literal, $kind:ident, $help:literal), )*) => {
        /// Every series the edge exports. The discriminant indexes the counter array.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Metric { $($id,)* }

        /// Series descriptions, in `Metric` order.
        pub const SERIES: &[Series] = &[
            $(Series { family: $family, labels: $labels, help: $help, kind: Kind::$kind },)*
        ];
    };
}

metrics! {
    ConnAccepted => ("edge_front_connections_accepted_total", "", Counter, "TCP connections accepted on the front listener."),
    ConnRefusedLimit => ("edge_front_connections_refused_total", "reason=\"limit\"", Counter, "Connections closed at once because the shard was at its connection limit."),
    ConnActive => ("edge_front_connections_active", "", Gauge, "Front connections open now."),
    HelloPlainHttp => ("edge_front_hello_rejected_total", "reason=\"plain_http\"", Counter, "Connections whose first bytes were not a usable TLS ClientHello."),
    HelloNotTls => ("edge_front_hello_rejected_total", "reason=\"not_tls\"", Counter, "Connections whose first bytes were not a usable TLS ClientHello."),
    HelloSslv2 => ("edge_front_hello_rejected_total", "reason=\"sslv2\"", Counter, "Connections whose first bytes were not a usable TLS ClientHello."),
    HelloMalformed => ("edge_front_hello_rejected_total", "reason=\"malformed\"", Counter, "Connections whose first bytes were not a usable TLS ClientHello."),
    HelloTimeout => ("edge_front_hello_rejected_total", "reason=\"timeout\"", Counter, "Connections whose first bytes were not a usable TLS ClientHello."),
    RoutePartner => ("edge_front_routes_total", "route=\"partner\"", Counter, "TLS connections by route chosen from the SNI."),
    RouteDefault => ("edge_front_routes_total", "route=\"default\"", Counter, "TLS connections by route chosen from the SNI."),
    TlsOk => ("edge_front_tls_handshakes_total", "result=\"ok\"", Counter, "TLS handshakes by result."),
    TlsFailed => ("edge_front_tls_handshakes_total", "result=\"failed\"", Counter, "TLS handshakes by result."),
    Http1 => ("edge_front_connections_by_protocol_total", "proto=\"http1\"", Counter, "TLS connections by negotiated HTTP version."),
    Http2 => ("edge_front_connections_by_protocol_total", "proto=\"h2\"", Counter, "TLS connections by negotiated HTTP version."),
    ReqCover => ("edge_front_requests_total", "class=\"cover\"", Counter, "HTTP requests by probe-policy class."),
    ReqApp => ("edge_front_requests_total", "class=\"app\"", Counter, "HTTP requests by probe-policy class."),
    ReqInvite => ("edge_front_requests_total", "class=\"invite\"", Counter, "HTTP requests by probe-policy class."),
    ReqBad => ("edge_front_requests_total", "class=\"bad\"", Counter, "HTTP requests by probe-policy class."),
    Status2xx => ("edge_front_responses_total", "code=\"2xx\"", Counter, "HTTP responses by status class."),
    Status3xx => ("edge_front_responses_total", "code=\"3xx\"", Counter, "HTTP responses by status class."),
    Status4xx => ("edge_front_responses_total", "code=\"4xx\"", Counter, "HTTP responses by status class."),
    Status5xx => ("edge_front_responses_total", "code=\"5xx\"", Counter, "HTTP responses by status class."),
    IdleClosed => ("edge_front_idle_closed_total", "", Counter, "Connections closed because they sent nothing for the idle or header timeout."),
    BusDropped => ("edge_bus_dropped_total", "", Counter, "Cross-shard messages this shard could not deliver (target full or gone)."),
    CertReloads => ("edge_tls_cert_reloads_total", "", Counter, "Certificate sets applied after SIGHUP."),
    TunnelOpened => ("edge_tunnel_sessions_total", "result=\"opened\"", Counter, "Tunnel sessions to the core by outcome."),
    TunnelFailed => ("edge_tunnel_sessions_total", "result=\"failed\"", Counter, "Tunnel sessions to the core by outcome."),
    TunnelBytesUp => ("edge_tunnel_bytes_total", "dir=\"up\"", Counter, "Bytes carried through tunnel forwards."),
    TunnelBytesDown => ("edge_tunnel_bytes_total", "dir=\"down\"", Counter, "Bytes carried through tunnel forwards."),
    SniRotations => ("edge_tunnel_sni_rotations_total", "", Counter, "Tunnel SNI picks applied (one per shard at start and at each daily change)."),
    TunnelRefusedBackoff => ("edge_tunnel_refused_total", "reason=\"backoff\"", Counter, "Tunnel sessions refused without dialing: the core failed recently (back-off) or every pooled connection was full."),
    TunnelRefusedFull => ("edge_tunnel_refused_total", "reason=\"full\"", Counter, "Tunnel sessions refused without dialing: the core failed recently (back-off) or every pooled connection was full."),
    TunnelDialOk => ("edge_tunnel_dials_total", "result=\"ok\"", Counter, "Connections dialled to the core (TCP + REALITY) by result."),
    TunnelDialFailed => ("edge_tunnel_dials_total", "result=\"failed\"", Counter, "Connections dialled to the core (TCP + REALITY) by result."),
    TunnelReused => ("edge_tunnel_reused_total", "", Counter, "Tunnel sessions opened on an already pooled connection."),
    TunnelPoolConns => ("edge_tunnel_pool_connections", "", Gauge, "Connections to the core held in the shards' pools."),
    TunnelShardsDown => ("edge_tunnel_shards_down", "", Gauge, "Shards whose last dial to the core failed (0 = link healthy everywhere it was tried)."),
    SfuUpgradeOk => ("edge_sfu_ws_upgrades_total", "result=\"ok\"", Counter, "WebSocket upgrades on /sfu/ws/ by result: ok (101), unauthenticated (no or bad token: the cover site answered), refused (a valid token that is expired, early, for another room, or with a bad handshake)."),
    SfuUpgradeUnauth => ("edge_sfu_ws_upgrades_total", "result=\"unauthenticated\"", Counter, "WebSocket upgrades on /sfu/ws/ by result: ok (101), unauthenticated (no or bad token: the cover site answered), refused (a valid token that is expired, early, for another room, or with a bad handshake)."),
    SfuUpgradeRefused => ("edge_sfu_ws_upgrades_total", "result=\"refused\"", Counter, "WebSocket upgrades on /sfu/ws/ by result: ok (101), unauthenticated (no or bad token: the cover site answered), refused (a valid token that is expired, early, for another room, or with a bad handshake)."),
    SfuSessions => ("edge_sfu_signalling_sessions", "", Gauge, "Group-call signalling sockets open now (on their room's owner shard)."),
    SfuHandoffs => ("edge_sfu_handoffs_total", "", Counter, "Signalling sockets moved to their room's owner shard after the upgrade."),
    SfuClose1000 => ("edge_sfu_closes_total", "code=\"1000\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose1001 => ("edge_sfu_closes_total", "code=\"1001\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose1002 => ("edge_sfu_closes_total", "code=\"1002\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4000 => ("edge_sfu_closes_total", "code=\"4000\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4001 => ("edge_sfu_closes_total", "code=\"4001\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4002 => ("edge_sfu_closes_total", "code=\"4002\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4003 => ("edge_sfu_closes_total", "code=\"4003\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4004 => ("edge_sfu_closes_total", "code=\"4004\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4005 => ("edge_sfu_closes_total", "code=\"4005\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4008 => ("edge_sfu_closes_total", "code=\"4008\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuClose4031 => ("edge_sfu_closes_total", "code=\"4031\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuCloseOther => ("edge_sfu_closes_total", "code=\"other\"", Counter, "Signalling sockets closed by the server, by WebSocket close code."),
    SfuRooms => ("edge_sfu_rooms", "", Gauge, "Group-call rooms open on this node."),
    SfuParticipants => ("edge_sfu_participants", "", Gauge, "Group-call participants joined on this node."),
    SfuPacketsAudio => ("edge_sfu_packets_forwarded_total", "kind=\"audio\"", Counter, "RTP packets written to subscribers."),
    SfuPacketsVideo => ("edge_sfu_packets_forwarded_total", "kind=\"video\"", Counter, "RTP packets written to subscribers."),
    SfuBytesAudio => ("edge_sfu_bytes_forwarded_total", "kind=\"audio\"", Counter, "RTP payload bytes written to subscribers."),
    SfuBytesVideo => ("edge_sfu_bytes_forwarded_total", "kind=\"video\"", Counter, "RTP payload bytes written to subscribers."),
    SfuPacketsDropped => ("edge_sfu_packets_dropped_total", "", Counter, "Media packets not forwarded (no session accepted them, no matching codec, or a layer not selected while waiting for a keyframe)."),
    SfuKeyframeRequests => ("edge_sfu_keyframe_requests_total", "", Counter, "Keyframe requests sent to publishers (after the one-per-second limit)."),
    SfuDcRelayed => ("edge_sfu_datachannel_messages_total", "result=\"relayed\"", Counter, "Data-channel messages by outcome (one per message received)."),
    SfuDcDropped => ("edge_sfu_datachannel_messages_total", "result=\"dropped\"", Counter, "Data-channel messages by outcome (one per message received)."),
}

impl Metric {
    /// The `edge_sfu_closes_total` series for a close code (the main codes each have one).
    pub fn sfu_close(code: u16) -> Metric {
        match code {
            1000 => Metric::SfuClose1000,
            1001 => Metric::SfuClose1001,
            1002 => Metric::SfuClose1002,
            4000 => Metric::SfuClose4000,
            4001 => Metric::SfuClose4001,
            4002 => Metric::SfuClose4002,
            4003 => Metric::SfuClose4003,
            4004 => Metric::SfuClose4004,
            4005 => Metric::SfuClose4005,
            4008 => Metric::SfuClose4008,
            4031 => Metric::SfuClose4031,
            _ => Metric::SfuCloseOther,
        }
    }
}

/// Number of series.
pub const COUNT: usize = SERIES.len();

/// The counters of one shard. `!Sync` on purpose: only its shard touches it.
pub struct ShardMetrics {
    values: [Cell<u64>; COUNT],
}

impl Default for ShardMetrics {
    fn default() -> Self {
        Self {
            values: std::array::from_fn(|_| Cell::new(0)),
        }
    }
}

impl ShardMetrics {
    pub fn inc(&self, m: Metric) {
        self.add(m, 1);
    }

    pub fn add(&self, m: Metric, n: u64) {
        let c = &self.values[m as usize];
        c.set(c.get().wrapping_add(n));
    }

    /// For gauges only.
    /// For gauges whose owner knows the level rather than the changes.
    pub fn set(&self, m: Metric, v: u64) {
        self.values[m as usize].set(v);
    }

    pub fn dec(&self, m: Metric) {
        let c = &self.values[m as usize];
        c.set(c.get().saturating_sub(1));
    }

    pub fn get(&self, m: Metric) -> u64 {
        self.values[m as usize].get()
    }

    /// Counts a response by its status class.
    pub fn status(&self, code: u16) {
        let m = match code {
            200..=299 => Metric::Status2xx,
            300..=399 => Metric::Status3xx,
            400..=499 => Metric::Status4xx,
            _ => Metric::Status5xx,
        };
        self.inc(m);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: self.values.iter().map(Cell::get).collect(),
        }
    }
}

/// A copy of one shard's counters that can cross threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: Vec<u64>,
}

/// Process-wide figures that are not per-shard counters.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub shards: usize,
    pub shards_answered: usize,
    pub ready: bool,
    pub draining: bool,
    pub version: &'static str,
}

/// Renders the Prometheus text exposition format (0.0.4): shard snapshots summed.
pub fn render_prometheus(snapshots: &[Snapshot], info: &ProcessInfo) -> String {
    let mut out = String::with_capacity(4096);
    let mut last_family = "";
    for (i, s) in SERIES.iter().enumerate() {
        let total: u64 = snapshots
            .iter()
            .map(|snap| snap.values.get(i).copied().unwrap_or(0))
            .sum();
        if s.family != last_family {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", s.family, s.help);
            let _ = writeln!(out, "# TYPE {} {}", s.family, kind);
            last_family = s.family;
        }
        if s.labels.is_empty() {
            let _ = writeln!(out, "{} {}", s.family, total);
        } else {
            let _ = writeln!(out, "{}{{{}}} {}", s.family, s.labels, total);
        }
    }
    let gauges = [
        ("edge_shards", "Shards configured.", info.shards as u64),
        (
            "edge_shards_answered",
            "Shards that answered this scrape in time.",
            info.shards_answered as u64,
        ),
        (
            "edge_ready",
            "1 when every shard is serving and the node is not draining.",
            u64::from(info.ready),
        ),
        (
            "edge_draining",
            "1 while the node drains before exit.",
            u64::from(info.draining),
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP edge_build_info Build of the running binary.\n# TYPE edge_build_info gauge\nedge_build_info{{version=\"{}\"}} 1",
        info.version
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_contiguous() {
        // The renderer prints HELP/TYPE once per family, so series of one family must be adjacent.
        let mut seen: Vec<&str> = Vec::new();
        for s in SERIES {
            if seen.last() != Some(&s.family) {
                assert!(!seen.contains(&s.family), "family {} split", s.family);
                seen.push(s.family);
            }
        }
    }

    #[test]
    fn snapshots_are_summed() {
        let a = ShardMetrics::default();
        let b = ShardMetrics::default();
        a.inc(Metric::ReqCover);
        a.inc(Metric::ReqCover);
        b.inc(Metric::ReqCover);
        b.add(Metric::ReqApp, 5);
        b.inc(Metric::ConnActive);
        b.dec(Metric::ConnActive);
        b.dec(Metric::ConnActive);
        let text = render_prometheus(
            &[a.snapshot(), b.snapshot()],
            &ProcessInfo {
                shards: 2,
                shards_answered: 2,
                ready: true,
                draining: false,
                version: "t",
            },
        );
        assert!(text.contains("edge_front_requests_total{class=\"cover\"} 3\n"));
        assert!(text.contains("edge_front_requests_total{class=\"app\"} 5\n"));
        assert!(text.contains("edge_front_connections_active 0\n"));
        assert!(text.contains("edge_ready 1\n"));
        assert_eq!(
            text.matches("# TYPE edge_front_requests_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn status_classes() {
        let m = ShardMetrics::default();
        for code in [200, 204, 304, 404, 405, 503] {
            m.status(code);
        }
        assert_eq!(m.get(Metric::Status2xx), 2);
        assert_eq!(m.get(Metric::Status3xx), 1);
        assert_eq!(m.get(Metric::Status4xx), 2);
        assert_eq!(m.get(Metric::Status5xx), 1);
    }
}
