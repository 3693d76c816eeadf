#!/usr/bin/env bash
# Start the real services the tests use, all on loopback (install them first: install.sh):
#   munge -> MariaDB -> slurmdbd (+ cluster) -> slurmctld -> slurmd   (one-node Slurm with accounting)
#   PostgreSQL on a data folder of our own (initdb + pg_ctl as the postgres user)
# and write an env file for the tests ($SSMBOARD_SERVICES_DIR/env, default /tmp/ssmboard-services/env):
#   SSMBOARD_TEST_PG_URL, SSMBOARD_TEST_SLURM=1, SSMBOARD_TEST_CHROMIUM
# Every PID goes to $SSMBOARD_SERVICES_DIR/pids/NAME.pid; stop.sh stops them in reverse order.
# Safe to run twice: a service that already answers is left running and its PID recorded again.
# Needs root (no systemd on these machines). See ../shared/services.md for why each setting is here.
set -euo pipefail

STATE=${SSMBOARD_SERVICES_DIR:-/tmp/ssmboard-services}
PIDS=$STATE/pids
LOGS=$STATE/log
CLUSTER=${SSMBOARD_SLURM_CLUSTER:-ci}
PG_PORT_WANTED=${SSMBOARD_PG_PORT:-55432}
PG_USER=ssmboard
PG_PASS=ssmboard
PG_DB=ssmboard_test
SLURM_DB_PASS=ssmboard-slurm

if [ "$(id -u)" -ne 0 ]; then
    echo "start.sh: needs root" >&2
    exit 1
fi

mkdir -p "$STATE" "$PIDS" "$LOGS"
chmod 755 "$STATE"
T0=$(date +%s)

log() { echo "start.sh [$(( $(date +%s) - T0 ))s]: $*"; }

# wait_for SECONDS WHAT CMD...: retry CMD every 0.5 s until it succeeds; fail naming WHAT.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$(( $(date +%s) + timeout ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "start.sh: $what did not come up within ${timeout}s (logs under $LOGS and /var/log/slurm)" >&2
            return 1
        fi
        sleep 0.5
    done
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_from() { [ -s "$1" ] && head -1 "$1" | tr -dc '0-9' || true; }

# record NAME PIDFILE: copy a daemon's PID into our pids folder (and fail if it is not alive).
record() {
    local name=$1 pid
    pid=$(pid_from "$2")
    if ! alive "$pid"; then
        echo "start.sh: $name is not running (no live PID in $2)" >&2
        return 1
    fi
    echo "$pid" > "$PIDS/$name.pid"
    log "$name running, PID $pid"
}

