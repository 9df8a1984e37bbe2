//! Filtering list answers (`tools/list`, `resources/list`,
//! `resources/templates/list`, `prompts/list`) down to what the caller may
//! use, in JSON answers and in SSE-framed ones.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::message::{MaybeStr, Str};

use super::rules::Policy;
use crate::Roles;

/// A list method and how its answer is filtered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Resources,
    Templates,
    Prompts,
}

impl ListKind {
    pub(crate) fn of(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(ListKind::Tools),
            "resources/list" => Some(ListKind::Resources),
            "resources/templates/list" => Some(ListKind::Templates),
            "prompts/list" => Some(ListKind::Prompts),
            _ => None,
        }
    }

    /// (result member holding the items, the item's name member, the method
    /// an item is decided as).
    fn shape(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ListKind::Tools => ("tools", "name", "tools/call"),
            ListKind::Resources => ("resources", "uri", "resources/read"),
            ListKind::Templates => ("resourceTemplates", "uriTemplate", "resources/read"),
            ListKind::Prompts => ("prompts", "name", "prompts/get"),
        }
    }
}

/// Why an answer was not filtered.
#[derive(Debug)]
pub(crate) enum Unfiltered {
    /// Not JSON: it cannot be a list answer a client reads.
    NotJson,
    /// The answer to this pending list request cannot be read safely (a
    /// repeated member, no list): fail closed.
    Refused(Value),
}

/// The list requests of one HTTP request whose answers must be filtered.
#[derive(Clone, Debug)]
pub struct ListPlan {
    pub(crate) pending: Vec<(Value, ListKind)>,
    pub(crate) roles: Roles,
    pub(crate) policy: Policy,
    /// Mark filtered results `cacheScope: "private"` even if the inner
    /// server did not set the member (the 2026-07-28 schema requires it).
    pub(crate) private_scope: bool,
}

