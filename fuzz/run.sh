#!/bin/sh
# Bounded fuzzing run for CI: every target for SECONDS seconds each, under atheris.
#   fuzz/run.sh SECONDS [TARGET...]      (default: all fuzz/fuzz_*.py)
# Seeds come from fuzz/corpus/<target>/ (read-only here); new inputs go to a scratch
# directory ($FUZZ_WORK, default a temp dir). A crash leaves its input as
# $FUZZ_WORK/crash-<target>-* and makes the script exit 1 after all targets ran.
# Python: $PYTHON, default the repo's .venv (pip install -e '.[dev]' brings atheris).
set -u
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${PYTHON:-$repo/.venv/bin/python}
work=${FUZZ_WORK:-$(mktemp -d /tmp/bpfsign-fuzz.XXXXXX)}
targets=${*:-$(cd "$here" && ls fuzz_*.py | sed 's/\.py$//')}
status=0
for t in $targets; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    (cd "$here" && "$py" "$t.py" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$work/crash-$t-" -print_final_stats=1 \
        "$work/$t" "corpus/$t") >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    echo "$t: ${runs:-?} inputs in ${secs}s, exit $rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -E 'Uncaught Python exception|Error|==ERROR' "$log" | head -5
        ls "$work"/crash-"$t"-* 2>/dev/null
    fi
done
echo "scratch corpus and logs: $work"
exit $status
