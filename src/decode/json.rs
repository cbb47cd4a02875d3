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
    /// `{` or `[`.
    open: u64,
    /// `}` or `]`.
    close: u64,
    /// Bit 0x20 of the byte: tells `{}` from `[]`.
    curly: u64,
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
            let o = _mm_cmpeq_epi8(folded, open);
            let c = _mm_cmpeq_epi8(folded, close);
            m.open |= bits(o);
            m.close |= bits(c);
            m.curly |= bits(_mm_slli_epi16(v, 2));
            m.op |= bits(_mm_or_si128(
                _mm_or_si128(o, c),
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
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    // Masks of one 32-byte half, as u32.
    let half = |k: usize| -> [u32; 8] {
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
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_or_si256(v, lower), open)) as u32,
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_or_si256(v, lower), close)) as u32,
            // Bit 0x20 of each byte, moved to its top bit (16-bit lanes: no byte crosses over
            // into another's top bit).
            _mm256_movemask_epi8(_mm256_slli_epi16(v, 2)) as u32,
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
        open: join(lo[5], hi[5]),
        close: join(lo[6], hi[6]),
        curly: join(lo[7], hi[7]),
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
        match b {
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
        if b & 0x20 != 0 {
            m.curly |= bit;
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

/// Which mask implementation this CPU runs: 1 = SSE2 (or portable), 2 = AVX2.
#[inline]
fn simd_level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
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
        level
    }
    #[cfg(not(target_arch = "x86_64"))]
    1
}

/// Checks the characters after backslashes inside strings (bits of `escaped`, block at `base`);
/// on failure, the position of the first bad one.
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
            Some(b'u') => match buf.get(p + 1..p + 5) {
                Some(d) if d.iter().all(u8::is_ascii_hexdigit) => {}
                Some(_) => return fail(JsonError::Syntax),
                None => {
                    return fail(if buf[p + 1..].iter().all(u8::is_ascii_hexdigit) {
                        JsonError::Truncated
                    } else {
                        JsonError::Syntax
                    })
                }
            },
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

/// Bytes that may follow a number or literal.
#[inline]
fn is_delimiter(b: Option<&u8>) -> bool {
    matches!(
        b,
        None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'{' | b'}' | b'[' | b']' | b'"')
    )
}

/// Bits strictly above bit `q`.
#[inline]
fn above(q: u32) -> u64 {
    if q >= 63 {
        0
    } else {
        !0u64 << (q + 1)
    }
}

/// A cursor over the tokens of one unit (an NDJSON line or a whole document).
///
/// Stage one runs lazily, 64 bytes at a time, as the cursor needs them: it classifies bytes
/// with SIMD, finds strings (escapes, quotes) and checks what only bytes can tell (raw control
/// characters and bad escapes in strings, unterminated strings). Tokens are the positions of
/// structural characters, of every unescaped quote (opening and closing), and of the first
/// byte of each other run (numbers, literals, garbage). Stage two, the methods, checks the
/// grammar over the tokens, left to right, so the first problem from the left is the one
/// reported.
///
/// [`Scanner::skip_unread`] passes over containers nobody reads by bracket counting on the
/// block masks alone: strings, escapes, control characters and bracket balance are checked
/// there, the order of commas and colons is not (simdjson's On-Demand makes the same trade).
pub struct Scanner<'a> {
    buf: &'a [u8],
    level: u8,
    /// Start of the current block.
    base: usize,
    /// Start of the next block to load.
    next: usize,
    /// Tokens of the current block not yet consumed.
    bits: u64,
    /// All tokens and brackets of the current block.
    block_tokens: u64,
    open: u64,
    close: u64,
    curly: u64,
    prev_escaped: u64,
    prev_in_string: u64,
    prev_scalar: u64,
    /// A byte-level error in the current block (offset, error): tokens stop before it.
    pending: Option<(u32, JsonError)>,
    /// Input ended inside a string.
    unterminated: bool,
    /// Absolute positions of escaped characters inside strings, ascending (usually none).
    escapes: Vec<u32>,
}

impl<'a> Scanner<'a> {
    /// A scanner over `text`. Taking `&str` keeps the promise [`RawStr::value`] relies on:
    /// every string slice is valid UTF-8. Units over 4 GiB are refused by their sources.
    pub fn new(text: &'a str) -> Self {
        Scanner {
            buf: text.as_bytes(),
            level: simd_level(),
            base: 0,
            next: 0,
            bits: 0,
            block_tokens: 0,
            open: 0,
            close: 0,
            curly: 0,
            prev_escaped: 0,
            prev_in_string: 0,
            prev_scalar: 0,
            pending: None,
            unterminated: false,
            escapes: Vec::new(),
        }
    }

