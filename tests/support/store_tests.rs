//! `store_tests!`: the same scenarios run once per store. Each invocation
//! writes a module of its own holding one `#[tokio::test]` per scenario;
//! each test makes its store (skipped when that yields `None`: no
//! `redis-server` outside CI) and awaits `super::SCENARIO(store)`.
//!
//! Include it before its first use with
//! `#[macro_use] #[path = "support/store_tests.rs"] mod store_tests;`.
//!
//! ```ignore
//! store_tests!(moka, |_test| Some(MokaStore::new(10_000)), [scenario_a, scenario_b]);
//! store_tests!(
//!     #[cfg(feature = "redis")]
//!     redis_standalone,
//!     |test| super::redis::standalone(test).await,
//!     [scenario_a, scenario_b]
//! );
//! ```
//!
//! `|test|` names the test's name (`&'static str`) for the store's
//! expression, e.g. as its key prefix; `workers = N` before the module's
//! name sets the runtime's worker threads (2 by default).

macro_rules! store_tests {
    ($(#[$attr:meta])* workers = $workers:tt, $module:ident, |$test_name:pat_param| $store:expr, [$($test:ident),* $(,)?]) => {
        $(#[$attr])*
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
                async fn $test() {
                    let $test_name: &'static str = stringify!($test);
                    let Some(store) = $store else {
                        return;
                    };
                    super::$test(store).await;
                }
            )*
        }
    };
    ($(#[$attr:meta])* $module:ident, |$test_name:pat_param| $store:expr, [$($test:ident),* $(,)?]) => {
        store_tests!($(#[$attr])* workers = 2, $module, |$test_name| $store, [$($test),*]);
    };
}
