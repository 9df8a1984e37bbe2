//! Reading what a request is, from its headers (and, for a POST without a
//! session id, its small body): which protocol era, which session.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method};

use super::rejection::Rejection;
use super::IdMode;
use crate::SessionId;

/// `Mcp-Session-Id` (header names are case-insensitive; `http` stores them lowercase).
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The first protocol revision without sessions (SEP-2567).
pub const SESSIONLESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// What the headers say about a request.
#[derive(Debug)]
pub(crate) enum HeaderVerdict {
    /// Carries a well-formed session id.
    Session(SessionId),
    /// A sessionless-era (2026-07-28+) request: pass it through.
    Sessionless,
    /// A POST without a session id in the handshake era: its body decides.
    InspectBody,
    /// Anything else without a session id (GET stream, DELETE, …).
    Missing,
}

pub(crate) fn classify_headers(
    method: &Method,
    headers: &HeaderMap,
    mode: IdMode,
) -> Result<HeaderVerdict, Rejection> {
    let mut values = headers.get_all(MCP_SESSION_ID).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(Rejection::RepeatedSessionId);
        }
        let parsed = match mode {
            IdMode::Mint => SessionId::parse_bytes(value.as_bytes()),
            IdMode::Adopt => SessionId::parse_adopted_bytes(value.as_bytes()),
        };
        return parsed
            .map(HeaderVerdict::Session)
            .map_err(Rejection::MalformedSessionId);
    }
    if is_sessionless_version(headers) {
        return Ok(HeaderVerdict::Sessionless);
    }
    if method == Method::POST {
        Ok(HeaderVerdict::InspectBody)
    } else {
        Ok(HeaderVerdict::Missing)
    }
}

/// Whether `MCP-Protocol-Version` names 2026-07-28 or a later revision.
/// Revisions are `YYYY-MM-DD` dates, so byte order is date order.
pub(crate) fn is_sessionless_version(headers: &HeaderMap) -> bool {
    headers.get(MCP_PROTOCOL_VERSION).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() == SESSIONLESS_PROTOCOL_VERSION.len()
            && v.iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
            && v >= SESSIONLESS_PROTOCOL_VERSION.as_bytes()
    })
}

/// What the body of a POST without a session id is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyVerdict {
    /// A handshake-era `initialize` request.
    Initialize,
    /// `server/discover`: the sessionless probe.
    Discover,
    /// Any other JSON-RPC message: it needs a session.
    NeedsSession,
}

pub(crate) fn classify_body(body: &Bytes) -> Result<BodyVerdict, Rejection> {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        method: Option<Cow<'a, str>>,
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Rejection::InvalidJson)?;
    if !value.is_object() {
        // Batches cannot carry initialize (and 2025-06-18+ has no batches).
        return Ok(BodyVerdict::NeedsSession);
    }
    // Valid JSON whose `method` is not a string is not initialize either.
    let probe: Probe<'_> = serde_json::from_slice(body).unwrap_or(Probe { method: None });
    Ok(match probe.method.as_deref() {
        Some("initialize") => BodyVerdict::Initialize,
        Some("server/discover") => BodyVerdict::Discover,
        _ => BodyVerdict::NeedsSession,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn session_header_is_case_insensitive_and_strict() {
        let id = SessionId::generate();
        let h = headers(&[("MCP-SESSION-ID", id.reveal().as_bytes())]);
        match classify_headers(&Method::POST, &h, IdMode::Mint).unwrap() {
            HeaderVerdict::Session(got) => assert_eq!(got, id),
            other => panic!("{other:?}"),
        }
        let h = headers(&[("mcp-session-id", b"nope")]);
        assert!(matches!(
            classify_headers(&Method::POST, &h, IdMode::Mint),
            Err(Rejection::MalformedSessionId(_))
        ));
        // Adopt mode accepts a UUID; mint mode does not.
        let h = headers(&[("mcp-session-id", b"6f1c0b6e-0a52-4c1e-9d39-1f8c3b1c2d4e")]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Mint).is_err());
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_ok());
        let h = headers(&[("mcp-session-id", b"a"), ("mcp-session-id", b"b")]);
        assert_eq!(
            classify_headers(&Method::POST, &h, IdMode::Adopt).unwrap_err(),
            Rejection::RepeatedSessionId
        );
        let h = headers(&[("mcp-session-id", b"")]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_err());
        let h = headers(&[("mcp-session-id", "café".as_bytes())]);
        assert!(classify_headers(&Method::POST, &h, IdMode::Adopt).is_err());
    }

    #[test]
    fn eras_are_told_apart_by_protocol_version() {
        for (version, sessionless) in [
            ("2026-07-28", true),
            ("2027-01-01", true),
            ("2025-11-25", false),
            ("2025-06-18", false),
            ("garbage!!!", false),
            ("2026-07-2x", false),
        ] {
            let h = headers(&[("mcp-protocol-version", version.as_bytes())]);
            assert_eq!(is_sessionless_version(&h), sessionless, "{version}");
        }
        let h = headers(&[("mcp-protocol-version", b"2026-07-28")]);
        assert!(matches!(
            classify_headers(&Method::POST, &h, IdMode::Mint).unwrap(),
            HeaderVerdict::Sessionless
        ));
        assert!(matches!(
            classify_headers(&Method::GET, &HeaderMap::new(), IdMode::Mint).unwrap(),
            HeaderVerdict::Missing
        ));
        assert!(matches!(
            classify_headers(&Method::POST, &HeaderMap::new(), IdMode::Mint).unwrap(),
            HeaderVerdict::InspectBody
        ));
    }

    #[test]
    fn bodies_are_classified() {
        let b = |s: &str| Bytes::from(s.to_string());
        assert_eq!(
            classify_body(&b(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
            ))
            .unwrap(),
            BodyVerdict::Initialize
        );
        assert_eq!(
            classify_body(&b(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)).unwrap(),
            BodyVerdict::Discover
        );
        assert_eq!(
            classify_body(&b(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
        assert_eq!(
            classify_body(&b(r#"[{"method":"initialize"}]"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
        assert_eq!(classify_body(&b("{")).unwrap_err(), Rejection::InvalidJson);
        assert_eq!(
            classify_body(&Bytes::from_static(b"\xff\xfe")).unwrap_err(),
            Rejection::InvalidJson
        );
        assert_eq!(
            classify_body(&b(r#"{"method":5}"#)).unwrap(),
            BodyVerdict::NeedsSession
        );
    }
}
