//! The integration tests: one crate, so the library links once. Each module is one area of
//! behaviour, run against the real `cefgate` binary over loopback sockets; `support` holds
//! what they share (running the binary, the emulator, waiting on conditions).

mod support;

mod azure;
mod azure_commands;
mod check;
mod corpus;
mod dcr;
mod dead_letters;
mod docs_reference;
mod fields;
mod golden;
mod hostile;
mod kubernetes;
mod logger;
mod metrics_endpoint;
mod operations;
mod outputs;
mod parity;
mod proxy;
mod reload;
mod replay;
mod roundtrip;
mod shutdown;
mod spool;
mod tcp;
mod tls;