# ---------------------------------------------------------------- munge
munge_ok() { munge -n | unmunge; }
if [ ! -s /etc/munge/munge.key ] || [ "$(stat -c %s /etc/munge/munge.key)" -lt 32 ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge_ok >/dev/null 2>&1; then
    # --force: a socket or lock left by a munged that died is removed.
    runuser -u munge -- /usr/sbin/munged --force
    wait_for 20 munged munge_ok
fi
record munge /run/munge/munged.pid

# ---------------------------------------------------------------- MariaDB (slurmdbd's store)
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOGS/mariadb-install.log" 2>&1
fi
if ! mariadb-admin ping >/dev/null 2>&1; then
    # Detached, with no descriptor of ours, so a caller reading our output is not held open.
    (cd / && exec setsid nohup mariadbd --user=mysql --bind-address=127.0.0.1 \
        --pid-file=/run/mysqld/mysqld.pid >"$LOGS/mariadb.log" 2>&1 </dev/null) &
    wait_for 60 MariaDB mariadb-admin ping
    wait_for 10 "MariaDB PID file" test -s /run/mysqld/mysqld.pid
fi
record mariadb /run/mysqld/mysqld.pid
mariadb <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$SLURM_DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$SLURM_DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------- Slurm configuration
NODE=$(hostname -s)
NODE_LINE="$(slurmd -C | head -1) NodeAddr=127.0.0.1 State=UNKNOWN"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
SLURM_CONF_NEW=$(cat <<EOF
# Written by ssmboard scripts/services/start.sh: a one-node cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
$NODE_LINE
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
SLURM_CONF_CHANGED=0
if [ ! -f /etc/slurm/slurm.conf ] \
    || [ "$(grep -v '^FirstJobId=' /etc/slurm/slurm.conf)" != "$SLURM_CONF_NEW" ]; then
    printf '%s\n' "$SLURM_CONF_NEW" > /etc/slurm/slurm.conf
    SLURM_CONF_CHANGED=1
fi
chmod 644 /etc/slurm/slurm.conf
cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$SLURM_DB_PASS
StorageLoc=slurm_acct_db
EOF
chown root:root /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf

# ---------------------------------------------------------------- slurmdbd + cluster
if ! alive "$(pid_from /run/slurmdbd.pid)"; then
    slurmdbd
fi
wait_for 60 slurmdbd sacctmgr -n list cluster
record slurmdbd /run/slurmdbd.pid
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    # A re-run finds the cluster there already: that is fine.
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
fi
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" \
    || { echo "start.sh: cluster $CLUSTER is not in slurmdbd" >&2; exit 1; }

# ---------------------------------------------------------------- slurmctld
# The saved state under /var/spool/slurmctld is kept across runs so job IDs keep increasing
# (sacct -j ID would otherwise also list an earlier run's job of the same ID). If that state
# cannot be read, slurmctld is started again ignoring it (-i).
ctld_ok() { scontrol ping | grep -q 'is UP'; }
if alive "$(pid_from /run/slurmctld.pid)" && [ "$SLURM_CONF_CHANGED" = 1 ]; then
    scontrol reconfigure || true
fi
# Without saved state (wiped, or unreadable) job IDs would start at 1 again while accounting
# still holds the earlier run's jobs of those IDs: start after the highest one accounting knows.
first_job_id() {
    local top
    top=$(sacct -n -X -P -a -S 2000-01-01 -E now -o JobIDRaw 2>/dev/null \
          | tr -dc '0-9\n' | sort -n | tail -1 || true)
    sed -i '/^FirstJobId=/d' /etc/slurm/slurm.conf
    if [ -n "$top" ] && [ "$top" -gt 0 ]; then
        echo "FirstJobId=$(( top + 1 ))" >> /etc/slurm/slurm.conf
        log "no saved slurmctld state: job IDs start at $(( top + 1 ))"
    fi
}
CTLD_STARTED=0
if ! alive "$(pid_from /run/slurmctld.pid)"; then
    CTLD_STARTED=1
    [ -s /var/spool/slurmctld/job_state ] || first_job_id
    slurmctld
    if ! wait_for 30 slurmctld ctld_ok; then
        log "slurmctld did not start with the saved state; starting it ignoring state errors (-i)"
        kill "$(pid_from /run/slurmctld.pid)" 2>/dev/null || true
        sleep 1
        first_job_id
        slurmctld -i
        wait_for 30 slurmctld ctld_ok
    fi
fi
record slurmctld /run/slurmctld.pid

# ---------------------------------------------------------------- slurmd
if ! alive "$(pid_from /run/slurmd.pid)"; then
    slurmd
fi
wait_for 20 "slurmd PID file" test -s /run/slurmd.pid
record slurmd /run/slurmd.pid

node_up() { sinfo -h -N -o %T | grep -Eqx 'idle|mixed|allocated|completing'; }
deadline=$(( $(date +%s) + 60 ))
resumed=0
until node_up; do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    # A node left down or drained by an earlier run: return it to service once.
    if [ "$resumed" = 0 ] && [[ "$state" =~ drain|down|fail ]]; then
        scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
        resumed=1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "start.sh: Slurm node $NODE is '$state', not idle, after 60s" >&2
        sinfo -R >&2 || true
        exit 1
    fi
    sleep 0.5
done
if [ "$CTLD_STARTED" = 1 ]; then
    # Jobs recovered from the saved state belong to an earlier run (one whose daemons died
    # mid-job can stay "running" forever, holding a CPU): cancel them.
    leftover=$(squeue -h -o %i | tr '\n' ' ')
    if [ -n "${leftover// /}" ]; then
        log "cancelling jobs left from an earlier run: $leftover"
        # shellcheck disable=SC2086
        scancel $leftover || true
    fi
fi
log "slurm node $NODE: $(sinfo -h -N -o %T | head -1)"

# ---------------------------------------------------------------- PostgreSQL
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDATA=$STATE/pg
PGSOCK=$STATE/pg-run
mkdir -p "$PGSOCK"
chown postgres:postgres "$PGSOCK"
chmod 755 "$PGSOCK"
as_pg() { (cd / && runuser -u postgres -- "$@"); }

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
# As postgres binds: SO_REUSEADDR, so connections of an earlier server in TIME_WAIT do not count.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    rm -rf "$PGDATA"
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1
fi

touch "$LOGS/postgresql.log"
chown postgres:postgres "$LOGS/postgresql.log"
if as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    PG_PORT=$(sed -n 4p "$PGDATA/postmaster.pid")
else
    PG_PORT=$PG_PORT_WANTED
    if ! port_free "$PG_PORT"; then
        PG_PORT=$(free_port)
        log "port $PG_PORT_WANTED is taken; PostgreSQL gets $PG_PORT"
    fi
    # Test settings: loopback only, our own socket folder, no fsync (a crash loses only test data).
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOGS/postgresql.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PGSOCK \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null
fi
wait_for 30 PostgreSQL "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
record postgresql "$PGDATA/postmaster.pid"

psql_admin() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCK" -p "$PG_PORT" -U postgres -d postgres "$@"; }
psql_admin <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASS';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASS';
  END IF;
END \$\$;
SQL
if [ -z "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

# ---------------------------------------------------------------- env file
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || log "warning: chromium is not installed (install.sh); SSMBOARD_TEST_CHROMIUM left empty"
cat > "$STATE/env.tmp" <<EOF
# Written by ssmboard scripts/services/start.sh at $(date -u +%FT%TZ). Source it before the tests.
export SSMBOARD_TEST_PG_URL=postgresql+psycopg://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB
export SSMBOARD_TEST_SLURM=1
export SSMBOARD_TEST_SLURM_PARTITION=debug
export SSMBOARD_TEST_CHROMIUM=$CHROMIUM
EOF
chmod 644 "$STATE/env.tmp"
mv "$STATE/env.tmp" "$STATE/env"
log "all services up; env file $STATE/env"
