#!/usr/bin/env bash
# Packs what scripts/gpu/gpu_check.sh needs on a GPU machine that has a CUDA PyTorch but neither
# apt nor a network (the device machines lent to some tasks): Debian's packages for dqe's
# build dependencies (unpacked there under a prefix, never into /), the sentencepiece that
# scripts/setup/setup.sh builds, and copies of the shared fixture, data and reference.
# Usage: scripts/gpu/gpu_bundle.sh [DIR]   (default .gpu, which this adds to .git/info/exclude)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.gpu}
shared=${DQE_SHARED:-../shared}

bash scripts/setup/setup.sh >/dev/null
rm -rf "$dir" && mkdir -p "$dir/debs" "$dir/shared/fixtures" "$dir/shared/data/homedepot" "$dir/shared/reference"
packages=(
  libcli11-dev nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libprotobuf-dev libprotobuf32 libutf8proc-dev libutf8proc2 zlib1g-dev libgtest-dev libgmock-dev
)
(cd "$dir/debs" && apt-get download -qq "${packages[@]}")
cp -r .deps/sentencepiece "$dir/sentencepiece"
cp -r "$shared/fixtures/tiny-bert-hf" "$dir/shared/fixtures/"
cp "$shared/data/homedepot/train.jsonl" "$shared/data/homedepot/dev.jsonl" "$dir/shared/data/homedepot/"
cp "$shared/reference/bert_ref.py" "$dir/shared/reference/"

# Keep the bundle out of git wherever it lies in the checkout.
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
case $(cd "$dir" && pwd) in
  "$PWD"/*) rel=/${dir#./}/; grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >> "$exclude" ;;
esac
echo "[gpu_bundle] $dir: $(du -sh "$dir" | cut -f1) (carry it to the GPU machine with the checkout)"
