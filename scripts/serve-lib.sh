# Shared by the serve-*.sh measurement scripts (sourced, not run): the config they write for
# `faceveil serve` and the machine line they print.

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Cores, CPU model and load average, printed above every table.
machine() { echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

# The config's head: the metrics endpoint on PORT.
config_head() { printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$1"; }

# One [[camera]]: NAME SOURCE REALTIME MODE DETECT_INTERVAL THREADS RECORD_DIR, recording 10-second
# segments; an sdn camera reads its password from the file "password" beside the config.
camera() {
  printf '\n[[camera]]\nname = "%s"\nsource = "%s"\nrealtime = %s\nmode = "%s"\ndetect_interval = %s\nthreads = %s\nrecord = { dir = "%s", segment_seconds = 10, keep = 3 }\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7"
  if [ "$4" = sdn ]; then echo 'password_file = "password"'; fi
}

# The metrics text of the serve process listening on PORT.
scrape() { curl -sf "http://127.0.0.1:$1/metrics"; }

# The sum of one per-camera counter over all cameras, from metrics text on standard input.
total() { awk -v m="faceveil_camera_$1{" 'index($0, m) == 1 { s += $2 } END { print s + 0 }'; }
