#!/usr/bin/env bash
# Check that `spacy package` builds a pipeline package that installs and loads in a FRESH
# virtual environment (no --system-site-packages): torch (CPU wheel), then this repository
# (a regular, non-editable install), then the pipeline's sdist; `spacy.load("<package>")` and
# `nlp.pipe` must then work from outside the repository with spacy_hyperloader imported from
# the venv.
#
# Usage:
#   scripts/check_package_venv.sh PIPELINE_DIR WORK_DIR
#   scripts/check_package_venv.sh --tiny WORK_DIR
#
#   PIPELINE_DIR  a pipeline saved by nlp.to_disk / spacy train, e.g. training/model-best
#   --tiny        build a tiny untrained NER + tag pipeline first (scripts/make_tiny_pipeline.py,
#                 a few seconds) into WORK_DIR/pipeline and package that
#   WORK_DIR      scratch directory outside the repository; gets packages/, venv/ (recreated on
#                 every run), src/ (a copy of the repository's working tree) and pipeline/
#
# Environment:
#   PYTHON       interpreter that builds the tiny pipeline, runs `spacy package` and creates the
#                venv (default: python)
#   PKG_NAME     package name passed to --name (default: "name" in configs/meta.json)
#   PKG_VERSION  package version passed to --version (default: "version" in configs/meta.json)
#   REPO_REF     install this commit of the repository (e.g. HEAD) instead of its working tree
#
# Needs pip access to torch==2.13.0 (CPU) and the package's dependencies (a local mirror is
# fine); takes a few minutes, mostly pip. Not part of the unit tests. Exit status 0 on success.
#
# Example:
#   scripts/check_package_venv.sh --tiny /tmp/pkgcheck

set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
fail() { echo "FAILURE: $*" >&2; exit 1; }
step() { echo; echo "=== [${SECONDS}s] $*"; }

