//! Fuzz target: `tradedsl::fuzz::rule` on arbitrary bytes (`cargo fuzz run rule`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tradedsl::fuzz::rule(data);
});
