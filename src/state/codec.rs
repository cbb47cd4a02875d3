//! The byte encoding of snapshots: little-endian fixed-width integers, LEB128 varints (zigzag
//! for signed values), length-prefixed byte strings, and sections framed by a tag byte and a
//! u64 length.
//!
//! [`Reader`] never panics and never trusts a length: a count is accepted only when the bytes
//! left could hold that many items, so a corrupted length cannot cause a huge allocation.

/// Why bytes do not decode. Positions are byte offsets from the start of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated at byte {at}: {need} more bytes needed")]
    Truncated { at: usize, need: usize },
    #[error("varint longer than 64 bits at byte {at}")]
    Overflow { at: usize },
    #[error("count {count} at byte {at} is more than the {remaining} bytes left can hold")]
    Count {
        at: usize,
        count: u64,
        remaining: usize,
    },
    #[error("string at byte {at} is not UTF-8")]
    Utf8 { at: usize },
    #[error("expected section {expected} at byte {at}, found {found}")]
    Section { at: usize, expected: u8, found: u8 },
    #[error("{left} unexpected bytes at byte {at}")]
    Trailing { at: usize, left: usize },
    #[error("{what} at byte {at}")]
    Invalid { at: usize, what: &'static str },
}

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

/// Where a section's length goes, from [`Writer::begin_section`].
#[must_use]
pub struct SectionMark(usize);

impl Writer {
    /// A writer with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.raw(&v.to_le_bytes());
    }

    pub fn u128(&mut self, v: u128) {
        self.raw(&v.to_le_bytes());
    }

    /// LEB128, 1 to 10 bytes.
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A `usize` as a varint.
    pub fn len_var(&mut self, v: usize) {
        self.var(v as u64);
    }

    /// Zigzag then LEB128: small magnitudes of either sign stay short.
    pub fn var_i(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }

    /// A flag byte, then the value (zigzag varint) when present.
    pub fn opt_i(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.var_i(v);
            }
        }
    }

    /// Length (varint), then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.len_var(b.len());
        self.raw(b);
    }

    /// Writes the tag and room for the length; close with [`Writer::end_section`].
    pub fn begin_section(&mut self, tag: u8) -> SectionMark {
        self.u8(tag);
        let at = self.buf.len();
        self.u64(0);
        SectionMark(at)
    }

    /// Fills in the length of the section begun at `mark`.
    pub fn end_section(&mut self, mark: SectionMark) {
        let len = (self.buf.len() - mark.0 - 8) as u64;
        self.buf[mark.0..mark.0 + 8].copy_from_slice(&len.to_le_bytes());
    }
}

