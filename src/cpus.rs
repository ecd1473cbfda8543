//! The CPUs a broker process runs on (`--cpus`, `[runtime] cpus`), as Redpanda's
//! `--cpuset`: the process confines itself to them before it starts a thread, so every
//! thread it ever has (the runtime's workers, its blocking pool, the journal's writer,
//! notifier and checkpointer, the cold-read runtime) inherits the set, and the runtime
//! has a worker per CPU of it (tokio counts the CPUs a process may use).
//!
//! Why a broker would: a request's round trip through the broker is a chain of wake-ups
//! between its threads (a worker hands frames to the journal's writer, which wakes a
//! worker once they are durable). Between two threads on one CPU a wake-up is a switch;
//! across CPUs it is an interrupt to the other CPU, which on a virtual machine can cost
//! ten times as much (`docs/benchmarks.md`: one CPU of its own took the broker's CPU a
//! record from 10.3 to 7.8 µs at 100 partitions). Confining the broker suits a host it
//! shares with its clients or other services, or cores an operator reserves for it.

use std::fmt;
use std::str::FromStr;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// CPUs as Linux writes them (`0`, `0-3`, `0,2-3`): distinct, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// Confines the calling thread, and so every thread it starts afterwards, to these
    /// CPUs. Call it before the process starts any thread: those started before keep
    /// theirs. Fails, naming the CPU, if one is not among those the process may use.
    pub fn confine(&self) -> Result<(), String> {
        let allowed = sched_getaffinity(None)
            .map_err(|e| format!("cannot read the CPUs this process may use: {e}"))?;
        if let Some(cpu) = self.0.iter().find(|&&cpu| !allowed.is_set(cpu)) {
            return Err(format!(
                "CPU {cpu} is not one this process may use (it may use {})",
                CpuList::of(&allowed)
            ));
        }
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            set.set(cpu);
        }
        sched_setaffinity(None, &set).map_err(|e| format!("cannot confine the process: {e}"))
    }

    /// The CPUs of `set`.
    fn of(set: &CpuSet) -> CpuList {
        CpuList((0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect())
    }
}

impl FromStr for CpuList {
    type Err = String;

    fn from_str(s: &str) -> Result<CpuList, String> {
        let cpu = |n: &str| -> Result<usize, String> {
            let n = n.trim();
            let cpu: usize = n.parse().map_err(|_| match n.is_empty() {
                true => format!("`{s}` has a range missing an end"),
                false => format!("`{n}` is not a CPU number"),
            })?;
            if cpu >= CpuSet::MAX_CPU {
                return Err(format!(
                    "CPU {cpu} is beyond the last this system numbers ({})",
                    CpuSet::MAX_CPU - 1
                ));
            }
            Ok(cpu)
        };
        let mut cpus = Vec::new();
        for item in s.split(',') {
            if item.trim().is_empty() {
                return Err(format!(
                    "`{s}` has an empty item (write CPUs as `0`, `0-3` or `0,2-3`)"
                ));
            }
            match item.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (cpu(first)?, cpu(last)?);
                    if first > last {
                        return Err(format!("`{}` runs backwards", item.trim()));
                    }
                    cpus.extend(first..=last);
                }
                None => cpus.push(cpu(item)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl fmt::Display for CpuList {
    /// As Linux writes a CPU list: runs of consecutive CPUs as ranges (`0-3,6`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut i, mut sep) = (0, "");
        while i < self.0.len() {
            let first = self.0[i];
            let mut last = first;
            while self.0.get(i + 1) == Some(&(last + 1)) {
                last += 1;
                i += 1;
            }
            match last == first {
                true => write!(f, "{sep}{first}")?,
                false => write!(f, "{sep}{first}-{last}")?,
            }
            (i, sep) = (i + 1, ",");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_linux_writes_them_and_print_back() {
        for (text, cpus, shown) in [
            ("0", vec![0], "0"),
            ("0-3", vec![0, 1, 2, 3], "0-3"),
            ("0,2-3", vec![0, 2, 3], "0,2-3"),
            (" 3, 1 ,2,7", vec![1, 2, 3, 7], "1-3,7"),
            ("2,2,0-1", vec![0, 1, 2], "0-2"),
        ] {
            let list: CpuList = text.parse().unwrap();
            assert_eq!(list.cpus(), cpus, "{text}");
            assert_eq!(list.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn a_bad_list_is_refused_naming_what_is_wrong() {
        for (text, says) in [
            ("", "empty item"),
            ("0,", "empty item"),
            ("a", "`a` is not a CPU number"),
            ("1-x", "`x` is not a CPU number"),
            ("-1", "`-1` has a range missing an end"),
            ("3-1", "`3-1` runs backwards"),
            ("99999", "CPU 99999 is beyond the last"),
        ] {
            let e = text.parse::<CpuList>().unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_cpu_the_process_may_not_use_is_refused_by_number() {
        let allowed = CpuList::of(&sched_getaffinity(None).unwrap());
        let outside = allowed.cpus().last().unwrap() + 1;
        let e = CpuList(vec![outside]).confine().unwrap_err();
        assert!(
            e.contains(&format!("CPU {outside} is not one")) && e.contains(&allowed.to_string()),
            "{e}"
        );
    }
}