    /// Loads the next block; false at the end of the input or at a byte-level error.
    #[inline(always)]
    fn next_block(&mut self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.level == 2 {
            // SAFETY: level 2 means the CPU has AVX2 (see `simd_level`).
            return unsafe { self.next_block_avx2() };
        }
        self.next_block_with(block_masks)
    }

    /// [`Scanner::next_block`] compiled for AVX2, so that the mask code inlines.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn next_block_avx2(&mut self) -> bool {
        // SAFETY: this function only runs on CPUs with AVX2.
        self.next_block_with(|b| unsafe { block_masks_avx2(b) })
    }

    #[inline(always)]
    fn next_block_with(&mut self, masks: impl Fn(&[u8; 64]) -> Masks) -> bool {
        if self.pending.is_some() {
            return false;
        }
        let base = self.next;
        let buf = self.buf;
        if base >= buf.len() {
            if self.prev_in_string != 0 {
                self.unterminated = true;
            }
            return false;
        }
        self.base = base;
        self.next = base + 64;
        let mut tail = [b' '; 64];
        let block: &[u8; 64] = if base + 64 <= buf.len() {
            buf[base..base + 64].try_into().expect("64 bytes")
        } else {
            let n = buf.len() - base;
            tail[..n].copy_from_slice(&buf[base..]);
            &tail
        };
        let m = masks(block);
        let escaped = find_escaped(m.backslash, &mut self.prev_escaped);
        let quote = m.quote & !escaped;
        let in_string = prefix_xor(quote) ^ self.prev_in_string;
        self.prev_in_string = ((in_string as i64) >> 63) as u64;

        let bad_ctrl = m.ctrl & in_string;
        if bad_ctrl != 0 {
            self.pending = Some((bad_ctrl.trailing_zeros(), JsonError::Syntax));
        }
        let string_escapes = escaped & in_string;
        if string_escapes != 0 {
            if let Err((p, e)) = check_escapes(buf, base, string_escapes) {
                let p = (p - base) as u32;
                if self.pending.is_none_or(|(q, _)| p < q) {
                    self.pending = Some((p, e));
                }
            }
            let mut e = string_escapes;
            while e != 0 {
                self.escapes
                    .push((base + e.trailing_zeros() as usize) as u32);
                e &= e - 1;
            }
        }
        let outside = !(in_string | quote);
        let structural = m.op & outside;
        let scalar = outside & !m.ws & !m.op;
        let scalar_start = scalar & !((scalar << 1) | self.prev_scalar);
        self.prev_scalar = scalar >> 63;
        let mut limit = !0u64;
        if let Some((p, _)) = self.pending {
            limit = (1u64 << p) - 1;
        }
        self.block_tokens = (structural | quote | scalar_start) & limit;
        self.bits = self.block_tokens;
        self.open = m.open & outside & limit;
        self.close = m.close & outside & limit;
        self.curly = m.curly;
        true
    }

    /// Position of the current token, loading blocks as needed.
    #[inline(always)]
    fn peek_pos(&mut self) -> Option<usize> {
        if self.bits == 0 && !self.refill() {
            return None;
        }
        Some(self.base + self.bits.trailing_zeros() as usize)
    }

    /// Loads blocks until one has a token; false when none is left.
    #[inline(never)]
    fn refill(&mut self) -> bool {
        while self.bits == 0 {
            if !self.next_block() {
                return false;
            }
        }
        true
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let p = self.peek_pos()?;
        Some(self.buf[p])
    }

    #[inline]
    fn bump(&mut self) {
        self.bits &= self.bits - 1;
    }

    /// Why no token is left: a byte-level error, or the input ended.
    fn end_error(&self) -> JsonError {
        match self.pending {
            Some((_, e)) => e,
            None => JsonError::Truncated,
        }
    }

    #[inline]
    fn unexpected(&mut self) -> JsonError {
        if self.peek_pos().is_some() {
            JsonError::Syntax
        } else {
            self.end_error()
        }
    }

    /// The kind of the next value.
    #[inline]
    pub fn peek_kind(&mut self) -> Result<Kind> {
        match self.byte() {
            None => Err(self.end_error()),
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(_) => Err(JsonError::Syntax),
        }
    }

    /// Checks that nothing but whitespace follows the value just read.
    pub fn finish(&mut self) -> Result<()> {
        if self.peek_pos().is_some() {
            return Err(JsonError::Syntax);
        }
        match self.pending {
            Some((_, e)) => Err(e),
            None if self.unterminated => Err(JsonError::Truncated),
            None => Ok(()),
        }
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Result<()> {
        match self.byte() {
            Some(c) if c == b => {
                self.bump();
                Ok(())
            }
            None => Err(self.end_error()),
            Some(_) => Err(JsonError::Syntax),
        }
    }

    /// Reads a string.
    #[inline]
    pub fn string(&mut self) -> Result<RawStr<'a>> {
        // Fast path: both quotes in the current block (most keys and values).
        let bits = self.bits;
        let rest = bits & bits.wrapping_sub(1);
        if rest != 0 {
            let open = self.base + bits.trailing_zeros() as usize;
            if self.buf[open] == b'"' {
                let close = self.base + rest.trailing_zeros() as usize;
                self.bits = rest & (rest - 1);
                return Ok(self.raw_str(open, close));
            }
        }
        self.string_slow()
    }

    #[inline]
    fn raw_str(&self, open: usize, close: usize) -> RawStr<'a> {
        let raw = &self.buf[open + 1..close];
        let escaped = !self.escapes.is_empty() && {
            let k = self.escapes.partition_point(|&e| (e as usize) <= open);
            self.escapes.get(k).is_some_and(|&e| (e as usize) < close)
        };
        RawStr { raw, escaped }
    }

    fn string_slow(&mut self) -> Result<RawStr<'a>> {
        let Some(open) = self.peek_pos() else {
            return Err(self.end_error());
        };
        if self.buf[open] != b'"' {
            return Err(JsonError::Syntax);
        }
        self.bump();
        // The next token is the closing quote: nothing inside a string is a token.
        let Some(close) = self.peek_pos() else {
            return Err(self.end_error());
        };
        self.bump();
        Ok(self.raw_str(open, close))
    }

    /// Reads a number and returns its text.
    #[inline]
    pub fn number(&mut self) -> Result<&'a [u8]> {
        let Some(start) = self.peek_pos() else {
            return Err(self.end_error());
        };
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
        self.bump();
        Ok(&buf[start..i])
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        let Some(pos) = self.peek_pos() else {
            return Err(self.end_error());
        };
        let end = pos + word.len();
        if end <= self.buf.len() {
            if &self.buf[pos..end] == word && is_delimiter(self.buf.get(end)) {
                self.bump();
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
            None => Err(self.end_error()),
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
            self.bump();
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            f(self, key, depth + 1)?;
            match self.byte() {
                Some(b',') => self.bump(),
                Some(b'}') => {
                    self.bump();
                    return Ok(());
                }
                None => return Err(self.end_error()),
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
            self.bump();
            return Ok(());
        }
        loop {
            f(self, depth + 1)?;
            match self.byte() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(());
                }
                None => return Err(self.end_error()),
                Some(_) => return Err(JsonError::Syntax),
            }
        }
    }

    /// Passes over a value nobody reads: strings and scalars are read as usual, containers
    /// are skipped by bracket counting (see the type's documentation for what that checks).
    #[inline]
    pub fn skip_unread(&mut self, depth: usize) -> Result<()> {
        match self.byte() {
            Some(b'{' | b'[') => self.skip_container(depth),
            _ => self.skip(depth),
        }
    }

    /// Bracket counting from the `{` or `[` at the cursor to its match.
    fn skip_container(&mut self, depth: usize) -> Result<()> {
        let Some(start) = self.peek_pos() else {
            return Err(self.end_error());
        };
        // One bit per open container: 1 = `{`, 0 = `[`.
        let mut stack = [0u64; MAX_DEPTH / 64];
        let mut level = 0usize;
        let mut from = (start - self.base) as u32;
        loop {
            let mut br = (self.open | self.close) & !((1u64 << from) - 1);
            while br != 0 {
                let q = br.trailing_zeros();
                br &= br - 1;
                let bit = 1u64 << q;
                let is_curly = self.curly & bit != 0;
                if self.open & bit != 0 {
                    if depth + level >= MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    let (w, b) = (level / 64, 1u64 << (level % 64));
                    if is_curly {
                        stack[w] |= b;
                    } else {
                        stack[w] &= !b;
                    }
                    level += 1;
                } else {
                    let top = level - 1;
                    let top_curly = stack[top / 64] & (1u64 << (top % 64)) != 0;
                    if top_curly != is_curly {
                        return Err(JsonError::Syntax);
                    }
                    level = top;
                    if level == 0 {
                        self.bits = self.block_tokens & above(q);
                        return Ok(());
                    }
                }
            }
            if !self.next_block() {
                return Err(if self.unterminated {
                    JsonError::Truncated
                } else {
                    self.end_error()
                });
            }
            from = 0;
        }
    }

    /// Validates and passes over one value of any kind, at nesting `depth`, token by token.
    #[inline]
    pub fn skip(&mut self, depth: usize) -> Result<()> {
        // Most skipped values are strings: two tokens, nothing more to check.
        if self.byte() == Some(b'"') {
            return self.string().map(|_| ());
        }
        self.skip_any(depth)
    }

    /// Passes over an object key and its colon.
    #[inline(always)]
    fn key(&mut self) -> Result<()> {
        if self.byte() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.string()?;
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
                    self.string()?;
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
                    self.bump();
                    let close = if is_obj { b'}' } else { b']' };
                    if self.byte() == Some(close) {
                        self.bump();
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
                None => return Err(self.end_error()),
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
                        self.bump();
                        if in_obj {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_obj => {
                        self.bump();
                        level -= 1;
                    }
                    Some(b']') if !in_obj => {
                        self.bump();
                        level -= 1;
                    }
                    None => return Err(self.end_error()),
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
        let text = std::str::from_utf8(s).map_err(|_| JsonError::Syntax)?;
        let mut sc = Scanner::new(text);
        sc.skip(0)?;
        sc.finish()
    }

    /// Like `validate`, but containers go through `skip_unread`.
    fn validate_unread(s: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(s).map_err(|_| JsonError::Syntax)?;
        let mut sc = Scanner::new(text);
        sc.skip_unread(0)?;
        sc.finish()
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

    /// Unread containers are skipped by bracket counting: strings, escapes, control
    /// characters, balance and bracket kinds are checked; comma and colon order is not.
    #[test]
    fn unread_containers_table() {
        use JsonError::*;
        let long = format!("[{}]", "\"abc\",".repeat(100) + "1");
        let cases: &[(&[u8], Result<()>)] = &[
            (b"{\"a\":[1,{\"b\":null}]}", Ok(())),
            (b"[\"]\", \"}\", \"\\\"]\"]", Ok(())),
            (long.as_bytes(), Ok(())),
            (b"[1 2]", Ok(())),
            (b"{\"a\" 1}", Ok(())),
            (b"[}", Err(Syntax)),
            (b"{\"a\":[1}", Err(Syntax)),
            (b"[[", Err(Truncated)),
            (b"[\"abc", Err(Truncated)),
            (b"[\"a\x01\"]", Err(Syntax)),
            (b"[\"a\\x\"]", Err(Syntax)),
            (b"[1,2] x", Err(Syntax)),
            (b"\"s\"", Ok(())),
            (b"tru", Err(Truncated)),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate_unread(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let deep = "[".repeat(300);
        assert_eq!(validate_unread(deep.as_bytes()), Err(TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(validate_unread(ok.as_bytes()), Ok(()));
    }

    /// What is valid JSON is never refused by the unread path, wherever block edges fall.
    #[test]
    fn unread_path_accepts_all_valid_json() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let pieces: &[&str] = &[
            "{\"k\":",
            "[",
            "]",
            "}",
            "\"v\"",
            "1",
            ",",
            "\"\\\"]\"",
            " ",
            "null",
            "\"{\"",
        ];
        let mut valid = 0;
        for _ in 0..30_000 {
            let n = rng.gen_range(1..40);
            let body: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            let s = format!("{}[{body}]", " ".repeat(rng.gen_range(0..70)));
            if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() {
                valid += 1;
                assert_eq!(validate_unread(s.as_bytes()), Ok(()), "input {s:?}");
            }
        }
        assert!(valid > 300, "too few valid samples: {valid}");
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
            let mut sc = Scanner::new(&quoted);
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
        let mut sc = Scanner::new(text);
        let mut keys = Vec::new();
        sc.object(0, |s, k, d| {
            keys.push(k.value().into_owned());
            s.skip(d)
        })
        .unwrap();
        assert_eq!(keys, ["a", "bA", "d"]);
        assert_eq!(sc.finish(), Ok(()));
    }
}