/// Reads encoded values from a byte slice; every method checks the bytes left first.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole input, for error positions.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// Offset in the whole input.
    pub fn at(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error about the value just read.
    pub fn invalid(&self, what: &'static str) -> CodecError {
        CodecError::Invalid {
            at: self.at(),
            what,
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                at: self.at(),
                need: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn u128(&mut self) -> Result<u128, CodecError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    pub fn var(&mut self) -> Result<u64, CodecError> {
        let start = self.at();
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(CodecError::Overflow { at: start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CodecError::Overflow { at: start })
    }

    pub fn var_i(&mut self) -> Result<i64, CodecError> {
        let z = self.var()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    pub fn opt_i(&mut self) -> Result<Option<i64>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.var_i()?)),
            _ => Err(self.invalid("bad option flag")),
        }
    }

    /// A count of items each at least `min_bytes` long (at least 1): never more than the
    /// bytes left can hold.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, CodecError> {
        let at = self.at();
        let count = self.var()?;
        let most = self.remaining() / min_bytes.max(1);
        if count > most as u64 {
            return Err(CodecError::Count {
                at,
                count,
                remaining: self.remaining(),
            });
        }
        Ok(count as usize)
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// Length-prefixed UTF-8.
    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let at = self.at();
        std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::Utf8 { at })
    }

    /// The body of the next section, which must carry `tag`.
    pub fn section(&mut self, tag: u8) -> Result<Reader<'a>, CodecError> {
        let at = self.at();
        let found = self.u8()?;
        if found != tag {
            return Err(CodecError::Section {
                at,
                expected: tag,
                found,
            });
        }
        let len_at = self.at();
        let len = self.u64()?;
        if len > self.remaining() as u64 {
            return Err(CodecError::Truncated {
                at: len_at,
                need: (len - self.remaining() as u64)
                    .try_into()
                    .unwrap_or(usize::MAX),
            });
        }
        let base = self.at();
        let body = self.take(len as usize)?;
        Ok(Reader {
            buf: body,
            pos: 0,
            base,
        })
    }

    /// Checks that everything was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(CodecError::Trailing {
                at: self.at(),
                left,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_roundtrip() {
        let vars = [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ints = [0i64, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN];
        let mut w = Writer::default();
        for v in vars {
            w.var(v);
        }
        for v in ints {
            w.var_i(v);
            w.i64(v);
            w.opt_i(Some(v));
        }
        w.opt_i(None);
        w.u128(u128::MAX - 7);
        w.bytes(b"");
        w.bytes("é€".as_bytes());
        let m = w.begin_section(7);
        w.u32(0xDEAD_BEEF);
        w.end_section(m);

        let buf = w.into_inner();
        let mut r = Reader::new(&buf);
        for v in vars {
            assert_eq!(r.var(), Ok(v));
        }
        for v in ints {
            assert_eq!(r.var_i(), Ok(v));
            assert_eq!(r.i64(), Ok(v));
            assert_eq!(r.opt_i(), Ok(Some(v)));
        }
        assert_eq!(r.opt_i(), Ok(None));
        assert_eq!(r.u128(), Ok(u128::MAX - 7));
        assert_eq!(r.str(), Ok(""));
        assert_eq!(r.str(), Ok("é€"));
        let mut s = r.section(7).expect("section");
        assert_eq!(s.u32(), Ok(0xDEAD_BEEF));
        assert_eq!(s.finish(), Ok(()));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn varint_sizes() {
        for (v, n) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            let mut w = Writer::default();
            w.var(v);
            assert_eq!(w.len(), n, "{v}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        type Case = (&'static [u8], fn(&mut Reader<'_>) -> Result<(), CodecError>);
        let cases: &[Case] = &[
            (b"", |r| r.u8().map(drop)),
            (b"\x01\x02\x03", |r| r.u32().map(drop)),
            (b"\x80\x80", |r| r.var().map(drop)),
            // 11 continuation bytes, and a 10th byte above 1: both more than 64 bits.
            (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", |r| {
                r.var().map(drop)
            }),
            (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", |r| {
                r.var().map(drop)
            }),
            // A length far past the end: refused before any allocation.
            (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", |r| {
                r.bytes().map(drop)
            }),
            (b"\x05abc", |r| r.bytes().map(drop)),
            (b"\x02\xff\xfe", |r| r.str().map(drop)),
            (b"\x03", |r| r.count(1).map(drop)),
            (b"\x02\x00\x00", |r| r.count(2).map(drop)),
            (b"\x02", |r| r.opt_i().map(drop)),
            (b"\x01\x00", |r| r.section(2).map(drop)),
            (b"\x01\x09\x00\x00\x00\x00\x00\x00\x00", |r| {
                r.section(1).map(drop)
            }),
            (b"\x01\xff\xff\xff\xff\xff\xff\xff\xff", |r| {
                r.section(1).map(drop)
            }),
            (b"\x00\x00", |r| {
                r.u8()?;
                r.finish()
            }),
        ];
        for (i, (input, f)) in cases.iter().enumerate() {
            let mut r = Reader::new(input);
            assert!(f(&mut r).is_err(), "case {i} should fail");
        }
    }

    #[test]
    fn counts_bounded_by_remaining_bytes() {
        let mut w = Writer::default();
        w.var(4);
        w.raw(&[0; 8]);
        let buf = w.into_inner();
        assert_eq!(Reader::new(&buf).count(2), Ok(4));
        assert!(matches!(
            Reader::new(&buf).count(3),
            Err(CodecError::Count { count: 4, .. })
        ));
    }

    #[test]
    fn section_errors_point_into_the_whole_input() {
        let mut w = Writer::default();
        w.u8(9);
        let m = w.begin_section(1);
        w.u8(0x80);
        w.end_section(m);
        let buf = w.into_inner();
        let mut r = Reader::new(&buf);
        r.u8().expect("u8");
        let mut s = r.section(1).expect("section");
        assert_eq!(s.var(), Err(CodecError::Truncated { at: 11, need: 1 }));
    }
}
