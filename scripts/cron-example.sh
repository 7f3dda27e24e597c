#!/usr/bin/env bash
# Nightly incremental mirror, for crontab:
#   15 3 * * *  /opt/margen/scripts/cron-example.sh >> /var/log/margen-mirror.log 2>&1
# The key is read from a file only the cron user can read (never put it on a command line).
set -u
export MARGEN_API_KEY_FILE="${MARGEN_API_KEY_FILE:-$HOME/.config/margen/api-key}"
JOB="${1:-/opt/margen/manifests/dark-brown-fakes.toml}"

margen-mirror sync "$JOB" --api-key-file "$MARGEN_API_KEY_FILE" --quiet
code=$?
case $code in
  0) ;;                                                      # complete (or already up to date)
  4) echo "margen-mirror: budget reached or out of credits; top up, then it resumes next night" ;;
  5) echo "margen-mirror: partial run (retryable errors); the next run finishes it" ;;
  6) echo "margen-mirror: previous run still going; skipped" ;;
  *) echo "margen-mirror: failed with exit code $code; see the line above" ;;
esac
exit $code
