#!/usr/bin/env bash
# Install the real services the tests use, from Debian's packages: PostgreSQL, a one-node Slurm
# cluster with accounting (slurmctld, slurmd, slurmdbd + MariaDB, munge) and headless Chromium.
# Idempotent: when every package is installed already it returns at once (no apt-get update).
# Needs root. Package scripts are kept from starting daemons (policy-rc.d); start.sh starts them.
set -euo pipefail

PACKAGES=(postgresql slurm-wlm munge slurmdbd mariadb-server chromium fonts-liberation)

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: needs root (apt-get install)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install.sh: all installed (${PACKAGES[*]})"
    exit 0
fi

# Keep package scripts from starting daemons during install (no systemd here; start.sh starts them).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi

start=$(date +%s)
echo "install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install.sh: done in $(( $(date +%s) - start )) s"
