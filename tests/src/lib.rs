//! Cross-service tests live in `tests/`; they run against the real broker and Redis that
//! `cargo xtask test` starts (see `pos-testkit`). This library is intentionally empty.
