#!/usr/bin/env bash
# Side-by-side speed comparison of deface 1.5.0 and faceveil on one clip, on this machine, in one run.
#
# Usage: scripts/compare_deface.sh CLIP [N_RUNS]
#
#   CLIP    a video file (e.g. samples/faces_720p.mp4)
#   N_RUNS  runs per tool/mode (default 1); the table shows the median wall time and the
#           largest peak RSS over the runs.
#
# Runs, in this order, N_RUNS rounds of the three (interleaved, so that a shared machine's load,
# which drifts over the minutes one deface run takes, weighs on every tool alike):
#   deface  CLIP -o OUT --replacewith blur                      (deface 1.5.0 in deps/deface-venv)
#   faceveil anonymize CLIP -o OUT --mode blur                   (target/release/faceveil)
#   faceveil anonymize CLIP -o OUT --mode sdn   (FACEVEIL_PASSWORD=compare)
# and prints a plain table and then the same table in Markdown (for the docs), with the ratio
# faceveil fps / deface fps.
#
# Environment:
#   FACEVEIL_BIN   faceveil binary (default target/release/faceveil)
#   DEFACE_VENV    venv for deface (default deps/deface-venv; created with pip if missing)
#   OUT_DIR        where outputs and logs go (default out/compare)
#   NICE           niceness for the timed runs (default 0; the same for every tool)
#   DEFACE_ONLY=1  time deface alone (no faceveil rows), e.g. before faceveil is built
#   FACEVEIL_ARGS  extra faceveil options for both faceveil rows (e.g. "--detect-interval 3")
#
# Wall time is measured around each command (date +%s.%N); CPU seconds (user + system) and peak
# RSS come from /usr/bin/time -v. CPU seconds are less sensitive than wall time to other load on
# a shared machine; the load average before and after is printed too.
# Frames = duration x frame rate from gst-discoverer-1.0, so fps = frames / wall seconds, and it
# includes start-up (model loading, deface's own ffmpeg start-up) as a user would see it.
# Note: deface is run with its defaults, which drop the audio track.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "compare_deface: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || usage
CLIP=$1
N_RUNS=${2:-1}
[[ -f $CLIP ]] || die "no such clip: $CLIP"
[[ $N_RUNS =~ ^[1-9][0-9]*$ ]] || die "N_RUNS must be a positive integer, got '$N_RUNS'"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FACEVEIL_BIN=${FACEVEIL_BIN:-$ROOT/target/release/faceveil}
DEFACE_VENV=${DEFACE_VENV:-$ROOT/deps/deface-venv}
OUT_DIR=${OUT_DIR:-$ROOT/out/compare}
NICE=${NICE:-0}
DEFACE_ONLY=${DEFACE_ONLY:-0}

command -v gst-discoverer-1.0 >/dev/null || die "gst-discoverer-1.0 not found: install gstreamer1.0-plugins-base-apps (Debian/Ubuntu)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) not found; install the 'time' package"

# Fail before spending minutes on deface if the faceveil half cannot run.
if [[ $DEFACE_ONLY != 1 && ! -x $FACEVEIL_BIN ]]; then
    die "faceveil binary not found at $FACEVEIL_BIN: build it first (cargo build --release)," \
        "set FACEVEIL_BIN, or run with DEFACE_ONLY=1 to time deface alone"
fi

# --- deface venv ---------------------------------------------------------------------------
if [[ ! -x $DEFACE_VENV/bin/deface ]]; then
    echo "compare_deface: installing deface==1.5.0 into $DEFACE_VENV" >&2
    python3 -m venv "$DEFACE_VENV"
    "$DEFACE_VENV/bin/pip" install --quiet deface==1.5.0 onnxruntime \
        || die "pip install deface==1.5.0 failed"
