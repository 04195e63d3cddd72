# Shared by the benchmarks that measure prefork against nginx (sourced, not run).
tick=$(getconf CLK_TCK)

# Stops a server by pid: its master (TERM, then KILL after 3 s) and the children it had.
stop_tree() {  # PID
  local pid="$1" children
  children=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" $children 2>/dev/null || true
}

wait_for() {  # URL: until it answers, at most 10 s
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): nothing answers at $1" >&2; exit 1
}

# "pid ticks user_ticks" for PID and each of its children; ticks = utime + stime (fields 14
# and 15 of /proc/PID/stat, counted after the ")" that ends the command name).
cpu_ticks() {  # PID
  local pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    sed -n 's/.*) //p' "/proc/$pid/stat" 2>/dev/null | awk -v pid="$pid" '{ print pid, $12 + $13, $12 }'
  done
}

# CPU ticks used between two cpu_ticks snapshots, printed as "TICKS USER_TICKS": every
# process in the second one, minus what it had in the first (0 if it started since). A
# process gone since is not counted.
ticks_used() {  # BEFORE-FILE AFTER-FILE
  awk 'NR == FNR { before[$1] = $2; user[$1] = $3; next }
       { used += $2 - before[$1]; used_user += $3 - user[$1] }
       END { print used + 0, used_user + 0 }' "$1" "$2"
}

# Microseconds per request that TICKS of CPU time make.
per_request_us() {  # TICKS REQUESTS
  awk -v t="$1" -v hz="$tick" -v n="$2" 'BEGIN { printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0) }'
}

# wrk's summary -> "requests errors rps p50_ms p99_ms"
summarize() {  # WRK-OUTPUT
  awk '
    function ms(t) {
      if (t ~ /us$/) return t / 1000
      if (t ~ /ms$/) return t + 0
      if (t ~ /s$/) return t * 1000
      return t + 0
    }
    / requests in / { requests = $1 }
    /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errors += $5 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%d %d %.0f %.3f %.3f\n", requests, errors, rps, p50, p99 }' "$1"
}

# nginx answering "Hello, World!" on 127.0.0.1:PORT with WORKERS workers, access log off,
# keep-alive connections never closed for their request count, in DIR (nginx -p DIR -c
# DIR/nginx.conf; its pid in DIR/nginx.pid).
write_nginx_conf() {  # DIR PORT WORKERS
  mkdir -p "$1/logs"
  cat > "$1/nginx.conf" <<CONF
worker_processes $3;
worker_rlimit_nofile 16384;
pid $1/nginx.pid;
error_log $1/logs/error.log notice;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  server {
    listen 127.0.0.1:$2;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
CONF
}