impl ListPlan {
    /// Filters a whole answer (one message or a batch answer). `Ok(None)`:
    /// it answers no pending list request, send it as it is. `Err`: it
    /// cannot be read safely (not JSON, a repeated member): fail closed.
    pub(crate) fn filter_answer(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, Unfiltered> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let messages: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(not_json)?;
            let mut changed = false;
            let mut parts = Vec::with_capacity(messages.len());
            for m in &messages {
                match self.filter_message(m.get())? {
                    Some(filtered) => {
                        changed = true;
                        parts.push(Cow::Owned(filtered));
                    }
                    None => parts.push(Cow::Borrowed(m.get().as_bytes())),
                }
            }
            if !changed {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(bytes.len());
            out.push(b'[');
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(part);
            }
            out.push(b']');
            Ok(Some(out))
        } else {
            let text = std::str::from_utf8(bytes).map_err(not_json)?;
            self.filter_message(text.trim())
        }
    }

    /// Filters one JSON-RPC answer if it answers a pending list request.
    /// Works on the raw text: members are copied as they are, only the
    /// list is rebuilt from the items kept.
    fn filter_message(&mut self, text: &str) -> Result<Option<Vec<u8>>, Unfiltered> {
        let Entries(entries) = serde_json::from_str(text).map_err(not_json)?;
        if entries.iter().any(|(k, _)| k == "method") {
            return Ok(None); // a request or notification from the server
        }
        let Some(id) = unique(&entries, "id").map_err(|()| Unfiltered::NotJson)? else {
            return Ok(None);
        };
        let id: Value = serde_json::from_str(id.get()).map_err(not_json)?;
        let Some(at) = self
            .pending
            .iter()
            .position(|(pending, _)| same_id(pending, &id))
        else {
            return Ok(None);
        };
        let (_, kind) = self.pending.swap_remove(at);
        let refused = |_: serde_json::Error| Unfiltered::Refused(id.clone());
        let Some(result) =
            unique(&entries, "result").map_err(|()| Unfiltered::Refused(id.clone()))?
        else {
            return Ok(None); // an error answer: nothing to filter
        };
        let Entries(members) = serde_json::from_str(result.get()).map_err(refused)?;
        let (member, key, method) = kind.shape();
        let mut out_result = Vec::with_capacity(result.get().len());
        out_result.push(b'{');
        let mut first = true;
        let mut push_key = |out: &mut Vec<u8>, k: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            // A key is a plain string: serializing it cannot fail.
            serde_json::to_writer(&mut *out, k).unwrap_or_default();
            out.push(b':');
        };
        let mut seen = (false, false);
        for (k, v) in &members {
            if k == member {
                if std::mem::replace(&mut seen.0, true) {
                    return Err(Unfiltered::Refused(id));
                }
                let items: Vec<&RawValue> = serde_json::from_str(v.get()).map_err(refused)?;
                push_key(&mut out_result, k);
                out_result.push(b'[');
                let mut n = 0;
                for item in items {
                    // An item without a usable name is not shown: fail closed.
                    let keep = name_of(item.get(), key)
                        .is_some_and(|name| self.policy.allows(method, Some(&name), &self.roles));
                    if keep {
                        if n > 0 {
                            out_result.push(b',');
                        }
                        out_result.extend_from_slice(item.get().as_bytes());
                        n += 1;
                    }
                }
                out_result.push(b']');
            } else if k == "cacheScope" {
                if std::mem::replace(&mut seen.1, true) {
                    return Err(Unfiltered::Refused(id));
                }
                push_key(&mut out_result, k);
                out_result.extend_from_slice(b"\"private\"");
            } else {
                push_key(&mut out_result, k);
                out_result.extend_from_slice(v.get().as_bytes());
            }
        }
        if !seen.1 && self.private_scope {
            push_key(&mut out_result, "cacheScope");
            out_result.extend_from_slice(b"\"private\"");
        }
        out_result.push(b'}');
        if !seen.0 {
            return Err(Unfiltered::Refused(id)); // a list answer without its list
        }
        let mut out = Vec::with_capacity(text.len());
        out.push(b'{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &**k).map_err(refused)?;
            out.push(b':');
            if k == "result" {
                out.extend_from_slice(&out_result);
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        out.push(b'}');
        Ok(Some(out))
    }

    /// Filters a whole JSON answer. `Err`: the id to answer with an error
    /// instead (fail closed).
    pub(crate) fn filter_json(&mut self, bytes: Bytes) -> Result<Bytes, Value> {
        match self.filter_answer(&bytes) {
            Ok(Some(filtered)) => Ok(Bytes::from(filtered)),
            Ok(None) => Ok(bytes),
            Err(Unfiltered::Refused(id)) => Err(id),
            Err(Unfiltered::NotJson) => Err(self.first_id()),
        }
    }

    pub(crate) fn first_id(&self) -> Value {
        self.pending
            .first()
            .map_or(Value::Null, |(id, _)| id.clone())
    }
}

fn not_json(_: impl std::any::Any) -> Unfiltered {
    Unfiltered::NotJson
}

/// The string member `key` of a list item (`None`: absent, not a string,
/// repeated, or the item is not an object).
fn name_of<'a>(item: &'a str, key: &str) -> Option<Cow<'a, str>> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_str(item);
    let name = NameSeed(key).deserialize(&mut de).ok()?;
    de.end().ok()?;
    name
}

/// Whether an answer's id is the request's: numbers by value (`1.0` is `1`,
/// as a client reading the answer may take it), anything else exactly.
fn same_id(request: &Value, answer: &Value) -> bool {
    match (request.as_f64(), answer.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => request == answer,
    }
}

/// The value of a member that must not repeat (a repeat is refused: a
/// client would read the last one, the filter the first).
fn unique<'a>(
    entries: &[(Cow<'a, str>, &'a RawValue)],
    key: &str,
) -> Result<Option<&'a RawValue>, ()> {
    let mut found = entries.iter().filter(|(k, _)| k == key);
    let first = found.next().map(|(_, v)| *v);
    if found.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// A JSON object's members in order, values left raw.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads one string member of an object, skipping the others.
struct NameSeed<'k>(&'k str);

