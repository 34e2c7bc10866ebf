//! Fetching one object whole, with retries: exponential back-off with full jitter on 429, 408 and
//! 5xx responses, connection failures, resets, timeouts and bodies cut short (the Google SRE book's
//! and AWS's "exponential backoff and jitter" advice, which is what keeps many ranks that start at
//! once from hammering a store in lock step — huggingface/datasets#7506), honouring a server's
//! `Retry-After`; a bounded number of requests in flight per process; and, when the attempts are
//! spent, an [`Error::Remote`] naming the URL and what went wrong the last time. Every request has
//! timeouts (to connect, for the response to start, for each read of the body), so a server that
//! stops answering costs an attempt, never a hang.

use std::io::{Read, Write};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::store::Store;
use crate::error::{Error, Result};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per object, the first included (at least 1).
    pub attempts: u32,
    /// The first back-off's upper bound; each further one doubles it, up to `max_delay`.
    pub base_delay: Duration,
    /// Upper bound of any back-off (and of a server's `Retry-After`).
    pub max_delay: Duration,
    /// Limit for connecting, for the response to start, and for each read of its body.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The longest a single failing object can take before its error: every attempt timing out,
    /// plus every back-off at its bound. What a peer rank may wait, at most, on a rank that cannot
    /// fetch (the rank then fails, and its peers with it, instead of hanging).
    pub fn worst_case(&self) -> Duration {
        let mut total = Duration::ZERO;
        for attempt in 0..self.attempts {
            total += self.timeout * 3;
            if attempt + 1 < self.attempts {
                total += self.delay_bound(attempt);
            }
        }
        total
    }

    fn delay_bound(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay)
    }
}

/// What one attempt ended with.
enum Attempt {
    /// The whole object, its length checked.
    Done,
    /// Worth another try (after at least the given wait, from `Retry-After`), and why.
    Retry(String, Option<Duration>),
    /// Not worth another try (403, 404, a bad URL), and why.
    Fatal(String),
}

/// Fetches objects of one store, at most `concurrency` at a time.
pub(crate) struct Fetcher {
    store: Box<dyn Store>,
    agent: ureq::Agent,
    policy: RetryPolicy,
    in_flight: Mutex<usize>,
    slot_free: Condvar,
    concurrency: usize,
    jitter: Mutex<ChaCha8Rng>,
}

