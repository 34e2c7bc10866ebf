//! Makes `train` and the tests find libtorch at run time with no LD_LIBRARY_PATH, and really link
//! libtorch_cuda when the libtorch has it.
//!
//! torch-sys links libtorch_cpu/libtorch/libc10 and names torch_cuda, but the linker's default
//! `--as-needed` drops libtorch_cuda (nothing references its symbols directly: its kernels register
//! themselves in static constructors), so `tch::Cuda::is_available()` would be false even on a GPU
//! machine. torch-sys's rpath flag only reaches its own C++ shim, not our binaries. Both are fixed
//! here with link arguments, which apply to this package's binaries, tests and examples.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(lib);
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