impl<'de> de::DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V<'k>(&'k str);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Option<Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut name, mut seen) = (None, false);
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    if key == self.0 {
                        if std::mem::replace(&mut seen, true) {
                            return Err(de::Error::duplicate_field("name"));
                        }
                        name = map.next_value::<MaybeStr<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(name)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

/// Incremental SSE filter: holds at most one event (up to a cap) at a time,
/// and nothing once every pending list answer went by.
#[derive(Debug)]
pub struct SseFilter {
    plan: ListPlan,
    buf: BytesMut,
    /// Where to resume looking for the end of the event in `buf` (a line start).
    scan_from: usize,
    max_event: usize,
}

/// What the filter makes of the bytes it was given.
pub(crate) enum SseOutput {
    /// Bytes to send (possibly empty: wait for more).
    Send(Bytes),
    /// An event grew past the cap: these bytes (the events before it, then
    /// errors for the pending list requests) end the stream.
    Overflow(Bytes),
}

impl SseFilter {
    pub(crate) fn new(plan: ListPlan, max_event: usize) -> Self {
        SseFilter {
            plan,
            buf: BytesMut::new(),
            scan_from: 0,
            max_event,
        }
    }

    /// Whether every list answer went by: the rest passes untouched.
    pub(crate) fn done(&self) -> bool {
        self.plan.pending.is_empty() && self.buf.is_empty()
    }

    pub(crate) fn push(&mut self, data: &[u8]) -> SseOutput {
        self.buf.extend_from_slice(data);
        let mut out = BytesMut::new();
        while let Some(end) = find_event_end(&self.buf, self.scan_from) {
            let event = self.buf.split_to(end);
            self.scan_from = 0;
            if event.len() > self.max_event && !self.plan.pending.is_empty() {
                // The same cap whether the event came in pieces or whole.
                self.buf.clear();
                out.extend_from_slice(&self.overflow_events());
                return SseOutput::Overflow(out.freeze());
            }
            if self.plan.pending.is_empty() {
                out.extend_from_slice(&event);
            } else {
                self.filter_event(&event, &mut out);
            }
            if self.plan.pending.is_empty() {
                // Nothing left to filter: hand the rest on as it is.
                out.extend_from_slice(&self.buf.split());
                break;
            }
        }
        if self.buf.len() > self.max_event {
            self.buf.clear();
            out.extend_from_slice(&self.overflow_events());
            return SseOutput::Overflow(out.freeze());
        }
        // Resume from the last line start next time.
        self.scan_from = last_line_start(&self.buf);
        SseOutput::Send(out.freeze())
    }

    /// At the end of the stream: an incomplete trailing event is never
    /// dispatched by a client; it is dropped.
    pub(crate) fn finish(&mut self) {
        self.buf.clear();
    }

    fn overflow_events(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        for (id, _) in self.plan.pending.drain(..) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(unfilterable(id).as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        out.freeze()
    }

    fn filter_event(&mut self, event: &[u8], out: &mut BytesMut) {
        let mut data: Vec<u8> = Vec::new();
        let mut lines = 0;
        for line in lines_of(event) {
            if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if lines > 0 {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest);
                lines += 1;
            }
        }
        if lines == 0 {
            out.extend_from_slice(event);
            return;
        }
        let replacement = match self.plan.filter_answer(&data) {
            Ok(None) | Err(Unfiltered::NotJson) => {
                out.extend_from_slice(event);
                return;
            }
            Ok(Some(filtered)) => filtered,
            Err(Unfiltered::Refused(id)) => unfilterable(id).into_bytes(),
        };
        for line in lines_of(event) {
            if !line.is_empty() && !line.starts_with(b"data:") {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\n");
            }
        }
        // JSON whitespace may hold newlines: one `data:` line per line.
        for line in replacement.split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"\n");
    }
}

/// The error answer for a list request whose answer cannot be filtered.
fn unfilterable(id: Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": super::codes::LIST_UNFILTERABLE,
            "message": "the server's list answer could not be filtered by the policy layer",
        },
    })
    .to_string()
}

/// The lines of an event, without their terminators (`\r\n`, `\n`, `\r`).
fn lines_of(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr2(b'\n', b'\r', rest);
        let (line, next) = match end {
            None => (rest, &rest[rest.len()..]),
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => {
                (&rest[..i], &rest[i + 2..])
            }
            Some(i) => (&rest[..i], &rest[i + 1..]),
        };
        rest = next;
        Some(line)
    })
}

