//! An on-demand JSON scanner: it validates every byte it passes over against the JSON grammar
//! (RFC 8259) but materialises only the values a caller asks for, as borrowed slices.
//!
//! Sign-in records are 5-12 KB of which signin-radar needs a dozen short strings, so skipping
//! well is what matters. String interiors are scanned 16 bytes at a time with SSE2 (baseline on
//! x86_64), elsewhere with a table. Nesting is walked with an explicit bit stack, never with
//! recursion, so hostile depth costs neither stack nor time. UTF-8 validity is checked once
//! per unit by the caller (`simdutf8`), not here.

use std::borrow::Cow;

/// Deepest nesting accepted; real records nest about 5 levels.
pub const MAX_DEPTH: usize = 256;

/// Why a unit failed to scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Input ended in the middle of a value.
    Truncated,
    /// Anything else the grammar rejects.
    Syntax,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

pub type Result<T> = std::result::Result<T, JsonError>;

/// A string value as it appears between its quotes, escapes not yet resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStr<'a> {
    pub raw: &'a [u8],
    pub escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The string's value. Borrows unless it holds escapes. The scanner has already validated
    /// the escapes and the caller the UTF-8, so this cannot fail; a lone surrogate escape
    /// becomes U+FFFD.
    pub fn value(&self) -> Cow<'a, str> {
        if !self.escaped {
            // SAFETY: a `RawStr` is only made by `Scanner::string`, from a slice of a `&str`
            // between two ASCII quote bytes, which are char boundaries.
            return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(self.raw) });
        }
        Cow::Owned(unescape(self.raw))
    }

    /// Compares with an ASCII name, ignoring ASCII case.
    pub fn eq_ignore_case(&self, name: &str) -> bool {
        if self.escaped {
            return self.value().eq_ignore_ascii_case(name);
        }
        self.raw.eq_ignore_ascii_case(name.as_bytes())
    }
}

fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let mut v = 0;
    for &b in &s[..4] {
        v = v * 16 + hex_val(b)?;
    }
    Some(v)
}

/// Resolves the escapes of a validated JSON string interior.
fn unescape(raw: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else { break };
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&raw[i..]).unwrap_or(0xFFFD);
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate wants a following \uDC00-\uDFFF.
                    if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                        if let Some(lo) = hex4(&raw[i + 2..]) {
                            if (0xDC00..0xE000).contains(&lo) {
                                i += 6;
                                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                char::from_u32(cp).unwrap_or('\u{FFFD}')
                            } else {
                                '\u{FFFD}'
                            }
                        } else {
                            '\u{FFFD}'
                        }
                    } else {
                        '\u{FFFD}'
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            _ => '\u{FFFD}',
        };
        let mut tmp = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
    }
    // Input bytes outside escapes were valid UTF-8 and escapes produce whole characters.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Per-block character masks, bit `i` for byte `i` of a 64-byte block.
#[derive(Clone, Copy, Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    ws: u64,
    op: u64,
    ctrl: u64,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks(block: &[u8; 64]) -> Masks {
    // SAFETY: SSE2 is part of the x86_64 baseline; the four unaligned loads stay inside
    // `block`, which is exactly 64 bytes.
    unsafe {
        use std::arch::x86_64::*;
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let ctl = _mm_set1_epi8(0x1F);
        let space = _mm_set1_epi8(b' ' as i8);
        let tab = _mm_set1_epi8(b'\t' as i8);
        let nl = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        let lower = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(b'{' as i8); // '[' | 0x20
        let close = _mm_set1_epi8(b'}' as i8); // ']' | 0x20
        let colon = _mm_set1_epi8(b':' as i8);
        let comma = _mm_set1_epi8(b',' as i8);
        let mut m = Masks::default();
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
            let sh = 16 * k as u32;
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << sh;
            m.quote |= bits(_mm_cmpeq_epi8(v, quote));
            m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
            m.ctrl |= bits(_mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
            m.ws |= bits(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, tab)),
                _mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, cr)),
            ));
            let folded = _mm_or_si128(v, lower);
            m.op |= bits(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close)),
                _mm_or_si128(_mm_cmpeq_epi8(v, colon), _mm_cmpeq_epi8(v, comma)),
            ));
        }
        m
    }
}

