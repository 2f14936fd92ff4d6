#!/usr/bin/env bash
# Checks the Prometheus alerting rules for `dqe serve` (deploy/prometheus/dqe-alerts.yml):
# `promtool check rules` validates syntax and PromQL, and `promtool test rules` runs the unit
# tests in deploy/prometheus/dqe-alerts.test.yml (each alert fires on its case, with exact
# labels and annotations, and stays quiet on the others). Needs promtool (Debian package
# `prometheus`); without it, exits 77, which the test harness reports as skipped.
# Usage: scripts/check/alert_rules.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "alert_rules: promtool not found (install the prometheus package); skipping" >&2
  exit 77
fi

promtool check rules deploy/prometheus/dqe-alerts.yml
promtool test rules deploy/prometheus/dqe-alerts.test.yml
