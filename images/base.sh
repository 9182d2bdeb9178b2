#!/bin/sh
# codex-box/base: Debian bookworm minbase plus what agents and CI steps expect.
# Usage: base.sh OUT_TAR   (~60 s; needs the Debian mirror, no image registry)
set -eu
out=$1
mmdebstrap --quiet --variant=minbase \
  --include=bash,coreutils,python3,git,curl,ca-certificates,busybox,make,procps \
  --customize-hook='chmod 1777 "$1/tmp" "$1/var/tmp"' \
  --customize-hook='rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*' \
  bookworm "$out"
