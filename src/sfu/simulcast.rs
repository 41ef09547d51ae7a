//! Simulcast: which of a publisher's layers (q/h/f) each subscriber gets.
//!
//! A publisher's layers are "active" while their packets arrive. Each subscriber wants
//! a layer (default `f`, changed by `layer` messages); it gets the best fit: the highest
//! active layer not above the one it wants, else the lowest active one. A change of
//! layer takes effect only at a keyframe of the new layer, so the subscriber's decoder
//! never sees a delta frame that references a picture it never had.

use std::time::{Duration, Instant};

use super::signal::Rid;

/// A layer counts as active while a packet of it was seen this recently. Long enough to
/// ride over a few lost packets at low frame rates, short enough that a layer the
/// publisher's encoder dropped (bandwidth, CPU) is left within a couple of seconds.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

const ALL: [Rid; 3] = [Rid::Q, Rid::H, Rid::F];

fn index(rid: Rid) -> usize {
    match rid {
        Rid::Q => 0,
        Rid::H => 1,
        Rid::F => 2,
    }
}

/// When each layer of one published video track was last seen.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    seen: [Option<Instant>; 3],
}

impl Layers {
    pub fn saw(&mut self, rid: Rid, now: Instant) {
        self.seen[index(rid)] = Some(now);
    }

    pub fn is_active(&self, rid: Rid, now: Instant) -> bool {
        self.seen[index(rid)].is_some_and(|t| now.saturating_duration_since(t) < ACTIVE_WINDOW)
    }

    /// The layer a subscriber wanting `desired` should get now.
    pub fn best_fit(&self, desired: Rid, now: Instant) -> Option<Rid> {
        let active = ALL.into_iter().filter(|r| self.is_active(*r, now));
        best_fit(desired, active)
    }
}

/// Highest active layer ≤ `desired`, else the lowest active one.
pub fn best_fit(desired: Rid, active: impl Iterator<Item = Rid>) -> Option<Rid> {
    let mut lowest = None;
    let mut best = None;
    for rid in active {
        if lowest.is_none_or(|l| rid < l) {
            lowest = Some(rid);
        }
        if rid <= desired && best.is_none_or(|b| rid > b) {
            best = Some(rid);
        }
    }
    best.or(lowest)
}

/// What to do with one packet of a simulcast layer for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub forward: bool,
    /// The forwarded layer changed with this packet (rebase seq/timestamp).
    pub switched: bool,
    /// Ask the publisher for a keyframe of this layer (the caller rate-limits).
    pub want_keyframe: Option<Rid>,
}

/// One subscriber's view of one publisher's simulcast track.
#[derive(Debug, Default, Clone)]
pub struct Selector {
    current: Option<Rid>,
}

impl Selector {
    /// The layer being forwarded now.
    pub fn current(&self) -> Option<Rid> {
        self.current
    }

    /// A packet of layer `rid` arrived; `target` is the best fit now, `keyframe` whether
    /// it starts a keyframe (`None`: cannot tell, switch at once).
    pub fn on_packet(&mut self, rid: Rid, keyframe: Option<bool>, target: Option<Rid>) -> Decision {
        let Some(target) = target else {
            return Decision {
                forward: false,
                switched: false,
                want_keyframe: None,
            };
        };
        if self.current == Some(rid) {
            // Keep the current layer flowing until the target's keyframe arrives.
            return Decision {
                forward: true,
                switched: false,
                want_keyframe: (target != rid).then_some(target),
            };
        }
        if rid == target {
            if keyframe != Some(false) {
                self.current = Some(rid);
                return Decision {
                    forward: true,
                    switched: true,
                    want_keyframe: None,
                };
            }
            return Decision {
                forward: false,
                switched: false,
                want_keyframe: Some(target),
            };
        }
        Decision {
            forward: false,
            switched: false,
            want_keyframe: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_prefers_highest_not_above_desired() {
        let all = || ALL.into_iter();
        assert_eq!(best_fit(Rid::F, all()), Some(Rid::F));
        assert_eq!(best_fit(Rid::H, all()), Some(Rid::H));
        assert_eq!(best_fit(Rid::Q, all()), Some(Rid::Q));
        assert_eq!(best_fit(Rid::H, [Rid::F].into_iter()), Some(Rid::F));
        assert_eq!(best_fit(Rid::F, [Rid::Q, Rid::H].into_iter()), Some(Rid::H));
        assert_eq!(best_fit(Rid::H, [Rid::Q, Rid::F].into_iter()), Some(Rid::Q));
        assert_eq!(best_fit(Rid::F, std::iter::empty()), None);
    }

    #[test]
    fn layers_expire() {
        let t0 = Instant::now();
        let mut l = Layers::default();
        l.saw(Rid::Q, t0);
        l.saw(Rid::F, t0 + Duration::from_secs(2));
        assert_eq!(
            l.best_fit(Rid::F, t0 + Duration::from_secs(2)),
            Some(Rid::F)
        );
        assert_eq!(
            l.best_fit(Rid::H, t0 + Duration::from_secs(1)),
            Some(Rid::Q)
        );
        assert_eq!(
            l.best_fit(Rid::H, t0 + Duration::from_secs(3)),
            Some(Rid::F)
        );
    }

    #[test]
    fn switch_waits_for_a_keyframe_of_the_target() {
        let mut s = Selector::default();
        // Start: delta frames of the target are held back and a keyframe asked for.
        let d = s.on_packet(Rid::F, Some(false), Some(Rid::F));
        assert!(!d.forward && d.want_keyframe == Some(Rid::F));
        let d = s.on_packet(Rid::Q, Some(true), Some(Rid::F));
        assert!(!d.forward);
        let d = s.on_packet(Rid::F, Some(true), Some(Rid::F));
        assert!(d.forward && d.switched);
        // Target drops to h: f keeps flowing until h's keyframe.
        let d = s.on_packet(Rid::F, Some(false), Some(Rid::H));
        assert!(d.forward && !d.switched && d.want_keyframe == Some(Rid::H));
        assert!(!s.on_packet(Rid::H, Some(false), Some(Rid::H)).forward);
        let d = s.on_packet(Rid::H, Some(true), Some(Rid::H));
        assert!(d.forward && d.switched);
        assert!(!s.on_packet(Rid::F, Some(true), Some(Rid::H)).forward);
        assert_eq!(s.current(), Some(Rid::H));
    }
}
