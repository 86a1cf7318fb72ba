//! Measurements run from the CLI (`capstan bench ...`) against capstan's real servers, in-process.
//! Criterion micro-benchmarks of pure logic live in benches/; these are load tests that need a
//! server, sockets and wall-clock time, so they are commands rather than tests.

pub mod provisioning;
pub mod webhooks;