/// End (exclusive) of the first complete event in `buf`: the end of its
/// empty line. `from` is a line start. A `\r` at the very end waits for the
/// next byte (it may be half of `\r\n`).
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut line_start = from;
    loop {
        let i = line_start + memchr::memchr2(b'\n', b'\r', &buf[line_start..])?;
        let next = match (buf[i], buf.get(i + 1)) {
            (b'\r', None) => return None,
            (b'\r', Some(b'\n')) => i + 2,
            _ => i + 1,
        };
        if i == line_start {
            return Some(next);
        }
        line_start = next;
    }
}

fn last_line_start(buf: &[u8]) -> usize {
    // Back off to before a trailing `\r` so `\r\n` is seen whole next time.
    let end = if buf.last() == Some(&b'\r') {
        buf.len() - 1
    } else {
        buf.len()
    };
    memchr::memrchr2(b'\n', b'\r', &buf[..end]).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rule;

    fn plan() -> ListPlan {
        let policy = Policy::default_deny()
            .rule(Rule::allow(["*"]).tools(["whoami"]))
            .rule(Rule::allow(["admin"]).tools(["admin_*"]))
            .build()
            .unwrap();
        ListPlan {
            pending: vec![(Value::from(1), ListKind::Tools)],
            roles: Roles::new(["reader"]),
            policy,
            private_scope: true,
        }
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"whoami"},{"name":"admin_echo"},{"title":"nameless"}]}}"#;

    #[test]
    fn json_answer() {
        let out = plan()
            .filter_json(Bytes::from_static(LIST.as_bytes()))
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], serde_json::json!([{"name":"whoami"}]));
        assert_eq!(v["result"]["cacheScope"], "private");
        // another id: untouched
        let other = LIST.replace("\"id\":1", "\"id\":2");
        assert_eq!(
            &plan().filter_json(Bytes::from(other.clone())).unwrap()[..],
            other.as_bytes()
        );
        // an id echoed as 1.0 is still the request's
        let echoed = LIST.replace("\"id\":1", "\"id\":1.0");
        let out = plan().filter_json(Bytes::from(echoed)).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("admin_echo"));
        // a repeated member fails closed
        let twice = LIST.replace("\"result\"", "\"result\":{},\"result\"");
        assert_eq!(plan().filter_json(Bytes::from(twice)), Err(Value::from(1)));
        // pretty-printed, batched
        let pretty = serde_json::to_string_pretty(&serde_json::json!([{"id": 0, "result": {}}, serde_json::from_str::<Value>(LIST).unwrap()])).unwrap();
        let out = plan().filter_json(Bytes::from(pretty)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v[1]["result"]["tools"],
            serde_json::json!([{"name":"whoami"}])
        );
    }

    #[test]
    fn sse_answer_split_anywhere() {
        let stream = format!(
            ": ping\n\nid: 0\nretry: 3000\ndata:\n\nid: 1\r\ndata: {LIST}\r\n\r\ndata: after\n\n"
        );
        for split in 0..stream.len() {
            let mut f = SseFilter::new(plan(), 1 << 20);
            let mut out = Vec::new();
            for part in [&stream.as_bytes()[..split], &stream.as_bytes()[split..]] {
                match f.push(part) {
                    SseOutput::Send(b) => out.extend_from_slice(&b),
                    SseOutput::Overflow(_) => panic!(),
                }
            }
            let out = String::from_utf8(out).unwrap();
            assert!(
                out.starts_with(": ping\n\nid: 0\nretry: 3000\ndata:\n\nid: 1\n"),
                "{out:?}"
            );
            assert!(!out.contains("admin_echo"), "{out}");
            assert!(
                out.contains("whoami") && out.ends_with("data: after\n\n"),
                "{out:?}"
            );
        }
    }

    #[test]
    fn sse_overflow_fails_closed() {
        let mut f = SseFilter::new(plan(), 16);
        let SseOutput::Overflow(b) = f.push(LIST.as_bytes()) else {
            panic!()
        };
        let text = String::from_utf8(b.to_vec()).unwrap();
        assert!(
            text.contains("\"id\":1") && !text.contains("admin_echo"),
            "{text}"
        );
    }
}
