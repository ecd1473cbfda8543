//! A remote segment's batches, read in ranged GETs of a bounded size: the compactor's
//! memory for one segment is one range (or one batch, when a batch is larger), whatever
//! the segment's size, and its GETs per GiB are a GiB over the range.

use bytes::{Bytes, BytesMut};
use object_store::path::Path as ObjectPath;

use crate::tier::bucket::Bucket;
use shale_core::error::{Error, ErrorKind, Reason};

/// Bytes of a batch before its `batchLength` field ends: base offset and length.
const LENGTH_END: usize = 12;
/// The smallest batch: its header after the length field (RecordBatch v2).
const MIN_AFTER_LENGTH: usize = 49;

/// The batches of one object's first `size` bytes, in order, a range at a time.
pub(crate) struct Batches<'a> {
    bucket: &'a Bucket,
    path: ObjectPath,
    size: u64,
    range: u64,
    /// Bytes fetched so far.
    fetched: u64,
    /// Fetched bytes not yet handed out (the start of a batch).
    buffer: Bytes,
    /// GETs made.
    pub(crate) gets: u64,
}

impl<'a> Batches<'a> {
    /// The batches in the first `size` bytes of `path`, fetched `range` bytes at a time.
    pub(crate) fn new(bucket: &'a Bucket, path: ObjectPath, size: u64, range: u64) -> Self {
        let range = range.max(LENGTH_END as u64);
        Batches { bucket, path, size, range, fetched: 0, buffer: Bytes::new(), gets: 0 }
    }

    /// The next whole batches (at least one), or `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<Bytes>>, Error> {
        loop {
            let (batches, partial_len) = self.split()?;
            if !batches.is_empty() {
                return Ok(Some(batches));
            }
            if self.fetched >= self.size {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let at = self.fetched - self.buffer.len() as u64;
                return Err(self.corrupt(format!(
                    "its last {} bytes from byte {at} are not a whole batch",
                    self.buffer.len()
                )));
            }
            // A range, or more when the batch begun is longer.
            let missing = partial_len.saturating_sub(self.buffer.len()) as u64;
            let end = self.size.min(self.fetched + self.range.max(missing));
            let got = self.bucket.get_range(&self.path, self.fetched..end).await?;
            self.gets += 1;
            if got.len() as u64 != end - self.fetched {
                return Err(self.corrupt(format!(
                    "a GET of bytes {}..{end} returned {} bytes",
                    self.fetched,
                    got.len()
                )));
            }
            self.fetched = end;
            self.buffer = match self.buffer.is_empty() {
                true => got,
                false => {
                    let mut joined = BytesMut::with_capacity(self.buffer.len() + got.len());
                    joined.extend_from_slice(&self.buffer);
                    joined.extend_from_slice(&got);
                    joined.freeze()
                }
            };
        }
    }

    /// The whole batches at the buffer's start, and the length of the one after them when
    /// its length is known (else 0).
    fn split(&mut self) -> Result<(Vec<Bytes>, usize), Error> {
        let mut batches = Vec::new();
        loop {
            if self.buffer.len() < LENGTH_END {
                return Ok((batches, 0));
            }
            let length = i32::from_be_bytes([
                self.buffer[8],
                self.buffer[9],
                self.buffer[10],
                self.buffer[11],
            ]);
            if length < MIN_AFTER_LENGTH as i32 {
                let at = self.fetched - self.buffer.len() as u64;
                return Err(self.corrupt(format!("the batch at byte {at} has length {length}")));
            }
            let total = LENGTH_END + length as usize;
            if self.buffer.len() < total {
                return Ok((batches, total));
            }
            batches.push(self.buffer.split_to(total));
        }
    }

    fn corrupt(&self, why: String) -> Error {
        Error::new(
            ErrorKind::Data,
            Reason::CorruptRemoteSegment,
            format!("remote segment {}: {why}", self.path),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::TierSettings;
    use shale_core::record::{BatchBuilder, Compression, Record};

    fn batch(len: usize, base: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(Record {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from(vec![7; len])),
            headers: vec![],
            timestamp_ms: 1,
        });
        let mut bytes = b.build().to_vec();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        bytes
    }

    /// Batches smaller and larger than the range come back whole and in order, in as many
    /// GETs as the bytes need, and a cut-off object is an error naming it.
    #[tokio::test]
    async fn batches_come_whole_across_ranges_of_any_size() {
        let bucket = Bucket::open("memory://", &TierSettings::default()).unwrap();
        let path = ObjectPath::from("seg.log");
        let sizes = [100, 5_000, 300, 40_000, 10];
        let batches: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(i, n)| batch(*n, i as i64)).collect();
        let mut object = batches.concat();
        let size = object.len() as u64;
        object.extend_from_slice(b"the index, not read");
        bucket.put(&path, Bytes::from(object.clone())).await.unwrap();
        for range in [1, 4_096, 1 << 20] {
            let mut read = Batches::new(&bucket, path.clone(), size, range);
            let mut got = Vec::new();
            while let Some(more) = read.next().await.unwrap() {
                got.extend(more.into_iter().map(|b| b.to_vec()));
            }
            assert_eq!(got, batches, "range {range}");
            assert!(read.gets <= size / range.max(12) + sizes.len() as u64, "range {range}");
        }
        let mut cut = Batches::new(&bucket, path, size - 5, 4_096);
        let mut e = None;
        for _ in 0..10 {
            if let Err(err) = cut.next().await {
                e = Some(err);
                break;
            }
        }
        let e = e.expect("a cut-off batch is an error");
        assert!(e.message.contains("seg.log") && e.message.contains("not a whole batch"), "{e}");
    }
}
