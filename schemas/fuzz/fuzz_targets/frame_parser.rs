//! Fuzzes the frame parser and everything behind it; see `schemas::fuzz::frame_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| schemas::fuzz::frame_stream(data));
