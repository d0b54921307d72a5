#!/usr/bin/env bash
# Build the container images of docker/Dockerfile here, with podman, where no image registry
# can be reached (../shared/DESIGN.md, "Cluster engines and containers"):
#
#   scripts/build-images.sh [TARGET...]   build mvcap-build:blender and mvcap-build:vllm (or the named ones)
#   scripts/build-images.sh env           the CONTAINERS_CONF / CONTAINERS_STORAGE_CONF lines to eval:
#                                         `podman run` here needs them to find the images
#   scripts/build-images.sh prune         remove the images a rebuild left dangling
#
# What it does, each step skipped when already done (CI and later sessions find the cache where
# the machine keeps it):
# 1. installs podman, runc and debootstrap with apt when one is missing (needs root);
# 2. writes podman's configuration as this machine needs it: runc (crun fails on this kernel's
#    cgroups), cgroupfs, the file events logger, overlay storage (vfs where the kernel has no
#    overlayfs) in the cache folder, default ulimits no higher than the current ones;
# 3. makes the base, Debian bookworm, once: `debootstrap --variant=minbase` (~2 min), kept as a
#    tarball and `podman import`ed as localhost/mvcap-base:bookworm (MVCAP_IMAGE_BASE names any
#    other base instead, e.g. debian:bookworm-slim where a registry is reachable);
# 4. `podman build --pull=never --network host` of each target, with the host's pip cache mounted
#    into the build (so a rebuild does not download again) and the host's pip configuration
#    passed on, local indexes and wheel folders mounted read-only (here: the CPU torch wheel);
#    layers are cached, so after a code change only the project's own layer is rebuilt;
# 5. removes the images the rebuild left dangling.
# The vllm image gets vLLM's CPU build (as scripts/setup-vllm-env.sh) without a GPU here, vLLM
# from PyPI with one (MVCAP_VLLM=cpu|cuda to choose).
#
# Environment: MVCAP_IMAGE_CACHE (default /var/cache/mvcap-images), MVCAP_IMAGE_NAME
# (mvcap-build), MVCAP_IMAGE_BASE, DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (default: the
# mirrors this machine's apt uses for bookworm and bookworm-security),
# MVCAP_VLLM, MVCAP_STORAGE_DRIVER (overlay|vfs, fixed when the cache is first made).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
CACHE="${MVCAP_IMAGE_CACHE:-/var/cache/mvcap-images}"
NAME="${MVCAP_IMAGE_NAME:-mvcap-build}"
BASE_TAG="localhost/mvcap-base:bookworm"
# The first URI apt here has for a suite (deb822 .sources files and one-line .list files).
APT_MIRROR_PY='
import glob, sys
suite = sys.argv[1]
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            fields = {k.strip().lower(): v.split() for k, v in fields.items()}
            if "deb" in fields.get("types", []) and suite in fields.get("suites", []) and fields.get("uris"):
                print(fields["uris"][0]); sys.exit()
    elif path.endswith(".list"):
        for line in text.splitlines():
            words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                print(words[1]); sys.exit()
'
apt_mirror() { python3 -c "$APT_MIRROR_PY" "$1"; }
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror bookworm)}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(apt_mirror bookworm-security)}"
RUNDIR="/run/mvcap-images"

