#!/usr/bin/env bash
# make demo: rotator's main job, the daemon, against a local OpenBao (or
# Vault) dev server and the Hood test server, with fake credentials: the
# start-up pass, a rotation in Vault picked up by watch mode, a forced
# rotation through the admin API, /v1/status, /metrics, and a clean SIGTERM.
# About 30 s once the binaries exist. No secret value is ever printed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.cache/bin
for b in rotator hoodtest; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run 'make demo'" >&2; exit 2; }
done
BAO_BIN=$(./scripts/bao.sh --quiet) # the server `make bao` announced (see scripts/bao.sh)
server=$(basename "$BAO_BIN")

step=0
heading() { step=$((step + 1)); echo; echo "==> [$step/10] $*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds; fail after SECONDS.
wait_for() {
  local n=$(($1 * 10)); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2
  return 1
}

DEMO_DIR=$(mktemp -d)
export DEMO_DIR
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

VAULT_PORT=$(free_port)
HOOD_PORT=$(free_port)
ADMIN_PORT=$(free_port)
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT
export VAULT_TOKEN=demo-root-$RANDOM$RANDOM
export HOOD_URL=http://127.0.0.1:$HOOD_PORT
export ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT
ADMIN=http://$ADMIN_LISTEN
HOOD_TOKEN=hood-demo-token-$RANDOM$RANDOM
echo "$HOOD_TOKEN" >"$DEMO_DIR/hood-token"
ADMIN_TOKEN=admin-demo-token-$RANDOM$RANDOM
echo "$ADMIN_TOKEN" >"$DEMO_DIR/admin-token"
# curl reads the header from a file: the token never shows in a process list.
echo "Authorization: Bearer $ADMIN_TOKEN" >"$DEMO_DIR/auth-header"

# json: pretty-print JSON with jq or python3 when there is one, else as it is.
json() {
  if command -v jq >/dev/null; then jq .
  elif command -v python3 >/dev/null; then python3 -m json.tool
  else cat; echo
  fi
}

# The daemon's log, shown a step at a time: the lines written since the last
# call, without the timestamp.
LOG=$DEMO_DIR/rotator.log
shown=0
show_log() {
  local total
  total=$(wc -l <"$LOG")
  if [ "$total" -gt "$shown" ]; then
    sed -n "$((shown + 1)),${total}p" "$LOG" |
      sed -E 's/^time=[^ ]+ /    | /; s/level=INFO //; s/ dry_run=false force=(false|true)//; s/ caller=[^ ]+//'
  fi
  shown=$total
}
log_has() { grep -q -- "$1" "$LOG"; }
passes_at_least() { [ "$(grep -c 'msg="pass finished"' "$LOG")" -ge "$1" ]; }

heading "starting the Vault dev server ($server server -dev, in memory) on $VAULT_ADDR"
"$BAO_BIN" server -dev -dev-listen-address="127.0.0.1:$VAULT_PORT" -dev-root-token-id="$VAULT_TOKEN" \
  -dev-no-store-token >"$DEMO_DIR/bao.log" 2>&1 &
pids+=($!)
wait_for 20 "$BAO_BIN" status

heading "starting the Hood test server on $HOOD_URL (8 integrations, Hood's real rate limits)"
"$BIN/hoodtest" -listen "127.0.0.1:$HOOD_PORT" -token-file "$DEMO_DIR/hood-token" \
  -integrations 1161=twilio_sms,1162=twilio_sms,1170=custom_email_provider,1171=mandrill_email,1172=sendgrid_email,1173=mailgun_email,1180=mitto_sms,1190=telegram \
  >"$DEMO_DIR/hoodtest.log" 2>&1 &
pids+=($!)
wait_for 10 grep -q listening "$DEMO_DIR/hoodtest.log"

heading "writing fake demo credentials to Vault (KV v2 at secret/; the values are never printed)"
kv() { "$BAO_BIN" kv put -mount=secret "$@" >/dev/null; }
kv rotator/hood token="$HOOD_TOKEN"
kv ocamba/twilio account_sid=AC0123456789abcdef0123456789abcdef token=demo-twilio-auth-v1 default_phone_number=+14155552671
kv ocamba/smtp username=mailer@example.com password=demo-smtp-v1 port=587 sending_domain=mail.example.com default_sender_email=noreply@example.com default_sender_name="Example Co"
kv ocamba/mandrill api_key=ad-79demo-v1 default_sender_email=noreply@example.com default_sender_name="Example Co" default_reply_to_email=help@example.com smtp_username=example
kv ocamba/sendgrid api_key=SG.demo-v1 default_sender_email=noreply@example.com default_sender_name="Example Co" default_reply_to_email=help@example.com
kv ocamba/mailgun api_key=key-demo-v1 domain=mg.example.com sender_email=noreply@example.com sender_name="Example Co" owner=platform-team
kv ocamba/mitto sender_name=ExampleCo
kv ocamba/telegram auth_token=123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 chat_id=-100123456
echo "    8 secrets, plus the Hood API token at secret/rotator/hood"

heading "starting the daemon: rotator run --config demo/config.yaml (watch.interval 1s, admin API on $ADMIN)"
echo "    its start-up pass pushes every integration to Hood, each read back and verified:"
"$BIN/rotator" run --config demo/config.yaml --log-format text --log-level info >"$LOG" 2>&1 &
rotator_pid=$!
pids+=("$rotator_pid")
wait_for 30 log_has 'msg="pass finished"'
show_log

heading "rotating the Twilio auth token in Vault ($server kv put: a new KV version); watch mode sees it within 1s"
kv ocamba/twilio account_sid=AC0123456789abcdef0123456789abcdef token=demo-twilio-auth-v2 default_phone_number=+14155552671
wait_for 15 passes_at_least 2
show_log

heading "a forced rotation through the admin API (Vault unchanged: pushed anyway, change detection bypassed)"
echo "    \$ curl -X POST -H \"Authorization: Bearer \$(cat admin-token)\" $ADMIN/v1/rotate/sendgrid"
curl -sS -X POST -H @"$DEMO_DIR/auth-header" "$ADMIN/v1/rotate/sendgrid" | json | sed 's/^/    /'
show_log

heading "the daemon's view of every integration"
echo "    \$ curl -H \"Authorization: Bearer \$(cat admin-token)\" $ADMIN/v1/status   (first two of 8 shown)"
if command -v jq >/dev/null; then
  curl -sS -H @"$DEMO_DIR/auth-header" "$ADMIN/v1/status" | jq '.[:2]' | sed 's/^/    /'
else
  curl -sS -H @"$DEMO_DIR/auth-header" "$ADMIN/v1/status" | json | sed 's/^/    /'
fi

heading "Prometheus metrics (a few of the rotator_ series)"
echo "    \$ curl $ADMIN/metrics | grep -E '^rotator_(rotations_total|secret_version|watch_changes_total|vault_authenticated)'"
curl -sS "$ADMIN/metrics" |
  grep -E '^rotator_(rotations_total\{integration="(twilio-main|sendgrid)"|secret_version\{integration="(twilio-main|sendgrid)"|watch_changes_total|vault_authenticated)' |
  sed 's/^/    /' || true

heading "stopping the daemon with SIGTERM"
kill -TERM "$rotator_pid"
rc=0
wait "$rotator_pid" || rc=$?
show_log
echo "    rotator exited with code $rc"

heading "what the Hood test server received (setting names with a fingerprint of each value, never a value)"
grep -E 'PATCH' "$DEMO_DIR/hoodtest.log" |
  sed -E 's/^time=[^ ]+ /    /; s/level=INFO msg="hood request" //; s/ (duration|authorized)=[^ ]+//g' || true
echo
if [ "$rc" -eq 0 ] && log_has 'msg=stopped'; then
  echo "==> demo finished: rotator run pushed, watched, answered the admin API and stopped cleanly"
else
  echo "==> demo FAILED: rotator exited with $rc" >&2
  exit 1
fi
