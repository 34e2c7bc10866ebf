"""The README's multi-node training (python/examples/train_multinode.py) runs as written: two
torchrun "nodes" on this machine (two launchers meeting at a rendezvous on 127.0.0.1, one process
each, rank and world size from the environment) train and stop mid-epoch with the loader state in
the checkpoint; a single process then resumes the epoch there and finishes it."""

import os
import socket
import subprocess
import sys

import alexpipe
from conftest import FIXTURES, ROOT, require

EXAMPLE = ROOT / "python" / "examples" / "train_multinode.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_stop_and_one_resumes(tmp_path):
    require("torch", reason="torch is part of requirements-dev.txt")
    shards, ckpt = tmp_path / "ds", tmp_path / "ckpt.pt"
    alexpipe.build_shards(FIXTURES, shards, size=56, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    port = free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={n}", "--nproc-per-node=1",
             "--master-addr=127.0.0.1", f"--master-port={port}", str(EXAMPLE), str(shards), "--checkpoint", str(ckpt),
             "--epochs", "1", "--batch-size", "4", "--stop-after", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for n in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in nodes]
    for p, (out, err) in zip(nodes, outs):
        assert p.returncode == 0, out + err
    assert "saved at epoch 0, step 2" in outs[0][0], outs[0]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", str(EXAMPLE), str(shards),
         "--checkpoint", str(ckpt), "--epochs", "1", "--batch-size", "4"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 31 records: the two ranks took 2 batches of 4 each (16 records); one process has 15 left.
    assert "resumed at epoch 0, step 2" in proc.stdout, proc.stdout
    assert "done: 1 epochs, 3 steps in this run" in proc.stdout, proc.stdout
