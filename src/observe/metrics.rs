//! The names of the metrics this crate records (feature `metrics`), through
//! the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The crate ships no exporter: install the recorder you like
//! (`metrics-exporter-prometheus`, an OpenTelemetry bridge, …) **before the
//! first request**, since handles are registered once per
//! [`SessionManager`](crate::SessionManager) and kept. The names follow
//! Prometheus conventions (`_total` counters, `_seconds` histograms); the
//! constants below are always available, with or without the feature, so
//! dashboards and tests can refer to them.
//!
//! No label ever holds an identity id, a session id, a tool name or any
//! other value a client chooses: every label value comes from a short fixed
//! list, so the number of series stays bounded whatever the traffic.
//!
//! # Per replica
//!
//! Every replica records what *it* did, so `sum()` over replicas is the
//! fleet's total:
//!
//! - [`SESSIONS_CREATED`] counts the sessions this process created (or
//!   adopted from the inner server).
//! - [`SESSIONS_ENDED`] counts the ends this process caused or observed
//!   itself (`DELETE`, eviction, revocation, a refused or abandoned
//!   `initialize`, and an expiry its store noticed). Ends heard from
//!   another replica are *not* counted again: that replica counted them.
//! - [`SESSIONS_ACTIVE`] is [`SESSIONS_CREATED`] minus [`SESSIONS_ENDED`]
//!   for this process (incremented and decremented as they happen: no scan
//!   of the store). With [`MokaStore`](crate::MokaStore) that is exactly
//!   the sessions the process holds (an expiry counts once moka sweeps the
//!   entry, or when a request reads it: see
//!   [`MokaStore::run_pending_tasks`](crate::MokaStore::run_pending_tasks)).
//!   With Redis, Redis drops expired keys itself and no replica is told, so
//!   idle expiries are not counted and the gauge is *sessions this replica
//!   created and has not seen end*: an upper bound of the live sessions it
//!   created, which only falls again with the replica's restart. Read the
//!   Redis store's live count from Redis itself if you need it exact.
//!
//! | name | type | labels |
//! |---|---|---|
//! | [`SESSIONS_ACTIVE`] | gauge | `store` |
//! | [`SESSIONS_CREATED`] | counter | `store` |
//! | [`SESSIONS_ENDED`] | counter | `reason` ([`EndReason::as_str`](crate::EndReason::as_str)) |
//! | [`SESSION_REJECTIONS`] | counter | `reason` (see [`SESSION_REJECTIONS`]) |
//! | [`SESSION_DURATION`] | histogram | none |
//! | [`STORE_OPERATION_DURATION`] | histogram | `store`, `operation` |
//! | [`STORE_ERRORS`] | counter | `store`, `operation` |
//! | [`ROLE_LOOKUPS`] | counter | `outcome` (`ok`, `failed`, `timeout`) |
//! | [`ROLE_LOOKUP_DURATION`] | histogram | none |
//! | [`POLICY_DENIALS`] | counter | `method` |

/// Gauge, label `store` (`moka`, `redis`, or a custom store's
/// [`SessionStore::name`](crate::SessionStore::name)): sessions this
/// process created and has not seen end (see the [module docs](self#per-replica)).
pub const SESSIONS_ACTIVE: &str = "mcp_sessions_active";

/// Counter, label `store`: sessions created (minted, or adopted from the
/// inner server) by this process.
pub const SESSIONS_CREATED: &str = "mcp_sessions_created_total";

/// Counter, label `reason`: sessions ended, by
/// [`EndReason`](crate::EndReason) (`deleted`, `expired`, `deadline`,
/// `evicted`, `revoked`, `refused`, `failed`, `abandoned`).
pub const SESSIONS_ENDED: &str = "mcp_sessions_ended_total";

/// Counter, label `reason`: requests the session layer answered itself with
/// an error. Reasons: `unauthenticated` (401), `missing_id`,
/// `repeated_id`, `malformed_id`, `unreadable_body`, `invalid_json`,
/// `ambiguous_method`, `initialize_in_batch` (400), `not_found` (404),
/// `too_large` (413), `timeout` (408, the body was too slow),
/// `identity_cap` (429), `global_cap`, `store_unavailable`,
/// `roles_unavailable` (503), `upstream`, `misconfigured` (502: the inner
/// server mints ids in mint mode, or none in adopt mode).
pub const SESSION_REJECTIONS: &str = "mcp_session_rejections_total";

/// Histogram (seconds), no label: how long sessions lasted, from creation
/// to their end. Recorded for the ends whose start is known without
/// another store read: `DELETE` through the layer, and expiries
/// [`MokaStore`](crate::MokaStore) notices (to their logical expiry, not to
/// when they were swept). OpenTelemetry's `mcp.server.session.duration`.
pub const SESSION_DURATION: &str = "mcp_server_session_duration_seconds";

/// Histogram (seconds), labels `store` and `operation` (`create`, `get`,
/// `touch`, `update`, `delete`, `delete_all_of`, `publish`): the latency
/// of each call the [`SessionManager`](crate::SessionManager) makes to its
/// store, as the manager sees it (including the network for Redis), failed
/// calls included.
pub const STORE_OPERATION_DURATION: &str = "mcp_session_store_operation_duration_seconds";

