#!/usr/bin/env bash
# Private Slurm cluster on this host (munged + slurmctld + one slurmd per node) for tests and local runs.
#
#   slurm/cluster.sh start  [STATE_DIR]   # prints `export SLURM_CONF=...` on stdout
#   slurm/cluster.sh stop   [STATE_DIR]
#   slurm/cluster.sh status [STATE_DIR]   # exit 0 when up, 3 when down
#
#   eval "$(slurm/cluster.sh start)" && sbatch --wrap hostname
#
# Everything (munge key + socket, slurm.conf, state, spool, logs, pid files) lives under
# STATE_DIR (default /tmp/posttrain-slurm); nothing in /etc is touched.  Ports can be moved
# with POSTTRAIN_SLURMCTLD_PORT / POSTTRAIN_SLURMD_PORT (defaults 6817/6818) so several
# clusters can coexist.  `start` is idempotent; `stop` kills only the daemons whose pid
# files live in STATE_DIR.  Needs the Debian packages from slurm/install.sh; run as root.
#
# POSTTRAIN_SLURM_NODES=N (default 1) runs N slurmd daemons on this host, nodes node1..nodeN on
# ports POSTTRAIN_SLURMD_PORT .. +N-1, each with its own spool dir, pid file and log (%n in
# slurm.conf); Debian's slurmd is built with MULTIPLE_SLURMD (`slurmd -N <node>`).  Jobs with
# --nodes=N then get N distinct SLURM_NODEIDs, so srun + torchrun rendezvous across "nodes" is real.
# With N=1 the node is `localhost` and the files are named as before.  `status` and `stop` without
# the variable use the node count of STATE_DIR's slurm.conf.
set -euo pipefail

