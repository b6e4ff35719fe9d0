//! Where tests and benches find the checkout, the binaries under test and scratch space.
//!
//! A test of the worker package has its binaries built beside it (`target/<profile>/`), and
//! its own executable in `target/<profile>/deps/`: the binaries are found from there rather
//! than from `CARGO_BIN_EXE_*`, which cargo sets only while compiling that package's tests.

use std::path::{Path, PathBuf};

/// The checkout's top folder (where `models/`, `data/` and `config/` are).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `target/<profile>/`, the folder of the running test's or bench's own profile.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's own path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("a test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `worker` binary of the running test's profile.
pub fn worker_binary() -> PathBuf {
    profile_dir().join("worker")
}

/// `target/tmp/`, cargo's scratch folder for tests and benches.
pub fn target_tmp_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("tmp")
}