say() { echo "build-images: $*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}
log="$(mktemp -t build-images.XXXXXX)"
trap 'rm -f "$log"' EXIT
quiet() {  # quiet STEP-NAME COMMAND...: the command's output is shown only when it fails
  local name="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    fail "could not $name (its output is above)."
  fi
}

# --- 1. packages -------------------------------------------------------------------------------
install_packages() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 || {
    quiet "apt-get update" apt-get update -q
    quiet "install ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  }
}

# --- 2. podman's configuration -----------------------------------------------------------------
write_if_changed() {  # write_if_changed FILE: stdin becomes FILE, atomically, when it differs
  local tmp="$1.tmp.$$"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

# Container ulimits no higher than this shell's, and at most nofile 16384 / nproc 8192: above
# about 32768 processes runc fails here with "error setting rlimit type 6: operation not
# permitted", even below the current hard limit.
limit() {  # limit nofile|nproc: the value containers get
  local value cap
  if [ "$1" = nofile ]; then value="$(ulimit -Sn)" cap=16384; else value="$(ulimit -Su)" cap=8192; fi
  if [ "$value" = unlimited ] || [ "$value" -gt "$cap" ]; then value=$cap; fi
  echo "$value"
}

ulimit_options() {  # for `podman build`, which does not read containers.conf's default_ulimits
  local name
  for name in nofile nproc; do
    printf -- '--ulimit\n%s=%s:%s\n' "$name" "$(limit "$name")" "$(limit "$name")"
  done
}

configure() {
  mkdir -p "$CACHE" "$RUNDIR"
  local driver
  if [ -s "$CACHE/storage-driver" ]; then
    driver="$(cat "$CACHE/storage-driver")"  # a graph root keeps the driver it was made with
  else
    driver="${MVCAP_STORAGE_DRIVER:-}"
    [ -n "$driver" ] || { grep -qw overlay /proc/filesystems && driver=overlay || driver=vfs; }
    echo "$driver" >"$CACHE/storage-driver"
  fi
  write_if_changed "$CACHE/containers.conf" <<EOF
# Written by scripts/build-images.sh: podman as it works on this machine.
[containers]
default_ulimits = ["nofile=$(limit nofile):$(limit nofile)", "nproc=$(limit nproc):$(limit nproc)"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUNDIR/events.log"
tmp_dir = "$RUNDIR/libpod"
EOF
  write_if_changed "$CACHE/storage.conf" <<EOF
# Written by scripts/build-images.sh: the images live here, outside any checkout.
[storage]
driver = "$driver"
graphroot = "$CACHE/storage"
runroot = "$RUNDIR/storage"
EOF
  export CONTAINERS_CONF="$CACHE/containers.conf" CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"
}

# --- 3. the base -------------------------------------------------------------------------------
unmount_under() {  # debootstrap mounts /proc and /sys in the target; a killed run may leave them
  awk -v dir="$1/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" || true
  done
}

make_base() {
  if [ -n "${MVCAP_IMAGE_BASE:-}" ]; then
    BASE="$MVCAP_IMAGE_BASE"
    podman image exists "$BASE" || quiet "pull $BASE" podman pull "$BASE"
    return 0
  fi
  BASE="$BASE_TAG"
  podman image exists "$BASE" && return 0
  local tarball="$CACHE/base/bookworm-minbase.tar"
  mkdir -p "$CACHE/base"
  if [ ! -s "$tarball" ]; then
    local rootfs="$CACHE/base/rootfs.tmp" start=$SECONDS
    unmount_under "$rootfs"
    rm -rf --one-file-system "$rootfs"
    [ -n "$MIRROR" ] || fail "no Debian mirror: apt here has none for bookworm; set DEBIAN_MIRROR"
    say "making the Debian bookworm base with debootstrap from $MIRROR (about 2 minutes, once)..."
    quiet "debootstrap bookworm" debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR"
    unmount_under "$rootfs"
    # The sources debian:bookworm-slim has, so that the Dockerfile reads the same on both.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    if [ -n "$SECURITY_MIRROR" ]; then
      cat >>"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    quiet "pack the base" tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv -f "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$rootfs"
    say "base made in $((SECONDS - start)) s ($(du -sh "$tarball" | cut -f1))"
  fi
  quiet "import the base" podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$BASE"
}

# --- 4. the images -----------------------------------------------------------------------------
# The host's pip configuration for the build: its local indexes, wheel folders and constraint
# files mounted read-only under /run/mvcap-host/ and named there in a pip.conf the build reads
# (PIP_CONFIG_FILE). Prints one `-v` option a line; nothing when the host has no pip config.
HOST_PIP_PY='
import os, subprocess, sys
from urllib.parse import urlparse
out_conf = sys.argv[1]
listed = ""
for python in ("python3", "python3.11"):
    try:
        listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        continue
    if listed:
        break
keys = ("index-url", "extra-index-url", "find-links", "constraint", "cert", "no-index", "default-timeout", "prefer-binary")
values = {}
for line in sorted(listed.splitlines(), key=lambda line: line.startswith(":env:")):  # the environment wins, as in pip
    name, _, value = line.partition("=")
    key = name.rpartition(".")[2]
    if key in keys and value:
        values[key] = value.strip().strip("\x27\"")
mounts, conf = [], ["[global]"]
def inside(item):
    url = urlparse(item)
    path = url.path if url.scheme == "file" else item if item.startswith("/") else None
    if path is None:
        return item  # a remote index: the build reaches it itself
    if not os.path.exists(path):
        return None
    path = os.path.realpath(path)
    mount = f"/run/mvcap-host/pip-{len(mounts)}"
    if os.path.isfile(path):  # a constraint file, a CA bundle (a proxy that re-signs TLS)
        mount += "-" + os.path.basename(path)
        mounts.append(f"{path}:{mount}:ro")
        return mount
    top = path
    if url.scheme == "file" and os.path.basename(path) == "simple":
        top = os.path.dirname(path)  # an index: its pages link up to ../../files/
    mounts.append(f"{top}:{mount}:ro")
    rel = os.path.relpath(path, top)
    target = mount if rel == "." else f"{mount}/{rel}"
    return f"file://{target}" if url.scheme == "file" else target
for key, value in values.items():
    items = [inside(item) for item in value.split()]
    items = [item for item in items if item]
    if items:
        conf.append(key + " = " + " ".join(items))
with open(out_conf, "w") as f:
    f.write("\n".join(conf) + "\n")
print("\n".join(f"-v\n{m}" for m in mounts))
'

build_target() {
  local target="$1" start=$SECONDS
  local pip_cache="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
  mkdir -p "$pip_cache" "$CACHE/wheelhouse"
  local args=(build --pull=never --network host --layers -f docker/Dockerfile
    --ignorefile docker/Dockerfile.dockerignore --target "$target" --build-arg "BASE=$BASE"
    -t "localhost/$NAME:$target" -v "$pip_cache:/root/.cache/pip"
    -v "$CACHE/wheelhouse:/run/mvcap-host/wheelhouse" --build-arg WHEELHOUSE=/run/mvcap-host/wheelhouse)
  local mounts=() limits=()
  mapfile -t limits < <(ulimit_options)
  args+=("${limits[@]}")
  mapfile -t mounts < <(python3 -c "$HOST_PIP_PY" "$CACHE/build-pip.conf")
  if [ ${#mounts[@]} -gt 0 ]; then
    args+=("${mounts[@]}" -v "$CACHE/build-pip.conf:/run/mvcap-host/pip.conf:ro" --build-arg PIP_CONFIG_FILE=/run/mvcap-host/pip.conf)
  fi
  if [ "$target" = vllm ]; then
    local flavour="${MVCAP_VLLM:-}"
    [ -n "$flavour" ] || { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && flavour=cuda || flavour=cpu; }
    args+=(--build-arg "VLLM=$flavour")
  fi
  say "building localhost/$NAME:$target (its log: $CACHE/logs/$target.log)..."
  mkdir -p "$CACHE/logs"
  if ! podman "${args[@]}" "$REPO" >"$CACHE/logs/$target.log" 2>&1; then
    grep -v "^WARNING: Location .* is ignored" "$CACHE/logs/$target.log" | tail -n 60 >&2
    fail "could not build the $target image (the end of its log is above)."
  fi
  say "localhost/$NAME:$target built in $((SECONDS - start)) s ($(podman image inspect --format '{{.Size}}' "localhost/$NAME:$target" | awk '{printf "%.1f GB", $1 / 1e9}'))"
}

prune() {
  podman image prune -f >/dev/null 2>&1 || true
}

# --- main --------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "needs root (apt, debootstrap and rootful podman), as CI here runs."
case "${1:-}" in
  env)
    configure
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
    exit 0
    ;;
  prune)
    configure
    prune
    exit 0
    ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(blender vllm)
for target in "${targets[@]}"; do
  case "$target" in blender | vllm) ;; *) fail "unknown target $target: blender or vllm" ;; esac
done

start=$SECONDS
install_packages
configure
exec 9>"$CACHE/lock"
flock 9  # one build at a time on this cache (the wheelhouse, the storage)
make_base
for target in "${targets[@]}"; do
  build_target "$target"
done
prune
say "done in $((SECONDS - start)) s; run them here with: eval \"\$(bash scripts/build-images.sh env)\"; podman run --rm localhost/$NAME:blender mvcap --help"