/// [`block_masks`] with AVX2: two 32-byte lanes instead of four 16-byte ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_masks_avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let ctl = _mm256_set1_epi8(0x1F);
    let lower = _mm256_set1_epi8(0x20);
    // Whitespace and operators by a nibble lookup (simdjson's approach): a byte is one of them
    // when it equals the table entry for its low nibble. Entries for other nibbles hold a value
    // whose low nibble differs, so nothing matches them; bytes >= 0x80 look up 0.
    let ws_table = _mm256_setr_epi8(
        0x20, 2, 1, 1, 1, 1, 1, 1, 1, 0x09, 0x0A, 1, 1, 0x0D, 1, 1, //
        0x20, 2, 1, 1, 1, 1, 1, 1, 1, 0x09, 0x0A, 1, 1, 0x0D, 1, 1,
    );
    // `[` and `]` fold onto `{` and `}` with | 0x20; `,` and `:` are unchanged by it.
    let op_table = _mm256_setr_epi8(
        1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0x3A, 0x7B, 0x2C, 0x7D, 1, 1, //
        1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0x3A, 0x7B, 0x2C, 0x7D, 1, 1,
    );
    // Masks of one 32-byte half, as five u32.
    let half = |k: usize| -> [u32; 5] {
        // SAFETY: `block` is 64 bytes and k is 0 or 1, so the load stays inside it.
        let v = _mm256_loadu_si256(block.as_ptr().add(32 * k) as *const __m256i);
        let ctrl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v);
        let ws = _mm256_cmpeq_epi8(v, _mm256_shuffle_epi8(ws_table, v));
        // Form feed and 0x1A fold onto `,` and `:`: control bytes are never operators.
        let op = _mm256_andnot_si256(
            ctrl,
            _mm256_cmpeq_epi8(_mm256_or_si256(v, lower), _mm256_shuffle_epi8(op_table, v)),
        );
        [
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, quote)) as u32,
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, backslash)) as u32,
            _mm256_movemask_epi8(ws) as u32,
            _mm256_movemask_epi8(op) as u32,
            _mm256_movemask_epi8(ctrl) as u32,
        ]
    };
    // LLVM turns `lo | hi << 32` of two movemasks into a 64 x i1 vector and lowers it byte by
    // byte on AVX2; passing the halves through an opaque join keeps them plain integers.
    let (lo, hi) = (half(0), half(1));
    let join = |a: u32, b: u32| std::hint::black_box(u64::from(a)) | (u64::from(b) << 32);
    Masks {
        quote: join(lo[0], hi[0]),
        backslash: join(lo[1], hi[1]),
        ws: join(lo[2], hi[2]),
        op: join(lo[3], hi[3]),
        ctrl: join(lo[4], hi[4]),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn block_masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b' ' => m.ws |= bit,
            b'\t' | b'\n' | b'\r' => m.ws |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => m.op |= bit,
            _ => {}
        }
        if b < 0x20 {
            m.ctrl |= bit;
        }
    }
    m
}

/// Bits of characters escaped by a backslash (simdjson's odd-backslash-run algorithm).
/// `prev` carries whether the first byte of the next block is escaped.
#[inline(always)]
fn find_escaped(backslash: u64, prev: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*prev;
    let follows = (backslash << 1) | *prev;
    let odd_starts = backslash & !EVEN & !follows;
    let (seq_even, overflow) = odd_starts.overflowing_add(backslash);
    *prev = u64::from(overflow);
    let invert = seq_even << 1;
    (EVEN ^ invert) & follows
}

