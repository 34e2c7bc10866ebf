//! A dataset keeps one descriptor per shard open: opening one with more shards than the soft limit
//! on open files raises the limit, and where the hard limit forbids it, says so and how to fix it.
//! Its own test binary (process), since it changes the process's limits.
#![cfg(target_os = "linux")]

use alexpipe::{Dataset, Mode};

use crate::common;

fn set_nofile(soft: u64, hard: u64) {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a valid rlimit struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

#[test]
fn many_shards_raise_the_open_file_limit_or_say_how_to() {
    let _alone = crate::alone();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    common::build_fixtures(&out, 16, Mode::Raw, 1, None); // one shard per record
    let (_, hard) = nofile();
    if hard < 512 {
        // Outside CI a machine with a tiny hard limit cannot run this test; in CI that would be a
        // silent skip of the very path the test exists for, so it fails instead.
        assert!(
            !common::in_ci(),
            "CI: the hard open-file limit {hard} is too low (< 512) to test raising the soft limit; \
             raise it (ulimit -Hn) for the CI job"
        );
        eprintln!(
            "SKIPPED: hard limit {hard} too low to test raising it (a failure under CI=true)"
        );
        return;
    }
    set_nofile(24, hard);
    let ds = Dataset::open(&out).expect("opens after raising the soft limit");
    assert!(ds.len() > 24);
    assert!(nofile().0 >= ds.len() as u64 + 256);
    ds.verify().expect("intact");
    drop(ds);
    set_nofile(24, 24);
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("too many shards")
        .to_string();
    assert!(
        msg.contains("ulimit -n") && msg.contains("--shard-size"),
        "{msg}"
    );
}
