//! Which CPUs the shards may run on.
//!
//! glommio's `CpuSet::online()` reads `/sys/devices/system/cpu/online` only; it ignores the
//! process affinity mask, which is what `taskset`, systemd's `CPUAffinity=` and a container's
//! cgroup cpuset (`--cpuset-cpus`) restrict. Pinning a shard to a CPU outside that mask makes
//! `sched_setaffinity` fail with EINVAL inside the shard thread, so we compute the allowed set
//! ourselves and only ever hand glommio CPUs from it.

use std::{fs, io, mem::size_of};

use crate::runtime::RuntimeError;

const ONLINE_PATH: &str = "/sys/devices/system/cpu/online";

/// CPUs this process may run on: `sched_getaffinity(0)` ∩ `/sys/devices/system/cpu/online`,
/// sorted ascending, without duplicates.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let affinity = affinity_cpus()?;
    let online = parse_cpu_list(&fs::read_to_string(ONLINE_PATH)?)?;
    Ok(affinity
        .into_iter()
        .filter(|cpu| online.binary_search(cpu).is_ok())
        .collect())
}

/// The CPUs to start shards on, one shard per returned CPU, sorted ascending.
///
/// `None` or `Some(0)` means every allowed CPU. A smaller count prefers one CPU per physical
/// core before using SMT siblings, so two shards do not share a core when they need not.
/// Asking for more CPUs than allowed is an error ([`RuntimeError::TooManyCores`]) rather than
/// silently oversubscribing: two pinned shards on one CPU halve each other's throughput.
pub fn choose_cpus(requested: Option<usize>) -> Result<Vec<usize>, RuntimeError> {
    let allowed = allowed_cpus()?;
    pick(requested, allowed, core_of)
}

/// Pure part of [`choose_cpus`]: `core` maps a CPU to its (package, core) id when known.
fn pick(
    requested: Option<usize>,
    allowed: Vec<usize>,
    core: impl Fn(usize) -> Option<(u32, u32)>,
) -> Result<Vec<usize>, RuntimeError> {
    if allowed.is_empty() {
        return Err(RuntimeError::NoCpus);
    }
    let want = match requested {
        None | Some(0) => return Ok(allowed),
        Some(n) => n,
    };
    if want > allowed.len() {
        return Err(RuntimeError::TooManyCores {
            requested: want,
            allowed,
        });
    }
    let mut chosen: Vec<usize> = spread_over_cores(&allowed, core)
        .into_iter()
        .take(want)
        .collect();
    chosen.sort_unstable();
    Ok(chosen)
}

/// Orders CPUs so that the first CPU of every physical core comes before any SMT sibling.
/// If the topology of any CPU is unknown, keeps the ascending order: a wrong guess about
/// siblings would be worse than none.
fn spread_over_cores(cpus: &[usize], core: impl Fn(usize) -> Option<(u32, u32)>) -> Vec<usize> {
    let Some(cores) = cpus
        .iter()
        .map(|&cpu| core(cpu))
        .collect::<Option<Vec<_>>>()
    else {
        return cpus.to_vec();
    };
    // rank = how many earlier CPUs share this CPU's core; rank 0 is the first thread of a core.
    let mut ranked: Vec<(usize, usize)> = cpus
        .iter()
        .enumerate()
        .map(|(i, &cpu)| {
            let rank = cores[..i].iter().filter(|&&c| c == cores[i]).count();
            (rank, cpu)
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(_, cpu)| cpu).collect()
}

/// (physical package, core) of a CPU from sysfs, if readable.
fn core_of(cpu: usize) -> Option<(u32, u32)> {
    let read = |name: &str| -> Option<u32> {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/{name}");
        fs::read_to_string(path).ok()?.trim().parse().ok()
    };
    Some((read("physical_package_id")?, read("core_id")?))
}

/// The affinity mask of the calling thread's process, as sorted CPU numbers.
fn affinity_cpus() -> io::Result<Vec<usize>> {
    type Word = libc::c_ulong;
    const WORD_BITS: usize = Word::BITS as usize;
    // Start with room for 1024 CPUs (glibc's cpu_set_t) and grow on EINVAL, which the kernel
    // returns when the buffer is smaller than its CPU mask (machines with > 1024 CPUs).
    let mut words: Vec<Word> = vec![0; 1024 / WORD_BITS];
    loop {
        let len_bytes = words.len() * size_of::<Word>();
        // SAFETY: sched_getaffinity(pid 0 = this thread, len, ptr) writes at most `len_bytes`
        // bytes to `ptr`; `words` is a live, exclusively borrowed buffer of exactly that many
        // bytes, and any bit pattern is a valid `c_ulong`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_sched_getaffinity,
                0 as libc::pid_t,
                len_bytes,
                words.as_mut_ptr(),
            )
        };
        if ret >= 0 {
            // The raw syscall returns how many bytes of the mask it filled in.
            let filled_words = (ret as usize).div_ceil(size_of::<Word>()).min(words.len());
            let cpus = words[..filled_words]
                .iter()
                .enumerate()
                .flat_map(|(w, &word)| {
                    (0..WORD_BITS)
                        .filter(move |bit| word & (1 << bit) != 0)
                        .map(move |bit| w * WORD_BITS + bit)
                })
                .collect();
            return Ok(cpus);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) && words.len() < (1 << 16) {
            words.resize(words.len() * 2, 0);
            continue;
        }
        return Err(err);
    }
}

/// Parses the kernel's CPU list format (`0-3,6,8-9`), returning sorted, deduplicated CPUs.
pub(crate) fn parse_cpu_list(text: &str) -> io::Result<Vec<usize>> {
    let bad = |part: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad CPU list entry {part:?} in {text:?}"),
        )
    };
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: usize = lo.trim().parse().map_err(|_| bad(part))?;
        let hi: usize = hi.trim().parse().map_err(|_| bad(part))?;
        if hi < lo {
            return Err(bad(part));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2-4,7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn zero_or_none_means_all() {
        let all = vec![0, 1, 2, 3];
        assert_eq!(pick(None, all.clone(), |_| None).unwrap(), all);
        assert_eq!(pick(Some(0), all.clone(), |_| None).unwrap(), all);
    }

    #[test]
    fn too_many_is_an_error_listing_the_allowed_set() {
        let err = pick(Some(3), vec![4, 6], |_| None).unwrap_err();
        match &err {
            RuntimeError::TooManyCores { requested, allowed } => {
                assert_eq!(*requested, 3);
                assert_eq!(allowed, &vec![4, 6]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("4,6"), "{text}");
        assert!(text.contains("--cores 2"), "{text}");
    }

    #[test]
    fn empty_allowed_set_is_no_cpus() {
        assert!(matches!(
            pick(None, vec![], |_| None),
            Err(RuntimeError::NoCpus)
        ));
    }

    #[test]
    fn prefers_distinct_physical_cores() {
        // CPUs 0/2 and 1/3 are SMT siblings (the usual Intel numbering).
        let core = |cpu: usize| Some((0, (cpu % 2) as u32));
        assert_eq!(pick(Some(2), vec![0, 1, 2, 3], core).unwrap(), vec![0, 1]);
        // CPUs 0/1 and 2/3 are siblings (the usual AMD numbering).
        let core = |cpu: usize| Some((0, (cpu / 2) as u32));
        assert_eq!(pick(Some(2), vec![0, 1, 2, 3], core).unwrap(), vec![0, 2]);
        // Unknown topology: lowest CPUs first.
        assert_eq!(pick(Some(2), vec![1, 5, 9], |_| None).unwrap(), vec![1, 5]);
    }
}