impl Fetcher {
    pub(crate) fn new(store: Box<dyn Store>, policy: RetryPolicy, concurrency: usize) -> Fetcher {
        let t = Some(policy.timeout);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .max_idle_connections_per_host(concurrency.max(1) * 2)
            .build();
        // Jitter only spreads retries in time; it never touches data, so any seed will do.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((std::process::id() as u64) << 32);
        Fetcher {
            store,
            agent: ureq::Agent::new_with_config(config),
            policy,
            in_flight: Mutex::new(0),
            slot_free: Condvar::new(),
            concurrency: concurrency.max(1),
            jitter: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The URL of object `name`.
    pub(crate) fn url(&self, name: &str) -> String {
        self.store.url(name)
    }

    /// Object `name` in memory (at most `limit` bytes), with `check` run on the bytes of every
    /// attempt: an `Err` from it (bytes that fail their checksum) is retried like a short body.
    pub(crate) fn fetch_bytes(
        &self,
        name: &str,
        limit: u64,
        check: &dyn Fn(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.fetch(name, limit, None, &mut |body| {
            bytes.clear();
            body.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            check(&bytes)
        })?;
        Ok(bytes)
    }

    /// Object `name`, exactly `len` bytes whose CRC-32C is `crc`, streamed into `file` (rewritten
    /// from its start on each attempt).
    pub(crate) fn fetch_to_file(
        &self,
        name: &str,
        len: u64,
        crc: u32,
        file: &mut std::fs::File,
    ) -> Result<()> {
        use std::io::Seek;
        self.fetch(name, len, Some(len), &mut |body| {
            file.set_len(0).map_err(|e| format!("cache file: {e}"))?;
            file.rewind().map_err(|e| format!("cache file: {e}"))?;
            let mut buf = vec![0u8; 1 << 20];
            let (mut got, mut sum) = (0u64, 0u32);
            loop {
                let n = body.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                sum = crc32c::crc32c_append(sum, &buf[..n]);
                got += n as u64;
                file.write_all(&buf[..n])
                    .map_err(|e| format!("cache file: {e}"))?;
            }
            if got != len {
                return Err(format!("the body ended after {got} of {len} bytes"));
            }
            if sum != crc {
                return Err(format!(
                    "the {len} bytes fail the checksum in manifest.json (CRC-32C {sum:08x}, expected {crc:08x})"
                ));
            }
            Ok(())
        })
    }

    /// The retry loop around one object; `consume` reads an attempt's body.
    fn fetch(
        &self,
        name: &str,
        limit: u64,
        expected_len: Option<u64>,
        consume: &mut dyn FnMut(&mut dyn Read) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let url = self.store.url(name);
        let started = Instant::now();
        let mut last = String::new();
        for attempt in 0..self.policy.attempts.max(1) {
            let outcome = {
                let _slot = self.slot();
                self.attempt(name, limit, expected_len, consume)
            };
            let wait = match outcome {
                Attempt::Done => return Ok(()),
                Attempt::Fatal(why) => {
                    return Err(Error::Remote {
                        url,
                        msg: format!(
                            "{why} (not retried: check the URL, the bucket and the credentials)"
                        ),
                    })
                }
                Attempt::Retry(why, after) => {
                    last = why;
                    after
                }
            };
            if attempt + 1 < self.policy.attempts {
                let bound = self.policy.delay_bound(attempt);
                let jittered = self.lock_jitter().random_range(Duration::ZERO..=bound);
                let floor = wait.unwrap_or(Duration::ZERO).min(self.policy.max_delay);
                std::thread::sleep(jittered.max(floor));
            }
        }
        Err(Error::Remote {
            url,
            msg: format!(
                "gave up after {} attempts in {:.1} s; the last one: {last} — check that the server is up and serving the dataset, or retry later",
                self.policy.attempts.max(1),
                started.elapsed().as_secs_f64()
            ),
        })
    }

    fn attempt(
        &self,
        name: &str,
        limit: u64,
        expected_len: Option<u64>,
        consume: &mut dyn FnMut(&mut dyn Read) -> std::result::Result<(), String>,
    ) -> Attempt {
        let response = match self.store.get(&self.agent, name) {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = response.status().as_u16();
        if status != 200 {
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let why = format!("HTTP {status}");
            return match status {
                408 | 429 | 500..=599 => Attempt::Retry(why, after),
                _ => Attempt::Fatal(why),
            };
        }
        let advertised = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(want), Some(said)) = (expected_len, advertised) {
            if want != said {
                return Attempt::Retry(
                    format!("the response is {said} bytes, manifest.json says {want}"),
                    None,
                );
            }
        }
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .reader();
        match consume(&mut body) {
            Ok(()) => Attempt::Done,
            Err(why) => Attempt::Retry(why, None),
        }
    }

    /// Waits for one of the `concurrency` request slots.
    fn slot(&self) -> Slot<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= self.concurrency {
            n = self.slot_free.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        Slot(self)
    }

    fn lock_jitter(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.jitter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request slot, given back when dropped.
struct Slot<'a>(&'a Fetcher);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        self.0.slot_free.notify_one();
    }
}

/// Transport failures: a bad URL is fatal, everything else (refused, reset, timed out, a
/// protocol error from a connection cut mid-response) is retried.
fn transport_error(e: ureq::Error) -> Attempt {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::InvalidProxyUrl => {
            Attempt::Fatal(e.to_string())
        }
        other => Attempt::Retry(other.to_string(), None),
    }
}
