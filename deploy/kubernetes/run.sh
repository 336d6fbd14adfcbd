#!/bin/bash
# Runs a sharded audit on Kubernetes: the volume, the shards (Indexed Job), then the merge once
# every shard completed. Usage: deploy/kubernetes/run.sh [kubectl options, e.g. -n audits]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kubectl "$@" apply -f "$here/volume.yaml"
kubectl "$@" apply -f "$here/shards-job.yaml"
if ! kubectl "$@" wait --for=condition=complete job/skeptic-shards --timeout=${TIMEOUT:-24h}; then
  echo "shards did not all complete: kubectl $* describe job skeptic-shards; or merge what is there with --partial" >&2
  exit 1
fi
kubectl "$@" apply -f "$here/merge-job.yaml"
kubectl "$@" wait --for=condition=complete job/skeptic-merge --timeout=${TIMEOUT:-24h}
kubectl "$@" logs job/skeptic-merge