/// Each bit set to the XOR of itself and all lower bits: the inside of quote pairs.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Stage one: finds every token of a unit 64 bytes at a time and checks what only bytes can
/// tell (raw control characters and bad escapes in strings, unterminated strings). Tokens are
/// the positions of structural characters and every unescaped quote outside and closing
/// strings, and of the first byte of each other run (numbers, literals, garbage). Stage two
/// ([`Scanner`]) checks the grammar over the tokens.
pub fn index(buf: &[u8], idx: &mut Index) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0 = not probed yet, 1 = SSE2 only, 2 = AVX2.
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        let mut level = LEVEL.load(Ordering::Relaxed);
        if level == 0 {
            level = if std::is_x86_feature_detected!("avx2") {
                2
            } else {
                1
            };
            LEVEL.store(level, Ordering::Relaxed);
        }
        if level == 2 {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { index_avx2(buf, idx) };
        }
    }
    index_impl(buf, idx, block_masks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn index_avx2(buf: &[u8], idx: &mut Index) -> Result<()> {
    // SAFETY: only called when the CPU has AVX2.
    index_impl(buf, idx, |b| unsafe { block_masks_avx2(b) })
}

#[inline(always)]
fn index_impl(buf: &[u8], idx: &mut Index, block_masks: impl Fn(&[u8; 64]) -> Masks) -> Result<()> {
    idx.tokens.clear();
    idx.escapes.clear();
    idx.len = buf.len();
    let out = &mut idx.tokens;
    if buf.len() > u32::MAX as usize {
        return Err(JsonError::Syntax);
    }
    let mut prev_escaped = 0u64;
    let mut prev_in_string = 0u64;
    let mut prev_scalar = 0u64;
    let mut base = 0usize;
    let mut tail = [b' '; 64];
    while base < buf.len() {
        let block: &[u8; 64] = if base + 64 <= buf.len() {
            buf[base..base + 64].try_into().expect("64 bytes")
        } else {
            let n = buf.len() - base;
            tail[..n].copy_from_slice(&buf[base..]);
            &tail
        };
        let m = block_masks(block);
        let escaped = find_escaped(m.backslash, &mut prev_escaped);
        let quote = m.quote & !escaped;
        let in_string = prefix_xor(quote) ^ prev_in_string;
        prev_in_string = ((in_string as i64) >> 63) as u64;
        // Byte-level errors end the scan; the tokens before them are kept so that the caller
        // can tell which problem a left-to-right reading meets first (see `first_error`).
        let mut error: Option<(u64, JsonError)> = None;
        let bad_ctrl = m.ctrl & in_string;
        if bad_ctrl != 0 {
            error = Some((bad_ctrl.trailing_zeros() as u64, JsonError::Syntax));
        }
        let string_escapes = escaped & in_string;
        if string_escapes != 0 {
            if let Err((p, e)) = check_escapes(buf, base, string_escapes) {
                let p = (p - base) as u64;
                if error.is_none_or(|(q, _)| p < q) {
                    error = Some((p, e));
                }
            }
            let mut e = string_escapes;
            while e != 0 {
                idx.escapes
                    .push((base + e.trailing_zeros() as usize) as u32);
                e &= e - 1;
            }
        }
        let outside = !(in_string | quote);
        let structural = m.op & outside;
        let scalar = outside & !m.ws & !m.op;
        let scalar_start = scalar & !((scalar << 1) | prev_scalar);
        prev_scalar = scalar >> 63;
        let mut tokens = structural | quote | scalar_start;
        if let Some((p, _)) = error {
            tokens &= (1u64 << p) - 1;
        }
        // simdjson's flattening: write positions eight at a time without a data-dependent loop
        // exit (the slots past the count are scratch), which keeps branch mispredictions low.
        let n = tokens.count_ones() as usize;
        out.reserve(64);
        let len = out.len();
        let dst = out.spare_capacity_mut().as_mut_ptr();
        let base32 = base as u32;
        let mut k = 0;
        while k < n {
            for j in 0..8 {
                // SAFETY: k + j < 64 and 64 spare slots were reserved; slots written past `n`
                // are never exposed (set_len below covers `n` only). `base` fits in u32 as
                // the buffer length was checked.
                unsafe { (*dst.add(k + j)).write(base32.wrapping_add(tokens.trailing_zeros())) };
                tokens &= tokens.wrapping_sub(1);
            }
            k += 8;
        }
        // SAFETY: the first `n` spare slots were just written.
        unsafe { out.set_len(len + n) };
        if let Some((_, e)) = error {
            return Err(e);
        }
        base += 64;
    }
    if prev_in_string != 0 {
        return Err(JsonError::Truncated);
    }
    Ok(())
}

/// The problem a strict left-to-right reading of `text` meets first, given that [`index`]
/// failed with `stage_one`: a grammar error or excess depth among the tokens before the
/// byte-level error wins over it.
pub fn first_error(text: &str, idx: &Index, stage_one: JsonError) -> JsonError {
    let mut s = Scanner::new(text, idx);
    match s.skip(0) {
        Err(e @ (JsonError::Syntax | JsonError::TooDeep)) => e,
        // Everything before the error reads well, or ran out where the error starts.
        Ok(()) if !s.at_end() => JsonError::Syntax,
        _ => stage_one,
    }
}

/// Tokens of one unit, from [`index`]; reuse one across units to save allocations.
#[derive(Default, Debug)]
pub struct Index {
    /// Length of the buffer the tokens belong to.
    len: usize,
    tokens: Vec<u32>,
    /// Positions of escaped characters inside strings, ascending (usually none).
    escapes: Vec<u32>,
}

/// Checks the characters after backslashes inside strings (bits of `escaped`, block at `base`).
#[cold]
fn check_escapes(
    buf: &[u8],
    base: usize,
    mut escaped: u64,
) -> std::result::Result<(), (usize, JsonError)> {
    while escaped != 0 {
        let p = base + escaped.trailing_zeros() as usize;
        escaped &= escaped - 1;
        let fail = |e| Err((p, e));
        match buf.get(p) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
            Some(b'u') => {
                let digits = buf.get(p + 1..p + 5);
                match digits {
                    Some(d) if d.iter().all(u8::is_ascii_hexdigit) => {}
                    Some(_) => return fail(JsonError::Syntax),
                    None => {
                        return fail(if buf[p + 1..].iter().all(u8::is_ascii_hexdigit) {
                            JsonError::Truncated
                        } else {
                            JsonError::Syntax
                        })
                    }
                }
            }
            // Past the end: the string is unterminated.
            None => return fail(JsonError::Truncated),
            Some(_) => return fail(JsonError::Syntax),
        }
    }
    Ok(())
}

