#!/usr/bin/env bash
# The project's test command (README and .ci/run both call it).
# Installs the outside programs the tests talk to (scripts/install-peers.sh), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-peers.sh

exec cargo test --workspace --locked "$@"
