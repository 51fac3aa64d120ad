//! Generates the gRPC code from `proto/` with protox (pure Rust: no system `protoc` needed)
//! and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/credbroker/v1/broker.proto";
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("credbroker_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Proxied bodies as `bytes::Bytes`: decoded as slices of tonic's receive buffer and
    // passed on without copying (the wire format is the same as for `Vec<u8>`).
    let mut builder = tonic_prost_build::configure().build_client(true).build_server(true);
    for message in ["ProxyCallRequest", "ProxyCallResponse", "ProxyCallChunk", "ProxyCallResponseChunk"] {
        builder = builder.bytes(format!(".credbroker.v1.{message}.body"));
    }
    builder.compile_fds(fds)?;
    Ok(())
}