fi
DEFACE_VERSION=$("$DEFACE_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("deface"))')
ORT_VERSION=$("$DEFACE_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("onnxruntime"))' 2>/dev/null || echo none)

# --- frames in the clip --------------------------------------------------------------------
DISC=$(gst-discoverer-1.0 -v "$CLIP") || die "gst-discoverer-1.0 cannot read $CLIP"
DURATION=$(awk '/Duration:/ {split($2, a, ":"); printf "%.6f", a[1]*3600 + a[2]*60 + a[3]; exit}' <<<"$DISC")
RATE=$(awk '/Frame rate:/ {print $3; exit}' <<<"$DISC")
[[ -n $DURATION && -n $RATE ]] || die "no duration or frame rate for $CLIP in gst-discoverer output"
FRAMES=$(awk -v d="$DURATION" -v r="$RATE" 'BEGIN {split(r, f, "/"); printf "%d", d * f[1] / f[2] + 0.5}')
[[ $FRAMES -gt 0 ]] || die "could not count frames of $CLIP"
SIZE=$(awk '/Width:/ {w=$2} /Height:/ {h=$2} END {print w "x" h}' <<<"$DISC")

mkdir -p "$OUT_DIR"
base=$(basename "$CLIP"); base=${base%.*}

# --- timing --------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
        END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Each tool's runs so far, by "tool|mode": wall and CPU seconds (space-separated), peak RSS (KB).
declare -A WALLS=() CPUS=() RSS=()
KEYS=()

# run_once TOOL MODE OUTFILE RUN -- CMD...   (env for CMD is passed with `env` inside CMD)
run_once() {
    local tool=$1 mode=$2 out=$3 i=$4; shift 5
    local key="$tool|$mode"
    [[ -v "WALLS[$key]" ]] || { KEYS+=("$key"); WALLS[$key]=""; CPUS[$key]=""; RSS[$key]=0; }
    local log=$OUT_DIR/$base.$tool-$mode.run$i.log tv=$OUT_DIR/$base.$tool-$mode.run$i.time
    rm -f "$out"
    echo "compare_deface: $tool $mode run $i/$N_RUNS ..." >&2
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    nice -n "$NICE" /usr/bin/time -v -o "$tv" "$@" >"$log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    if [[ $rc -ne 0 || ! -s $out ]]; then
        echo "----- last lines of $log -----" >&2
        tail -n 20 "$log" >&2
        die "$tool $mode failed (exit $rc, output ${out})"
    fi
    WALLS[$key]+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
    CPUS[$key]+=" $(awk -F': ' '/User time|System time/ {t += $2} END {printf "%.2f", t}' "$tv")"
    local rss
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
    ((rss > RSS[$key])) && RSS[$key]=$rss
    return 0
}

for ((i = 1; i <= N_RUNS; i++)); do
    run_once deface blur "$OUT_DIR/$base.deface-blur.mp4" "$i" -- \
        "$DEFACE_VENV/bin/deface" "$CLIP" -o "$OUT_DIR/$base.deface-blur.mp4" --replacewith blur
    if [[ $DEFACE_ONLY != 1 ]]; then
        run_once faceveil blur "$OUT_DIR/$base.faceveil-blur.mp4" "$i" -- \
            "$FACEVEIL_BIN" anonymize "$CLIP" -o "$OUT_DIR/$base.faceveil-blur.mp4" --mode blur ${FACEVEIL_ARGS:-}
        run_once faceveil sdn "$OUT_DIR/$base.faceveil-sdn.mp4" "$i" -- \
            env FACEVEIL_PASSWORD=compare \
            "$FACEVEIL_BIN" anonymize "$CLIP" -o "$OUT_DIR/$base.faceveil-sdn.mp4" --mode sdn ${FACEVEIL_ARGS:-}
    fi
done

ROWS=()  # "tool|mode|seconds|fps|cpu_seconds|rss_mb"
for key in "${KEYS[@]}"; do
    # shellcheck disable=SC2086 # the runs' values, split on purpose
    med=$(median ${WALLS[$key]})
    # shellcheck disable=SC2086
    cpu=$(median ${CPUS[$key]})
    fps=$(awk -v f="$FRAMES" -v s="$med" 'BEGIN {printf "%.2f", f / s}')
    ROWS+=("$key|$med|$fps|$cpu|$(awk -v k="${RSS[$key]}" 'BEGIN {printf "%.0f", k / 1024}')")
done

# --- report --------------------------------------------------------------------------------
DEFACE_FPS=$(cut -d'|' -f4 <<<"${ROWS[0]}")
ratio() { awk -v a="$1" -v b="$DEFACE_FPS" 'BEGIN {printf "%.2f", a / b}'; }

CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "Clip: $CLIP ($SIZE, $FRAMES frames, ${DURATION}s)   runs: $N_RUNS (median)   nice: $NICE"
echo "Machine: $(nproc) cores, $CPU; load average (1/5/15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "deface $DEFACE_VERSION (onnxruntime $ORT_VERSION)"
echo
printf '%-9s %-5s %9s %8s %8s %12s %10s\n' tool mode seconds fps "CPU s" "peak RSS MB" "x deface"
for r in "${ROWS[@]}"; do
    IFS='|' read -r tool mode s fps cpu rss <<<"$r"
    printf '%-9s %-5s %9.2f %8.2f %8.2f %12s %10s\n' "$tool" "$mode" "$s" "$fps" "$cpu" "$rss" "$(ratio "$fps")"
done
echo
echo "| tool | mode | seconds | fps | CPU seconds | peak RSS (MB) | fps vs deface |"
echo "|------|------|--------:|----:|------------:|--------------:|--------------:|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r tool mode s fps cpu rss <<<"$r"
    printf '| %s | %s | %.2f | %.2f | %.2f | %s | %sx |\n' "$tool" "$mode" "$s" "$fps" "$cpu" "$rss" "$(ratio "$fps")"
done
echo
echo "_${base}: ${SIZE}, ${FRAMES} frames; $(nproc) cores ($CPU); median of ${N_RUNS} run(s), the tools taking turns._"
runs=()
for key in "${KEYS[@]}"; do runs+=("${key/|/ }:${WALLS[$key]}"); done
echo "_Seconds of each run in turn: $(IFS=';'; echo "${runs[*]}" | sed 's/;/; /g')._"
