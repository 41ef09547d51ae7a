//! One participant: a signalling WebSocket, a UDP socket on `--media-ip`
//! and one str0m `Rtc` (the offering side), driven by one tokio task.
//!
//! The `Rtc` runs in **RTP mode**: we write RTP payloads ourselves
//! (`StreamTx::write_rtp`) and get every received packet back untouched
//! (`Event::RtpPacket`). In frame mode str0m's packetizers would cut and
//! re-frame our bytes by codec rules (SFU.md §2: the H.264 one looks for
//! start codes in the ciphertext); RTP mode guarantees the SFrame bytes we
//! measure are exactly the ones the edge forwarded, and lets us shape the
//! packets like a browser would (see [`frame`](super::frame)).
//!
//! str0m's contract (SFU.md §2): after every mutation (input, RTP write,
//! channel write, SDP change) drain `poll_output` to its `Timeout`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use oxpulse_edge::sfu::signal::{ClientMsg, Kind, ServerMsg};
use rustls::ClientConfig;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::crypto::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use super::media::{
    MediaReceiver, MediaSender, Shape, AUDIO_CLOCK, AUDIO_FPS, VIDEO_CLOCK, VIDEO_FPS,
};
use super::stats::Stats;
use super::ws;

/// How long a participant may take from start to connected media.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Key re-announcement period (covers peers that joined after us).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
const PING_EVERY: Duration = Duration::from_secs(10);
/// A pacing deadline this far behind is skipped rather than caught up in a
/// burst (the task was starved; a real encoder drops frames too).
const MAX_LAG: Duration = Duration::from_millis(200);

/// Everything one participant needs.
pub struct Params {
    /// Global participant index: the SFrame KID and the plaintext sender id.
    pub index: u32,
    pub peer: String,
    pub url: String,
    pub jwt: String,
    pub tls: Option<Arc<ClientConfig>>,
    /// Dial this instead of the URL's host (`--connect-to`).
    pub connect_to: Option<std::net::SocketAddr>,
    pub media_ip: IpAddr,
    pub shape: Shape,
    pub crypto: Arc<CryptoProvider>,
    /// The run's shared clock origin for send timestamps.
    pub epoch: Instant,
    /// When to open the WebSocket (participants are staggered).
    pub start_at: Instant,
    /// The measured window; sending stops at its end.
    pub window: (Instant, Instant),
    /// When to leave (the window's end plus a grace period for packets in flight).
    pub leave_at: Instant,
}

/// Runs one participant to `leave_at` and returns what it counted.
pub async fn run(p: Params) -> Stats {
    let mut stats = Stats::default();
    tokio::time::sleep_until(p.start_at.into()).await;
    let conn = tokio::time::timeout(
        JOIN_TIMEOUT,
        ws::connect(&p.url, &p.jwt, p.tls.as_ref(), p.connect_to),
    )
    .await;
    let ws = match conn {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let label = ws::failure_label(&e);
            stats.error(format!("{}: {e:#}", p.peer));
            *stats.join_failures.entry(label).or_default() += 1;
            return stats;
        }
        Err(_) => {
            *stats
                .join_failures
                .entry("connect timeout".into())
                .or_default() += 1;
            return stats;
        }
    };
    let mut me = match Participant::new(&p, ws).await {
        Ok(me) => me,
        Err(e) => {
            stats.error(format!("{}: {e:#}", p.peer));
            *stats
                .join_failures
                .entry("local set-up".into())
                .or_default() += 1;
            return stats;
        }
    };
    if let Err(e) = me.run(&p).await {
        me.stats.error(format!("{}: {e:#}", p.peer));
    }
    me.finish().await
}

/// A sending stream once negotiated.
#[derive(Clone, Copy)]
struct Tx {
    ssrc: Ssrc,
    pt: Pt,
    seq: u64,
}

struct Participant {
    ws: ws::Ws,
    socket: UdpSocket,
    local: SocketAddr,
    rtc: Rtc,
    stats: Stats,
    sender: MediaSender,
    receiver: MediaReceiver,
    audio_mid: Mid,
    video_mid: Option<Mid>,
    keys_ch: ChannelId,
    chat_ch: ChannelId,
    keys_open: bool,
    /// Our offer until the server's answer arrives.
    pending: Option<SdpPendingOffer>,
    answered: bool,
    connected: bool,
    audio_tx: Option<Tx>,
    video_tx: Option<Tx>,
    audio_frames: u32,
    video_frames: u32,
    key_frame_due: bool,
    next_audio: Instant,
    next_video: Instant,
    next_announce: Instant,
    next_ping: Instant,
    rtc_timeout: Instant,
    /// Incoming SSRC → kind of the m-line it arrived on.
    kinds: HashMap<Ssrc, Option<Kind>>,
    /// The server's `tracks` map (mid → kind), a fallback for `kinds`.
    tracks: HashMap<String, Kind>,
    /// Set when the session is over (server closed, media closed).
    done: bool,
    buf: Vec<u8>,
}

