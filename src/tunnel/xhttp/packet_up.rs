//! The packet-up uplink as a sans-IO core: bytes written by the tunnel go in, numbered POST
//! bodies come out (TUNNEL.md §3 "packet-up"). Each body holds at most
//! `max_each_post_bytes` (the server refuses larger ones with 413), POSTs are numbered
//! 0, 1, 2… in the order they are taken, and two POSTs start at least `min_posts_interval`
//! apart (Xray's `scMinPostsIntervalMs`: spacing lets small writes batch into one POST
//! instead of a request each). The caller passes the time in; there is no clock here.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// Xray's default `scMaxEachPostBytes`.
pub const DEFAULT_MAX_EACH_POST_BYTES: usize = 1_000_000;
/// Xray's default `scMinPostsIntervalMs`.
pub const DEFAULT_MIN_POSTS_INTERVAL: Duration = Duration::from_millis(30);

/// The client's packet-up limits; they must not exceed the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketUpLimits {
    /// Most bytes in one POST body (at least 1 is used).
    pub max_each_post_bytes: usize,
    /// Least time between the starts of two POSTs.
    pub min_posts_interval: Duration,
}

impl Default for PacketUpLimits {
    fn default() -> Self {
        PacketUpLimits {
            max_each_post_bytes: DEFAULT_MAX_EACH_POST_BYTES,
            min_posts_interval: DEFAULT_MIN_POSTS_INTERVAL,
        }
    }
}

/// One POST to send: `{path}{sid}/{seq}` with `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub seq: u64,
    pub body: Bytes,
}

/// The uplink between the tunnel's writes and the POSTs.
#[derive(Debug)]
pub struct PacketUplink {
    limits: PacketUpLimits,
    pending: BytesMut,
    next_seq: u64,
    last_post: Option<Instant>,
}

impl PacketUplink {
    pub fn new(limits: PacketUpLimits) -> Self {
        PacketUplink {
            limits: PacketUpLimits {
                max_each_post_bytes: limits.max_each_post_bytes.max(1),
                ..limits
            },
            pending: BytesMut::new(),
            next_seq: 0,
            last_post: None,
        }
    }

    /// Queues uplink bytes. Nothing limits the queue here: the driver stops taking writes
    /// while [`Self::wants_more`] is false, which bounds it to about one POST.
    pub fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// Bytes queued and not yet in a POST.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Whether the next POST still has room: a driver takes more writes only then.
    pub fn wants_more(&self) -> bool {
        self.pending.len() < self.limits.max_each_post_bytes
    }

    /// The sequence number the next POST will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The earliest time the next POST may start, or `None` if it may start at once. Says
    /// nothing about whether there is anything to send.
    pub fn not_before(&self) -> Option<Instant> {
        self.last_post.map(|at| at + self.limits.min_posts_interval)
    }

