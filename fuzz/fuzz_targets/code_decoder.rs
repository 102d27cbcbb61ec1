//! The ticket code decoder against any bytes: it never panics, and nothing
//! it parses verifies under a key that signed nothing (a forged code never
//! admits). Valid codes are in `corpus/code_decoder` to start from.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = kernel::auth::SigningKey::from_bytes(&[7u8; 32]);
    let text = String::from_utf8_lossy(data);
    if let Some(parsed) = platform::tickets::parse_code(&text) {
        assert!(!parsed.verify(&key.verifying_key()));
        let _ = (parsed.is_for(kernel::ids::EventId::new()), parsed.window);
    }
});
