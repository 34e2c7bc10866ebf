"""Real servers on 127.0.0.1 for the streaming tests and benchmark, started and stopped by them:
nginx (Debian's, with a config of its own in a temporary directory), moto's S3 server, and the
fault-injecting proxy of tests/fault_proxy.py."""

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nginx_binary():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


@contextmanager
def nginx(root, workdir):
    """nginx serving directory `root` at http://127.0.0.1:PORT/; yields (base URL, access log)."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: run scripts/setup.sh (Debian package nginx)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "access.log"
    temp = "".join(f"  {k}_temp_path {workdir / k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"user {getpass.getuser()};\n"
        "daemon off;\nworker_processes 2;\n"
        f"pid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'};\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {log};\n{temp}"
        "  default_type application/octet-stream;\n  sendfile on;\n  keepalive_requests 100000;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n"
        "}\n"
    )
    proc = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc, "nginx")
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(proc)


def requests_for(log, needle):
    """GET requests in an nginx access log whose path contains `needle`."""
    if not Path(log).exists():
        return 0
    return sum(1 for line in Path(log).read_text().splitlines() if "GET " in line and needle in line)


@contextmanager
def fault_proxy(upstream, plan, workdir, slow=0.5):
    """tests/fault_proxy.py in front of `upstream`; yields (base URL, a function returning the
    counts of the faults served)."""
    import json

    port = free_port()
    counts = Path(workdir) / f"faults-{port}.json"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fault_proxy.py"), str(port), upstream, ",".join(plan), str(counts), str(slow)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "the fault proxy")
        yield f"http://127.0.0.1:{port}", lambda: json.loads(counts.read_text()) if counts.exists() else {}
    finally:
        stop(proc)


@contextmanager
def moto_s3():
    """moto's S3 server; yields its endpoint URL. Credentials for it go in the environment."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "moto_server", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def upload_dir(endpoint, bucket, prefix, directory):
    """Uploads every file of `directory` to s3://bucket/prefix/ with boto3."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    for f in sorted(Path(directory).iterdir()):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}{f.name}")