    /// The next POST, if bytes are queued and `now` is not before [`Self::not_before`]:
    /// at most `max_each_post_bytes` of the oldest queued bytes, with the next sequence
    /// number. `now` becomes the start of the last POST.
    pub fn poll_post(&mut self, now: Instant) -> Option<Post> {
        if self.pending.is_empty() || self.not_before().is_some_and(|t| now < t) {
            return None;
        }
        let take = self.pending.len().min(self.limits.max_each_post_bytes);
        let body = self.pending.split_to(take).freeze();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.last_post = Some(now);
        Some(Post { seq, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, ms: u64) -> PacketUpLimits {
        PacketUpLimits {
            max_each_post_bytes: max,
            min_posts_interval: Duration::from_millis(ms),
        }
    }

    #[test]
    fn defaults_are_xrays() {
        let d = PacketUpLimits::default();
        assert_eq!(d.max_each_post_bytes, 1_000_000);
        assert_eq!(d.min_posts_interval, Duration::from_millis(30));
    }

    #[test]
    fn nothing_queued_means_no_post() {
        let mut up = PacketUplink::new(PacketUpLimits::default());
        assert_eq!(up.poll_post(Instant::now()), None);
        assert_eq!(up.next_seq(), 0);
        assert_eq!(up.not_before(), None);
    }

    #[test]
    fn chunks_at_the_limit_and_numbers_in_order() {
        let t0 = Instant::now();
        let mut up = PacketUplink::new(limits(10, 0));
        let data: Vec<u8> = (0..25).collect();
        up.push(&data);
        assert!(!up.wants_more());
        let mut got = Vec::new();
        while let Some(post) = up.poll_post(t0) {
            got.push(post);
        }
        assert_eq!(
            got.iter()
                .map(|p| (p.seq, p.body.len()))
                .collect::<Vec<_>>(),
            vec![(0, 10), (1, 10), (2, 5)]
        );
        let joined: Vec<u8> = got.iter().flat_map(|p| p.body.iter().copied()).collect();
        assert_eq!(joined, data);
        assert_eq!(up.buffered(), 0);
        assert!(up.wants_more());
    }

    #[test]
    fn exact_boundaries() {
        let t0 = Instant::now();
        let mut up = PacketUplink::new(limits(4, 0));
        up.push(b"abc");
        assert!(up.wants_more(), "3 of 4 bytes: room left");
        up.push(b"d");
        assert!(!up.wants_more(), "exactly full");
        assert_eq!(up.poll_post(t0).unwrap().body, Bytes::from_static(b"abcd"));
        up.push(b"efghi");
        assert_eq!(up.poll_post(t0).unwrap().body, Bytes::from_static(b"efgh"));
        let last = up.poll_post(t0).unwrap();
        assert_eq!((last.seq, last.body), (2, Bytes::from_static(b"i")));
        assert_eq!(up.poll_post(t0), None);
    }

    #[test]
    fn small_writes_batch_into_one_post() {
        let t0 = Instant::now();
        let mut up = PacketUplink::new(PacketUpLimits::default());
        for piece in [&b"VLESS"[..], b" header", b" + payload"] {
            up.push(piece);
        }
        let post = up.poll_post(t0).unwrap();
        assert_eq!(post.seq, 0);
        assert_eq!(post.body, Bytes::from_static(b"VLESS header + payload"));
    }

    #[test]
    fn a_zero_limit_still_makes_progress() {
        let mut up = PacketUplink::new(limits(0, 0));
        up.push(b"ab");
        let t0 = Instant::now();
        assert_eq!(up.poll_post(t0).unwrap().body.len(), 1);
        assert_eq!(up.poll_post(t0).unwrap().body.len(), 1);
    }

    #[test]
    fn the_interval_is_honoured_with_injected_times() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut up = PacketUplink::new(limits(1_000_000, 30));
        up.push(b"first");
        // The first POST never waits.
        assert_eq!(up.poll_post(t0).map(|p| p.seq), Some(0));
        assert_eq!(up.not_before(), Some(t0 + ms(30)));

        up.push(b"second");
        assert_eq!(up.poll_post(t0), None);
        assert_eq!(up.poll_post(t0 + ms(29)), None);
        assert_eq!(up.buffered(), 6, "held back, not lost");
        let second = up.poll_post(t0 + ms(30)).unwrap();
        assert_eq!((second.seq, &second.body[..]), (1, &b"second"[..]));

        // Measured from the start of the last POST, not from when data arrived.
        up.push(b"third");
        assert_eq!(up.poll_post(t0 + ms(59)), None);
        assert_eq!(up.poll_post(t0 + ms(100)).map(|p| p.seq), Some(2));
        assert_eq!(up.not_before(), Some(t0 + ms(130)));
    }

    #[test]
    fn waiting_for_the_interval_lets_more_bytes_join_the_post() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut up = PacketUplink::new(limits(100, 30));
        up.push(b"a");
        let _ = up.poll_post(t0).unwrap();
        up.push(b"b");
        assert_eq!(up.poll_post(t0 + ms(10)), None);
        up.push(b"c");
        assert_eq!(
            up.poll_post(t0 + ms(31)).unwrap().body,
            Bytes::from_static(b"bc")
        );
    }
}
