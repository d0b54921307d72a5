#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the launcher's tests (and for trying
# `mvcap launch` with `runner: {kind: slurm}` on a workstation).
#
#   scripts/slurm-cluster.sh install        Debian's slurm-wlm + munge (needs root; once)
#   scripts/slurm-cluster.sh start DIR      munged + slurmctld + slurmd, every file under DIR
#   scripts/slurm-cluster.sh stop DIR       stop them (reverse order, by their pid files)
#   scripts/slurm-cluster.sh env DIR        the SLURM_CONF line to eval in a shell
#
# No systemd, no cgroups: linuxproc process tracking, no task plugin, no accounting (launch reads
# job states from squeue, never sacct). The node is `localhost` at 127.0.0.1 with this machine's
# cores; partition `debug`. Start waits until the node is idle.
set -euo pipefail

command="${1:-}"
dir="${2:-}"

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    return 0
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  }
}

need_dir() {
  if [ -z "$dir" ]; then
    echo "usage: $0 $command DIR" >&2
    exit 2
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_conf() {
  local cpus memory
  cpus="$(nproc)"
  memory=4000
  # Ports: given, or free ones, so a second cluster (another test session) never collides.
  SLURMCTLD_PORT="${SLURMCTLD_PORT:-$(free_port)}"
  SLURMD_PORT="${SLURMD_PORT:-$(free_port)}"
  while [ "$SLURMD_PORT" = "$SLURMCTLD_PORT" ]; do SLURMD_PORT="$(free_port)"; done
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=mvcap-test
SlurmctldHost=localhost
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
MaxArraySize=${SLURM_MAX_ARRAY_SIZE:-1001}
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  need_dir
  install
  write_conf
  export SLURM_CONF="$dir/slurm.conf"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"
  slurmctld -i -f "$SLURM_CONF"
  slurmd -N localhost -f "$SLURM_CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      echo "slurm: node localhost idle; export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm: the node did not become idle in 30 s; logs in $dir/log" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  need_dir
  local pidfile
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 40); do
    local alive=0
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
      if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.25
  done
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
}

case "$command" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) need_dir; echo "export SLURM_CONF=$dir/slurm.conf" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | env DIR" >&2; exit 2 ;;
esac
