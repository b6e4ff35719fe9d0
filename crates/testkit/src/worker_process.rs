//! The worker binary as a child process: a model directory and a port to give it, its HTTP
//! endpoint, signals, and a guard that kills it when a test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A copy of every file of the shipped `models/` (manifest included), to alter or remove.
pub fn shipped_models_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let models = crate::paths::repo_root().join("models");
    for entry in std::fs::read_dir(models).expect("models/") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// Rewrites the manifest in `dir` for its files as they are now, under the same model version
/// and file list: the re-seal a careless deployment might do after editing a file.
pub fn reseal(dir: &Path) {
    let path = dir.join(credit_core::artifacts::MANIFEST_FILE);
    let manifest: credit_core::bundle::Manifest =
        serde_json::from_slice(&std::fs::read(path).expect("manifest")).expect("manifest json");
    let names: Vec<&str> = manifest.files.iter().map(|e| e.name.as_str()).collect();
    credit_core::bundle::write_manifest(dir, &manifest.model_version, &names).expect("re-seal");
}

/// Flips the sign bit of every weight of the output layer, in place in the ONNX file: the
/// 64 bytes of `head_output_weight`. Returns the tampered file's bytes.
pub fn flip_output_layer(dir: &Path) -> Vec<u8> {
    let path = dir.join(credit_core::artifacts::MODEL_FILE);
    let mut bytes = std::fs::read(&path).expect("model");
    let exported =
        credit_core::model::onnx_export::read_exported(&bytes).expect("an exported model");
    let layer: Vec<u8> = exported
        .weights
        .head_output
        .weight
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    assert_eq!(layer.len(), 64, "the shipped output layer is 16 floats");
    let start = bytes
        .windows(layer.len())
        .position(|window| window == layer.as_slice())
        .expect("the output layer's raw data in the file");
    for sign in (start + 3..start + layer.len()).step_by(4) {
        bytes[sign] ^= 0x80;
    }
    std::fs::write(&path, &bytes).expect("write the tampered model");
    bytes
}

/// A loopback port nobody listens on: connections to it are refused at once, and a server
/// started on it is free to bind it.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// `GET path` on `port`: the whole response, or `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Kills the child when dropped, so a failing assertion leaves no process behind.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` (e.g. `-HUP`) to the worker with the system's `kill`.
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Polls `/metrics` until it contains every one of `expected`, while the worker keeps running.
pub fn wait_for_metrics(running: &mut Running, port: u16, expected: &[&str]) -> String {
    let started = Instant::now();
    loop {
        if let Some(response) = http_get(port, "/metrics") {
            if expected.iter().all(|line| response.contains(line)) {
                return response;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/metrics never showed {expected:?}"
        );
        assert!(
            running.0.try_wait().expect("poll").is_none(),
            "the worker exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
