//! The `sfu` job's report: a table for humans, JSON for benchmark scripts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::Stats;
use crate::report::{per_second, Table};

/// Facts about the run that are not counts.
#[derive(Debug, Clone)]
pub struct Run {
    pub url: String,
    pub rooms: usize,
    pub participants_per_room: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub video_kbps: u32,
    pub edge_cpu_pct: Option<f64>,
    pub edge_rss_mib: Option<f64>,
    pub loadgen_cpu_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub rooms: usize,
    /// All participants (rooms × per room).
    pub participants: usize,
    pub participants_per_room: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub video_kbps: u32,
    /// Participants whose media connected (ICE + DTLS).
    pub joined: u64,
    /// Why the others did not: reason → count (`http 404`: token refused…).
    pub join_failures: BTreeMap<String, u64>,
    /// Server close / `error` codes seen: code → count.
    pub close_codes: BTreeMap<String, u64>,
    /// RTP packets per second the SFU received (sent by all participants).
    pub pps_in: f64,
    /// RTP packets per second all participants received.
    pub pps_out: f64,
    /// `pps_out / pps_in`; P − 1 for full rooms with nothing lost.
    pub fanout: f64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub frames_expected: u64,
    pub frames_lost: u64,
    /// Lost frames as a percentage of expected ones (sender sequence gaps).
    pub loss_pct: f64,
    pub decrypt_failures: u64,
    pub frames_without_key: u64,
    pub frames_broken: u64,
    pub renegotiations: u64,
    pub key_messages: u64,
    pub chat_messages: u64,
    /// One-way forwarding latency (send → receive, same host clock).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub edge_cpu_pct: Option<f64>,
    pub edge_rss_mib: Option<f64>,
    pub loadgen_cpu_pct: f64,
    pub first_error: Option<String>,
}

impl Report {
    pub fn new(run: Run, s: Stats) -> Self {
        let pps_in = per_second(s.packets_sent, run.duration_s);
        let pps_out = per_second(s.packets_received, run.duration_s);
        Self {
            url: run.url,
            rooms: run.rooms,
            participants: run.rooms * run.participants_per_room,
            participants_per_room: run.participants_per_room,
            duration_s: run.duration_s,
            warmup_s: run.warmup_s,
            video_kbps: run.video_kbps,
            joined: s.joined,
            join_failures: s.join_failures.clone(),
            close_codes: s
                .close_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            pps_in,
            pps_out,
            fanout: if pps_in > 0.0 { pps_out / pps_in } else { 0.0 },
            frames_sent: s.frames_sent,
            frames_received: s.frames_received,
            frames_expected: s.frames_expected,
            frames_lost: s.frames_lost,
            loss_pct: s.loss_pct(),
            decrypt_failures: s.decrypt_failures,
            frames_without_key: s.frames_without_key,
            frames_broken: s.frames_broken,
            renegotiations: s.renegotiations,
            key_messages: s.key_messages,
            chat_messages: s.chat_messages,
            p50_ms: s.latency.quantile_ms(0.5),
            p99_ms: s.latency.quantile_ms(0.99),
            max_ms: s.latency.max_ms(),
            edge_cpu_pct: run.edge_cpu_pct,
            edge_rss_mib: run.edge_rss_mib,
            loadgen_cpu_pct: run.loadgen_cpu_pct,
            first_error: s.first_error,
        }
    }

    /// Whether anything was received at all (the exit status keys on it).
    pub fn received_anything(&self) -> bool {
        self.frames_received > 0
    }

    pub fn table(&self) -> String {
        let job = if self.url.starts_with("udp://") {
            "udp-fanout --drive"
        } else {
            "sfu"
        };
        let mut t = Table::new(format!("loadgen {job} {}", self.url));
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        t.row("rooms", self.rooms)
            .row(
                "participants",
                format!(
                    "{} ({} per room)",
                    self.participants, self.participants_per_room
                ),
            )
            .row("joined", self.joined)
            .row("join failures", map_text(&self.join_failures))
            .row("close codes", map_text(&self.close_codes))
            .row(
                "duration",
                format!("{:.1} s (+{:.1} s warm-up)", self.duration_s, self.warmup_s),
            )
            .row("pps in (sent)", format!("{:.0}", self.pps_in))
            .row("pps out (received)", format!("{:.0}", self.pps_out))
            .row("fanout", format!("{:.2}", self.fanout))
            .row(
                "frames sent / received",
                format!("{} / {}", self.frames_sent, self.frames_received),
            )
            .row(
                "loss",
                format!(
                    "{:.3} % ({} of {})",
                    self.loss_pct, self.frames_lost, self.frames_expected
                ),
            )
            .row("decrypt failures", self.decrypt_failures)
            .row("frames without key", self.frames_without_key)
            .row("frames broken", self.frames_broken)
            .row("renegotiations", self.renegotiations)
            .row(
                "latency p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} ms",
                    self.p50_ms, self.p99_ms, self.max_ms
                ),
            )
            .row("edge cpu", format!("{} %", opt(self.edge_cpu_pct)))
            .row("edge rss", format!("{} MiB", opt(self.edge_rss_mib)))
            .row("loadgen cpu", format!("{:.1} %", self.loadgen_cpu_pct));
        if let Some(e) = &self.first_error {
            t.row("first error", e);
        }
        t.to_string()
    }
}

fn map_text<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_rates_and_json_fields() {
        let mut s = Stats {
            packets_sent: 1000,
            packets_received: 5000,
            ..Stats::default()
        };
        s.join_failures.insert("http 404".into(), 2);
        s.close_codes.insert(4004, 1);
        let r = Report::new(
            Run {
                url: "wss://h".into(),
                rooms: 2,
                participants_per_room: 6,
                duration_s: 10.0,
                warmup_s: 3.0,
                video_kbps: 1000,
                edge_cpu_pct: None,
                edge_rss_mib: Some(12.5),
                loadgen_cpu_pct: 50.0,
            },
            s,
        );
        assert_eq!(r.pps_in, 100.0);
        assert_eq!(r.pps_out, 500.0);
        assert_eq!(r.fanout, 5.0);
        assert!(!r.received_anything());
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "rooms",
            "participants",
            "pps_in",
            "pps_out",
            "loss_pct",
            "decrypt_failures",
            "p50_ms",
            "p99_ms",
            "edge_cpu_pct",
            "edge_rss_mib",
            "join_failures",
            "close_codes",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert!(v["edge_cpu_pct"].is_null());
        assert_eq!(v["close_codes"]["4004"], 1);
        assert_eq!(v["participants"], 12);
        assert!(r.table().contains("http 404: 2"));
    }
}
