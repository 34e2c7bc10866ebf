//! How many worker threads a request means, for the build and the engine alike.

/// `0` means every core the process may use; any other number is taken as it is.
pub fn worker_threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}
