#!/usr/bin/env bash
# Installs dqe's build and test dependencies from Debian 12 and builds sentencepiece
# statically against the system protobuf (see README: "Why sentencepiece is built here").
# Idempotent: a second run only checks what is already there.
# Usage: scripts/setup/setup.sh [EXTRA_PACKAGE ...]   (the benchmarks add what they need)
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread
  libgloo-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libutf8proc-dev libicu-dev zlib1g-dev
  libprotobuf-dev protobuf-compiler
  libcpp-httplib-dev libssl-dev  # dqe serve: HTTP(S)
  prometheus  # promtool: the tests check /metrics and the alerting rules with it
  googletest libgtest-dev libgmock-dev
  dpkg-dev
  python3-torch  # the plain-PyTorch reference that tests read Hugging Face exports with
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# sentencepiece: Debian's libsentencepiece.so bundles protobuf 3.14 and clashes with the
# protobuf 3.21 that LibTorch links. We build Debian's own source statically against the
# system protobuf instead, so both live in one process (and sanitizers still work).
SPM_PREFIX="$PWD/.deps/sentencepiece"
if [ ! -f "$SPM_PREFIX/lib/libsentencepiece.a" ]; then
  # apt-get source needs deb-src entries; Debian 12 images often ship without them.
  if ! grep -qsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list.d/*.sources; then
    echo "[setup] enabling deb-src for apt-get source"
    if grep -qs '^Types: deb$' /etc/apt/sources.list.d/debian.sources; then
      $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
    else
      echo "deb-src http://deb.debian.org/debian bookworm main" | $SUDO tee /etc/apt/sources.list.d/dqe-src.list >/dev/null
    fi
    $SUDO apt-get update -qq
  fi
  rm -rf .deps/src && mkdir -p .deps/src
  (cd .deps/src && apt-get source -qq --download-only sentencepiece >/dev/null && dpkg-source -x --skip-patches ./*.dsc spm >/dev/null)
  cmake -S .deps/src/spm -B .deps/src/spm/build -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DSPM_ENABLE_SHARED=OFF -DSPM_USE_BUILTIN_PROTOBUF=OFF -DSPM_ENABLE_TCMALLOC=OFF \
    -DCMAKE_INSTALL_PREFIX="$SPM_PREFIX" >/dev/null
  cmake --build .deps/src/spm/build --target install -j"$(nproc)" >/dev/null
  echo "[setup] sentencepiece built into $SPM_PREFIX"
fi
echo "[setup] ok"