CMD=${1:-status}
STATE_DIR=$(realpath -m "${2:-${POSTTRAIN_SLURM_STATE_DIR:-/tmp/posttrain-slurm}}")
CTLD_PORT=${POSTTRAIN_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${POSTTRAIN_SLURMD_PORT:-6818}
START_TIMEOUT=${POSTTRAIN_SLURM_START_TIMEOUT:-60}
CRED_EXPIRE=${POSTTRAIN_SLURM_CRED_EXPIRE:-10}
PATH=$PATH:/usr/sbin:/sbin

ETC=$STATE_DIR/etc
CONF=$ETC/slurm.conf
RUN=$STATE_DIR/run
LOG=$STATE_DIR/log
MUNGE_DIR=$STATE_DIR/munge
MUNGE_KEY=$MUNGE_DIR/munge.key
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
export SLURM_CONF=$CONF

NODES=${POSTTRAIN_SLURM_NODES:-}
if [[ -z $NODES ]]; then
  NODES=1
  # status/stop of a running cluster: as many nodes as it was started with
  if [[ $CMD != start && -s $CONF ]]; then NODES=$(grep -c '^NodeName=' "$CONF" || true); fi
fi
[[ $NODES =~ ^[1-9][0-9]*$ ]] || {
  echo "[slurm/cluster] ERROR: POSTTRAIN_SLURM_NODES must be a positive integer, got '$NODES'" >&2
  exit 2
}
NODE_NAMES=()
if ((NODES == 1)); then
  NODE_NAMES=(localhost)
else
  for ((i = 1; i <= NODES; i++)); do NODE_NAMES+=("node$i"); done
fi

log() { echo "[slurm/cluster] $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# true if pid $1 exists and is not a zombie (a dead daemon may linger unreaped as <defunct>)
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# pid of the daemon with pid file $RUN/$1.pid if it is alive and named ${1%%-*} (slurmd-node2 -> slurmd)
live_pid() {
  local name=${1%%-*} pidfile=$RUN/$1.pid pid comm
  [[ -s $pidfile ]] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [[ -n $pid ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == "$name"* ]] && alive "$pid" || return 1
  echo "$pid"
}

# pid-file stem of the slurmd of node $1 (matches SlurmdPidFile in write_config)
slurmd_stem() { if ((NODES == 1)); then echo slurmd; else echo "slurmd-$1"; fi; }

# stems of every slurmd pid file in STATE_DIR, whatever node count started them (for stop/restart)
slurmd_stems_on_disk() {
  local f
  for f in "$RUN"/slurmd.pid "$RUN"/slurmd-*.pid; do
    [[ -e $f ]] || continue
    f=${f##*/}
    echo "${f%.pid}"
  done
}

# "<node> <state>" per node, e.g. "node1 idle"
node_states() { timeout 10 sinfo -h -N -o '%N %t' 2>/dev/null; }

# all_nodes_in "$(node_states)" STATE...: true when every node of NODE_NAMES is in one of the
# STATEs (exact match: a trailing "*", e.g. "idle*", means its slurmd is not responding)
all_nodes_in() {
  local states=$1 node st
  shift
  for node in "${NODE_NAMES[@]}"; do
    st=$(awk -v n="$node" '$1 == n {print $2; exit}' <<<"$states")
    [[ -n $st && " $* " == *" $st "* ]] || return 1
  done
}

tail_logs() {
  local f
  for f in "$LOG/slurmctld.log" "$LOG"/slurmd*.log "$LOG/munged.log"; do
    [[ -f $f ]] || continue
    echo "----- tail $f -----" >&2
    tail -n 25 "$f" >&2
  done
}

write_config() {
  local cpus mem_kb mem_mb headroom user i port spool=$STATE_DIR/slurmd pidfile=$RUN/slurmd.pid
  local logfile=$LOG/slurmd.log node_lines="" nodelist=localhost host
  mkdir -p "$ETC" "$RUN" "$LOG" "$STATE_DIR/ctld" "$STATE_DIR/slurmd" "$STATE_DIR/tmp"
  chmod 755 "$STATE_DIR" "$ETC" "$RUN" "$LOG"
  # Every node gets all of the host's CPUs and memory rather than a 1/N share: the test nodes stand
  # for N identical machines, so a job shaped for one node (--exclusive, cpus-per-task = node CPUs)
  # schedules on each, and N may exceed the host's CPU count.  Nothing is enforced (task/none, no
  # cgroups), so this only overcommits Slurm's bookkeeping, as a second test cluster on the host does.
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours OMP_NUM_THREADS
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  mem_mb=$((mem_kb / 1024))
  # leave 10% (at least 512 MiB) so slurmd never sees RealMemory > actual memory (node INVAL)
  headroom=$((mem_mb / 10 > 512 ? mem_mb / 10 : 512))
  mem_mb=$((mem_mb - headroom > 256 ? mem_mb - headroom : 256))
  user=$(id -un)
  if ((NODES == 1)); then
    node_lines="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN"
  else
    # several slurmd on one host: one port each; %n in the paths below is the node name
    spool=$STATE_DIR/slurmd/%n pidfile=$RUN/slurmd-%n.pid logfile=$LOG/slurmd-%n.log
    nodelist=node[1-$NODES]
    host=$(hostname -s)
    for ((i = 1; i <= NODES; i++)); do
      port=$((SLURMD_PORT + i - 1))
      mkdir -p "$STATE_DIR/slurmd/node$i"
      node_lines+="NodeName=node$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$cpus"
      node_lines+=" RealMemory=$mem_mb State=UNKNOWN"$'\n'
    done
    node_lines=${node_lines%$'\n'}
  fi
  : >"$ETC/plugstack.conf"
  cat >"$CONF" <<EOF
# generated by slurm/cluster.sh -- private test cluster, $NODES node(s) on this host
ClusterName=posttrain
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$spool
TmpFS=$STATE_DIR/tmp
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$pidfile
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$logfile
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
# fast turnaround on a tiny cluster: start dependents right after their dependency ends
# (batch_sched_delay) and requeued jobs right after their BeginTime (main/backfill passes every 1 s)
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
DefMemPerCPU=512
MpiDefault=none
ReturnToService=2
# requeue: allow 'scontrol requeue' and --requeue; keep finished jobs visible to
# 'scontrol show job' for 5 minutes (there is no accounting DB, so no sacct)
JobRequeue=1
MinJobAge=300
# seconds between SIGTERM and SIGKILL on cancel / time limit
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
$node_lines
PartitionName=debug Nodes=$nodelist Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$CONF"
}

start_munge() {
  if live_pid munged >/dev/null; then return 0; fi
  mkdir -p "$MUNGE_DIR"
  # munged wants the socket dir traversable by clients, the key private to its owner
  chmod 711 "$MUNGE_DIR"
  if [[ ! -s $MUNGE_KEY ]]; then
    (umask 077 && head -c 1024 /dev/urandom >"$MUNGE_KEY")
  fi
  chmod 600 "$MUNGE_KEY"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  munged --force --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" --pid-file="$RUN/munged.pid" \
    --log-file="$LOG/munged.log" --seed-file="$MUNGE_DIR/munged.seed" ||
    die "munged failed to start (see $LOG/munged.log)"
  for _ in $(seq 50); do
    [[ -S $MUNGE_SOCKET ]] && return 0
    sleep 0.1
  done
  die "munged socket $MUNGE_SOCKET did not appear"
}

# TERM the named daemons together (each takes ~2 s to shut down), KILL whatever is left after 10 s
kill_daemons() {
  local name pid pids=() names=()
  for name in "$@"; do
    if pid=$(live_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name($pid)")
    fi
    rm -f "$RUN/$name.pid"
  done
  ((${#pids[@]})) || return 0
  local left
  for _ in $(seq 100); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      log "pid $pid ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  log "stopped ${names[*]}"
}

do_stop() {
  if live_pid slurmctld >/dev/null; then
    # cancel leftover jobs so no orphaned slurmstepd / job processes survive the daemons
    local jobs
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
      log "cancelling leftover jobs: $(timeout 10 squeue -h -o '%i:%j:%T' | tr '\n' ' ')"
      # shellcheck disable=SC2086
      timeout 10 scancel --quiet $jobs 2>/dev/null || true
      for _ in $(seq 100); do
        [[ -z $(timeout 10 squeue -h -t R,CG -o %i 2>/dev/null) ]] && break
        sleep 0.1
      done
    fi
  fi
  # shellcheck disable=SC2046  # one stem per line, no spaces
  kill_daemons $(slurmd_stems_on_disk) slurmctld munged
}

is_up() {
  local node states
  live_pid munged >/dev/null && live_pid slurmctld >/dev/null || return 1
  for node in "${NODE_NAMES[@]}"; do
    live_pid "$(slurmd_stem "$node")" >/dev/null || return 1
  done
  # exactly the requested nodes (a cluster started with another node count is restarted)
  states=$(node_states) || return 1
  [[ $(awk '{print $1}' <<<"$states" | sort | tr '\n' ' ') == \
    "$(printf '%s\n' "${NODE_NAMES[@]}" | sort | tr '\n' ' ')" ]] || return 1
  all_nodes_in "$states" idle mix alloc comp
}

do_start() {
  [[ $(id -u) -eq 0 ]] || log "warning: not root; slurmd normally needs root to launch jobs"
  local b
  for b in munged slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || die "$b not found; run slurm/install.sh first"
  done
  if is_up; then
    log "already running (state dir $STATE_DIR)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  # partial leftovers from an earlier run: restart everything from a clean slate
  # shellcheck disable=SC2046
  kill_daemons $(slurmd_stems_on_disk) slurmctld
  write_config
  start_munge
  local t0=$SECONDS
  slurmctld -f "$CONF" || {
    tail_logs
    die "slurmctld failed to start"
  }
  local node states="" st
  for node in "${NODE_NAMES[@]}"; do
    slurmd -f "$CONF" -N "$node" || {
      tail_logs
      die "slurmd for node $node failed to start"
    }
  done
  while ((SECONDS - t0 < START_TIMEOUT)); do
    states=$(node_states || true)
    if all_nodes_in "$states" idle mix alloc; then
      log "up in $((SECONDS - t0))s: $(tr '\n' ' ' <<<"$states")partition debug (state dir $STATE_DIR)"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    while read -r node st; do
      case $st in
        down* | drain* | inval* | fail*)
          # ReturnToService=2 normally resumes it; force it in case it registered as down
          timeout 10 scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
          ;;
      esac
    done <<<"$states"
    sleep 0.5
  done
  log "nodes not idle after ${START_TIMEOUT}s (last states: '$(tr '\n' ' ' <<<"${states:-no answer}")')"
  timeout 10 scontrol show node >&2 2>/dev/null || true
  tail_logs
  exit 1
}

do_status() {
  local name pid rc=0
  for name in munged slurmctld $(for n in "${NODE_NAMES[@]}"; do slurmd_stem "$n"; done); do
    if pid=$(live_pid "$name"); then
      log "$name running (pid $pid)"
    else
      log "$name not running"
      rc=3
    fi
  done
  if [[ $rc -eq 0 ]]; then
    timeout 10 sinfo >&2 || rc=3
    echo "export SLURM_CONF=$CONF"
  fi
  return $rc
}

case $CMD in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 start|stop|status [STATE_DIR]" >&2
    exit 2
    ;;
esac
