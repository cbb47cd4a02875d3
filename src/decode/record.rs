//! Extracts the fields signin-radar needs from one record object, in every shape, as borrowed
//! slices. Nothing here allocates unless a value holds JSON escapes.

use super::json::{Kind, RawStr, Result, Scanner};

/// Record shape, told apart by where the signIn fields live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Shape {
    /// Event Hubs / storage archive: fields under `properties`.
    #[default]
    Diagnostic,
    /// Graph API or portal download: the signIn object itself.
    Graph,
    /// Log Analytics export: PascalCase columns.
    LogAnalytics,
}

/// Bits of Graph's `signInEventTypes`.
pub mod event_type {
    pub const INTERACTIVE: u8 = 1;
    pub const NON_INTERACTIVE: u8 = 2;
    pub const SERVICE_PRINCIPAL: u8 = 4;
    pub const MANAGED_IDENTITY: u8 = 8;
}

/// The raw fields of one record, resolved across shapes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields<'a> {
    pub shape: Shape,
    pub id: Option<RawStr<'a>>,
    pub created: Option<RawStr<'a>>,
    pub time: Option<RawStr<'a>>,
    pub category: Option<RawStr<'a>>,
    pub la_type: Option<RawStr<'a>>,
    pub upn: Option<RawStr<'a>>,
    pub user_id: Option<RawStr<'a>>,
    pub ip: Option<RawStr<'a>>,
    pub caller_ip: Option<RawStr<'a>>,
    pub client_app: Option<RawStr<'a>>,
    pub user_agent: Option<RawStr<'a>>,
    pub app: Option<RawStr<'a>>,
    pub status_code: Option<i64>,
    pub result_type: Option<i64>,
    pub is_interactive: Option<bool>,
    pub event_types: u8,
}

/// One object's members that matter, before the shapes are resolved.
#[derive(Default)]
struct Members<'a> {
    f: Fields<'a>,
    /// `properties` was present and an object.
    props: Option<Fields<'a>>,
    /// `createdDateTime` at this level (Graph / portal).
    has_created_camel: bool,
    /// `CreatedDateTime` at this level (Log Analytics).
    has_created_pascal: bool,
}

/// Parses an integer from a JSON number or numeric string (trimmed). Fractions or junk: None.
pub fn parse_code(text: &[u8]) -> Option<i64> {
    let t = text.trim_ascii();
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if neg { -v } else { v })
}

/// Reads a string value or skips a value of another type (a wrong type counts as missing).
#[inline]
fn opt_string<'a>(s: &mut Scanner<'a>, depth: usize) -> Result<Option<RawStr<'a>>> {
    if s.peek_kind()? == Kind::String {
        s.string().map(Some)
    } else {
        s.skip(depth).map(|_| None)
    }
}

/// Reads an error code given as a number or a numeric string.
#[inline]
fn opt_code(s: &mut Scanner<'_>, depth: usize) -> Result<Option<i64>> {
    match s.peek_kind()? {
        Kind::Number => Ok(parse_code(s.number()?)),
        Kind::String => {
            let v = s.string()?;
            Ok(if v.escaped {
                parse_code(v.value().as_bytes())
            } else {
                parse_code(v.raw)
            })
        }
        _ => s.skip(depth).map(|_| None),
    }
}

/// `status`: an object with `errorCode`, or (Log Analytics non-interactive) the same as JSON text.
fn status_code(s: &mut Scanner<'_>, depth: usize) -> Result<Option<i64>> {
    match s.peek_kind()? {
        Kind::Object => status_object(s, depth),
        Kind::String => {
            let text = s.string()?.value();
            // Embedded JSON that does not scan is treated as a missing field: the record
            // around it is valid.
            let mut inner = Scanner::new(&text);
            Ok(match inner.peek_kind() {
                Ok(Kind::Object) => status_object(&mut inner, depth).ok().flatten(),
                _ => None,
            })
        }
        _ => s.skip(depth).map(|_| None),
    }
}

fn status_object(s: &mut Scanner<'_>, depth: usize) -> Result<Option<i64>> {
    let mut code = None;
    s.object(depth, |s, key, d| {
        if key.eq_ignore_case("errorCode") {
            code = opt_code(s, d)?;
            Ok(())
        } else {
            s.skip(d)
        }
    })?;
    Ok(code)
}

fn event_types(s: &mut Scanner<'_>, depth: usize) -> Result<u8> {
    if s.peek_kind()? != Kind::Array {
        return s.skip(depth).map(|_| 0);
    }
    let mut bits = 0;
    s.array(depth, |s, d| {
        if s.peek_kind()? == Kind::String {
            let v = s.string()?;
            for (name, bit) in [
                ("interactiveUser", event_type::INTERACTIVE),
                ("nonInteractiveUser", event_type::NON_INTERACTIVE),
                ("servicePrincipal", event_type::SERVICE_PRINCIPAL),
                ("managedIdentity", event_type::MANAGED_IDENTITY),
            ] {
                if v.eq_ignore_case(name) {
                    bits |= bit;
                }
            }
            Ok(())
        } else {
            s.skip(d)
        }
    })?;
    Ok(bits)
}

