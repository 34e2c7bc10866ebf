//! The object-store seam: where a remote dataset's files are and how to ask for one. Each kind of
//! store is a file beside this one ([`super::http`], [`super::s3`]); the cache and the fetcher
//! never ask which.

/// A store holding the files of one dataset, each named as in its `manifest.json`.
pub(crate) trait Store: Send + Sync {
    /// The URL of file `name`, for messages and logs.
    fn url(&self, name: &str) -> String;

    /// Sends a GET for file `name` (signed, where the store needs it).
    fn get(
        &self,
        agent: &ureq::Agent,
        name: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>;
}
