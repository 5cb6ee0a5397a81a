#!/usr/bin/env bash
# cluster.sh — a real single-node Slurm 22.05 cluster on one Debian 12 machine
# (2 cores, no systemd: PID 1 is the VM's process agent, so apt starts no daemons).
#
# Verified on 2026-11-26 on a 2-core/24 GiB Debian 12 machine as root (see feasibility.md §6).
#   apt install (slurm-wlm munge [+ slurmdbd mariadb-server]) : 5.7 s + 7.0 s on a new machine
#   whole `start` after an apt purge (install+config+daemons)  : 11.3 s; daemons alone (already installed): ~3 s
#   sbatch --array=0-3 (each task sleep 2)                     : ~5 s to finish (2 run at a time, CPUs=2)
#   submitit AutoExecutor(cluster="slurm").map_array(4 funcs)  : ~4 s to collect results
#
# Usage:
#   sudo bash cluster.sh start      # install (if needed), configure, start daemons, wait for idle node
#   sudo bash cluster.sh stop       # stop the daemons this script started (by their PIDs)
#   sudo bash cluster.sh status
#   WITH_ACCOUNTING=0 bash cluster.sh start   # skip MariaDB+slurmdbd (then `sacct` does NOT work)
#
# Why accounting is ON by default: submitit polls `sacct` for job state. Without slurmdbd, sacct prints
# "Slurm accounting storage is disabled" and exits 1; submitit logs "Bypassing sacct error" and reports
# state UNKNOWN. Successful jobs still return (submitit reads the result pickle), but a job that is
# cancelled/killed/OOMed before writing its result stays UNKNOWN and job.result() WAITS FOREVER.
# With MariaDB+slurmdbd (adds ~7 s install, ~5 s start), sacct works and a scancel'ed job raises
# submitit.core.utils.UncompletedJobError ("... state CANCELLED").
#
# Pitfalls seen:
#  * No systemd: apt installs the daemons but starts none. Start them by hand (this script) and stop by PID.
#  * /run/munge, /run/slurm, /run/mysqld don't exist after install: create them (munge's owned by munge).
#  * The hostname differs per machine ("vm" here): NodeName must equal `hostname -s`; we pin addresses to
#    127.0.0.1 so that no DNS is needed.
#  * Keep cgroups out of it: the machine shows a cgroup v1/v2 hybrid that container runtimes reject, and
#    Slurm's cgroup plugins were not tried. Use ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
#    JobAcctGatherType=jobacct_gather/none; write no cgroup.conf.
#  * slurmd/slurmctld log "mpi/pmix: can not load PMIx library" errors at start: harmless (MpiDefault=none).
#  * "Configured MailProg is invalid": harmless; silenced below with MailProg=/bin/true.
#  * RealMemory must be <= what `slurmd -C` reports, else Slurm drains the node ("Low RealMemory";
#    standard Slurm behaviour, not tried here). We take 90 % of it.
#  * A requeued job (scontrol requeue, or submitit's Checkpointable on timeout/preemption) gets
#    EligibleTime = now + 120 s, a hard-coded Slurm delay. In tests, follow the requeue with
#    `scontrol update JobId=<id> StartTime=now` to restart it at once (verified: restarted in 2 s).
#  * submitit's state watcher polls sacct at most every max(2 s, job_age/2): a cancel is noticed in
#    ~5-20 s (18 s measured), not immediately.
#  * Wiping StateSaveLocation restarts job ids at 1: a submitit folder like ".../%j" from an earlier run
#    then holds stale <id>_result.pkl files and submitit returns OLD results at once. Use a fresh folder
#    per run (e.g. pytest's tmp_path).
#  * With slurm-client installed, submitit.AutoExecutor(folder) picks cluster="slurm" by itself (it looks
#    for srun on PATH), even when no daemon runs: pass cluster="local"/"debug" explicitly in tests.
#  * Killed daemons may linger a moment as <defunct> zombies (PID 1 reaps late); harmless.
set -euo pipefail

