"""Usage errors: one line saying what is wrong and how to fix it, a non-zero exit, never a panic.
Rebuilding over a previous dataset works (the main job is idempotent). List files."""

import json
import shutil

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import FIXTURES, ROOT, run_build



def error_line(proc):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) >= 1
    return lines[0]


def test_missing_input(tmp_path):
    line = error_line(run_build(tmp_path / "nope", tmp_path / "out", check=False))
    assert "does not exist" in line and "nope" in line


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    line = error_line(run_build(tmp_path / "empty", tmp_path / "out", check=False))
    assert "no class sub-folders" in line


def test_class_folders_without_files(tmp_path):
    (tmp_path / "in" / "cats").mkdir(parents=True)
    line = error_line(run_build(tmp_path / "in", tmp_path / "out", check=False))
    assert "contain no files" in line


def test_out_exists_and_is_not_a_dataset(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    line = error_line(run_build(FIXTURES, out, check=False))
    assert "not an alexpipe dataset" in line and "precious" in line
    assert (out / "thesis.tex").read_text() == "do not delete"
    f = tmp_path / "file"
    f.write_text("x")
    assert "not a directory" in error_line(run_build(FIXTURES, f, check=False))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--size", "0"], "--size"),
        (["--quality", "101"], "--quality"),
        (["--shard-size", "0"], "--shard-size"),
        (["--threads", "0"], "--threads"),
        (["--mode", "png"], "--mode"),
        (["--size", "abc"], "--size"),
        (["--max-pixels", "0"], "--max-pixels"),
    ],
)
def test_bad_option_values(tmp_path, args, words):
    line = error_line(run_build(FIXTURES, tmp_path / "out", *args, check=False))
    assert words in line, line
    assert not (tmp_path / "out").exists()


def test_missing_out(tmp_path):
    assert "missing OUT" in error_line(run_build(FIXTURES, check=False))


def test_bad_list_file_line(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("circles/circle_000.jpg 0\ncircles/circle_001.jpg cat\n")
    line = error_line(run_build(lst, tmp_path / "out", "--root", FIXTURES, check=False))
    assert "list.txt:2" in line and "not an integer" in line


def test_stats_only_on_non_dataset(tmp_path):
    line = error_line(run_build("--stats-only", tmp_path, check=False))
    assert "not an alexpipe dataset" in line


def test_rebuild_replaces_previous_dataset(tmp_path):
    out = tmp_path / "ds"
    run_build(FIXTURES, out, "--size", "32")
    assert Dataset(out).size == 32
    run_build(FIXTURES, out, "--size", "48")
    assert Dataset(out).size == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no partial or old directories left


def test_list_file_gives_the_same_records_as_the_folder(tmp_path):
    run_build(FIXTURES, tmp_path / "folder", "--size", "64")
    run_build(ROOT / "fixtures" / "train.txt", tmp_path / "list", "--root", FIXTURES, "--size", "64")
    a, b = Dataset(tmp_path / "folder"), Dataset(tmp_path / "list")
    assert [r[4] for r in a.index()] == [r[4] for r in b.index()]
    assert [r[1] for r in a.index()] == [r[1] for r in b.index()]
    assert a.records == b.records
    assert b.manifest["classes"] == ["0", "1", "2", "3"]
    names = tmp_path / "names.txt"
    names.write_text("blobs\ncheckers\ncircles\nstripes\n")
    run_build(ROOT / "fixtures" / "train.txt", tmp_path / "named", "--root", FIXTURES, "--class-names", names, "--size", "64")
    assert Dataset(tmp_path / "named").manifest["classes"] == a.manifest["classes"]


def test_list_file_missing_image_is_a_reject(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("circles/circle_000.jpg 0\nno/such file.jpg 1\n")
    run_build(lst, tmp_path / "out", "--root", FIXTURES, "--size", "32")
    ds = Dataset(tmp_path / "out")
    assert len(ds) == 1
    assert ds.rejects() == [("no/such file.jpg", "unreadable", ds.rejects()[0][2])]


def test_json_summary_and_traceability(tmp_path):
    proc = run_build(FIXTURES, tmp_path / "ds", "--json")
    summary = json.loads(proc.stdout)
    ds = Dataset(tmp_path / "ds")
    assert summary["records"] == len(ds) and summary["inputs"] == len(ds) + summary["rejected"]
    # Each record traces back to its source file, and the label is its class folder.
    for record, label, cls, shard, path in ds.index():
        assert (FIXTURES / path).exists()
        assert path.split("/")[0] == cls == ds.manifest["classes"][label]
        assert ds.records[record][0] == label
    assert sum(ds.manifest["class_counts"]) == len(ds)
