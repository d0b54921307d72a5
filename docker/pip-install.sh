#!/bin/sh
# pip-install.sh PIP-INSTALL-ARGS...: `pip install` through a wheelhouse, for docker/Dockerfile.
#
# Every distribution is first fetched (or built, for an sdist) into $WHEELHOUSE with `pip wheel`,
# which reuses the files already there, then installed from that folder alone. A builder that
# mounts a folder kept across builds there (scripts/build-images.sh mounts its cache's) makes a
# rebuild of a dependency layer download only what it does not have yet; this also works where a
# proxy strips the HTTP cache headers that pip's own cache needs. Without WHEELHOUSE the files
# go to a temporary folder, removed afterwards, so the layer holds no second copy.
set -eu
wheelhouse="${WHEELHOUSE:-}"
if [ -z "$wheelhouse" ]; then
  wheelhouse="$(mktemp -d)"
  trap 'rm -rf "$wheelhouse"' EXIT
fi
mkdir -p "$wheelhouse"
pip wheel --progress-bar off --wheel-dir "$wheelhouse" "$@"
pip install --progress-bar off --no-index --find-links "$wheelhouse" "$@"
