"""Check a `spacy package` output: its meta.json must require spacy-hyperloader (the plugin that
provides the `hyperloader` factory), and the sdist must exist.

    python scripts/check_package.py packages/en_hyperloader_demo-0.1.0
"""

from __future__ import annotations

import sys
from pathlib import Path

import srsly
from wasabi import msg

PLUGIN = "spacy-hyperloader"


def main(package_dir: Path) -> int:
    meta_path = package_dir / "meta.json"
    if not meta_path.is_file():
        msg.fail(f"{meta_path} not found: run `python -m spacy package` first")
        return 1
    meta = srsly.read_json(meta_path)
    requirements = meta.get("requirements", [])
    if not any(req.replace("_", "-").lower().startswith(PLUGIN) for req in requirements):
        msg.fail(
            f"{meta_path}: requirements {requirements} do not include {PLUGIN}; the packaged pipeline "
            f"would not load after `pip install`. Pass --meta-path configs/meta.json to spacy package."
        )
        return 1
    msg.good(f"{meta['lang']}_{meta['name']} {meta['version']} requires: {', '.join(requirements)}")
    dists = sorted((package_dir / "dist").glob("*.tar.gz")) + sorted((package_dir / "dist").glob("*.whl"))
    if not dists:
        msg.fail(f"No sdist or wheel in {package_dir / 'dist'}")
        return 1
    for dist in dists:
        msg.good(f"Built {dist} ({dist.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
