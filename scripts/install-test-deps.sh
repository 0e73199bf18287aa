#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it is missing:
# real OpenSSH servers are the test bed (the harness starts sshd processes),
# network namespaces need iproute2, the benchmarks compare with rsync and pdsh,
# promtool (Debian's prometheus package) checks the compose stack's
# Prometheus configuration and tests its alerting rules, and `rhcli notebook`
# is tested against Debian's Jupyter (nodes are local sshd processes, and pip
# cannot reach an index offline to install it on demand).
set -euo pipefail
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v pgrep >/dev/null || need+=(procps)
command -v unshare >/dev/null || need+=(util-linux)
command -v rsync >/dev/null || need+=(rsync)
command -v pdsh >/dev/null || need+=(pdsh)
command -v python3 >/dev/null || need+=(python3)
command -v promtool >/dev/null || need+=(prometheus)
command -v jupyter-notebook >/dev/null || python3 -m jupyter notebook --version >/dev/null 2>&1 || need+=(jupyter-notebook)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "test prerequisites missing: ${need[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install them (Debian: apt-get install ${need[*]}) and run again" >&2
  exit 1
fi
echo "installing with apt-get: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
}
# Debian's package may start a system sshd; the tests start their own.
