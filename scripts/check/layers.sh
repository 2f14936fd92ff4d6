#!/usr/bin/env bash
# Shows that the build enforces the layers (CMakeLists.txt, dqe_layer): builds the layering
# probes, one source per pair of layers including a header of the other, and checks that every
# probe of a layer that does not depend on the other fails with the header not found, and that
# every probe of a direct dependency compiles. Also refuses includes that climb out of a folder
# ("../"), which would get around the include roots.
# Usage: scripts/check/layers.sh BUILD_DIR "BAD_PROBE:HEADER ..." "GOOD_PROBE:HEADER ..." (ctest passes them)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: layers.sh BUILD_DIR BAD_PROBES GOOD_PROBES}
read -r -a bad <<<"${2:-}"
read -r -a good <<<"${3:-}"
[ ${#bad[@]} -gt 0 ] && [ ${#good[@]} -gt 0 ] || { echo "layers: no probes given" >&2; exit 2; }

if grep -rnE '#include "\.\./' src include; then
  echo "layers: an include climbs out of its folder (above); include \"<layer>/x.h\" instead" >&2
  exit 1
fi

failed=0
targets=()
for p in "${bad[@]}"; do targets+=("${p%%:*}"); done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -k 0: keep going, so that every probe is tried; each must fail.
cmake --build "$build" --target "${targets[@]}" -- -k 0 >"$log" 2>&1 || true
for p in "${bad[@]}"; do
  probe=${p%%:*} header=${p#*:}
  # The compiler's error for this probe's source: the header is not found.
  if ! grep -A3 "FAILED: .*${probe}\.dir" "$log" | grep -q "${header}: No such file or directory"; then
    echo "layers: ${probe} did not fail with ${header} not found" >&2
    failed=1
  fi
done
good_targets=()
for p in "${good[@]}"; do good_targets+=("${p%%:*}"); done
if ! cmake --build "$build" --target "${good_targets[@]}" >"$log" 2>&1; then
  echo "layers: an include of a direct dependency failed to compile:" >&2
  grep -E "FAILED|error" "$log" | head -n 20 >&2
  failed=1
fi
[ "$failed" -eq 0 ] && echo "layers: ${#bad[@]} includes of a layer not depended on fail to build; ${#good[@]} includes of a direct dependency build"
exit "$failed"
