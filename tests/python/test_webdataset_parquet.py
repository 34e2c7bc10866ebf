"""WebDataset tars and parquet / Hugging Face datasets as build inputs, against the real producers:
tars written by webdataset.ShardWriter, parquet written by datasets' to_parquet (files, globs, a Hub
snapshot's data/ folder) and save_to_disk directories. The oracle is a build of the same image files
as an ImageFolder: every record must be byte-identical to that build's record of the same image, with
the same label. Damage (a cut tar, a non-image member, a null cell, a missing label, a corrupt row
group) becomes rejects naming the member or row, records + rejects = inputs, and the exit code is the
folder input's. A tar is also read over http:// from a real server the test starts."""

import io
import socket
import subprocess
import sys
import tarfile
import time
from types import SimpleNamespace

import numpy as np
import pytest
from alexpipe_format import Dataset
from conftest import require, run_build
from PIL import Image

CLASSES = ["cat", "dog", "emu"]
COUNT = 36
SIZE = 64


@pytest.fixture(scope="module")
def photos(tmp_path_factory, real_photos):
    """36 crops of the real photos (JPEG and PNG) as an ImageFolder, and its build: the oracle."""
    root = tmp_path_factory.mktemp("formats")
    folder = root / "folder"
    rng = np.random.default_rng(18)
    ims = [Image.open(p).convert("RGB") for p in real_photos]
    samples = []  # (key, label, file name, bytes), in the order the containers are written
    for i in range(COUNT):
        im = ims[i % len(ims)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.4, 0.9)), int(h * rng.uniform(0.4, 0.9))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        short = int(rng.integers(80, 160))
        s = short / min(cw, ch)
        crop = im.crop((x, y, x + cw, y + ch)).resize((round(cw * s), round(ch * s)), Image.BICUBIC)
        ext = "png" if i % 4 == 3 else "jpg"
        buf = io.BytesIO()
        crop.save(buf, format="PNG" if ext == "png" else "JPEG", quality=int(rng.integers(80, 96)))
        key, label = f"sample{i:04d}", i % len(CLASSES)
        path = folder / CLASSES[label] / f"{key}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
        samples.append((key, label, path.name, buf.getvalue()))
    out = root / "folder-shards"
    run_build(folder, out, "--size", SIZE)
    oracle = records_by_key(out, lambda p: p.rsplit("/", 1)[-1].split(".")[0])
    assert len(oracle) == COUNT
    names = root / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    return SimpleNamespace(root=root, folder=folder, samples=samples, oracle=oracle, class_names=names)


def records_by_key(out, key_of):
    """{key: (label, class, record bytes)} of a built dataset, the key taken from index.tsv's path."""
    ds = Dataset(out)
    index = ds.index()
    assert len(index) == len(ds)
    got = {}
    for (i, label, cls, _shard, path), (rec_label, rec) in zip(index, ds.records):
        assert label == rec_label
        key = key_of(path)
        assert key not in got, f"{key} twice"
        got[key] = (label, cls, rec)
    return got


def tar_key(path):
    """`…/shard-000001.tar:sample0012.jpg` → `sample0012`."""
    assert ".tar:" in path or ".tar.gz:" in path, path
    return path.rsplit(":", 1)[1].split(".")[0]


def expect(photos, keys, classes=None):
    """The oracle's records for `keys`, with the class names a container build gives them."""
    names = classes or CLASSES
    return {k: (photos.oracle[k][0], names[photos.oracle[k][0]], photos.oracle[k][2]) for k in keys}


def write_shards(photos, dest, maxcount=10, json_label=False, replace=None, pattern="shard-%06d.tar"):
    """WebDataset shards of the photos, written by webdataset.ShardWriter."""
    wds = require("webdataset", "WebDataset shards are written by webdataset.ShardWriter")
    dest.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(dest / pattern), maxcount=maxcount, verbose=0) as sink:
        for key, label, name, data in photos.samples:
            ext = name.split(".", 1)[1]
            sample = {"__key__": key, ext: (replace or {}).get(key, data)}
            if json_label:
                sample["json"] = {"label": label, "note": "webdataset test"}
            else:
                sample["cls"] = label
            sink.write(sample)
    return sorted(dest.glob("shard-*.tar*"))


