//! The packet-up reorder buffer (sans-IO).
//!
//! A packet-up client sends its uplink as POSTs numbered 0, 1, 2… several at
//! a time (Xray 24.11.21 keeps up to 100 in flight), so they may arrive in
//! any order. This buffer takes `(seq, bytes)` as they come and hands the
//! bytes back strictly in `seq` order.
//!
//! Memory is bounded: each post at most `max_post_bytes`, at most
//! `max_posts` posts held, and none `max_posts` or more past the first
//! missing one. The window is what keeps the buffer from deadlocking: while
//! the post the reader waits for is missing, every held post lies after it
//! and inside the window, so at most `max_posts - 1` are held and the
//! awaited post always fits.
//!
//! [`ReorderError::Full`] and [`ReorderError::TooFarAhead`] say "not now":
//! the caller may wait for the reader to make room and try again (the
//! driver does: it is Xray's backpressure, a POST answered only once its
//! bytes are taken). The others say "never".

use std::collections::BTreeMap;

use bytes::Bytes;

/// Xray's `scMaxEachPostBytes` default.
pub const DEFAULT_MAX_POST_BYTES: usize = 1_000_000;
/// Xray's `scMaxBufferedPosts` default.
pub const DEFAULT_MAX_POSTS: usize = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReorderError {
    #[error("post {seq} carries {len} bytes, more than the {max} allowed per post")]
    TooLarge { seq: u64, len: usize, max: usize },
    #[error("post {seq} was already received")]
    Duplicate { seq: u64 },
    #[error("post {seq} is too far ahead: post {missing} is still missing and at most {window} may be held")]
    TooFarAhead {
        seq: u64,
        missing: u64,
        window: usize,
    },
    #[error("post {seq} must wait: {held} posts are held, the reader has not taken them yet")]
    Full { seq: u64, held: usize },
}

impl ReorderError {
    /// `true` when the same post may be accepted once the reader made room.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ReorderError::Full { .. } | ReorderError::TooFarAhead { .. }
        )
    }
}

#[derive(Debug)]
pub struct ReorderBuffer {
    /// The seq of the next post to hand out.
    next: u64,
    held: BTreeMap<u64, Bytes>,
    max_posts: usize,
    max_post_bytes: usize,
}

impl ReorderBuffer {
    /// `max_posts` is at least 1.
    pub fn new(max_posts: usize, max_post_bytes: usize) -> Self {
        ReorderBuffer {
            next: 0,
            held: BTreeMap::new(),
            max_posts: max_posts.max(1),
            max_post_bytes,
        }
    }

    /// Takes post `seq`. On error the buffer is unchanged.
    pub fn push(&mut self, seq: u64, data: Bytes) -> Result<(), ReorderError> {
        if data.len() > self.max_post_bytes {
            return Err(ReorderError::TooLarge {
                seq,
                len: data.len(),
                max: self.max_post_bytes,
            });
        }
        if seq < self.next || self.held.contains_key(&seq) {
            return Err(ReorderError::Duplicate { seq });
        }
        let missing = self.first_missing();
        let window = self.max_posts as u64;
        if seq.saturating_sub(missing) >= window {
            return Err(ReorderError::TooFarAhead {
                seq,
                missing,
                window: self.max_posts,
            });
        }
        // Never refuses the awaited post: the window above leaves room for it.
        if self.held.len() >= self.max_posts {
            return Err(ReorderError::Full {
                seq,
                held: self.held.len(),
            });
        }
        self.held.insert(seq, data);
        Ok(())
    }

    /// The next post's bytes in order, if it has arrived. Posts may be empty.
    pub fn pop(&mut self) -> Option<Bytes> {
        let data = self.held.remove(&self.next)?;
        self.next += 1;
        Some(data)
    }

    /// Whether [`pop`](Self::pop) would return something.
    pub fn ready(&self) -> bool {
        self.held.contains_key(&self.next)
    }

    /// Posts held (arrived, not handed out).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The largest post accepted.
    pub fn max_post_bytes(&self) -> usize {
        self.max_post_bytes
    }

