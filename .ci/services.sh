#!/usr/bin/env bash
# Install and start the real services Easel's test suite talks to (PostgreSQL
# and Redis) on a bare Debian 12 CI machine, running as root. Idempotent: safe
# to run again, or when the packages/services are already there.
#
#   .ci/services.sh                   # run; prints the export lines on stdout
#   . .ci/services.sh                 # source; also exports them into this shell
#   eval "$(.ci/services.sh)"         # same thing
#
# The export lines are also written to .ci/services.env (git-ignored).

# When sourced, do the work in a child bash (so set -e/-u don't leak into the
# caller and a failure doesn't kill it), then import the resulting env file.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  bash "${BASH_SOURCE[0]}" >/dev/null && . "$(dirname "${BASH_SOURCE[0]}")/services.env"
  return
fi

set -euo pipefail

log() { echo "services.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ENV_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services.env"
PG_PORT=5432
REDIS_PORT=6379

# 1. Packages (only touch apt when something is missing).
if ! command -v pg_ctlcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
   || ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  log "installing postgresql and redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends postgresql redis-server >&2 || die "apt-get install failed"
fi

# 2. PostgreSQL: use the cluster on port 5432, creating one if there is none.
read -r PG_VER PG_CLUSTER < <(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
if [[ -z "${PG_VER:-}" ]]; then
  PG_VER="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
  PG_CLUSTER=easel
  [[ -n "$PG_VER" ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
  log "creating PostgreSQL $PG_VER cluster '$PG_CLUSTER' on port $PG_PORT"
  pg_createcluster "$PG_VER" "$PG_CLUSTER" --port "$PG_PORT" >&2 || die "pg_createcluster failed"
fi
if ! pg_ctlcluster "$PG_VER" "$PG_CLUSTER" status >/dev/null 2>&1; then
  log "starting PostgreSQL $PG_VER/$PG_CLUSTER"
  pg_ctlcluster "$PG_VER" "$PG_CLUSTER" start >&2 \
    || { tail -n 20 "/var/log/postgresql/postgresql-$PG_VER-$PG_CLUSTER.log" >&2 || true; die "PostgreSQL failed to start"; }
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL not accepting connections on 127.0.0.1:$PG_PORT after 30 s"

# Role `easel` (superuser: tests CREATE DATABASE) and database `easel_test`.
(cd / && runuser -u postgres -- psql -q -X -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres) >&2 <<'SQL' || die "creating role/database failed"
SELECT 'CREATE ROLE easel' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'easel') \gexec
ALTER ROLE easel WITH LOGIN SUPERUSER PASSWORD 'easel';
SELECT 'CREATE DATABASE easel_test OWNER easel'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'easel_test') \gexec
ALTER DATABASE easel_test OWNER TO easel;
SQL

# 3. Redis, unless something already answers on 127.0.0.1:6379.
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
if ! redis_up; then
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >&2 \
    || die "redis-server failed to start"
fi
for _ in $(seq 30); do redis_up && break; sleep 1; done
redis_up || die "Redis not answering PING on 127.0.0.1:$REDIS_PORT after 30 s"

# 4. Tell the test suite where the services are.
cat > "$ENV_FILE" <<ENV
export EASEL_TEST_DATABASE_URL=postgresql+asyncpg://easel:easel@127.0.0.1:$PG_PORT/easel_test
export EASEL_TEST_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/15
ENV
cat "$ENV_FILE"
log "PostgreSQL $PG_VER and Redis are up"
