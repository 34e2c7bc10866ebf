//! Datasets in S3 or an S3-compatible store (`s3://bucket/prefix/ds/`): GETs signed with AWS
//! Signature Version 4 (the `Authorization` header of AWS's "Signature Calculations for the
//! Authorization Header", with an unsigned payload), over the same blocking client as every other
//! request. Credentials, region and endpoint come from the variables every AWS tool reads:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`; default `us-east-1`), `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`); an
//! explicit endpoint (MinIO, Ceph, R2, moto) overrides the variables and is addressed path-style
//! (`endpoint/bucket/key`), AWS itself virtual-hosted (`bucket.s3.region.amazonaws.com/key`).
//! Without credentials, requests go unsigned (public buckets).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::store::Store;
use crate::error::{Error, Result};

/// Access key, secret and optional session token.
#[derive(Clone)]
struct Credentials {
    key: String,
    secret: String,
    token: Option<String>,
}

/// A dataset at `s3://bucket/prefix`.
pub(crate) struct S3Store {
    bucket: String,
    /// Key prefix of the dataset's files, ending in `/` (or empty).
    prefix: String,
    /// `scheme://host[:port]` requests go to.
    origin: String,
    /// The `Host` header (and what is signed).
    host: String,
    /// Path-style (`/bucket/key`) rather than virtual-hosted (`/key` at `bucket.host`).
    path_style: bool,
    region: String,
    credentials: Option<Credentials>,
}

impl S3Store {
    /// The store for `url` (`s3://bucket/prefix/`), with `endpoint` overriding the environment's.
    pub(crate) fn new(url: &str, endpoint: Option<&str>) -> Result<S3Store> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!(
                "{url}: no bucket; write s3://BUCKET/PREFIX/ (the dataset directory's key prefix)"
            )));
        }
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let (origin, host, path_style) = match endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/');
                let Some((_, host)) = e.split_once("://") else {
                    return Err(Error::Usage(format!(
                        "S3 endpoint {e:?} has no scheme: write http://HOST:PORT or https://HOST"
                    )));
                };
                if host.is_empty() || host.contains('/') {
                    return Err(Error::Usage(format!(
                        "S3 endpoint {e:?}: give the scheme and host only (http://HOST:PORT)"
                    )));
                }
                (e.to_string(), host.to_string(), true)
            }
            None => {
                let host = format!("{bucket}.s3.{region}.amazonaws.com");
                (format!("https://{host}"), host, false)
            }
        };
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Some(Credentials {
                key,
                secret,
                token: env("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        Ok(S3Store {
            bucket: bucket.to_string(),
            prefix,
            origin,
            host,
            path_style,
            region,
            credentials,
        })
    }

    /// The request path of file `name`, URI-encoded as SigV4 wants it.
    fn path(&self, name: &str) -> String {
        let key = uri_encode(&format!("{}{name}", self.prefix));
        if self.path_style {
            format!("/{}/{key}", uri_encode(&self.bucket))
        } else {
            format!("/{key}")
        }
    }
}

impl Store for S3Store {
    fn url(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }

    fn get(
        &self,
        agent: &ureq::Agent,
        name: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let path = self.path(name);
        let mut request = agent.get(format!("{}{path}", self.origin));
        if let Some(c) = &self.credentials {
            let (amz_date, date) = amz_dates(std::time::SystemTime::now());
            let mut headers = vec![
                ("host", self.host.clone()),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD.to_string()),
                ("x-amz-date", amz_date.clone()),
            ];
            if let Some(t) = &c.token {
                headers.push(("x-amz-security-token", t.clone()));
            }
            let auth = authorization(c, &self.region, &amz_date, &date, "GET", &path, &headers);
            for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
                request = request.header(*k, v);
            }
            request = request.header("authorization", auth);
        }
        request.call()
    }
}

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - . _ ~` and `/` as `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header of a request without a query string whose `headers` (lowercase
/// names, sorted, `host` included) are all signed.
fn authorization(
    c: &Credentials,
    region: &str,
    amz_date: &str,
    date: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> String {
    let payload = headers
        .iter()
        .find(|(k, _)| *k == "x-amz-content-sha256")
        .map_or(UNSIGNED_PAYLOAD, |(_, v)| v.as_str());
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", c.secret).as_bytes(), date);
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex(&hmac(&key, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        c.key
    )
}

/// `(YYYYMMDDTHHMMSSZ, YYYYMMDD)` of `t` in UTC.
fn amz_dates(t: std::time::SystemTime) -> (String, String) {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    (format!("{date}T{time}Z"), date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own worked example ("Example: GET Object" of "Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk").
    #[test]
    fn signs_aws_documented_get_object_example() {
        let c = Credentials {
            key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = vec![
            ("host", "examplebucket.s3.amazonaws.com".to_string()),
            ("range", "bytes=0-9".to_string()),
            ("x-amz-content-sha256", empty.to_string()),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let auth = authorization(
            &c,
            "us-east-1",
            "20130524T000000Z",
            "20130524",
            "GET",
            "/test.txt",
            &headers,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_and_encoding() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        assert_eq!(amz_dates(t).0, "20130524T000000Z");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_825_599);
        assert_eq!(amz_dates(leap).0, "20000229T115959Z");
        assert_eq!(uri_encode("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
    }
}
