//! Records the version of the compiler building tessera, for the `go_version` label of
//! `dex_build_info` (Dex reports the Go toolchain there), and compiles the gRPC API's proto with
//! protox (pure Rust: no protoc binary to install) into tonic code and a descriptor set for reflection.

use std::process::Command;

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // `rustc 1.95.0 (hash date)` → `1.95.0`.
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TESSERA_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-changed=proto/api.proto");
    let descriptors = protox::compile(["api.proto"], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("api_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(false).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
