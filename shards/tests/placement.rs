//! CPU selection against the real host.

use shards::{allowed_cpus, choose_cpus, RuntimeError};

fn online() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => cpus.extend(lo.parse::<usize>().unwrap()..=hi.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

#[test]
fn allowed_is_a_nonempty_sorted_subset_of_online() {
    let allowed = allowed_cpus().unwrap();
    assert!(!allowed.is_empty());
    assert!(allowed.windows(2).all(|w| w[0] < w[1]), "{allowed:?}");
    let online = online();
    assert!(
        allowed.iter().all(|cpu| online.contains(cpu)),
        "{allowed:?} vs {online:?}"
    );
}

#[test]
fn all_by_default_and_exact_counts_when_asked() {
    let allowed = allowed_cpus().unwrap();
    assert_eq!(choose_cpus(None).unwrap(), allowed);
    assert_eq!(choose_cpus(Some(0)).unwrap(), allowed);
    let one = choose_cpus(Some(1)).unwrap();
    assert_eq!(one.len(), 1);
    assert!(allowed.contains(&one[0]));
    assert_eq!(choose_cpus(Some(allowed.len())).unwrap(), allowed);
}

#[test]
fn one_more_than_allowed_is_too_many() {
    let allowed = allowed_cpus().unwrap();
    let err = choose_cpus(Some(allowed.len() + 1)).unwrap_err();
    match &err {
        RuntimeError::TooManyCores {
            requested,
            allowed: listed,
        } => {
            assert_eq!(*requested, allowed.len() + 1);
            assert_eq!(listed, &allowed);
        }
        other => panic!("expected TooManyCores, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("--cores {}", allowed.len())),
        "{text}"
    );
}
