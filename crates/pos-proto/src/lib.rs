//! The `pos.v1` contracts as Rust types: prost messages, tonic clients and servers for every
//! service (terminal gateway, management, authorization, reversal, settlement, fraud-check,
//! issuer) and the event envelope with its payloads. Generated at build time from
//! `proto/pos/v1/*.proto`; nothing here is edited by hand.

/// Messages and services of the `pos.v1` package.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("pos.v1");
}

/// Encoded `FileDescriptorSet` of every `pos.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pos_descriptor.bin"));
