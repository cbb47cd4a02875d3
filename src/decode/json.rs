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
            // The unit was validated as UTF-8 and quotes are ASCII, so any slice between
            // quotes is valid UTF-8 too; from_utf8 here is a cheap re-check kept for safety.
            return Cow::Borrowed(std::str::from_utf8(self.raw).unwrap_or(""));
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

/// Bytes that end the fast path inside a string: quote, backslash, control characters.
static STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Index of the first quote, backslash or control byte at or after `i`, or `buf.len()`.
#[inline]
fn find_string_special(buf: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline; loads are unaligned and stay within `buf`
    // (the loop runs only while 16 bytes remain).
    unsafe {
        use std::arch::x86_64::*;
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let ctl = _mm_set1_epi8(0x1F);
        while i + 16 <= buf.len() {
            let v = _mm_loadu_si128(buf.as_ptr().add(i) as *const __m128i);
            let q = _mm_cmpeq_epi8(v, quote);
            let b = _mm_cmpeq_epi8(v, backslash);
            // v <= 0x1F (unsigned) exactly when min(v, 0x1F) == v.
            let c = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v);
            let m = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c));
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while i < buf.len() && !STRING_SPECIAL[buf[i] as usize] {
        i += 1;
    }
    i
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

/// Reading position over one unit (an NDJSON line or a whole document).
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn err_at_end(&self) -> JsonError {
        if self.pos >= self.buf.len() {
            JsonError::Truncated
        } else {
            JsonError::Syntax
        }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The kind of the next value, after whitespace.
    #[inline]
    pub fn peek_kind(&mut self) -> Result<Kind> {
        self.skip_ws();
        match self.buf.get(self.pos) {
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

    /// True when only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.buf.len()
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Result<()> {
        self.skip_ws();
        match self.buf.get(self.pos) {
            Some(&c) if c == b => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.err_at_end()),
        }
    }

    /// Reads a string (cursor on its opening quote, after whitespace).
    #[inline]
    pub fn string(&mut self) -> Result<RawStr<'a>> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let i = find_string_special(self.buf, self.pos);
            match self.buf.get(i) {
                None => {
                    self.pos = i;
                    return Err(JsonError::Truncated);
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(RawStr {
                        raw: &self.buf[start..i],
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.buf.get(i + 1) {
                        None => {
                            self.pos = i + 1;
                            return Err(JsonError::Truncated);
                        }
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos = i + 2;
                        }
                        Some(b'u') => {
                            let digits = self.buf.get(i + 2..i + 6);
                            match digits {
                                Some(d) if d.iter().all(|b| b.is_ascii_hexdigit()) => {
                                    self.pos = i + 6
                                }
                                Some(_) => return Err(JsonError::Syntax),
                                None => {
                                    let tail = &self.buf[i + 2..];
                                    return Err(if tail.iter().all(|b| b.is_ascii_hexdigit()) {
                                        JsonError::Truncated
                                    } else {
                                        JsonError::Syntax
                                    });
                                }
                            }
                        }
                        Some(_) => return Err(JsonError::Syntax),
                    }
                }
                Some(_) => {
                    // A raw control character: not allowed inside a JSON string.
                    self.pos = i;
                    return Err(JsonError::Syntax);
                }
            }
        }
    }

    /// Reads a number and returns its text.
    #[inline]
    pub fn number(&mut self) -> Result<&'a [u8]> {
        self.skip_ws();
        let start = self.pos;
        let buf = self.buf;
        let mut i = self.pos;
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
            None => return Err(JsonError::Truncated),
            _ => return Err(JsonError::Syntax),
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            let d = i;
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == d {
                self.pos = i;
                return Err(self.err_at_end());
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
                self.pos = i;
                return Err(self.err_at_end());
            }
        }
        self.pos = i;
        Ok(&buf[start..i])
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        let end = self.pos + word.len();
        if end <= self.buf.len() {
            if &self.buf[self.pos..end] == word {
                self.pos = end;
                return Ok(());
            }
            return Err(JsonError::Syntax);
        }
        // Shorter than the word: a truncation if what is there is a prefix of it.
        if word.starts_with(&self.buf[self.pos..]) {
            Err(JsonError::Truncated)
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool> {
        self.skip_ws();
        match self.buf.get(self.pos) {
            Some(b't') => self.literal(b"true").map(|_| true),
            Some(b'f') => self.literal(b"false").map(|_| false),
            _ => Err(self.err_at_end()),
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
        self.skip_ws();
        if self.buf.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.expect(b':')?;
            f(self, key, depth + 1)?;
            self.skip_ws();
            match self.buf.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err_at_end()),
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
        self.skip_ws();
        if self.buf.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            f(self, depth + 1)?;
            self.skip_ws();
            match self.buf.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err_at_end()),
            }
        }
    }

    /// Validates and passes over one value of any kind, at nesting `depth`.
    pub fn skip(&mut self, depth: usize) -> Result<()> {
        // One bit per open container: 1 = object, 0 = array.
        let mut stack = [0u64; MAX_DEPTH / 64];
        let mut level = 0usize;
        let buf = self.buf;
        'value: loop {
            // Expect a value.
            self.skip_ws();
            match buf.get(self.pos) {
                Some(b'"') => {
                    self.string()?;
                }
                Some(&open @ (b'{' | b'[')) => {
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
                    self.pos += 1;
                    self.skip_ws();
                    let close = if is_obj { b'}' } else { b']' };
                    if buf.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        level -= 1;
                    } else {
                        if is_obj {
                            self.string()?;
                            self.expect(b':')?;
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
                self.skip_ws();
                match buf.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        if in_obj {
                            self.skip_ws();
                            self.string()?;
                            self.expect(b':')?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_obj => {
                        self.pos += 1;
                        level -= 1;
                    }
                    Some(b']') if !in_obj => {
                        self.pos += 1;
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
        let mut sc = Scanner::new(s);
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
            let mut sc = Scanner::new(quoted.as_bytes());
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

    #[test]
    fn object_walk_yields_keys_in_order() {
        let mut sc = Scanner::new(br#"{"a":1,"b\u0041":{"c":[2]},"d":"e"}"#);
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
