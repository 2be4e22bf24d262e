//! Fuzz target: `tradedsl::fuzz::yaml_document` on arbitrary bytes (`cargo fuzz run yaml_document`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tradedsl::fuzz::yaml_document(data);
});
