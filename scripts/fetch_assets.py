"""Put the project's assets in place, offline when possible.

    python scripts/fetch_assets.py --mirror ../shared/data [--only assets/conll2003] [--extra]

For each asset of project.yml (``dest`` under ``assets/``):

* when the offline mirror exists, copy ``<mirror>/<dest without assets/>`` (a ``.gz``/``.xz``
  copy in the mirror is decompressed), so no network is needed; an asset may name its own
  ``mirror`` path (relative to the mirror) and ``mirror_checksum`` when the offline copy is
  another file than the public one (the backbone: t5-mini-en-offline here, t5-small online);
* otherwise use what ``python -m spacy project assets`` downloaded, extracting the members an
  asset lists under ``unzip`` (``{member file name: md5}``) from a downloaded zip.

Every file is checked against its md5 (``checksum``, or the md5 under ``unzip``). Files that
are already in place with the right checksum are left alone. Exits 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import lzma
import shutil
import sys
import zipfile
from pathlib import Path

import srsly
from wasabi import msg

ROOT = Path(__file__).resolve().parents[1]
ASSETS = "assets"


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ok(path: Path, checksum: str | None) -> bool:
    return path.is_file() and (checksum is None or md5(path) == checksum)


def copy_from_mirror(target: Path, mirror: Path, rel: str | None = None) -> str | None:
    """Copy the mirror's file for ``target`` (``rel``: its path in the mirror, if not the same
    as under assets/); returns an error message or None."""
    rel = rel or target.relative_to(ROOT / ASSETS)
    source = mirror / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copyfile(source, target)  # not copy(): the mirror's files are read-only
        return None
    for suffix, opener in ((".gz", gzip.open), (".xz", lzma.open)):
        packed = source.with_name(source.name + suffix)
        if packed.is_file():
            with opener(packed, "rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            return None
    return f"{rel} is not in the mirror {mirror}"


def extract(archive: Path, members: dict[str, str], directory: Path) -> str | None:
    """Extract the members named (by file name) in ``members`` from a downloaded zip."""
    if not archive.is_file():
        return f"{archive.relative_to(ROOT)} has not been downloaded"
    with zipfile.ZipFile(archive) as zf:
        by_name = {Path(info.filename).name: info for info in zf.infolist() if not info.is_dir()}
        for name in members:
            info = by_name.get(name)
            if info is None:
                return f"{archive.name} has no member {name}"
            with zf.open(info) as src, (directory / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=None, help="offline mirror of the assets (e.g. ../shared/data)")
    parser.add_argument("--only", action="append", default=[], help="only assets whose dest starts with this (repeatable)")
    parser.add_argument("--extra", action="store_true", help="include the assets marked extra: true")
    args = parser.parse_args()

    assets = srsly.read_yaml(ROOT / "project.yml").get("assets", [])
    if args.only:
        assets = [a for a in assets if any(a["dest"].startswith(prefix) for prefix in args.only)]
    else:
        assets = [a for a in assets if args.extra or not a.get("extra", False)]
    mirror = args.mirror if args.mirror is not None and args.mirror.is_dir() else None
    if mirror is not None:
        msg.info(f"Copying {len(assets)} asset(s) from the offline mirror {mirror}")
    else:
        where = f" ({args.mirror} not found)" if args.mirror is not None else ""
        msg.info(f"No offline mirror{where}: checking the assets downloaded by `spacy project assets`")

    failed = []
    for asset in assets:
        dest = ROOT / asset["dest"]
        unzip: dict[str, str] | None = asset.get("unzip")
        checksum = asset.get("mirror_checksum", asset.get("checksum")) if mirror is not None else asset.get("checksum")
        targets = {dest.parent / name: checksum for name, checksum in unzip.items()} if unzip else {dest: checksum}
        if all(ok(path, checksum) for path, checksum in targets.items()):
            msg.good(f"Up to date: {asset['dest']}" + (f" ({', '.join(unzip)})" if unzip else ""))
            continue
        if mirror is None and unzip:
            error = extract(dest, unzip, dest.parent)
            if error is not None:
                msg.fail(error)
                failed.append(asset["dest"])
                continue
        for path, checksum in targets.items():
            rel = path.relative_to(ROOT)
            if mirror is not None:
                error = copy_from_mirror(path, mirror, asset.get("mirror"))
            else:
                error = None if path.is_file() else f"{rel} has not been downloaded"
            if error is None and not ok(path, checksum):
                error = f"{rel}: checksum {md5(path)} does not match {checksum} in project.yml"
            if error is not None:
                msg.fail(error)
                failed.append(str(rel))
            else:
                msg.good(f"{'Copied' if mirror is not None else 'Checked'}: {rel}")
    if failed:
        extra = " --extra" if any(a.get("extra") for a in assets) else ""
        msg.fail(
            f"{len(failed)} asset file(s) missing or wrong. Download them with "
            f"`python -m spacy project assets{extra}` (or `weasel assets{extra}`), or point "
            f"--vars.shared_data at an offline mirror of the corpora."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
