# Sourced by the benchmarks once $here (the checkout) is set: sets dqe to the binary to
# measure: $DQE when given, else a Release build of this checkout without tests in
# $here/BUILD_DIR (the argument; default build-quality), built or brought up to date here.
# Usage: source "$here/scripts/bench/dqe_binary.sh" [BUILD_DIR]
dqe=${DQE:-}
if [ -z "$dqe" ]; then
  bash "$here/scripts/setup/build.sh" "$here/${1:-build-quality}" -DDQE_BUILD_TESTS=OFF
  dqe=$here/${1:-build-quality}/dqe
fi
