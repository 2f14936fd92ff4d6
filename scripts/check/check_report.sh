#!/usr/bin/env bash
# Renders `dqe report` for a training run in headless Chromium, to look at it:
#   bash scripts/check/check_report.sh RUN_DIR OUT_DIR [extra dqe report flags, e.g. --data F]
# writes OUT_DIR/report.html and OUT_DIR/report.png (1280 px wide) and checks that the page
# is self-contained and that the screenshot is not blank. Installs Debian's chromium if missing.
# The binary is $DQE, else build-test/dqe, else build/dqe; REPORT_HEIGHT (default 3000)
# sets the screenshot's height in pixels. Run from anywhere; the run's
# recorded dev file is read relative to the repository root, where training usually runs.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RUN_DIR OUT_DIR [dqe report flags]" >&2
  exit 2
fi
run_dir=$(realpath "$1")
mkdir -p "$2"
out_dir=$(realpath "$2")
shift 2
cd "$(dirname "$0")/../.."

dqe=${DQE:-}
if [ -z "$dqe" ]; then
  for candidate in build-test/dqe build/dqe; do
    if [ -x "$candidate" ]; then dqe=$candidate; break; fi
  done
fi
if [ -z "$dqe" ] || [ ! -x "$dqe" ]; then
  echo "check_report: no dqe binary (set DQE, or build build-test/ or build/)" >&2
  exit 1
fi

if ! command -v chromium > /dev/null; then
  echo "== installing chromium"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null
fi

html=$out_dir/report.html
png=$out_dir/report.png
echo "== $dqe report --run $run_dir --out $html $*"
"$dqe" report --run "$run_dir" --out "$html" "$@"

# Self-contained: no script and no URL except the SVG namespace.
if grep -q '<script' "$html"; then
  echo "check_report: $html contains a <script>" >&2
  exit 1
fi
if sed 's|xmlns="http://www.w3.org/2000/svg"||g' "$html" | grep -q 'http'; then
  echo "check_report: $html mentions a URL:" >&2
  sed 's|xmlns="http://www.w3.org/2000/svg"||g' "$html" | grep -o '.\{0,40\}http.\{0,40\}' | head -n 3 >&2
  exit 1
fi

echo "== rendering $png"
rm -f "$png"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No network, no background services: the page must render from the file alone.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1280,"${REPORT_HEIGHT:-3000}" --hide-scrollbars \
  --screenshot="$png" "file://$html" 2> "$out_dir/chromium.log" || {
  echo "check_report: chromium failed (see $out_dir/chromium.log)" >&2
  tail -n 5 "$out_dir/chromium.log" >&2
  exit 1
}

if [ ! -s "$png" ]; then
  echo "check_report: no screenshot written" >&2
  exit 1
fi
size=$(stat -c %s "$png")
# A blank 1280x3000 page compresses to a few KB; charts and tables make it far larger.
if [ "$size" -lt 50000 ]; then
  echo "check_report: $png is only $size bytes: the page looks blank" >&2
  exit 1
fi
echo "== ok: $html ($(stat -c %s "$html") bytes), $png ($size bytes)"
