# Sourced by .ci/test, .ci/fuzz-smoke and .ci/desktop-test: `phase NAME` prints a phase header
# with the minutes since the run began and the disk space left, so a run that is slow or runs
# out of disk says in which phase (a CI run once failed with ENOSPC in the desktop build, and
# Syncthing refused to start in bench --quick below 1 % free, with nothing in the log saying so).
: "${FERRY_CI_T0:=$(date +%s)}"
export FERRY_CI_T0
phase() {
    local s=$(($(date +%s) - FERRY_CI_T0))
    printf '== %s [+%dm%02ds, %s free]\n' "$*" $((s / 60)) $((s % 60)) \
        "$(df -h --output=avail . 2>/dev/null | tail -n 1 | tr -d ' ')"
}
