#!/usr/bin/env bash
# The project's test command (README and .ci/run both call it).
# Installs the outside programs the tests talk to, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v kill >/dev/null 2>&1 || need_apt+=(procps)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: please install: ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# curl must speak h2 for the HTTP/2 tests; a build without it is a failure, not a skip.
curl -V | grep -qw HTTP2 || { echo "scripts/test.sh: curl lacks HTTP/2 support" >&2; exit 1; }

exec cargo test --workspace --locked "$@"