/// Walks one object's members into `m`. `top` allows descending into `properties`.
fn members<'a>(s: &mut Scanner<'a>, depth: usize, top: bool, m: &mut Members<'a>) -> Result<()> {
    s.object(depth, |s, key, d| member_value(s, key, d, top, m))
}

/// What an item turned out to be.
#[allow(clippy::large_enum_variant)] // Built once per record and consumed at once.
pub enum Item<'a> {
    Record(Fields<'a>),
    NotARecord,
    /// An object holding `records` (envelope) or `value` (Graph page) arrays: its items were
    /// handed to the callback already.
    Container,
}

/// Parses one item (cursor on any value). Objects are examined as records; an object holding
/// `records` or `value` arrays is a container when `allow_container` (top level of a document)
/// and its items go to `on_item`.
pub fn item<'a>(
    s: &mut Scanner<'a>,
    depth: usize,
    allow_container: bool,
    on_item: &mut dyn FnMut(Item<'a>),
) -> Result<Item<'a>> {
    if s.peek_kind()? != Kind::Object {
        s.skip(depth)?;
        return Ok(Item::NotARecord);
    }
    let mut m = Members::default();
    let mut container = false;
    s.object(depth, |s, key, d| {
        if allow_container
            && (key.eq_ignore_case("records") || key.eq_ignore_case("value"))
            && s.peek_kind()? == Kind::Array
        {
            container = true;
            return s.array(d, |s, d2| {
                let it = item(s, d2, false, &mut |_| {})?;
                on_item(it);
                Ok(())
            });
        }
        member_value(s, key, d, true, &mut m)
    })?;
    if container {
        return Ok(Item::Container);
    }
    Ok(resolve(m))
}

/// One member of a record object, with the cursor on its value. Keys are matched by length
/// first: most keys of a record match none of these.
fn member_value<'a>(
    s: &mut Scanner<'a>,
    k: RawStr<'a>,
    d: usize,
    top: bool,
    m: &mut Members<'a>,
) -> Result<()> {
    // Escaped keys (rare) are matched by their value.
    let unescaped;
    let name: &[u8] = if k.escaped {
        unescaped = k.value();
        unescaped.as_bytes()
    } else {
        k.raw
    };
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    let f = &mut m.f;
    match name.len() {
        2 if is("id") => f.id = opt_string(s, d)?,
        4 if is("time") => f.time = opt_string(s, d)?,
        4 if is("type") => f.la_type = opt_string(s, d)?,
        6 if is("status") => f.status_code = status_code(s, d)?,
        6 if is("userId") => f.user_id = opt_string(s, d)?,
        8 if is("category") => f.category = opt_string(s, d)?,
        9 if is("userAgent") => f.user_agent = opt_string(s, d)?,
        9 if is("ipAddress") => f.ip = opt_string(s, d)?,
        10 if top && is("properties") => {
            if s.peek_kind()? == Kind::Object {
                let mut inner = Members::default();
                members(s, d, false, &mut inner)?;
                m.props = Some(inner.f);
            } else {
                s.skip(d)?;
            }
        }
        10 if is("resultType") => f.result_type = opt_code(s, d)?,
        13 if is("clientAppUsed") => f.client_app = opt_string(s, d)?,
        13 if is("isInteractive") => {
            f.is_interactive = if s.peek_kind()? == Kind::Bool {
                Some(s.boolean()?)
            } else {
                s.skip(d)?;
                None
            }
        }
        13 if is("TimeGenerated") => {
            let v = opt_string(s, d)?;
            if f.time.is_none() {
                f.time = v;
            }
        }
        14 if is("appDisplayName") => f.app = opt_string(s, d)?,
        15 if is("createdDateTime") => {
            if name.first() == Some(&b'C') {
                m.has_created_pascal = true;
            } else {
                m.has_created_camel = true;
            }
            f.created = opt_string(s, d)?;
        }
        15 if is("callerIpAddress") => f.caller_ip = opt_string(s, d)?,
        16 if is("signInEventTypes") => f.event_types = event_types(s, d)?,
        17 if is("userPrincipalName") => f.upn = opt_string(s, d)?,
        _ => s.skip_unread(d)?,
    }
    Ok(())
}

/// Decides whether the members make a record and, if so, which fields count.
fn resolve(m: Members<'_>) -> Item<'_> {
    if let Some(p) = m.props {
        // Diagnostic shape: signIn fields from `properties`, the envelope fields from the top.
        let top = m.f;
        let mut f = p;
        f.shape = Shape::Diagnostic;
        f.time = top.time.or(p.time);
        if top.category.is_some() {
            f.category = top.category;
        }
        if top.result_type.is_some() {
            f.result_type = top.result_type;
        }
        f.caller_ip = top.caller_ip.or(p.caller_ip);
        return Item::Record(f);
    }
    if m.has_created_camel || m.has_created_pascal {
        let mut f = m.f;
        f.shape = if m.has_created_pascal && !m.has_created_camel {
            Shape::LogAnalytics
        } else {
            Shape::Graph
        };
        return Item::Record(f);
    }
    Item::NotARecord
}
