//! The CLI's integration tests, one binary: the helpers (and the generic code they pull in) are
//! built and linked once, and every test shares one pool of threads, so that tests waiting on a
//! stream in real time overlap tests that compute. As seven binaries run one after another, the
//! test threads idled while a binary's last test ran alone.

mod common;

mod cli;
mod coverage;
mod identity;
mod keygen;
mod logins;
mod sealed;
mod serve;
