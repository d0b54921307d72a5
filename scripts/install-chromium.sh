#!/usr/bin/env bash
# Debian's chromium, which the preview page test drives through playwright (playwright's own
# browser download cannot be fetched here). Needs root or sudo; does nothing if chromium is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null || {
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