    /// The seq of the next post to hand out.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The lowest seq not received yet.
    fn first_missing(&self) -> u64 {
        let mut missing = self.next;
        for &seq in self.held.range(self.next..).map(|(s, _)| s) {
            if seq != missing {
                break;
            }
            missing += 1;
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn drain(buf: &mut ReorderBuffer) -> String {
        let mut out = String::new();
        while let Some(d) = buf.pop() {
            out.push_str(std::str::from_utf8(&d).unwrap());
        }
        out
    }

    #[test]
    fn in_order_posts_come_out_in_order() {
        let mut buf = ReorderBuffer::new(4, 100);
        buf.push(0, b("a")).unwrap();
        buf.push(1, b("b")).unwrap();
        assert_eq!(drain(&mut buf), "ab");
        buf.push(2, b("c")).unwrap();
        assert_eq!(drain(&mut buf), "c");
        assert_eq!(buf.next_seq(), 3);
    }

    #[test]
    fn out_of_order_posts_wait_for_the_gap() {
        let mut buf = ReorderBuffer::new(4, 100);
        buf.push(2, b("c")).unwrap();
        buf.push(1, b("b")).unwrap();
        assert!(!buf.ready());
        assert_eq!(buf.pop(), None);
        buf.push(0, b("a")).unwrap();
        assert_eq!(drain(&mut buf), "abc");
        assert_eq!(buf.held(), 0);
    }

    #[test]
    fn empty_posts_count_as_posts() {
        let mut buf = ReorderBuffer::new(4, 100);
        buf.push(1, b("x")).unwrap();
        buf.push(0, Bytes::new()).unwrap();
        assert_eq!(buf.pop(), Some(Bytes::new()));
        assert_eq!(buf.pop(), Some(b("x")));
    }

    #[test]
    fn duplicates_are_rejected_old_and_held() {
        let mut buf = ReorderBuffer::new(4, 100);
        buf.push(0, b("a")).unwrap();
        buf.push(2, b("c")).unwrap();
        assert_eq!(buf.push(2, b("C")), Err(ReorderError::Duplicate { seq: 2 }));
        buf.pop();
        assert_eq!(buf.push(0, b("A")), Err(ReorderError::Duplicate { seq: 0 }));
        buf.push(1, b("b")).unwrap();
        assert_eq!(drain(&mut buf), "bc");
    }

    #[test]
    fn a_post_larger_than_the_limit_is_rejected() {
        let mut buf = ReorderBuffer::new(4, 3);
        buf.push(0, b("abc")).unwrap();
        let err = buf.push(1, b("abcd")).unwrap_err();
        assert_eq!(
            err,
            ReorderError::TooLarge {
                seq: 1,
                len: 4,
                max: 3
            }
        );
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("4 bytes"), "{err}");
    }

    #[test]
    fn too_far_ahead_is_measured_from_the_first_missing_post() {
        let mut buf = ReorderBuffer::new(3, 100);
        let err = buf.push(3, b("d")).unwrap_err();
        assert_eq!(
            err,
            ReorderError::TooFarAhead {
                seq: 3,
                missing: 0,
                window: 3
            }
        );
        assert!(err.is_retryable());
        buf.push(2, b("c")).unwrap();
        buf.push(0, b("a")).unwrap();
        // 0 arrived, 1 is missing: the window now reaches 3.
        buf.push(3, b("d")).unwrap();
        assert!(matches!(
            buf.push(4, b("e")),
            Err(ReorderError::TooFarAhead { missing: 1, .. })
        ));
        assert!(matches!(
            buf.push(u64::MAX, b("z")),
            Err(ReorderError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn a_full_buffer_pushes_back_until_the_reader_takes_a_post() {
        // Three in-order posts, none taken yet: full.
        let mut buf = ReorderBuffer::new(3, 100);
        for (i, s) in ["a", "b", "c"].into_iter().enumerate() {
            buf.push(i as u64, b(s)).unwrap();
        }
        let err = buf.push(3, b("d")).unwrap_err();
        assert_eq!(err, ReorderError::Full { seq: 3, held: 3 });
        assert!(err.is_retryable());
        assert_eq!(buf.pop(), Some(b("a")));
        buf.push(3, b("d")).unwrap();
        assert_eq!(drain(&mut buf), "bcd");
    }

    #[test]
    fn the_awaited_post_always_fits() {
        // Window 3 with 0 missing: 1 and 2 are all that can be held.
        let mut buf = ReorderBuffer::new(3, 100);
        buf.push(2, b("c")).unwrap();
        buf.push(1, b("b")).unwrap();
        assert!(buf.push(3, b("d")).is_err());
        buf.push(0, b("a")).unwrap();
        assert_eq!(buf.held(), 3);
        assert_eq!(drain(&mut buf), "abc");
    }

    #[test]
    fn any_arrival_order_within_the_window_yields_the_stream() {
        // Every permutation of 5 posts, window 5: bytes come out in order.
        let posts: Vec<String> = (0..5).map(|i| format!("<{i}>")).collect();
        let want: String = posts.concat();
        let mut order: Vec<usize> = (0..5).collect();
        let mut count = 0;
        permute(&mut order, 0, &mut |perm| {
            let mut buf = ReorderBuffer::new(5, 100);
            let mut got = String::new();
            for &i in perm {
                buf.push(i as u64, b(&posts[i])).unwrap();
                got.push_str(&drain(&mut buf));
            }
            assert_eq!(got, want, "{perm:?}");
            count += 1;
        });
        assert_eq!(count, 120);
    }

    fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == v.len() {
            return f(v);
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(v, k + 1, f);
            v.swap(k, i);
        }
    }
}
