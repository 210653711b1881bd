#![no_main]
//! `cargo fuzz run socket_ipc`: see `fuzz/harness.rs` for what one input does and checks.

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::socket_ipc(data));