impl Participant {
    async fn new(p: &Params, ws: ws::Ws) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind((p.media_ip, 0))
            .await
            .with_context(|| format!("binding UDP on {}", p.media_ip))?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_rtp_mode(true)
            .set_crypto_provider(Arc::clone(&p.crypto))
            .build(now);
        let candidate = Candidate::host(local, "udp").context("host candidate")?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let stream_id = Some(p.peer.clone());
        let audio_mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            stream_id.clone(),
            None,
            None,
        );
        let video_mid = p
            .shape
            .video_enabled()
            .then(|| api.add_media(MediaKind::Video, Direction::SendOnly, stream_id, None, None));
        let keys_ch = api.add_channel("sframe-keys".into());
        let chat_ch = api.add_channel("chat".into());
        let (offer, pending) = api.apply().context("str0m produced no offer")?;
        let mut me = Self {
            ws,
            socket,
            local,
            rtc,
            stats: Stats::default(),
            sender: MediaSender::new(p.index, p.shape)?,
            receiver: MediaReceiver::new(p.epoch, p.window),
            audio_mid,
            video_mid,
            keys_ch,
            chat_ch,
            keys_open: false,
            pending: Some(pending),
            answered: false,
            connected: false,
            audio_tx: None,
            video_tx: None,
            audio_frames: 0,
            video_frames: 0,
            key_frame_due: true,
            next_audio: now,
            next_video: now,
            next_announce: now,
            next_ping: now + PING_EVERY,
            rtc_timeout: now,
            kinds: HashMap::new(),
            tracks: HashMap::new(),
            done: false,
            buf: vec![0; 2048],
        };
        me.send(&ClientMsg::Offer {
            sdp: offer.to_sdp_string(),
        })
        .await?;
        Ok(me)
    }

    async fn send(&mut self, msg: &ClientMsg) -> anyhow::Result<()> {
        let text = serde_json::to_string(msg).context("rendering a client message")?;
        self.ws
            .send(Message::text(text))
            .await
            .context("WebSocket send")
    }

    async fn run(&mut self, p: &Params) -> anyhow::Result<()> {
        let join_deadline = p.start_at + JOIN_TIMEOUT;
        self.drain().await?;
        while !self.done {
            let now = Instant::now();
            if now >= p.leave_at {
                break;
            }
            if !self.connected && now >= join_deadline {
                let why = if self.answered {
                    "ice/dtls not connected"
                } else {
                    "no answer"
                };
                *self.stats.join_failures.entry(why.into()).or_default() += 1;
                return Ok(());
            }
            let wake = self.next_wake(p).min(p.leave_at).max(now);
            tokio::select! {
                msg = self.ws.next() => self.on_ws(msg).await?,
                got = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = got.context("UDP receive")?;
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents: self.buf[..n].try_into().context("datagram")?,
                        },
                    );
                    // A datagram str0m cannot place (stray STUN) is not fatal.
                    if self.rtc.accepts(&input) {
                        self.rtc.handle_input(input).context("str0m input")?;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.drain().await?;
            self.tick(p).await?;
        }
        Ok(())
    }

    fn next_wake(&self, p: &Params) -> Instant {
        let mut wake = self.rtc_timeout.min(self.next_ping);
        if self.keys_open {
            wake = wake.min(self.next_announce);
        }
        if self.sending(p, Instant::now()) {
            wake = wake.min(self.next_audio);
            if self.video_tx.is_some() {
                wake = wake.min(self.next_video);
            }
        }
        wake
    }

    fn sending(&self, p: &Params, now: Instant) -> bool {
        self.connected && self.audio_tx.is_some() && now < p.window.1
    }

    /// Timers: str0m's timeout, media pacing, key announcements, pings.
    async fn tick(&mut self, p: &Params) -> anyhow::Result<()> {
        let now = Instant::now();
        if now >= self.rtc_timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .context("str0m timeout")?;
            self.drain().await?;
        }
        if self.sending(p, now) {
            if now >= self.next_audio {
                self.send_audio(p, now).await?;
                self.next_audio = pace(self.next_audio, now, Duration::from_secs(1) / AUDIO_FPS);
            }
            if self.video_tx.is_some() && now >= self.next_video {
                self.send_video(p, now).await?;
                self.next_video = pace(self.next_video, now, Duration::from_secs(1) / VIDEO_FPS);
            }
        }
        if self.keys_open && now >= self.next_announce {
            let msg = self.sender.announcement().to_json();
            if let Some(mut ch) = self.rtc.channel(self.keys_ch) {
                // Ok(false): the SCTP buffer is full; the next round retries.
                let _ = ch.write(false, msg.as_bytes());
            }
            self.next_announce = now + ANNOUNCE_EVERY;
            self.drain().await?;
        }
        if now >= self.next_ping {
            self.send(&ClientMsg::Ping).await?;
            self.next_ping = now + PING_EVERY;
        }
        Ok(())
    }

    fn in_window(p: &Params, now: Instant) -> bool {
        now >= p.window.0 && now < p.window.1
    }

    async fn send_audio(&mut self, p: &Params, now: Instant) -> anyhow::Result<()> {
        let send_ns = nanos_since(p.epoch, now);
        let payload = self.sender.audio(send_ns)?;
        let rtp_time = self.audio_frames.wrapping_mul(AUDIO_CLOCK / AUDIO_FPS);
        self.audio_frames = self.audio_frames.wrapping_add(1);
        let Some(tx) = self.audio_tx.as_mut() else {
            return Ok(());
        };
        write_rtp(&mut self.rtc, tx, rtp_time, now, false, false, payload);
        if Self::in_window(p, now) {
            self.stats.packets_sent += 1;
            self.stats.frames_sent += 1;
        }
        self.drain().await
    }

    async fn send_video(&mut self, p: &Params, now: Instant) -> anyhow::Result<()> {
        let send_ns = nanos_since(p.epoch, now);
        let key = std::mem::take(&mut self.key_frame_due);
        let payloads = self.sender.video(send_ns, key)?;
        let rtp_time = self.video_frames.wrapping_mul(VIDEO_CLOCK / VIDEO_FPS);
        self.video_frames = self.video_frames.wrapping_add(1);
        let n = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            let Some(tx) = self.video_tx.as_mut() else {
                return Ok(());
            };
            write_rtp(&mut self.rtc, tx, rtp_time, now, i + 1 == n, true, payload);
            self.drain().await?;
        }
        if Self::in_window(p, now) {
            self.stats.packets_sent += n as u64;
            self.stats.frames_sent += 1;
        }
        Ok(())
    }

    /// Drains str0m's output: transmits go out, events are handled.
    async fn drain(&mut self) -> anyhow::Result<()> {
        loop {
            match self.rtc.poll_output().context("str0m poll")? {
                Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    // A failed send is a lost packet, as on a real network.
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected if !self.connected => {
                self.connected = true;
                self.stats.joined += 1;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.stats.error("ICE disconnected");
                self.done = true;
            }
            Event::Closed => self.done = true,
            Event::ChannelOpen(id, _) => {
                if id == self.keys_ch {
                    self.keys_open = true;
                    self.next_announce = Instant::now();
                } else if id == self.chat_ch {
                    if let Some(mut ch) = self.rtc.channel(id) {
                        let _ = ch.write(false, b"hello from loadgen");
                    }
                }
            }
            Event::ChannelData(d) => {
                if d.id == self.keys_ch {
                    if self.receiver.learn_key(&d.data) {
                        self.stats.key_messages += 1;
                    }
                } else if d.id == self.chat_ch {
                    self.stats.chat_messages += 1;
                }
            }
            Event::KeyframeRequest(r) if Some(r.mid) == self.video_mid => {
                self.key_frame_due = true;
            }
            Event::RtpPacket(pkt) => {
                let ssrc = pkt.header.ssrc;
                let Some(kind) = self.kind_of(ssrc, pkt.header.ext_vals.mid) else {
                    return;
                };
                self.receiver.packet(
                    &mut self.stats,
                    kind,
                    *ssrc,
                    *pkt.seq_no,
                    pkt.header.timestamp,
                    pkt.header.marker,
                    &pkt.payload,
                    pkt.timestamp,
                );
            }
            _ => {}
        }
    }

    /// The kind of the m-line an incoming SSRC belongs to, cached.
    fn kind_of(&mut self, ssrc: Ssrc, mid: Option<Mid>) -> Option<Kind> {
        if let Some(k) = self.kinds.get(&ssrc) {
            return *k;
        }
        let mid = self
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| s.mid())
            .or(mid)?;
        let kind = match self.rtc.media(mid).map(|m| m.kind()) {
            Some(MediaKind::Audio) => Some(Kind::Audio),
            Some(MediaKind::Video) => Some(Kind::Video),
            None => self.tracks.get(&mid.to_string()).copied(),
        };
        self.kinds.insert(ssrc, kind);
        kind
    }

    async fn on_ws(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> anyhow::Result<()> {
        let msg = match msg {
            None => {
                self.done = true;
                return Ok(());
            }
            Some(Err(e)) => {
                self.done = true;
                self.stats.error(format!("WebSocket: {e}"));
                return Ok(());
            }
            Some(Ok(m)) => m,
        };
        match msg {
            Message::Text(text) => {
                let Ok(m) = serde_json::from_str::<ServerMsg>(text.as_str()) else {
                    self.stats
                        .error(format!("unreadable server message: {}", text.as_str()));
                    return Ok(());
                };
                self.on_server(m).await
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                *self.stats.close_codes.entry(code).or_default() += 1;
                if !self.answered {
                    *self
                        .stats
                        .join_failures
                        .entry(format!("closed {code} before answer"))
                        .or_default() += 1;
                }
                self.done = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_server(&mut self, m: ServerMsg) -> anyhow::Result<()> {
        match m {
            ServerMsg::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).context("server answer SDP")?;
                let pending = self.pending.take().context("answer without an offer")?;
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .context("accepting the answer")?;
                self.answered = true;
                self.audio_tx = self.tx_for(self.audio_mid, Codec::Opus);
                self.video_tx = self.video_mid.and_then(|mid| self.tx_for(mid, Codec::Vp8));
                if self.audio_tx.is_none() {
                    self.stats.error("the answer left no Opus send stream");
                }
                self.drain().await?;
            }
            ServerMsg::Offer { sdp } => {
                let offer = SdpOffer::from_sdp_string(&sdp).context("server offer SDP")?;
                let answer = self
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .context("accepting a server offer")?;
                self.stats.renegotiations += 1;
                // SSRCs that could not be placed before this offer may
                // belong to its new m-lines: look them up again.
                self.kinds.retain(|_, k| k.is_some());
                self.send(&ClientMsg::Answer {
                    sdp: answer.to_sdp_string(),
                })
                .await?;
                self.drain().await?;
            }
            ServerMsg::Tracks { tracks } => {
                self.tracks = tracks.into_iter().map(|t| (t.mid, t.kind)).collect();
            }
            ServerMsg::PeerJoined { .. } => self.next_announce = Instant::now(),
            ServerMsg::Error { code, .. } => {
                *self.stats.close_codes.entry(code).or_default() += 1;
            }
            ServerMsg::Joined { .. } | ServerMsg::PeerLeft { .. } | ServerMsg::Pong => {}
        }
        Ok(())
    }

    /// The send stream and payload type negotiated for `mid`.
    fn tx_for(&mut self, mid: Mid, codec: Codec) -> Option<Tx> {
        let remote = self.rtc.media(mid)?.remote_pts().to_vec();
        let pt = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
            .map(|p| p.pt())
            .or_else(|| remote.first().copied())?;
        let ssrc = self.rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        Some(Tx { ssrc, pt, seq: 0 })
    }

    /// Leaves: `leave`, a normal close, and str0m's goodbye (RTCP BYE).
    async fn finish(mut self) -> Stats {
        if !self.done {
            let _ = self.send(&ClientMsg::Leave).await;
            let _ = tokio::time::timeout(Duration::from_millis(500), self.ws.close(None)).await;
        } else if !self.connected && self.stats.join_failures.is_empty() {
            *self
                .stats
                .join_failures
                .entry("session ended before media".into())
                .or_default() += 1;
        }
        self.rtc.disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(100), self.drain()).await;
        self.stats
    }
}

