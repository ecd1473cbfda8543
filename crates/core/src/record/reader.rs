//! Reading the v2 records area of a batch one record at a time, bounds-checked, with
//! errors that name the record and field. Shared by decoding (`codec`) and by the broker's
//! checks on producer input (`validate`).

use super::RecordError;
use super::varint::{self, VarintError};

/// The smallest possible record: a 1-byte length and six 1-byte fields. Used to cap
/// allocations sized by a sender-supplied record count.
pub(crate) const MIN_RECORD_LEN: usize = 7;

/// One record's fields, borrowed from the records area.
#[derive(Debug)]
pub(crate) struct RawRecord<'a> {
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Key bytes, none for null.
    pub key: Option<&'a [u8]>,
    /// Value bytes, none for null.
    pub value: Option<&'a [u8]>,
}

/// A borrowed header: key and optional value.
pub(crate) type RawHeader<'a> = (&'a str, Option<&'a [u8]>);

/// Reads records one at a time from an uncompressed records area.
#[derive(Debug)]
pub(crate) struct RecordsReader<'a> {
    area: &'a [u8],
    pos: usize,
    index: usize,
}

impl<'a> RecordsReader<'a> {
    /// A reader at the start of `area`.
    pub(crate) fn new(area: &'a [u8]) -> Self {
        RecordsReader { area, pos: 0, index: 0 }
    }

    /// The byte position in the area of the next record.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// An error about the record being read (or just read).
    pub(crate) fn error(&self, detail: String) -> RecordError {
        RecordError::BadRecord { index: self.index.saturating_sub(1), detail }
    }

    /// Decodes the next record; its headers replace the contents of `headers`, which the
    /// caller reuses across records to avoid an allocation per record.
    pub(crate) fn next_record(
        &mut self,
        headers: &mut Vec<RawHeader<'a>>,
    ) -> Result<RawRecord<'a>, RecordError> {
        let index = self.index;
        self.index += 1;
        let mut outer =
            Cursor { buf: self.area, pos: self.pos, index, what: "in the records area" };
        let len = outer.varint("record length")?;
        let len = usize::try_from(len)
            .map_err(|_| outer.error(format!("record length {len} is negative: expected >= 0")))?;
        let body = outer.take(len, "record length")?;
        self.pos = outer.pos;

        let mut c = Cursor { buf: body, pos: 0, index, what: "in the record" };
        c.take(1, "attributes")?;
        let timestamp_delta = c.varlong("timestamp delta")?;
        let offset_delta = c.varint("offset delta")?;
        let key = c.nullable("key length")?;
        let value = c.nullable("value length")?;
        let header_count = c.varint("header count")?;
        let header_count = usize::try_from(header_count).map_err(|_| {
            c.error(format!("header count {header_count} is negative: expected >= 0"))
        })?;
        headers.clear();
        // Each header takes at least two bytes, which caps what a bogus count can reserve.
        headers.reserve(header_count.min(c.remaining() / 2));
        for h in 0..header_count {
            let key = c.nullable("header key length")?.ok_or_else(|| {
                c.error(format!("header {h} has a null key: header keys must be present"))
            })?;
            let key = std::str::from_utf8(key)
                .map_err(|e| c.error(format!("header {h} key is not valid UTF-8 ({e})")))?;
            let value = c.nullable("header value length")?;
            headers.push((key, value));
        }
        if c.pos != body.len() {
            return Err(
                c.error(format!("record length {len} but its fields end after {} bytes", c.pos))
            );
        }
        Ok(RawRecord { timestamp_delta, offset_delta, key, value })
    }

    /// Checks that the records consumed the whole area.
    pub(crate) fn finish(self) -> Result<(), RecordError> {
        if self.pos != self.area.len() {
            return Err(RecordError::TrailingBytes {
                extra: self.area.len() - self.pos,
                count: self.index,
            });
        }
        Ok(())
    }
}

/// Bounds-checked reads within one region, with errors naming the record and field.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    index: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn error(&self, detail: String) -> RecordError {
        RecordError::BadRecord { index: self.index, detail }
    }

    fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let r = varint::get_varint(&self.buf[self.pos..]);
        self.advance(r, field)
    }

    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let r = varint::get_varlong(&self.buf[self.pos..]);
        self.advance(r, field)
    }

    fn advance<T>(
        &mut self,
        r: Result<(T, usize), VarintError>,
        field: &'static str,
    ) -> Result<T, RecordError> {
        match r {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(e) => {
                Err(self.error(format!("{e} for {field} at byte {} {}", self.pos, self.what)))
            }
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "{field} {n} exceeds the {} bytes left {}",
                self.remaining(),
                self.what
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A length-prefixed byte string where -1 means null.
    fn nullable(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint(field)? {
            -1 => Ok(None),
            n if n < -1 => {
                Err(self.error(format!("{field} {n} is invalid: expected -1 (null) or >= 0")))
            }
            n => self.take(n as usize, field).map(Some),
        }
    }
}