ACTION=${1:-start}
if [ "$(id -u)" != 0 ]; then
  echo "[local-cluster] must run as root (it installs slurm-wlm/munge/slurmdbd/mariadb-server with apt and starts their daemons)" >&2
  exit 2
fi
WITH_ACCOUNTING=${WITH_ACCOUNTING:-1}
STATE_DIR=${SLURM_LOCAL_STATE:-/var/tmp/slurm-local}   # logs + PID files of the daemons started here
PIDS="$STATE_DIR/pids"
NODE=$(hostname -s)
CPUS=$(nproc)
CLUSTER=localcluster
DB_PASS=slurmpw    # local-only MariaDB user, bound to 127.0.0.1

log() { echo "[local-cluster] $*"; }

install_pkgs() {
  local pkgs="slurm-wlm munge"
  [ "$WITH_ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  local missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
}

write_configs() {
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm "$STATE_DIR"
  # Memory: 90 % of what slurmd detects (slurmd -C prints "RealMemory=NNNN").
  local detected mem
  detected=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( detected * 9 / 10 ))
  local acct_lines
  if [ "$WITH_ACCOUNTING" = 1 ]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
  else
    acct_lines="AccountingStorageType=accounting_storage/none"
  fi
  cat > /etc/slurm/slurm.conf <<EOF
# Single-node local Slurm cluster (written by cluster.sh)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups on these machines:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$acct_lines
# plain-text completion record, works even without slurmdbd:
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# keep finished jobs visible to scontrol/squeue for 5 min
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
EOF
  if [ "$WITH_ACCOUNTING" = 1 ]; then
    cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
    chmod 600 /etc/slurm/slurmdbd.conf   # slurmdbd refuses a world-readable config
  fi
}

# start NAME CMD... : run CMD in the foreground mode of the daemon, in the background, remember its PID
start_bg() {
  local name=$1; shift
  "$@" > "$STATE_DIR/$name.out" 2>&1 &
  echo "$name $!" >> "$PIDS"
  log "started $name (pid $!)"
}

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "timed out waiting for $what"; return 1
}

running() {  # every daemon recorded by an earlier start is alive and the node answers
  [ -s "$PIDS" ] || return 1
  while read -r _ pid; do kill -0 "$pid" 2>/dev/null || return 1; done < "$PIDS"
  sinfo -h >/dev/null 2>&1
}

start() {
  if running; then log "already running"; sinfo; return 0; fi
  install_pkgs
  write_configs
  : > "$PIDS"
  # munge: the Debian package creates /etc/munge/munge.key at install; make one if it is missing
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  start_bg munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F   # setpriv execs: the PID is munged's own
  wait_for 10 munge bash -c 'munge -n | unmunge'

  if [ "$WITH_ACCOUNTING" = 1 ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    start_bg mariadbd /usr/sbin/mariadbd --user=mysql --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1
    wait_for 30 mariadb mariadb -e 'SELECT 1'
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    start_bg slurmdbd /usr/sbin/slurmdbd -D
    wait_for 30 slurmdbd sacctmgr -n show cluster
  fi
  # slurmctld registers the cluster in slurmdbd by itself (no sacctmgr step needed)
  start_bg slurmctld /usr/sbin/slurmctld -D
  wait_for 30 slurmctld scontrol ping
  start_bg slurmd /usr/sbin/slurmd -D
  wait_for 30 "idle node" bash -c "sinfo -h -N -o %t | grep -qx idle"
  sinfo
}

stop() {
  [ -f "$PIDS" ] || { log "nothing to stop"; return 0; }
  # reverse start order; kill only the PIDs this script recorded
  tac "$PIDS" | while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" && log "stopped $name (pid $pid)"; fi
  done
  sleep 2
  rm -f "$PIDS"
}

status() {
  [ -f "$PIDS" ] && while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then echo "$name $pid running"; else echo "$name $pid dead"; fi
  done < "$PIDS"
  sinfo 2>&1 || true
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