/// What kind of value starts at the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// Stage two: a cursor over the tokens of one unit (an NDJSON line or a whole document).
pub struct Scanner<'a, 't> {
    buf: &'a [u8],
    tok: &'t [u32],
    escapes: &'t [u32],
    i: usize,
}

/// Bytes that may follow a number or literal.
#[inline]
fn is_delimiter(b: Option<&u8>) -> bool {
    matches!(
        b,
        None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'{' | b'}' | b'[' | b']' | b'"')
    )
}

impl<'a, 't> Scanner<'a, 't> {
    /// A scanner over `text`, whose tokens [`index`] wrote to `idx`. Taking `&str` keeps the
    /// promise [`RawStr::value`] relies on: every string slice is valid UTF-8.
    pub fn new(text: &'a str, idx: &'t Index) -> Self {
        assert_eq!(
            idx.len,
            text.len(),
            "an index belongs to the text it was made from"
        );
        Scanner {
            buf: text.as_bytes(),
            tok: &idx.tokens,
            escapes: &idx.escapes,
            i: 0,
        }
    }

    #[inline]
    fn byte(&self) -> Option<u8> {
        // SAFETY: `index` only records positions inside the buffer, and `new` checked that the
        // index belongs to this buffer.
        self.tok
            .get(self.i)
            .map(|&p| unsafe { *self.buf.get_unchecked(p as usize) })
    }

    /// The kind of the next value.
    #[inline]
    pub fn peek_kind(&mut self) -> Result<Kind> {
        match self.byte() {
            None => Err(JsonError::Truncated),
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(_) => Err(JsonError::Syntax),
        }
    }

    /// True when no token remains.
    pub fn at_end(&mut self) -> bool {
        self.i >= self.tok.len()
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Result<()> {
        match self.byte() {
            Some(c) if c == b => {
                self.i += 1;
                Ok(())
            }
            None => Err(JsonError::Truncated),
            Some(_) => Err(JsonError::Syntax),
        }
    }

    /// Reads a string.
    #[inline]
    pub fn string(&mut self) -> Result<RawStr<'a>> {
        self.expect(b'"')?;
        // Stage one guarantees a closing quote token follows an opening one.
        let open = self.tok[self.i - 1] as usize;
        let close = *self.tok.get(self.i).ok_or(JsonError::Truncated)? as usize;
        self.i += 1;
        let raw = &self.buf[open + 1..close];
        let escaped = !self.escapes.is_empty() && {
            let k = self.escapes.partition_point(|&e| (e as usize) <= open);
            self.escapes.get(k).is_some_and(|&e| (e as usize) < close)
        };
        Ok(RawStr { raw, escaped })
    }

