//! The journal's data area as a ring of `capacity` bytes: where each frame goes, and the
//! scan that reads frames back from a position until the first that is not valid there.
//!
//! Positions (`lsn`) grow for ever; the byte of position `lsn` is at `lsn % capacity`. A
//! frame never crosses the end of the ring: one that would not fit goes at the start of the
//! next lap, after a wrap frame where the rest of the lap holds a header (where it does not,
//! a reader knows the next frame starts the next lap). The writer never overwrites a
//! position at or after the trim point (the oldest position a partition still needs), so
//! what a scan from the trim point reads is this lap's frames, up to the first that is torn
//! or was never written — a frame of an earlier lap names an earlier position, and one an
//! earlier generation left beyond where a later one went on has an older generation.

use bytes::Bytes;

use super::frame::{self, HEADER_LEN, Header, Invalid, Kind, Op};

/// Where the writer puts a frame of `footprint` bytes that would start at `lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// A wrap frame goes here first (the frame does not fit in this lap).
    pub(crate) wrap: Option<u64>,
    /// Where the frame goes.
    pub(crate) at: u64,
    /// Where the next frame would start.
    pub(crate) next: u64,
}

/// Places a frame of `footprint` bytes (at most `capacity`) at `lsn` in a ring of
/// `capacity` bytes.
pub(crate) fn place(lsn: u64, footprint: u64, capacity: u64) -> Placement {
    debug_assert!(footprint <= capacity && lsn.is_multiple_of(frame::ALIGN));
    let pos = lsn % capacity;
    if pos + footprint <= capacity {
        return Placement { wrap: None, at: lsn, next: lsn + footprint };
    }
    let lap_start = lsn + (capacity - pos);
    let wrap = (capacity - pos >= HEADER_LEN as u64).then_some(lsn);
    Placement { wrap, at: lap_start, next: lap_start + footprint }
}

/// Where a frame at `lsn` or after can start: `lsn` itself, or the start of the next lap
/// when the rest of this one cannot hold a header (the writer never writes there).
pub(crate) fn usable(lsn: u64, capacity: u64) -> u64 {
    let room = capacity - lsn % capacity;
    if room < HEADER_LEN as u64 { lsn + room } else { lsn }
}

/// Reads the ring's bytes.
pub(crate) trait RingRead {
    /// The ring's size in bytes.
    fn capacity(&self) -> u64;
    /// Fills `buf` from ring byte `pos` (`pos + buf.len()` is at most the capacity).
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl RingRead for [u8] {
    fn capacity(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let pos = pos as usize;
        buf.copy_from_slice(&self[pos..pos + buf.len()]);
        Ok(())
    }
}

/// A frame of batches read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Where it was written.
    pub(crate) lsn: u64,
    /// What it records.
    pub(crate) op: Op,
    /// The partition's stream number.
    pub(crate) stream: u32,
    /// The leader epoch of the append.
    pub(crate) epoch: i32,
    /// Offset of the first record.
    pub(crate) base_offset: i64,
    /// The batches, unchanged.
    pub(crate) payload: Bytes,
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    /// The position after the last valid frame: where the writer goes on.
    pub(crate) next: u64,
    /// Why the bytes at `next` are not a frame (`Stale`: never written in this lap, the
    /// usual end; `Checksum`: a torn write, whose bytes are never replayed).
    pub(crate) why: Invalid,
}

/// Scans the ring from `lsn` (a frame boundary: the trim point, or where an earlier scan
/// stopped): every valid frame of batches, in order, to `each`, then how the scan ended.
/// An I/O error ends the scan with that error.
#[cfg(test)]
pub(crate) fn scan(
    ring: &(impl RingRead + ?Sized),
    lsn: u64,
    each: impl FnMut(Found),
) -> std::io::Result<Ended> {
    scan_from(ring, lsn, 0, each)
}

