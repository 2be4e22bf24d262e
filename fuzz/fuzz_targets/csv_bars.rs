//! Fuzz target: `tradedsl::fuzz::csv_bars` on arbitrary bytes (`cargo fuzz run csv_bars`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tradedsl::fuzz::csv_bars(data);
});
