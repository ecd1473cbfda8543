//! A power cut at every step of a clean's swap (`log::swap`), with the cleaned segments
//! `rewrite` writes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::clean::offset_map::OffsetMap;
use crate::clean::rewrite::tests::{DIR, read, sources};
use crate::clean::rewrite::{Layout, write_cleaned};
use crate::clean::section::{Markers, Rules, map_section};
use crate::log::segment::{LOG_SUFFIX, file_name, parse_file_name};
use crate::log::swap::{CLEANED, MARKER, recover, swap_in};
use shale_core::disk::{Disk, SimDisk, SimOptions};
use shale_core::record::Limits;

/// The segment files of the log: name → bytes.
fn files(disk: &SimDisk) -> BTreeMap<String, Vec<u8>> {
    let mut names = disk.read_dir(Path::new(DIR)).unwrap();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = read(disk, &Path::new(DIR).join(&n));
            (n, bytes)
        })
        .collect()
}

/// A power cut at every step of a swap, then `recover`: the log's files are the old
/// segments or the new, whole, and nothing of the clean is left over.
#[test]
fn a_power_cut_at_any_step_of_a_swap_leaves_the_old_segments_or_the_new() {
    let (mut saw_old, mut saw_new, mut steps) = (false, false, 0u64);
    loop {
        let disk = SimDisk::new(SimOptions {
            seed: steps,
            torn_tails: true,
            torn_dirs: true,
            ..Default::default()
        });
        let (sources, batches) = sources(&disk, 4, 5, 3);
        let mut map = OffsetMap::with_memory(1 << 20);
        let end = sources[3].next_offset;
        map_section(
            batches.iter().map(Vec::as_slice),
            &mut map,
            &Limits::default(),
            end,
            &Default::default(),
        )
        .unwrap();
        let layout = Layout { segment_bytes: 2 * sources[0].size, index_interval: 100 };
        let written = write_cleaned(
            &disk,
            Path::new(DIR),
            &sources[..3],
            &map,
            (&Rules::default(), &mut Markers::removing()),
            &layout,
            &mut |_| {},
        )
        .unwrap();
        let old: BTreeMap<_, _> =
            files(&disk).into_iter().filter(|(n, _)| !n.contains(CLEANED)).collect();
        // What the swap makes: the sources replaced by the cleaned files, the fourth kept.
        let to = sources[3].base;
        let start = disk.ops();
        disk.freeze_after(steps);
        let bases: Vec<i64> = written.iter().map(|w| w.base).collect();
        let done = swap_in(&disk, Path::new(DIR), 0, to, &bases).is_ok();
        let finished = done && !disk.is_frozen();
        let ops = disk.ops() - start;
        disk.crash();
        recover(&disk, Path::new(DIR)).unwrap();
        let after = files(&disk);
        assert!(
            after.keys().all(|n| !n.contains(CLEANED) && n != MARKER),
            "left over at step {steps}: {:?}",
            after.keys()
        );
        if after == old {
            saw_old = true;
        } else {
            // The new set: the cleaned segments under their final names, and the fourth.
            let bases: Vec<i64> = after
                .keys()
                .filter_map(|n| parse_file_name(n))
                .filter(|(_, s)| *s == LOG_SUFFIX)
                .map(|(b, _)| b)
                .collect();
            let mut want: Vec<i64> = written.iter().map(|w| w.base).collect();
            want.push(sources[3].base);
            assert_eq!(bases, want, "a mix of old and new at step {steps}");
            for w in &written {
                let name = file_name(w.base, LOG_SUFFIX);
                assert_eq!(after[&name].len() as u64, w.size, "{name} at step {steps}");
            }
            saw_new = true;
        }
        if finished || ops < steps {
            break;
        }
        steps += 1;
    }
    assert!(saw_old && saw_new, "cuts before and after the commit point: {steps} steps");
}

#[test]
fn an_uncommitted_clean_is_removed_at_open() {
    let disk = SimDisk::new(SimOptions::default());
    let (sources, batches) = sources(&disk, 2, 3, 2);
    let mut map = OffsetMap::with_memory(1 << 20);
    map_section(
        batches.iter().map(Vec::as_slice),
        &mut map,
        &Limits::default(),
        sources[1].next_offset,
        &Default::default(),
    )
    .unwrap();
    let layout = Layout { segment_bytes: 1 << 20, index_interval: 100 };
    write_cleaned(
        &disk,
        Path::new(DIR),
        &sources[..1],
        &map,
        (&Rules::default(), &mut Markers::removing()),
        &layout,
        &mut |_| {},
    )
    .unwrap();
    let before = files(&disk);
    assert!(before.keys().any(|n| n.ends_with(CLEANED)));
    recover(&disk, Path::new(DIR)).unwrap();
    let after = files(&disk);
    assert!(after.keys().all(|n| !n.contains(CLEANED)), "{:?}", after.keys());
    assert_eq!(after.len(), before.len() - 3, "the three cleaned files went");
}