/// Like [`scan`], reading only frames of generation `floor` or later: a scan from the
/// trim point takes the generation that stored it as its floor, since every frame written
/// at or after the trim point since is of that generation or a later one, and a frame of
/// an older one there was left by a writer a crash stopped (the one that stored the trim
/// point may have written nothing there yet).
pub(crate) fn scan_from(
    ring: &(impl RingRead + ?Sized),
    mut lsn: u64,
    mut floor: u32,
    mut each: impl FnMut(Found),
) -> std::io::Result<Ended> {
    let capacity = ring.capacity();
    let lap_end = lsn + capacity;
    let mut head = [0u8; HEADER_LEN];
    loop {
        lsn = usable(lsn, capacity);
        if lsn >= lap_end {
            return Ok(Ended { next: lsn, why: Invalid::Lapped });
        }
        let pos = lsn % capacity;
        let room = capacity - pos;
        ring.read_at(pos, &mut head)?;
        let h: Header = match frame::header(&head, lsn, room - HEADER_LEN as u64) {
            Ok(h) => h,
            Err(why) => return Ok(Ended { next: lsn, why }),
        };
        let mut whole = vec![0u8; HEADER_LEN + h.len as usize];
        whole[..HEADER_LEN].copy_from_slice(&head);
        ring.read_at(pos + HEADER_LEN as u64, &mut whole[HEADER_LEN..])?;
        if let Err(why) = frame::check(&whole) {
            return Ok(Ended { next: lsn, why });
        }
        if h.generation < floor {
            return Ok(Ended {
                next: lsn,
                why: Invalid::Superseded { found: h.generation, floor },
            });
        }
        floor = h.generation;
        match h.kind {
            Kind::Wrap => lsn += room,
            Kind::Batches { op, stream, epoch, base_offset } => {
                let payload = Bytes::from(whole).slice(HEADER_LEN..);
                each(Found { lsn, op, stream, epoch, base_offset, payload });
                lsn += h.footprint();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;
    use crate::journal::frame::{ALIGN, At, footprint, put_batches, put_wrap};

    /// A ring in memory and the writer's side of the rules above.
    struct Ring {
        bytes: Vec<u8>,
        next: u64,
        generation: u32,
    }

    impl Ring {
        fn new(capacity: usize) -> Ring {
            Ring { bytes: vec![0; capacity], next: 0, generation: 1 }
        }

        fn write(&mut self, lsn: u64, frame: &[u8]) {
            let pos = (lsn % self.bytes.len() as u64) as usize;
            self.bytes[pos..pos + frame.len()].copy_from_slice(frame);
        }

        /// Appends a frame of `payload` for `stream`; returns where it went.
        fn append(&mut self, stream: u32, payload: &[u8]) -> u64 {
            let cap = self.bytes.len() as u64;
            let placed = place(self.next, footprint(payload.len()), cap);
            let generation = self.generation;
            if let Some(lsn) = placed.wrap {
                let mut out = BytesMut::new();
                put_wrap(&mut out, At { lsn, generation });
                self.write(lsn, &out);
            }
            let mut out = BytesMut::new();
            let at = At { lsn: placed.at, generation };
            put_batches(&mut out, at, stream, 1, placed.at as i64, payload);
            self.write(placed.at, &out);
            self.next = placed.next;
            placed.at
        }
    }

    fn scan_all(ring: &Ring, from: u64) -> (Vec<Found>, Ended) {
        let mut found = Vec::new();
        let ended = scan(&ring.bytes[..], from, |f| found.push(f)).unwrap();
        (found, ended)
    }

    #[test]
    fn a_frame_that_does_not_fit_goes_to_the_next_lap_after_a_wrap() {
        assert_eq!(place(0, 48, 128), Placement { wrap: None, at: 0, next: 48 });
        // 32 bytes left: no room for a wrap frame's header.
        assert_eq!(place(96, 48, 128), Placement { wrap: None, at: 128, next: 176 });
        // 48 bytes left of 136: a wrap frame, then the next lap.
        assert_eq!(place(88, 56, 136), Placement { wrap: Some(88), at: 136, next: 192 });
    }

    #[test]
    fn a_scan_reads_this_laps_frames_and_stops_at_the_first_never_written() {
        let mut ring = Ring::new(256);
        let a = ring.append(1, b"first");
        let b = ring.append(2, b"second");
        let (found, ended) = scan_all(&ring, 0);
        assert_eq!(found.iter().map(|f| (f.lsn, f.stream)).collect::<Vec<_>>(), [(a, 1), (b, 2)]);
        assert_eq!(&found[1].payload[..], b"second");
        assert_eq!(ended.next, ring.next);
        // Zeros where nothing was written: a header of position 0, read at another.
        assert_eq!(ended.why, Invalid::Stale { found: 0, expected: ring.next });
    }

    #[test]
    fn frames_of_an_earlier_lap_are_never_read_as_new() {
        let mut ring = Ring::new(256);
        for i in 0..5u8 {
            ring.append(u32::from(i), &[i; 40]); // 80 bytes each: three fit a lap
        }
        // Lap 2 holds frames 3 (at 256) and 4 (at 336); lap 1's frame 2 still sits at 160.
        let (found, ended) = scan_all(&ring, 256);
        assert_eq!(found.iter().map(|f| f.stream).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(ended.next, 416);
        assert_eq!(ended.why, Invalid::Stale { found: 160, expected: 416 });
    }

    #[test]
    fn a_torn_frame_ends_the_scan_and_is_not_replayed() {
        let mut ring = Ring::new(512);
        ring.append(1, b"kept");
        let torn = ring.append(2, &[7; 100]);
        ring.append(3, b"after the tear");
        ring.bytes[torn as usize + HEADER_LEN + 50] ^= 0xff;
        let (found, ended) = scan_all(&ring, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(ended, Ended { next: torn, why: Invalid::Checksum });
    }

    /// A crash tore frame `b` of an unacknowledged round and left its frame `c` whole; the
    /// writer went on from `b` under a new generation, and its frames happened to end
    /// exactly where `c` starts. `c` is never read as their continuation.
    #[test]
    fn a_frame_left_beyond_a_tear_by_an_earlier_generation_is_not_read_after_later_ones() {
        let mut ring = Ring::new(1024);
        ring.append(1, b"acked");
        let b = ring.append(2, &[2; 64]);
        let c = ring.append(3, b"never acknowledged");
        ring.bytes[b as usize + HEADER_LEN] ^= 1; // the tear
        let (_, ended) = scan_all(&ring, 0);
        assert_eq!((ended.next, ended.why), (b, Invalid::Checksum));
        // Recovery: go on at `b` under generation 2; 104 bytes of frames end at `c`.
        ring.next = b;
        ring.generation = 2;
        ring.append(4, &[4; 24]);
        ring.append(5, &[5; 0]);
        assert_eq!(ring.next, c, "the new frames end where the old `c` starts");
        let (found, ended) = scan_all(&ring, 0);
        assert_eq!(found.iter().map(|f| f.stream).collect::<Vec<_>>(), [1, 4, 5]);
        assert_eq!((ended.next, ended.why), (c, Invalid::Superseded { found: 1, floor: 2 }));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Any sequence of appends into any ring: a scan from the trim point (the oldest
        /// frame within the last lap's worth of bytes) reads back exactly the frames
        /// written since, in order, byte for byte, and ends where the writer goes on;
        /// with the tail torn, exactly those before the tear.
        #[test]
        fn a_scan_from_the_trim_point_reads_back_exactly_what_was_written(
            capacity in (16u64..512).prop_map(|c| c * ALIGN),
            sizes in prop::collection::vec(0usize..300, 1..60),
            tear in prop::option::of((0usize..60, 0usize..400)),
        ) {
            let mut ring = Ring::new(capacity as usize);
            let mut written = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                if footprint(*size) > capacity {
                    continue;
                }
                let payload: Vec<u8> = (0..*size).map(|j| (i * 31 + j) as u8).collect();
                let at = ring.append(i as u32, &payload);
                written.push((at, i as u32, payload));
            }
            prop_assume!(!written.is_empty());
            // The trim point: the oldest frame the writer has not overwritten, as the
            // journal keeps it (a frame is overwritten once the writer is a lap past it).
            let keep: Vec<_> = written
                .iter()
                .filter(|(at, _, _)| at + capacity >= ring.next)
                .cloned()
                .collect();
            let mut expected = keep.clone();
            if let Some((which, byte)) = tear {
                // A write the crash tore: one byte of a kept frame's header or payload, and
                // every frame after it unacknowledged.
                let which = which % keep.len();
                let (at, _, p) = &keep[which];
                let byte = byte % (HEADER_LEN + p.len());
                ring.bytes[((at + byte as u64) % capacity) as usize] ^= 0x5a;
                expected.truncate(which);
            }
            let (found, ended) = scan_all(&ring, keep[0].0);
            let got: Vec<_> = found.iter().map(|f| (f.lsn, f.stream, f.payload.to_vec())).collect();
            prop_assert_eq!(&got, &expected);
            if tear.is_none() {
                prop_assert_eq!(ended.next, usable(ring.next, capacity));
            } else {
                prop_assert_eq!(ended.next, keep[expected.len()].0);
            }
        }
    }
}
