//! Filtering list answers (`tools/list`, `resources/list`,
//! `resources/templates/list`, `prompts/list`) down to what the caller may
//! use, in JSON answers and in SSE-framed ones.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

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
    /// Filters one JSON-RPC answer in place if it answers a pending list
    /// request; true if it did.
    fn filter_message(&mut self, message: &mut Value) -> bool {
        let Some(object) = message.as_object_mut() else {
            return false;
        };
        let Some(id) = object.get("id") else {
            return false;
        };
        let Some(at) = self.pending.iter().position(|(pending, _)| pending == id) else {
            return false;
        };
        let (_, kind) = self.pending.swap_remove(at);
        let Some(result) = object.get_mut("result").and_then(Value::as_object_mut) else {
            return false; // an error answer: nothing to filter
        };
        let (member, key, method) = kind.shape();
        if let Some(items) = result.get_mut(member).and_then(Value::as_array_mut) {
            let (policy, roles) = (&self.policy, &self.roles);
            items.retain(|item| {
                // An item without a usable name is not shown: fail closed.
                item.get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|name| policy.allows(method, Some(name), roles))
            });
        }
        if self.private_scope || result.contains_key("cacheScope") {
            result.insert("cacheScope".into(), Value::from("private"));
        }
        true
    }

    /// Filters a parsed answer (one message or a batch answer).
    fn filter_value(&mut self, value: &mut Value) -> bool {
        match value {
            Value::Array(messages) => {
                let mut any = false;
                for m in messages {
                    any |= self.filter_message(m);
                }
                any
            }
            message => self.filter_message(message),
        }
    }

    /// Filters a whole JSON answer. `None`: not JSON (the caller fails
    /// closed).
    pub(crate) fn filter_json(&mut self, bytes: &[u8]) -> Option<Bytes> {
        let mut value: Value = serde_json::from_slice(bytes).ok()?;
        if !self.filter_value(&mut value) {
            return Some(Bytes::copy_from_slice(bytes));
        }
        serde_json::to_vec(&value).ok().map(Bytes::from)
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
    /// An event grew past the cap: these bytes (errors for the pending list
    /// requests) end the stream.
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
            return SseOutput::Overflow(self.overflow_events());
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
            let error = serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": super::codes::LIST_UNFILTERABLE,
                    "message": "the list answer is too large for the policy layer to filter",
                },
            });
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(error.to_string().as_bytes());
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
        let Ok(mut value) = serde_json::from_slice::<Value>(&data) else {
            out.extend_from_slice(event);
            return;
        };
        if !self.plan.filter_value(&mut value) {
            out.extend_from_slice(event);
            return;
        }
        for line in lines_of(event) {
            if !line.is_empty() && !line.starts_with(b"data:") {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\n");
            }
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(value.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// The lines of an event, without their terminators (`\r\n`, `\n`, `\r`).
fn lines_of(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
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
    let mut i = from;
    let mut line_start = from;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                if i == line_start {
                    return Some(i + 1);
                }
                i += 1;
                line_start = i;
            }
            b'\r' => {
                let next = match buf.get(i + 1) {
                    None => return None,
                    Some(b'\n') => i + 2,
                    Some(_) => i + 1,
                };
                if i == line_start {
                    return Some(next);
                }
                i = next;
                line_start = i;
            }
            _ => i += 1,
        }
    }
    None
}

fn last_line_start(buf: &[u8]) -> usize {
    // Back off to before a trailing `\r` so `\r\n` is seen whole next time.
    let end = if buf.last() == Some(&b'\r') {
        buf.len() - 1
    } else {
        buf.len()
    };
    buf[..end]
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |i| i + 1)
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
        let out = plan().filter_json(LIST.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], serde_json::json!([{"name":"whoami"}]));
        assert_eq!(v["result"]["cacheScope"], "private");
        // another id: untouched
        let other = LIST.replace("\"id\":1", "\"id\":2");
        assert_eq!(
            &plan().filter_json(other.as_bytes()).unwrap()[..],
            other.as_bytes()
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