    /// Reads a number and returns its text.
    #[inline]
    pub fn number(&mut self) -> Result<&'a [u8]> {
        let Some(&p) = self.tok.get(self.i) else {
            return Err(JsonError::Truncated);
        };
        let start = p as usize;
        let buf = self.buf;
        let mut i = start;
        let at_end = |i: usize| {
            if i >= buf.len() {
                JsonError::Truncated
            } else {
                JsonError::Syntax
            }
        };
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(buf.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return Err(at_end(i)),
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            let d = i;
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == d {
                return Err(at_end(i));
            }
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let d = i;
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == d {
                return Err(at_end(i));
            }
        }
        if !is_delimiter(buf.get(i)) {
            return Err(JsonError::Syntax);
        }
        self.i += 1;
        Ok(&buf[start..i])
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        let Some(&p) = self.tok.get(self.i) else {
            return Err(JsonError::Truncated);
        };
        let pos = p as usize;
        let end = pos + word.len();
        if end <= self.buf.len() {
            if &self.buf[pos..end] == word && is_delimiter(self.buf.get(end)) {
                self.i += 1;
                return Ok(());
            }
            return Err(JsonError::Syntax);
        }
        // Shorter than the word: a truncation if what is there is a prefix of it.
        if word.starts_with(&self.buf[pos..]) {
            Err(JsonError::Truncated)
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool> {
        match self.byte() {
            Some(b't') => self.literal(b"true").map(|_| true),
            Some(b'f') => self.literal(b"false").map(|_| false),
            None => Err(JsonError::Truncated),
            Some(_) => Err(JsonError::Syntax),
        }
    }

    /// Walks the members of an object (cursor on `{`). `f` receives each key and must consume
    /// its value: read it with a typed method or pass it to [`Scanner::skip`].
    #[inline]
    pub fn object<F>(&mut self, depth: usize, mut f: F) -> Result<()>
    where
        F: FnMut(&mut Self, RawStr<'a>, usize) -> Result<()>,
    {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.expect(b'{')?;
        if self.byte() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            f(self, key, depth + 1)?;
            match self.byte() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return Err(JsonError::Truncated),
                Some(_) => return Err(JsonError::Syntax),
            }
        }
    }

