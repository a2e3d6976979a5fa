#!/usr/bin/env bash
# Entry point of the project image (Dockerfile). Keeps a git checkout of the image's code in
# /workspace (a volume shared by the project's services), points DVC at the S3-compatible
# remote when DVC_REMOTE_URL is set, then runs the service's command there.
set -euo pipefail
WORKSPACE=${WORKSPACE:-/workspace}
mkdir -p "$WORKSPACE"
(
  flock 9
  if [ ! -d "$WORKSPACE/.git" ]; then
    git clone --quiet /app "$WORKSPACE"
  else
    # new code from a rebuilt image; experiments (refs/exps), DVC cache, registry/ and runs/ stay
    git -C "$WORKSPACE" fetch --quiet /app HEAD
    git -C "$WORKSPACE" reset --quiet --hard FETCH_HEAD
  fi
  cd "$WORKSPACE"
  git config user.name >/dev/null || git config user.name "churn-workflow"
  git config user.email >/dev/null || git config user.email "churn-workflow@localhost"
  if [ -n "${DVC_REMOTE_URL:-}" ]; then
    dvc remote add --local --force --default s3 "$DVC_REMOTE_URL"
    [ -z "${DVC_REMOTE_ENDPOINT:-}" ] || dvc remote modify --local s3 endpointurl "$DVC_REMOTE_ENDPOINT"
  fi
) 9>"$WORKSPACE/.entrypoint.lock"
cd "$WORKSPACE"
exec "$@"
