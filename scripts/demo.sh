#!/usr/bin/env bash
# The main job: start the embedded stack and walk clusters through their life.
# Everything runs under a temporary directory and stops cleanly at the end.
set -euo pipefail
rhcli=${1:-bin/rhcli}
rhcli=$(cd "$(dirname "$rhcli")" && pwd)/$(basename "$rhcli")
work=$(mktemp -d -t rh-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 14222)
export RH_NATS_URL=nats://127.0.0.1:$port
serve_pid=
nodes_pid=
cleanup() {
  if [ -n "$nodes_pid" ] && kill -0 "$nodes_pid" 2>/dev/null; then
    kill -TERM "$nodes_pid"; wait "$nodes_pid" 2>/dev/null || true
  fi
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$work" "/tmp/rh-demo-project-$$" "/tmp/rh-demo-config-$$.yaml" "/tmp/rh-demo-sm-$$"
  # The demo's "machines" were this one: take back the agent binary the gateway
  # placed in the nodes' user's ~/.rh/bin (on real nodes it stays, to be
  # reused next time). As root the nodes log in as a plain user (rhtest).
  if [ -n "${agent_version:-}" ]; then
    node_home=$(getent passwd "${user:-$(id -un)}" | cut -d: -f6)
    rm -f "${node_home:-$HOME}/.rh/bin/rhcli-$agent_version"
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

if [ ! -x /usr/sbin/sshd ]; then
  echo "The demo's simulated machines are real OpenSSH servers on loopback addresses,"
  echo "and /usr/sbin/sshd is missing: installing Debian's openssh-server now (Ctrl-C to stop)."
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y --no-install-recommends openssh-server >/dev/null
  else sudo apt-get install -y --no-install-recommends openssh-server >/dev/null; fi
fi
agent_version=$("$rhcli" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || true)
echo "rh demo: data under $work, NATS on $RH_NATS_URL"
"$rhcli" serve --sim --data-dir "$work/data" --listen "127.0.0.1:$port" --reconcile-every 2s >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
  grep -q "rh is ready" "$work/serve.log" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
# The ready line says how to reach rh: its URL and the local operator's
# credentials (nobody connects without them).
ready=$(grep -m1 "rh is ready: " "$work/serve.log")
eval "${ready#rh is ready: }"
echo "rh is ready; credentials: $RH_NATS_CREDS"

mkdir -p "$work/project/src" && echo 'print("hello from rh")' >"$work/project/src/train.py" && echo "lr: 0.1" >"$work/project/config.yaml"

echo; echo "== a bring-your-own cluster: two machines (local sshd nodes started by 'rhcli sim nodes') =="
"$rhcli" sim nodes --count 2 --dir "$work" >"$work/nodes.txt" 2>"$work/nodes.log" &
nodes_pid=$!
for _ in $(seq 100); do grep -q "ips=" "$work/nodes.txt" 2>/dev/null && break; sleep 0.1; done
eval "$(cat "$work/nodes.txt")"   # ips= port= user= key=
step "$rhcli" cluster create mybox --ips "$ips" --ssh-port "$port" --ssh-user "$user" --ssh-key "$key" --wait
step "$rhcli" cluster status mybox
step "$rhcli" run mybox --node all -- 'echo "$(hostname) has $(nproc) CPUs"; uname -sr'
step "$rhcli" put mybox "$work/project" /tmp/rh-demo-project-$$
step "$rhcli" put mybox "$work/project" /tmp/rh-demo-project-$$
step "$rhcli" run-python mybox -- 'import sys; print("python", sys.version.split()[0])'
step "$rhcli" run mybox -- 'exit 3' || echo "(exit $?: the remote command's exit code)"
step "$rhcli" cluster teardown mybox --wait
step "$rhcli" cluster delete mybox

echo; echo "== an on-demand cluster (SkyPilot simulator; its machines are local sshd nodes) =="
step "$rhcli" check
step "$rhcli" cluster create gpus --instance-type A100:4 --num-instances 2 --provider aws --region us-east-1 --autostop-mins 30 --wait
step "$rhcli" cluster list
step "$rhcli" cluster create gpus --instance-type m5.xlarge || echo "(exit $?: a cluster of that name exists)"
step "$rhcli" cluster create Bad_Name --instance-type m5.xlarge || echo "(exit $?: invalid input names the field)"
step "$rhcli" run gpus --node all -- 'echo "hello from $(hostname -I 2>/dev/null || hostname)"'
step "$rhcli" put gpus "$work/project/config.yaml" /tmp/rh-demo-config-$$.yaml --node all
step "$rhcli" get gpus /tmp/rh-demo-config-$$.yaml "$work/config-back.yaml"
step cat "$work/config-back.yaml"
step "$rhcli" cluster autostop gpus 60
step "$rhcli" cluster status gpus --refresh
step "$rhcli" cluster teardown gpus --wait
step "$rhcli" cluster events gpus
step "$rhcli" cluster delete gpus
step "$rhcli" cluster list

echo; echo "== a SageMaker cluster (SageMaker simulator through the real AWS SDK; SSH through an SSM-style proxy command) =="
step "$rhcli" cluster create sm --instance-type ml.m5.large --role DemoSageMakerRole --autostop-mins 30 --wait
step "$rhcli" run sm -- 'echo "hello from the training instance: $(uname -n)"'
step "$rhcli" put sm "$work/project" /tmp/rh-demo-sm-$$
step "$rhcli" run sm -- "ls -l /tmp/rh-demo-sm-$$/src"
step "$rhcli" cluster teardown sm --wait
step "$rhcli" cluster events sm
step "$rhcli" cluster delete sm

echo; echo "stopping rh"
kill -TERM "$nodes_pid"; wait "$nodes_pid" 2>/dev/null || true; nodes_pid=
kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=
echo "done"
