#!/usr/bin/env bash
# Run a command and, while it runs, print one line every 15 s, so that a long silent phase (pip
# unpacking torch and the other wheels prints nothing for tens of seconds) never looks like a
# hang. The command's own output and exit status pass through unchanged.
#   bash scripts/with_heartbeat.sh "installing packages" python -m pip install ...
set -u
what=$1
shift
"$@" &
pid=$!
started=$SECONDS
(
    while sleep 15; do
        kill -0 "$pid" 2>/dev/null || exit 0
        echo "... still $what ($((SECONDS - started)) s)"
    done
) &
beat=$!
wait "$pid"
status=$?
kill "$beat" 2>/dev/null
wait "$beat" 2>/dev/null
exit "$status"
