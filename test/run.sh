#!/usr/bin/env bash
# npm test: see test/run.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx test/run.ts "$@"