[[ $# -eq 2 ]] || usage
PIPELINE_ARG=$1
WORK_ARG=$2

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PYTHON=${PYTHON:-python}
META="$REPO/configs/meta.json"
TORCH_SPEC="torch==2.13.0"
trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "FAILURE: package venv check failed (exit $rc) after ${SECONDS}s" >&2; fi' EXIT

if [[ "$PIPELINE_ARG" != "--tiny" ]]; then
    [[ -f "$PIPELINE_ARG/config.cfg" && -f "$PIPELINE_ARG/meta.json" ]] \
        || fail "$PIPELINE_ARG is not a saved pipeline (no config.cfg / meta.json)"
fi
WORK=$(realpath -m "$WORK_ARG")
case "$WORK/" in
    "$REPO"/*) fail "WORK_DIR $WORK is inside the repository $REPO; use a directory outside it." ;;
esac
mkdir -p "$WORK"

# The build-side python imports spacy_hyperloader from the repository (editable install or not);
# nothing that runs in the venv may see that path: pip would take the repository's *.egg-info
# for an installed spacy-hyperloader.
BUILD_PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
unset PYTHONPATH PYTHONHOME
build_py() { PYTHONPATH="$BUILD_PYTHONPATH" "$PYTHON" "$@"; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

meta_field() { "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$META" "$1"; }
NAME=${PKG_NAME:-$(meta_field name)}
VERSION=${PKG_VERSION:-$(meta_field version)}

if [[ "$PIPELINE_ARG" == "--tiny" ]]; then
    step "Building a tiny pipeline in $WORK/pipeline"
    rm -rf "$WORK/pipeline"
    build_py "$REPO/scripts/make_tiny_pipeline.py" "$WORK/pipeline"
    PIPELINE="$WORK/pipeline"
else
    PIPELINE=$(cd "$PIPELINE_ARG" && pwd -P)
fi

step "spacy package $PIPELINE -> $WORK/packages (name $NAME, version $VERSION)"
rm -rf "$WORK/packages"
mkdir -p "$WORK/packages"
# Same flags as project.yml's `package` command, run from the repository root like it.
(cd "$REPO" && build_py -m spacy package "$PIPELINE" "$WORK/packages" --meta-path configs/meta.json \
    --name "$NAME" --version "$VERSION" --build sdist --force)
shopt -s nullglob
SDISTS=("$WORK"/packages/*/dist/*.tar.gz)
shopt -u nullglob
[[ ${#SDISTS[@]} -eq 1 ]] || fail "expected one sdist in $WORK/packages/*/dist/, found ${#SDISTS[@]}"
SDIST=${SDISTS[0]}
PKG_DIR=$(dirname "$(dirname "$SDIST")")
build_py "$REPO/scripts/check_package.py" "$PKG_DIR"
PACKAGE=$("$PYTHON" -c 'import json, sys; m = json.load(open(sys.argv[1])); print(m["lang"] + "_" + m["name"])' "$PKG_DIR/meta.json")
echo "sdist: $SDIST ($(du -h "$SDIST" | cut -f1)); package: $PACKAGE"

# pip builds a local directory in place (setuptools writes build/ and *.egg-info into it);
# building a copy keeps the repository untouched. The copy is the working tree, as
# `pip install REPO` would see it, or with REPO_REF=<commit> that commit (git archive).
rm -rf "$WORK/src"
mkdir -p "$WORK/src"
if [[ -n "${REPO_REF:-}" ]]; then
    step "Exporting $REPO_REF of the repository to $WORK/src"
    git -C "$REPO" archive --format=tar "$REPO_REF" | tar -x -C "$WORK/src"
else
    step "Copying the repository's working tree (tracked + untracked, not ignored) to $WORK/src"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$REPO" && "$PYTHON" -c '
import shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
for rel in sys.stdin.buffer.read().decode().split("\0"):
    if rel and Path(rel).is_file():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(rel, dest / rel)
' "$WORK/src")
fi

step "Creating a fresh venv $WORK/venv"
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -c 'import sys; assert sys.prefix != sys.base_prefix, "not a venv"'
if "$VPY" -I -c 'import spacy' 2>/dev/null; then fail "the fresh venv already sees spacy (system site-packages?)"; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if "$VPY" -m pip show spacy-hyperloader >/dev/null 2>&1; then fail "the fresh venv already sees a spacy-hyperloader"; fi

step "venv: pip install $TORCH_SPEC"
"$VPY" -m pip install -q "$TORCH_SPEC"
step "venv: pip install $REPO (non-editable, from the copy in $WORK/src)"
"$VPY" -m pip install -q "$WORK/src"
step "venv: pip install $(basename "$SDIST")"
"$VPY" -m pip install -q "$SDIST"
step "venv: pip check"
"$VPY" -m pip check
"$VPY" -m pip list 2>/dev/null | grep -iE '^(torch|spacy|spacy-hyperloader|transformers|thinc|'"${PACKAGE//_/[-_]}"') ' || true

step "venv: spacy.load(\"$PACKAGE\") from $WORK (outside the repository)"
cd "$WORK"
# -I: isolated mode; no PYTHON* variables, no user site, no script or current directory on sys.path.
"$VPY" -I - "$PACKAGE" "$REPO" <<'EOF'
import sys
from pathlib import Path

import spacy
import spacy_hyperloader

package, repo = sys.argv[1], Path(sys.argv[2]).resolve()
venv = Path(sys.prefix).resolve()


def inside(path, root):
    path = Path(path).resolve()
    return path == root or root in path.parents


nlp = spacy.load(package)
module = sys.modules[package]
print(f"loaded {package} {nlp.meta['version']} from {Path(module.__file__).parent}")
print(f"pipeline: {nlp.pipe_names}; factories: {[nlp.get_pipe_meta(n).factory for n in nlp.pipe_names]}")
print(f"requirements: {nlp.meta.get('requirements')}")
print(f"spacy_hyperloader imported from {spacy_hyperloader.__file__}")
print(f"spacy {spacy.__version__} from {Path(spacy.__file__).parent}")

assert nlp.pipe_names == ["hyperloader"], nlp.pipe_names
assert nlp.get_pipe_meta("hyperloader").factory == "hyperloader"
pipe = nlp.get_pipe("hyperloader")
assert type(pipe).__module__.startswith("spacy_hyperloader."), type(pipe)
for name, mod in [("spacy_hyperloader", spacy_hyperloader), (package, module), ("spacy", spacy)]:
    assert inside(mod.__file__, venv), f"{name} imported from {mod.__file__}, outside the venv {venv}"
    assert not inside(mod.__file__, repo), f"{name} imported from the repository: {mod.__file__}"
print(f"tasks: {pipe.task_names}; labels: {pipe.label_data}")


def show(doc):
    print(f"  text : {doc.text}")
    print(f"  ents : {[(e.text, e.label_) for e in doc.ents]}")
    print(f"  tags : {[(t.text, t.tag_, t.pos_) for t in doc]}")
    print(f"  spans: {({k: [(s.text, s.label_) for s in g] for k, g in doc.spans.items()})}")


text = "EU rejects German call to boycott British lamb ."
doc = nlp(text)
print("nlp(text):")
show(doc)
texts = [text, "Peter Blackburn went to Brussels .", "", "The quick brown fox jumps over the lazy dog ."]
docs = list(nlp.pipe(texts, batch_size=2))
print("nlp.pipe(texts):")
for d in docs:
    show(d)

assert len(docs) == len(texts)
for d in (doc, *docs):
    if "tag" in pipe.task_names:
        assert all(t.tag_ for t in d), f"untagged tokens in {d.text!r}"
    if "ner" in pipe.task_names:
        assert all(e.label_ in pipe.label_data["ner"] for e in d.ents)
key = lambda d: ([(e.start, e.end, e.label_) for e in d.ents], [t.tag_ for t in d])
assert key(docs[0]) == key(doc), "nlp.pipe and nlp() disagree on the same text"
print("OK: loaded and annotated in the fresh venv")
EOF

echo
echo "SUCCESS: $PACKAGE ($(basename "$SDIST")) installs and loads in the fresh venv $WORK/venv (${SECONDS}s)"
