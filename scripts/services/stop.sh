#!/usr/bin/env bash
# Stop the services start.sh started, in reverse order, by the PIDs it recorded
# ($SSMBOARD_SERVICES_DIR/pids, default /tmp/ssmboard-services/pids). Safe to run twice:
# a PID that is gone already is skipped. Data (PostgreSQL folder, Slurm state, MariaDB) is kept.
set -euo pipefail

STATE=${SSMBOARD_SERVICES_DIR:-/tmp/ssmboard-services}
PIDS=$STATE/pids
ORDER=(postgresql slurmd slurmctld slurmdbd mariadb munge)   # reverse of the start order

[ -d "$PIDS" ] || { echo "stop.sh: nothing recorded under $PIDS"; exit 0; }

for name in "${ORDER[@]}"; do
    file=$PIDS/$name.pid
    [ -s "$file" ] || continue
    pid=$(head -1 "$file" | tr -dc '0-9')
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$file"
        continue
    fi
    # postgres: SIGINT is its "fast" shutdown; the others stop cleanly on SIGTERM.
    sig=TERM
    [ "$name" = postgresql ] && sig=INT
    kill -s "$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do               # up to 30 s, then SIGKILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop.sh: $name (PID $pid) did not stop in 30 s; killing it" >&2
        kill -s KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
    echo "stop.sh: stopped $name (PID $pid)"
done
