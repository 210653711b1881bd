fn main() {
  // Only the addon links against Node; the core alone (`--no-default-features`, as `cargo test`
  // builds it) needs nothing, so it checks and tests for any target without a Node to link to.
  if std::env::var_os("CARGO_FEATURE_NAPI").is_some() {
    napi_build::setup();
  }
}
