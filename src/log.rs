//! Logging that compiles away without the `tracing` feature. Never pass a
//! whole session id: `SessionId`'s `Display`/`Debug` show only a prefix.

/// `log_warn!(error; "format", args…)`: a warning carrying an error.
macro_rules! log_warn {
    ($err:expr; $fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "tracing")]
        ::tracing::warn!(error = %$err, $fmt $(, $arg)*);
        #[cfg(not(feature = "tracing"))]
        {
            let _ = &$err;
            $(let _ = &$arg;)*
        }
    }};
}

/// `log_error!("format", args…)`: a misconfiguration an operator must fix.
macro_rules! log_error {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "tracing")]
        ::tracing::error!($fmt $(, $arg)*);
        #[cfg(not(feature = "tracing"))]
        {
            $(let _ = &$arg;)*
        }
    }};
}

pub(crate) use {log_error, log_warn};
