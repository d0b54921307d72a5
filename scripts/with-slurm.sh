#!/usr/bin/env bash
# Run a command beside a real one-node Slurm cluster: install it if missing (Debian's slurm-wlm),
# start it in a temporary folder, export SLURM_CONF for the command, stop it when the command
# ends (however it ends), and exit with the command's status. README's test command uses it.
#
#   bash scripts/with-slurm.sh .venv/bin/python -m pytest
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/slurm-cluster.sh" install || { echo "with-slurm: could not install Slurm" >&2; exit 1; }
dir="$(mktemp -d -t mvcap-slurm.XXXXXX)"
trap 'bash "$here/slurm-cluster.sh" stop "$dir"; rm -rf "$dir"' EXIT
bash "$here/slurm-cluster.sh" start "$dir" || exit 1
export SLURM_CONF="$dir/slurm.conf"
"$@"
