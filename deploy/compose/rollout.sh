#!/usr/bin/env bash
# Replace every API replica of the fleet, one at a time, with one made from the files as they are
# now (a new image, a changed setting), without failing a request:
#   deploy/compose/rollout.sh -f docker-compose.yaml -f docker-compose.fleet.yaml
# (the arguments are docker compose's own; none needed with COMPOSE_FILE in .env).
#
# `docker compose up -d` would recreate every replica at once, leaving the balancer with none.
# Here, for each old replica: one new replica more (`--no-recreate --scale`), up once its
# model is loaded (`--wait`: healthy), then the old one stopped (it drains: DRAIN_SECONDS of
# 503 on /readyz while still answering, then its requests and its prediction log finish) and
# removed. The fleet never has fewer ready replicas than before.
set -euo pipefail
SERVICE=api
compose() { docker compose "$@"; }
mapfile -t old < <(compose "$@" ps --quiet "$SERVICE")
(( ${#old[@]} )) || { echo "rollout: no $SERVICE replica running" >&2; exit 1; }
for id in "${old[@]}"; do
  running=$(compose "$@" ps --quiet "$SERVICE" | wc -l)
  compose "$@" up --detach --no-deps --no-recreate --wait --scale "$SERVICE=$((running + 1))" "$SERVICE"
  docker stop "$id" >/dev/null
  docker rm "$id" >/dev/null
  echo "rollout: replaced ${id:0:12}"
done
