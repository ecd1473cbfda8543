//! A round: the frames one fsync makes durable, laid out in memory exactly as they go into
//! the ring from the round's start — wrap frames, and the zeros that skip to a lap's start,
//! included — so that the round is one write (two where it runs past the ring's end).

use bytes::BytesMut;

use super::frame::{self, At, Op, footprint};
use super::ring::place;

/// Why a frame does not go into a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// It would overwrite a position a partition still needs: the trim point must move
    /// (partitions checkpoint) first.
    #[error(
        "the journal is full: a frame ending at {end} would pass the trim point {trim} by a lap"
    )]
    Full {
        /// Where the frame would end.
        end: u64,
        /// The trim point.
        trim: u64,
    },
    /// It is larger than the whole ring.
    #[error("a frame of {footprint} bytes does not fit in a journal of {capacity}")]
    TooLarge {
        /// The frame's bytes.
        footprint: u64,
        /// The ring's bytes.
        capacity: u64,
    },
}

/// The largest round buffer kept for the next round.
const SPARE_MAX: usize = 16 << 20;

/// Frames for one write and one fsync, from the round's start position.
#[derive(Debug)]
pub(crate) struct Round {
    start: u64,
    capacity: u64,
    generation: u32,
    buf: BytesMut,
}

impl Round {
    /// An empty round starting at `start` in a ring of `capacity` bytes, written under the
    /// journal's `generation`.
    pub(crate) fn new(start: u64, capacity: u64, generation: u32) -> Round {
        Round::reusing(start, capacity, generation, BytesMut::new())
    }

    /// [`new`](Self::new), laid out in `buf` (a round written before: emptied here), so
    /// that a steady journal does not allocate a buffer per round. A buffer grown past
    /// [`SPARE_MAX`] by a burst is let go.
    pub(crate) fn reusing(start: u64, capacity: u64, generation: u32, mut buf: BytesMut) -> Round {
        buf.clear();
        if buf.capacity() > SPARE_MAX {
            buf = BytesMut::new();
        }
        Round { start, capacity, generation, buf }
    }

    /// The round's buffer, for the next round to reuse.
    pub(crate) fn into_buf(self) -> BytesMut {
        self.buf
    }

    /// Where the round starts.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Where the next frame would start: the round's end.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Whether the round holds no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The round's bytes, to write at [`start`](Self::start).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Adds the frame of `payload` (whole batches of `stream`, appended at `base_offset`
    /// under leader `epoch`) unless it would overwrite a position at or after `trim`;
    /// returns its position.
    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        trim: u64,
        stream: u32,
        epoch: i32,
        base_offset: i64,
        payload: &[u8],
    ) -> Result<u64, Refused> {
        self.push_op(trim, 0, Op::Append, stream, epoch, base_offset, payload)
    }

    /// Like [`push`](Self::push), for any `op` (a cut has no payload).
    /// `reserve`: bytes before the trim point's next lap the frame must leave free.
    #[allow(clippy::too_many_arguments, reason = "a frame's fields and where it may go")]
    pub(crate) fn push_op(
        &mut self,
        trim: u64,
        reserve: u64,
        op: Op,
        stream: u32,
        epoch: i32,
        base_offset: i64,
        payload: &[u8],
    ) -> Result<u64, Refused> {
        let size = footprint(payload.len());
        if size > self.capacity {
            return Err(Refused::TooLarge { footprint: size, capacity: self.capacity });
        }
        let placed = place(self.end(), size, self.capacity);
        if placed.next + reserve > trim + self.capacity {
            return Err(Refused::Full { end: placed.next, trim });
        }
        let generation = self.generation;
        if let Some(lsn) = placed.wrap {
            frame::put_wrap(&mut self.buf, At { lsn, generation });
        }
        // The rest of the lap is skipped: zeros, written like the frames.
        self.buf.resize((placed.at - self.start) as usize, 0);
        let at = At { lsn: placed.at, generation };
        frame::put_op(&mut self.buf, at, op, stream, epoch, base_offset, payload);
        Ok(placed.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ring::{Found, scan};

    #[test]
    fn a_round_is_written_as_laid_out_and_read_back_across_a_wrap() {
        let capacity = 256;
        let mut ring = vec![0u8; capacity as usize];
        let mut round = Round::new(160, capacity, 3);
        let a = round.push(160, 1, 0, 10, &[1; 40]).unwrap(); // 80 bytes: 160..240
        let b = round.push(160, 2, 0, 20, &[2; 40]).unwrap(); // 16 left: next lap
        assert_eq!((a, b, round.end()), (160, 256, 336));
        for (i, byte) in round.bytes().iter().enumerate() {
            ring[((round.start() + i as u64) % capacity) as usize] = *byte;
        }
        let mut found: Vec<Found> = Vec::new();
        let ended = scan(&ring[..], 160, |f| found.push(f)).unwrap();
        assert_eq!(
            found.iter().map(|f| (f.lsn, f.stream)).collect::<Vec<_>>(),
            [(160, 1), (256, 2)]
        );
        assert_eq!(ended.next, 336);
    }

    #[test]
    fn a_frame_that_would_pass_the_trim_point_by_a_lap_is_refused() {
        let mut round = Round::new(200, 256, 1);
        assert_eq!(round.push(0, 1, 0, 0, &[0; 16]).unwrap(), 200); // 56 bytes: ends at 256
        assert_eq!(round.push(0, 1, 0, 0, &[0; 0]), Err(Refused::Full { end: 296, trim: 0 }));
        assert_eq!(round.push(40, 1, 0, 0, &[0; 0]), Ok(256), "once the trim point moved");
        assert!(matches!(round.push(40, 1, 0, 0, &[0; 300]), Err(Refused::TooLarge { .. })));
    }
}