/// Counter, labels `store` and `operation`: store calls that failed
/// (unavailable, timed out; not a refusal at a cap, not an id taken).
pub const STORE_ERRORS: &str = "mcp_session_store_errors_total";

/// Counter, label `outcome` (`ok`, `failed`, `timeout`): lookups of a
/// caller's roles in the [`RoleSource`](crate::roles::RoleSource) (cache
/// misses only; a cached answer is no lookup).
pub const ROLE_LOOKUPS: &str = "mcp_session_role_lookups_total";

/// Histogram (seconds), no label: how long role lookups took (those that
/// timed out count as the timeout).
pub const ROLE_LOOKUP_DURATION: &str = "mcp_session_role_lookup_duration_seconds";

/// Counter, label `method` (`tools/call`, `resources/read`,
/// `resources/subscribe`, `prompts/get`, `batch`, `other`): requests the
/// policy layer (feature `policy`) denied. Tool, resource and prompt names
/// are not labels (clients choose them).
pub const POLICY_DENIALS: &str = "mcp_session_policy_denials_total";

#[cfg(feature = "metrics")]
pub(crate) use recording::*;

#[cfg(feature = "metrics")]
mod recording {
    use std::sync::OnceLock;
    use std::time::Duration;

    use metrics::{counter, gauge, histogram, Histogram, Unit};

    use super::*;
    use crate::EndReason;

    /// Describes every metric once per process (units and help texts for
    /// exporters that show them).
    fn describe() {
        static DESCRIBED: OnceLock<()> = OnceLock::new();
        DESCRIBED.get_or_init(|| {
            metrics::describe_gauge!(
                SESSIONS_ACTIVE,
                "Sessions this process created and has not seen end."
            );
            metrics::describe_counter!(
                SESSIONS_CREATED,
                "Sessions created (minted or adopted) by this process."
            );
            metrics::describe_counter!(
                SESSIONS_ENDED,
                "Sessions ended, by reason, as this process saw them."
            );
            metrics::describe_counter!(
                SESSION_REJECTIONS,
                "Requests the session layer refused, by reason."
            );
            metrics::describe_histogram!(
                SESSION_DURATION,
                Unit::Seconds,
                "How long sessions lasted."
            );
            metrics::describe_histogram!(
                STORE_OPERATION_DURATION,
                Unit::Seconds,
                "Latency of session store calls."
            );
            metrics::describe_counter!(STORE_ERRORS, "Session store calls that failed.");
            metrics::describe_counter!(
                ROLE_LOOKUPS,
                "Role lookups (role cache misses), by outcome."
            );
            metrics::describe_histogram!(
                ROLE_LOOKUP_DURATION,
                Unit::Seconds,
                "Latency of role lookups."
            );
            metrics::describe_counter!(
                POLICY_DENIALS,
                "Requests the policy layer denied, by method."
            );
        });
    }

    /// The handles of the hot path, registered on first use by one manager
    /// (a name lookup in the recorder per request would cost more than the
    /// in-memory store's whole lookup).
    /// Shared by a manager and its layers' registries (an `Arc` they hold
    /// anyway: nothing is cloned per request).
    #[derive(Default)]
    pub(crate) struct Handles {
        touch: OnceLock<Histogram>,
    }

    impl Handles {
        #[inline]
        pub(crate) fn touch(&self, store: &'static str) -> &Histogram {
            self.touch.get_or_init(|| {
                describe();
                histogram!(STORE_OPERATION_DURATION, "store" => store, "operation" => "touch")
            })
        }
    }

    pub(crate) fn store_operation(store: &'static str, operation: &'static str, took: Duration) {
        describe();
        histogram!(STORE_OPERATION_DURATION, "store" => store, "operation" => operation)
            .record(took);
    }

    pub(crate) fn store_error(store: &'static str, operation: &'static str) {
        describe();
        counter!(STORE_ERRORS, "store" => store, "operation" => operation).increment(1);
    }

    pub(crate) fn session_created(store: &'static str) {
        describe();
        counter!(SESSIONS_CREATED, "store" => store).increment(1);
        gauge!(SESSIONS_ACTIVE, "store" => store).increment(1.0);
    }

    pub(crate) fn session_ended(store: &'static str, reason: EndReason, lasted: Option<Duration>) {
        describe();
        counter!(SESSIONS_ENDED, "reason" => reason.as_str()).increment(1);
        gauge!(SESSIONS_ACTIVE, "store" => store).decrement(1.0);
        if let Some(lasted) = lasted {
            histogram!(SESSION_DURATION).record(lasted);
        }
    }

    pub(crate) fn rejected(reason: &'static str) {
        describe();
        counter!(SESSION_REJECTIONS, "reason" => reason).increment(1);
    }

    pub(crate) fn role_lookup(outcome: &'static str, took: Duration) {
        describe();
        counter!(ROLE_LOOKUPS, "outcome" => outcome).increment(1);
        histogram!(ROLE_LOOKUP_DURATION).record(took);
    }

    #[cfg(feature = "policy")]
    pub(crate) fn policy_denied(method: &'static str) {
        describe();
        counter!(POLICY_DENIALS, "method" => method).increment(1);
    }
}
