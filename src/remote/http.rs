//! Datasets served over plain HTTP(S) (`https://host/path/ds/`): any web server or CDN that serves
//! the dataset directory's files (nginx, a bucket's public website endpoint, `python -m
//! http.server`).

use super::store::Store;

/// A dataset directory at `base` (ending in `/`).
pub(crate) struct HttpStore {
    base: String,
}

impl HttpStore {
    /// The store for the dataset directory URL `url` (a `/` is added when it has none).
    pub(crate) fn new(url: &str) -> HttpStore {
        let mut base = url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        HttpStore { base }
    }
}

impl Store for HttpStore {
    fn url(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn get(
        &self,
        agent: &ureq::Agent,
        name: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        agent.get(&self.url(name)).call()
    }
}