    /// Walks the items of an array (cursor on `[`); `f` must consume each item.
    #[inline]
    pub fn array<F>(&mut self, depth: usize, mut f: F) -> Result<()>
    where
        F: FnMut(&mut Self, usize) -> Result<()>,
    {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.expect(b'[')?;
        if self.byte() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            f(self, depth + 1)?;
            match self.byte() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return Err(JsonError::Truncated),
                Some(_) => return Err(JsonError::Syntax),
            }
        }
    }

    /// Validates and passes over one value of any kind, at nesting `depth`.
    #[inline]
    pub fn skip(&mut self, depth: usize) -> Result<()> {
        // Most skipped values are strings: two tokens, nothing to check (stage one did).
        if self.byte() == Some(b'"') && self.i + 1 < self.tok.len() {
            self.i += 2;
            return Ok(());
        }
        self.skip_any(depth)
    }

    /// Passes over an object key and its colon: three tokens.
    #[inline(always)]
    fn key(&mut self) -> Result<()> {
        if self.byte() != Some(b'"') {
            return Err(if self.at_end() {
                JsonError::Truncated
            } else {
                JsonError::Syntax
            });
        }
        self.i += 2;
        self.expect(b':')
    }

    fn skip_any(&mut self, depth: usize) -> Result<()> {
        // One bit per open container: 1 = object, 0 = array.
        let mut stack = [0u64; MAX_DEPTH / 64];
        let mut level = 0usize;
        'value: loop {
            // Expect a value.
            match self.byte() {
                Some(b'"') => {
                    // Opening and closing quote tokens.
                    if self.i + 1 >= self.tok.len() {
                        return Err(JsonError::Truncated);
                    }
                    self.i += 2;
                }
                Some(open @ (b'{' | b'[')) => {
                    if depth + level >= MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    let is_obj = open == b'{';
                    let (w, bit) = (level / 64, 1u64 << (level % 64));
                    if is_obj {
                        stack[w] |= bit;
                    } else {
                        stack[w] &= !bit;
                    }
                    level += 1;
                    self.i += 1;
                    let close = if is_obj { b'}' } else { b']' };
                    if self.byte() == Some(close) {
                        self.i += 1;
                        level -= 1;
                    } else {
                        if is_obj {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                None => return Err(JsonError::Truncated),
                Some(_) => return Err(JsonError::Syntax),
            }
            // After a value: close containers or move to the next member.
            loop {
                if level == 0 {
                    return Ok(());
                }
                let top = level - 1;
                let in_obj = stack[top / 64] & (1u64 << (top % 64)) != 0;
                match self.byte() {
                    Some(b',') => {
                        self.i += 1;
                        if in_obj {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_obj => {
                        self.i += 1;
                        level -= 1;
                    }
                    Some(b']') if !in_obj => {
                        self.i += 1;
                        level -= 1;
                    }
                    None => return Err(JsonError::Truncated),
                    Some(_) => return Err(JsonError::Syntax),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(s: &[u8]) -> Result<()> {
        let mut idx = Index::default();
        let text = std::str::from_utf8(s).map_err(|_| JsonError::Syntax)?;
        if let Err(e) = index(s, &mut idx) {
            return Err(first_error(text, &idx, e));
        }
        let mut sc = Scanner::new(text, &idx);
        sc.skip(0)?;
        if sc.at_end() {
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    #[test]
    fn grammar_table() {
        use JsonError::*;
        let cases: &[(&[u8], Result<()>)] = &[
            (b"{}", Ok(())),
            (b" [ ] ", Ok(())),
            (b"{\"a\":[1,-2.5e+3,true,false,null,\"x\"]}", Ok(())),
            (b"{\"a\":{\"b\":{\"c\":[[],{}]}}}", Ok(())),
            (b"\"\\u00e9\\n\\\"\"", Ok(())),
            (b"0", Ok(())),
            (b"-0.0e0", Ok(())),
            (b"{", Err(Truncated)),
            (b"{\"a\"", Err(Truncated)),
            (b"{\"a\":", Err(Truncated)),
            (b"{\"a\":1", Err(Truncated)),
            (b"[1,", Err(Truncated)),
            (b"\"abc", Err(Truncated)),
            (b"\"abc\\", Err(Truncated)),
            (b"\"\\u00", Err(Truncated)),
            (b"tru", Err(Truncated)),
            (b"[1.", Err(Truncated)),
            (b"{]", Err(Syntax)),
            (b"[}", Err(Syntax)),
            (b"{\"a\":1,}", Err(Syntax)),
            (b"[1,]", Err(Syntax)),
            (b"[01]", Err(Syntax)),
            (b"[1.e5]", Err(Syntax)),
            (b"[+1]", Err(Syntax)),
            (b"\"a\x00b\"", Err(Syntax)),
            (b"\"a\tb\"", Err(Syntax)),
            (b"\"\\x\"", Err(Syntax)),
            (b"\"\\u12G4\"", Err(Syntax)),
            (b"{a:1}", Err(Syntax)),
            (b"[trux]", Err(Syntax)),
            (b"nul", Err(Truncated)),
            (b"{} {}", Err(Syntax)),
            (b"[1 2]", Err(Syntax)),
            (b"{\"a\" 1}", Err(Syntax)),
            (b"[1\x0c2]", Err(Syntax)),
            // The first problem from the left wins over a later byte-level one.
            (b"{\"a\" x \"b", Err(Syntax)),
            (b"[1 2, \"abc", Err(Syntax)),
            (b"[1, \"a\x01\"", Err(Syntax)),
            (b"[1, \"a\\u00", Err(Truncated)),
            (b"[1; \"a\\u00", Err(Syntax)),
            (b"{\"a\":\"b\x01\"}", Err(Syntax)),
            (b"{\"a\"\x1a1}", Err(Syntax)),
            (b"[1,\x0b2]", Err(Syntax)),
            (b"\xa0[]", Err(Syntax)),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Every byte value is classified alike by each mask implementation and a plain match.
    #[test]
    fn block_masks_agree_for_every_byte() {
        for b in 0..=255u8 {
            let mut block = [b' '; 64];
            block[5] = b;
            block[40] = b;
            let want = |m: Masks| {
                (
                    m.quote >> 5 & 1,
                    m.backslash >> 5 & 1,
                    m.ws >> 40 & 1,
                    m.op >> 40 & 1,
                    m.ctrl >> 5 & 1,
                )
            };
            let exp = (
                u64::from(b == b'"'),
                u64::from(b == b'\\'),
                u64::from(matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
                u64::from(matches!(b, b'{' | b'}' | b'[' | b']' | b':' | b',')),
                u64::from(b < 0x20),
            );
            assert_eq!(want(block_masks(&block)), exp, "sse2 byte {b:#x}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present (checked on the line above).
                let m = unsafe { block_masks_avx2(&block) };
                assert_eq!(want(m), exp, "avx2 byte {b:#x}");
            }
        }
    }

    #[test]
    fn depth_is_capped_without_recursion() {
        let deep = "[".repeat(200_000);
        assert_eq!(validate(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(validate(ok.as_bytes()), Ok(()));
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(validate(over.as_bytes()), Err(JsonError::TooDeep));
        let objs = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
        assert_eq!(validate(objs.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn unescape_table() {
        let cases: &[(&str, &str)] = &[
            ("user\\u0040contoso.com", "user@contoso.com"),
            ("a\\\"b\\\\c\\/d", "a\"b\\c/d"),
            ("\\n\\r\\t\\b\\f", "\n\r\t\u{8}\u{c}"),
            ("\\u00e9t\\u00E9", "été"),
            ("\\ud83d\\ude00", "😀"),
            ("\\ud83d", "\u{FFFD}"),
            ("\\ude00x", "\u{FFFD}x"),
            ("plain é", "plain é"),
        ];
        for (raw, want) in cases {
            let quoted = format!("\"{raw}\"");
            let mut idx = Index::default();
            index(quoted.as_bytes(), &mut idx).unwrap();
            let mut sc = Scanner::new(&quoted, &idx);
            let s = sc.string().unwrap();
            assert_eq!(s.value(), *want, "raw {raw}");
        }
    }

    #[test]
    fn long_strings_cross_simd_blocks() {
        for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 3_000_000] {
            let s = format!("[\"{}\",\"{}\\u0041\"]", "x".repeat(n), "y".repeat(n));
            assert_eq!(validate(s.as_bytes()), Ok(()), "len {n}");
            let bad = format!("[\"{}\u{1}\"]", "x".repeat(n));
            assert_eq!(validate(bad.as_bytes()), Err(JsonError::Syntax), "len {n}");
        }
    }

    /// Validity agrees with serde_json on random token soup (no `\u` escapes: serde_json
    /// rejects lone surrogates, which RFC 8259's grammar allows).
    #[test]
    fn agrees_with_serde_json_on_random_inputs() {
        use rand::{Rng, SeedableRng};
        let alphabet: &[&str] = &[
            "{", "}", "[", "]", ":", ",", "\"", "\\", "\\n", "a", "1", "-", ".", "e", "0", "true",
            "false", "null", " ", "\n", "x", "\"k\":", "\"v\"", "é", "\t", "\u{1}",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut agree = 0;
        for _ in 0..60_000 {
            let n = rng.gen_range(0..24);
            let s: String = (0..n)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let ours = validate(s.as_bytes()).is_ok();
            let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok();
            assert_eq!(ours, theirs, "input {s:?}");
            agree += usize::from(ours);
        }
        assert!(
            agree > 300,
            "the generator made too few valid documents: {agree}"
        );
    }

    #[test]
    fn escapes_match_a_byte_by_byte_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20_000 {
            let len = rng.gen_range(1..200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| [b'\\', b'\\', b'a', b'"'][rng.gen_range(0..4)])
                .collect();
            // Reference: a byte is escaped when an odd run of backslashes precedes it.
            let mut want = vec![false; len];
            let mut run = 0;
            for i in 0..len {
                want[i] = run % 2 == 1;
                run = if bytes[i] == b'\\' && !want[i] {
                    run + 1
                } else {
                    0
                };
                if want[i] {
                    run = 0;
                }
            }
            let mut prev = 0;
            let mut got = Vec::new();
            for chunk in bytes.chunks(64) {
                let mut bs = 0u64;
                for (i, b) in chunk.iter().enumerate() {
                    if *b == b'\\' {
                        bs |= 1 << i;
                    }
                }
                let e = find_escaped(bs, &mut prev);
                got.extend((0..chunk.len()).map(|i| e >> i & 1 == 1));
            }
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn object_walk_yields_keys_in_order() {
        let text = r#"{"a":1,"b\u0041":{"c":[2]},"d":"e"}"#;
        let mut idx = Index::default();
        index(text.as_bytes(), &mut idx).unwrap();
        let mut sc = Scanner::new(text, &idx);
        let mut keys = Vec::new();
        sc.object(0, |s, k, d| {
            keys.push(k.value().into_owned());
            s.skip(d)
        })
        .unwrap();
        assert_eq!(keys, ["a", "bA", "d"]);
        assert!(sc.at_end());
    }
}
