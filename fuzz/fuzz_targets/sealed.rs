//! Opening sealed request state (`mcp_session::sealed`), which comes back
//! from clients and is attacker-controlled: any input is refused or opened,
//! never a panic; only a state this sealer made opens, once; and a byte
//! changed in a real state never opens.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_session::sealed::{OpenError, SealKey, Sealer};
use mcp_session::{Identity, MokaStore};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sealer = Sealer::new(MokaStore::new(16), SealKey::new("fuzz", &[9; 32]).unwrap())
        .also_open_with(SealKey::new("old", &[3; 32]).unwrap());
    let alice = Identity::new("alice", "Alice", ["user"]);

    // The raw input, as text.
    let text = String::from_utf8_lossy(data);
    let opened = runtime.block_on(sealer.open::<serde_json::Value>(&alice, "req", &text));
    assert!(opened.is_err(), "fuzzed input opened: {text:?}");

    // A genuine state with one position of it overwritten by fuzzed bytes.
    let genuine = sealer.seal(&alice, "req", &serde_json::json!({"n": 1})).unwrap();
    if let Some((&at, rest)) = data.split_first() {
        let mut bytes = genuine.clone().into_bytes();
        let at = usize::from(at) % bytes.len();
        let end = (at + rest.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&rest[..end - at]);
        if let Ok(tampered) = String::from_utf8(bytes) {
            let opened =
                runtime.block_on(sealer.open::<serde_json::Value>(&alice, "req", &tampered));
            // Base64url has a few spellings of the same bytes (the unused
            // bits of the last character): only those may still open.
            if let Ok(value) = opened {
                assert_eq!(value, serde_json::json!({"n": 1}), "{tampered:?}");
            }
        }
    }
    // The genuine one opens once.
    let first = runtime.block_on(sealer.open::<serde_json::Value>(&alice, "req", &genuine));
    assert!(matches!(first, Ok(_) | Err(OpenError::Replayed)));
    let again = runtime.block_on(sealer.open::<serde_json::Value>(&alice, "req", &genuine));
    assert!(matches!(again, Err(OpenError::Replayed)));
});