/// The next pacing deadline: `interval` after the last one, or from now if
/// the task fell more than [`MAX_LAG`] behind.
pub(crate) fn pace(last: Instant, now: Instant, interval: Duration) -> Instant {
    let next = last + interval;
    if now.saturating_duration_since(next) > MAX_LAG {
        now + interval
    } else {
        next
    }
}

fn nanos_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

fn write_rtp(
    rtc: &mut Rtc,
    tx: &mut Tx,
    rtp_time: u32,
    now: Instant,
    marker: bool,
    nack: bool,
    payload: Vec<u8>,
) {
    let seq: SeqNo = tx.seq.into();
    tx.seq += 1;
    if let Some(stream) = rtc.direct_api().stream_tx(&tx.ssrc) {
        stream.write_rtp(
            RtpWrite::new(tx.pt, seq, rtp_time, now, payload)
                .marker(marker)
                .nackable(nack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_keeps_the_grid_unless_far_behind() {
        let t0 = Instant::now();
        let i = Duration::from_millis(20);
        assert_eq!(pace(t0, t0 + Duration::from_millis(5), i), t0 + i);
        assert_eq!(pace(t0, t0 + Duration::from_millis(100), i), t0 + i);
        let late = t0 + Duration::from_millis(500);
        assert_eq!(pace(t0, late, i), late + i);
    }
}