/// A log whose sealed segments were cleaned and swapped in, with power cuts at every step
/// of the swap: it opens (finishing or undoing the swap) and reads back from its start,
/// through the gaps cleaning left (whole segments emptied among them), either every record
/// it held or each key's latest below the swapped range and everything after; never a
/// record at another offset, never a key's latest value lost.
#[test]
fn a_cleaned_log_opens_after_a_cut_swap_and_reads_through_its_gaps() {
    use bytes::Bytes;
    use shale_core::clock::ManualClock;
    use shale_core::record::batch::BatchHeader;
    use shale_core::record::{BatchBuilder, Compression, Record, decode_batches};
    use std::sync::Arc;

    use crate::log::{LogConfig, LogResources, PartitionLog};

    let config = LogConfig { segment_bytes: 700, ..LogConfig::default() };
    let dir = Path::new("/data/t-0");
    let open = |disk: &SimDisk| {
        let resources = Arc::new(LogResources::on_disk(Arc::new(disk.clone()), 16, 1 << 20));
        PartitionLog::open(dir, config.clone(), Arc::new(ManualClock::new(1_000)), resources)
            .expect("open the log")
    };
    let read_back = |log: &PartitionLog| {
        let (mut offset, mut out) = (log.log_start_offset(), Vec::new());
        while offset < log.log_end_offset() {
            let chunk = log.read(offset, 1 << 20, i64::MAX).expect("read");
            assert!(chunk.next_offset > offset, "no progress at {offset}");
            out.extend(decode_batches(&chunk.bytes, &Limits::default()).expect("decode"));
            offset = chunk.next_offset;
        }
        out.into_iter()
            .map(|r| (r.offset, r.key.unwrap()[0], r.value.unwrap()[0]))
            .collect::<Vec<_>>()
    };
    let (mut saw_old, mut saw_new, mut step) = (false, false, 0u64);
    loop {
        let disk = SimDisk::new(SimOptions {
            seed: step,
            torn_dirs: true,
            torn_tails: true,
            ..Default::default()
        });
        disk.create_dir_all(Path::new("/data")).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        let log = open(&disk);
        let mut batches = Vec::new();
        for i in 0..40u8 {
            let mut b = BatchBuilder::new(Compression::None);
            b.push(Record {
                key: Some(Bytes::from(vec![i % 4])),
                value: Some(Bytes::from(vec![i])),
                headers: vec![],
                timestamp_ms: 1_000,
            });
            let mut batch = b.build().to_vec();
            log.append(&mut batch, 0).expect("append");
            batches.push(batch);
        }
        log.flush_all().expect("flush");
        let old = read_back(&log);
        log.close().expect("close");
        drop(log);
        // The sealed segments: every `.log` but the last (the active one).
        let mut bases: Vec<i64> = disk
            .read_dir(dir)
            .unwrap()
            .iter()
            .filter_map(|n| parse_file_name(n).filter(|(_, s)| *s == LOG_SUFFIX).map(|(b, _)| b))
            .collect();
        bases.sort_unstable();
        assert!(bases.len() >= 4, "several sealed segments: {bases:?}");
        let sources: Vec<_> = bases
            .windows(2)
            .map(|w| crate::clean::rewrite::Source {
                base: w[0],
                next_offset: w[1],
                size: disk.metadata(&dir.join(file_name(w[0], LOG_SUFFIX))).unwrap().len,
            })
            .collect();
        let to = *bases.last().unwrap();
        let dirty: Vec<&[u8]> = batches
            .iter()
            .map(Vec::as_slice)
            .filter(|b| BatchHeader::parse(b).unwrap().base_offset < to)
            .collect();
        let mut map = OffsetMap::with_memory(1 << 20);
        map_section(dirty, &mut map, &Limits::default(), to, &Default::default()).unwrap();
        let layout = Layout { segment_bytes: 700, index_interval: 100 };
        let written = write_cleaned(
            &disk,
            dir,
            &sources,
            &map,
            (&Rules::default(), &mut Markers::removing()),
            &layout,
            &mut |_| {},
        )
        .unwrap();
        let cleaned_bases: Vec<i64> = written.iter().map(|w| w.base).collect();
        let start = disk.ops();
        disk.freeze_after(step);
        let done = swap_in(&disk, dir, bases[0], to, &cleaned_bases).is_ok() && !disk.is_frozen();
        let ops = disk.ops() - start;
        disk.crash();
        let log = open(&disk);
        let got = read_back(&log);
        if got == old {
            saw_old = true;
        } else {
            // Below `to`, each key's latest record there; from `to` on, everything.
            let mut latest = std::collections::HashMap::new();
            for (offset, key, _) in old.iter().filter(|(o, _, _)| *o < to) {
                latest.insert(*key, *offset);
            }
            let want: Vec<_> =
                old.iter().filter(|(o, k, _)| *o >= to || latest[k] == *o).cloned().collect();
            assert_eq!(got, want, "after a cut at step {step}");
            saw_new = true;
        }
        if done || ops < step {
            break;
        }
        step += 1;
    }
    assert!(saw_old && saw_new, "cuts before and after the commit point ({step} steps)");
}
