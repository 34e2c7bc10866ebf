"""Writes an ImageFolder corpus (benches/make_corpus.py) again as the formats datasets ship in, with
their own producers: WebDataset tars (webdataset.ShardWriter, 250 samples a shard, `cls` labels) and
parquet (Hugging Face datasets' to_parquet, the Image and ClassLabel features, 4 files). The images
are the folder's files, byte for byte, in the folder build's order. Reuses a complete output.

Usage: .venv/bin/python benches/make_formats.py FOLDER OUT_DIR
"""

import json
import sys
from pathlib import Path


def main():
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    files = sorted(p for p in folder.glob("*/*") if p.is_file())
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    stamp = out / "formats.json"
    spec = {"folder": str(folder), "files": len(files), "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return
    import shutil

    import datasets
    import webdataset as wds

    if out.exists():
        shutil.rmtree(out)
    (out / "wds").mkdir(parents=True)
    with wds.ShardWriter(str(out / "wds" / "shard-%06d.tar"), maxcount=250, verbose=0) as sink:
        for i, f in enumerate(files):
            sink.write({"__key__": f"{f.parent.name}_{f.stem}", "jpg": f.read_bytes(), "cls": classes.index(f.parent.name)})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    ds = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": f.read_bytes(), "path": f.name} for f in files],
            "label": [classes.index(f.parent.name) for f in files],
        },
        features=features,
    )
    parts = 4
    for k in range(parts):
        ds.shard(parts, k, contiguous=True).to_parquet(str(out / "parquet" / f"train-{k:05d}-of-{parts:05d}.parquet"))
    stamp.write_text(json.dumps(spec))


if __name__ == "__main__":
    main()