@pytest.fixture(scope="module")
def shards(photos):
    tars = write_shards(photos, photos.root / "wds")
    assert len(tars) == 4
    # The oracle's premise: the tar members are the image files' bytes, untouched.
    members = {}
    for t in tars:
        with tarfile.open(t) as tf:
            for m in tf.getmembers():
                members[m.name] = tf.extractfile(m).read()
    for key, label, name, data in photos.samples:
        assert members[name] == data and members[f"{key}.cls"] == str(label).encode()
    return tars


def test_webdataset_brace_range_builds_the_folder_records(photos, shards):
    out = photos.root / "wds-shards"
    run_build(str(photos.root / "wds" / "shard-{000000..000003}.tar"), out, "--size", SIZE)
    got = records_by_key(out, tar_key)
    assert got == expect(photos, photos.oracle, classes=["0", "1", "2"])
    ds = Dataset(out)
    assert ds.manifest["classes"] == ["0", "1", "2"]
    assert ds.manifest["build"]["input_kind"] == "webdataset"
    np.testing.assert_array_equal(ds.mean_image, Dataset(photos.root / "folder-shards").mean_image)
    paths = [p for _, _, _, _, p in ds.index()]
    assert paths[12].endswith("/wds/shard-000001.tar:sample0012.jpg"), paths[12]
    assert ds.rejects() == []
    # The same records in the same order whatever the thread count.
    one = photos.root / "wds-shards-1"
    run_build(str(photos.root / "wds" / "shard-{000000..000003}.tar"), one, "--size", SIZE, "--threads", "1")
    assert Dataset(one).records == ds.records and Dataset(one).index() == ds.index()


def test_gzipped_shards_as_shardwriter_writes_them(photos):
    tars = write_shards(photos, photos.root / "wds-gz", maxcount=20, pattern="shard-%06d.tar.gz")
    assert [t.name for t in tars] == ["shard-000000.tar.gz", "shard-000001.tar.gz"]
    assert tars[0].read_bytes()[:2] == b"\x1f\x8b"  # the premise: gzip
    out = photos.root / "wds-gz-shards"
    run_build(str(photos.root / "wds-gz" / "shard-{000000..000001}.tar.gz"), out, "--size", SIZE)
    assert records_by_key(out, tar_key) == expect(photos, photos.oracle, classes=["0", "1", "2"])


def test_webdataset_glob_json_label_key_and_class_names(photos):
    write_shards(photos, photos.root / "wds-json", maxcount=16, json_label=True)
    out = photos.root / "wds-json-shards"
    run_build(
        str(photos.root / "wds-json" / "shard-*.tar"), out, "--size", SIZE,
        "--label-key", "json:label", "--class-names", photos.class_names,
    )
    assert records_by_key(out, tar_key) == expect(photos, photos.oracle)
    assert Dataset(out).manifest["classes"] == CLASSES
    # Too few class names: the samples of label 2 are no-label rejects, the rest built.
    two = photos.root / "two-classes.txt"
    two.write_text("cat\ndog\n")
    out = photos.root / "wds-two-shards"
    run_build(
        str(photos.root / "wds-json" / "shard-*.tar"), out, "--size", SIZE,
        "--label-key", "json:label", "--class-names", two,
    )
    rejects = Dataset(out).rejects()
    assert len(rejects) == COUNT // 3 and all(kind == "no-label" for _, kind, _ in rejects)
    assert all("label 2 has no class name" in detail for _, _, detail in rejects)
    assert records_by_key(out, tar_key) == {k: v for k, v in expect(photos, photos.oracle).items() if v[0] != 2}
    # Without --label-key the cls member is missing: every sample a no-label reject, and the
    # build fails as a folder of unusable files does, naming the fix.
    proc = run_build(str(photos.root / "wds-json" / "shard-*.tar"), photos.root / "none", check=False)
    assert proc.returncode != 0 and "--label-key" in proc.stderr, proc.stderr


def image_dataset(photos, rows):
    """A datasets.Dataset of (image, label) rows with the Image and ClassLabel features."""
    datasets = require("datasets", "parquet inputs are written by Hugging Face datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    return datasets.Dataset.from_dict(
        {"image": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features
    )


def photo_rows(photos):
    return [({"bytes": data, "path": name}, label) for _, label, name, data in photos.samples]


def row_key(per_file):
    """`…/train-00001-of-00002.parquet:row 5` → the sample written there (files of `per_file` rows)."""

    def key(path):
        name, row = path.rsplit(":row ", 1)
        part = int(name.rsplit("/", 1)[-1].split("-")[1].split(".")[0]) if "-" in name.rsplit("/", 1)[-1] else 0
        return f"sample{part * per_file + int(row):04d}"

    return key


def test_parquet_glob_hub_snapshot_and_save_to_disk_build_the_folder_records(photos):
    ds = image_dataset(photos, photo_rows(photos))
    pq_dir = photos.root / "pq"
    hub = photos.root / "hub"
    (hub / "data").mkdir(parents=True)
    (hub / "README.md").write_text("---\nlicense: mit\n---\n")
    for k in range(2):
        part = ds.shard(2, k, contiguous=True)
        part.to_parquet(str(pq_dir / f"train-{k:05d}-of-00002.parquet"))
        part.to_parquet(str(hub / "data" / f"train-{k:05d}-of-00002.parquet"))
    key = row_key(COUNT // 2)
    out = photos.root / "pq-shards"
    run_build(str(pq_dir / "train-*.parquet"), out, "--size", SIZE)
    assert records_by_key(out, key) == expect(photos, photos.oracle)
    built = Dataset(out)
    assert built.manifest["classes"] == CLASSES  # the ClassLabel names of the huggingface metadata
    assert built.manifest["build"]["input_kind"] == "parquet"
    assert built.index()[17][4].endswith("/pq/train-00000-of-00002.parquet:row 17")
    # Columns that are not there or not of their kind: one line naming the file, the columns and the fix.
    for args, words in [
        (["--image-column", "picture"], ["no image column \"picture\"", "image, label", "--image-column"]),
        (["--label-column", "image"], ["not integers", "--label-column"]),
        (["--image-column", "label"], ["not images", "--image-column"]),
    ]:
        proc = run_build(str(pq_dir / "train-*.parquet"), photos.root / "bad-columns", *args, check=False)
        assert proc.returncode != 0 and all(w in proc.stderr for w in words), proc.stderr
    # A Hub snapshot (snapshot_download's layout): the directory itself.
    run_build(hub, photos.root / "hub-shards", "--size", SIZE)
    assert records_by_key(photos.root / "hub-shards", key) == expect(photos, photos.oracle)
    assert Dataset(photos.root / "hub-shards").index()[0][4] == "data/train-00000-of-00002.parquet:row 0"
    # Two splits in one snapshot: refused, naming them and the glob to write.
    ds.select(range(3)).to_parquet(str(hub / "data" / "test-00000-of-00001.parquet"))
    proc = run_build(hub, photos.root / "two-splits", check=False)
    assert proc.returncode != 0 and "test, train" in proc.stderr and "train-*.parquet" in proc.stderr
    # A dataset made from image paths (cast_column("image", Image())): to_parquet keeps the paths,
    # not the bytes; the build reads those files, as the folder build does.
    datasets = require("datasets", "parquet inputs are written by Hugging Face datasets")
    paths = [str(photos.folder / CLASSES[label] / name) for _, label, name, _ in photos.samples]
    by_path = (
        datasets.Dataset.from_dict({"image": paths, "label": [s[1] for s in photos.samples]})
        .cast_column("image", datasets.Image())
        .cast_column("label", datasets.ClassLabel(names=CLASSES))
    )
    by_path.to_parquet(str(photos.root / "pq-paths" / "train-00000.parquet"))
    pq = require("pyarrow.parquet", "pyarrow reads the cells back")
    cells = pq.read_table(photos.root / "pq-paths" / "train-00000.parquet").column("image").to_pylist()
    assert all(c["bytes"] is None and c["path"] == p for c, p in zip(cells, paths))  # the premise
    run_build(photos.root / "pq-paths" / "train-00000.parquet", photos.root / "pq-paths-shards", "--size", SIZE)
    assert records_by_key(photos.root / "pq-paths-shards", row_key(COUNT)) == expect(photos, photos.oracle)
    # save_to_disk: Arrow IPC stream files, state.json, dataset_info.json.
    saved = photos.root / "saved"
    ds.save_to_disk(str(saved))
    run_build(saved, photos.root / "saved-shards", "--size", SIZE)
    got = records_by_key(photos.root / "saved-shards", row_key(COUNT))
    assert got == expect(photos, photos.oracle)
    assert Dataset(photos.root / "saved-shards").manifest["classes"] == CLASSES
    # The Arrow IPC file format (pyarrow.ipc.new_file), with the same schema metadata.
    ipc = require("pyarrow.ipc", "pyarrow writes the Arrow IPC file")
    table = ds.data.table
    with ipc.new_file(str(photos.root / "table.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=10)
    run_build(photos.root / "table.arrow", photos.root / "ipc-file-shards", "--size", SIZE)
    assert records_by_key(photos.root / "ipc-file-shards", row_key(COUNT)) == expect(photos, photos.oracle)


def test_python_build_shards_reads_tars_and_parquet(photos, shards):
    alexpipe = require("alexpipe", "the Python package (maturin develop)")
    pq_dir = photos.root / "py-pq"
    image_dataset(photos, photo_rows(photos)).to_parquet(str(pq_dir / "train-00000.parquet"))
    out = photos.root / "py-pq-shards"
    summary = alexpipe.build_shards(str(pq_dir / "train-*.parquet"), str(out), size=SIZE, progress=False)
    assert summary["records"] == COUNT and summary["classes"] == CLASSES and summary["rejects"] == []
    assert records_by_key(out, row_key(COUNT)) == expect(photos, photos.oracle)
    out = photos.root / "py-wds-shards"
    summary = alexpipe.build_shards(
        str(photos.root / "wds" / "shard-{000000..000003}.tar"), str(out), size=SIZE, progress=False,
        label_key="cls", class_names=str(photos.class_names),
    )
    assert summary["records"] == COUNT and summary["classes"] == CLASSES
    assert records_by_key(out, tar_key) == expect(photos, photos.oracle)
    with pytest.raises(ValueError, match="--label-key does not apply to parquet"):
        alexpipe.build_shards(str(pq_dir / "train-*.parquet"), str(photos.root / "x"), label_key="cls")


def folder_exit_code_with_a_reject(photos):
    """What the folder input exits with when one file is not an image: the damaged containers
    must exit the same."""
    bad = photos.root / "folder-bad"
    if not bad.exists():
        import shutil

        shutil.copytree(photos.folder, bad)
        (bad / "cat" / "notes.jpg").write_text("not an image")
    proc = run_build(bad, photos.root / "folder-bad-shards", "--size", SIZE, check=False)
    assert len(Dataset(photos.root / "folder-bad-shards").rejects()) == 1
    return proc.returncode


def test_damaged_tars_keep_every_complete_sample_and_name_the_damage(photos, shards):
    dmg = photos.root / "dmg"
    dmg.mkdir()
    first = shards[0].read_bytes()  # samples 0..9
    with tarfile.open(shards[0]) as tf:
        members = {m.name: m for m in tf.getmembers()}
    # Cut in the middle of sample0005's image data.
    m = members["sample0005.jpg"]
    (dmg / "cut.tar").write_bytes(first[: m.offset_data + m.size // 2])
    # Cut in the middle of sample0007.cls's header.
    (dmg / "cuthead.tar").write_bytes(first[: members["sample0007.cls"].offset + 200])
    # A member that is not an image.
    write_shards(photos, dmg / "bad", maxcount=10, replace={"sample0003": b"this is not an image"})
    (dmg / "bad" / "shard-000000.tar").rename(dmg / "bad.tar")
    out = photos.root / "dmg-shards"
    proc = run_build(str(dmg / "{cut,cuthead,bad}.tar"), out, "--size", SIZE, check=False)
    assert proc.returncode == folder_exit_code_with_a_reject(photos) == 0, proc.stderr
    got = records_by_key(out, lambda p: (p.rsplit("/", 1)[-1].split(".tar:")[0], tar_key(p)))
    rejects = Dataset(out).rejects()
    kept = [("cut", i) for i in range(5)] + [("cuthead", i) for i in range(7)]
    kept += [("bad", i) for i in range(10) if i != 3]
    want = {}
    for tar, i in kept:
        label, _, rec = photos.oracle[f"sample{i:04d}"]
        want[(tar, f"sample{i:04d}")] = (label, str(label), rec)
    assert got == want
    by_path = {p.rsplit("/", 1)[-1]: (kind, detail) for p, kind, detail in rejects}
    assert len(rejects) == 3 == len(by_path), rejects
    kind, detail = by_path["cut.tar:sample0005.jpg"]
    assert kind == "corrupt" and "cut short" in detail and str(m.offset_data) in detail
    kind, detail = by_path["cuthead.tar"]
    assert kind == "corrupt" and "after member sample0006.jpg" in detail
    assert by_path[f"bad.tar:{photos.samples[3][2]}"][0] == "not-an-image"
    # Nothing lost: records + rejects = the samples read (5 + 1, 7 + 1, 10).
    assert len(Dataset(out)) + len(rejects) == 6 + 8 + 10
    assert Dataset(out).manifest["rejected"] == 3
    # --strict stops at the first, naming the tar and the member, as it names a folder's file.
    proc = run_build(str(dmg / "{cut,cuthead,bad}.tar"), photos.root / "strict", "--strict", check=False)
    assert proc.returncode != 0 and "cut.tar:sample0005.jpg" in proc.stderr and "--strict" in proc.stderr
    assert not (photos.root / "strict").exists()


def corrupt_row_group(path, row_group, where="middle"):
    """Overwrites 1 KiB in the middle of the image bytes' column chunk of `row_group`, or 64 bytes
    at its start (the first page header)."""
    pq = require("pyarrow.parquet", "pyarrow (datasets' dependency) locates the column chunk")
    meta = pq.ParquetFile(path).metadata
    col = next(
        meta.row_group(row_group).column(c)
        for c in range(meta.num_columns)
        if meta.row_group(row_group).column(c).path_in_schema == "image.bytes"
    )
    first = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    start, n = (first + col.total_compressed_size // 2, 1024) if where == "middle" else (first + 2, 64)
    data = bytearray(path.read_bytes())
    data[start : start + n] = bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8))
    path.write_bytes(bytes(data))


def write_damaged_parquet(photos, rows, path, writer):
    """`rows` as parquet with row groups of 4 rows: by datasets (its own choices for images: PLAIN,
    uncompressed), by datasets with page checksums, or by pyarrow with snappy (older Hub files)."""
    ds = image_dataset(photos, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if writer == "datasets":
        ds.to_parquet(str(path), batch_size=4)
    elif writer == "datasets-checksums":
        ds.to_parquet(str(path), batch_size=4, write_page_checksum=True)
    else:
        pq = require("pyarrow.parquet", "pyarrow writes the snappy parquet")
        pq.write_table(ds.data.table, str(path), compression="snappy", row_group_size=4, use_dictionary=False)


@pytest.mark.parametrize(
    "writer, where",
    [("datasets-checksums", "middle"), ("snappy", "middle"), ("datasets", "middle"), ("datasets", "header")],
)
def test_damaged_parquet_rows_become_rejects_naming_the_row(photos, writer, where):
    rows = photo_rows(photos)
    rows[2] = (None, rows[2][1])  # a null image
    rows[5] = (rows[5][0], None)  # a missing label
    rows[9] = ({"bytes": b"GIF89 but not really", "path": "x.gif"}, rows[9][1])  # not an image
    rows[7] = ({"bytes": None, "path": "gone.jpg"}, rows[7][1])  # a path to no file
    path = photos.root / f"pq-dmg-{writer}-{where}" / "train-00000.parquet"
    write_damaged_parquet(photos, rows, path, writer)
    corrupt_row_group(path, 3, where)  # rows 12..15
    out = path.parent / "shards"
    proc = run_build(path, out, "--size", SIZE, check=False)
    assert proc.returncode == 0, proc.stderr
    rejects = {p.rsplit("/", 1)[-1]: (kind, detail) for p, kind, detail in Dataset(out).rejects()}
    assert rejects.pop("train-00000.parquet:row 2") == ("no-image", "the image cell is null")
    kind, detail = rejects.pop("train-00000.parquet:row 5")
    assert kind == "no-label" and "null" in detail
    assert rejects.pop("train-00000.parquet:row 9")[0] == "not-an-image"
    kind, detail = rejects.pop("train-00000.parquet:row 7")
    assert kind == "no-image" and "gone.jpg" in detail and "not a file" in detail
    got = records_by_key(out, row_key(COUNT))
    damaged = {f"sample{i:04d}" for i in range(12, 16)}
    kept = {f"sample{i:04d}" for i in range(COUNT)} - {"sample0002", "sample0005", "sample0007", "sample0009"}
    kept -= damaged
    # Every row outside the damaged group is its image's record, exactly; nothing is lost.
    assert {k: v for k, v in got.items() if k not in damaged} == expect(photos, kept)
    assert len(Dataset(out)) + len(rejects) + 4 == COUNT
    # The independent oracle: pyarrow (checking page checksums where there are some). When it
    # cannot read the damaged group, neither may we: every row of it is a reject, named.
    pq = require("pyarrow.parquet", "pyarrow is the oracle for the damaged row group")
    try:
        group = pq.ParquetFile(path, page_checksum_verification=True).read_row_group(3)
    except Exception:
        group = None
    if writer == "datasets-checksums" or where == "header":
        assert group is None, "pyarrow must see the checksum mismatch or the broken page header"
    if group is None:
        assert sorted(rejects) == sorted(f"train-00000.parquet:row {r}" for r in range(12, 16))
        for kind, detail in rejects.values():
            assert kind == "corrupt" and "row group 3 (rows 12..16)" in detail, detail
        return
    # pyarrow reads it (no checksum, and the damage kept the page layout and the compression
    # valid): each row of the group is a reject or, if its bytes survived, its image's record.
    assert set(rejects) <= {f"train-00000.parquet:row {r}" for r in range(12, 16)}
    for r, cell in zip(range(12, 16), group.column("image").to_pylist()):
        key = f"sample{r:04d}"
        if key in got and cell["bytes"] == photos.samples[r][3]:
            assert got[key] == expect(photos, [key])[key]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webdataset_shards_over_http(photos, shards):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(photos.root / "wds")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the http server did not start"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/shard-{{000000..000003}}.tar"
        out = photos.root / "http-shards"
        run_build(url, out, "--size", SIZE, "--class-names", photos.class_names)
        assert records_by_key(out, tar_key) == expect(photos, photos.oracle)
        assert Dataset(out).index()[0][4] == f"http://127.0.0.1:{port}/shard-000000.tar:sample0000.jpg"
        # A shard the server does not have: one reject naming the URL, the others built.
        url = f"http://127.0.0.1:{port}/shard-{{000003..000004}}.tar"
        proc = run_build(url, photos.root / "http-404", "--size", SIZE, check=False)
        assert proc.returncode == 0, proc.stderr
        (path, kind, detail), = Dataset(photos.root / "http-404").rejects()
        assert path == f"http://127.0.0.1:{port}/shard-000004.tar" and kind == "unreadable" and "404" in detail
        assert len(Dataset(photos.root / "http-404")) == COUNT - 30
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_huge_tar_members_stay_within_the_memory_bound(photos, tmp_path):
    """1 GiB members (sparse, cheap to make) inside a tar: a text one is refused after its first 64
    bytes, one with a JPEG header for its size, a zlib bomb at decode; the build's peak memory stays
    within the folder input's stated bound (docs/RELIABILITY.md), far below the members."""
    import zlib

    from conftest import png_bytes
    from test_resource_limits import MAX_PIXELS, peak_rss_bytes

    ok = photos.samples[0][3]
    huge = 1 << 30
    path = tmp_path / "hostile.tar"
    with open(path, "wb") as f:

        def member(name, data, size=None):
            info = tarfile.TarInfo(name)
            info.size = len(data) if size is None else size
            f.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            start = f.tell()
            f.write(data)
            f.seek(start + info.size + (-info.size % 512))

        member("a_ok.jpg", ok), member("a_ok.cls", b"0")
        member("b_text.jpg", b"this is a text file\n" * 100, size=huge), member("b_text.cls", b"0")
        member("c_jpeg.jpg", ok[:200], size=huge), member("c_jpeg.cls", b"0")
        w = h = 6000
        member("d_bomb.png", png_bytes(w, h, zlib.compress(b"\0" * (h * (3 * w + 1)), 9))), member("d_bomb.cls", b"1")
        member("e_ok.jpg", ok), member("e_ok.cls", b"1")
        f.write(b"\0" * 1024)
    out = tmp_path / "ds"
    threads = 2
    rc, peak = peak_rss_bytes([path, out, "--size", "64", "--threads", threads, "--max-pixels", MAX_PIXELS])
    assert rc == 0
    assert len(Dataset(out)) == 2
    reasons = {p.rsplit(":", 1)[1]: kind for p, kind, _ in Dataset(out).rejects()}
    assert reasons == {"b_text.jpg": "not-an-image", "c_jpeg.jpg": "too-large", "d_bomb.png": "too-large"}, reasons
    per_worker = 8 * MAX_PIXELS + (64 << 20) + 8 * MAX_PIXELS + 3 * 64 * 64
    bound = threads * per_worker + (64 << 20)
    print(f"build-shards peak RSS {peak / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB")
    assert peak < bound, f"peak RSS {peak / 2**20:.0f} MiB over the bound {bound / 2**20:.0f} MiB"
