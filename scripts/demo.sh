#!/usr/bin/env bash
# make demo: start a local OpenBao dev server and the Hood test server, store
# demo credentials in Vault, and run rotator against them: a plan, a pass, a
# rotation in Vault, and a second pass that pushes the new version.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.cache/bin
for b in bao rotator hoodtest; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run 'make demo'" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $(( 20000 + RANDOM % 20000 )); }

export DEMO_DIR=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DEMO_DIR"; }
trap cleanup EXIT

VAULT_PORT=$(free_port); HOOD_PORT=$(free_port)
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT
export VAULT_TOKEN=demo-root-$RANDOM$RANDOM
export HOOD_URL=http://127.0.0.1:$HOOD_PORT
HOOD_TOKEN=hood-demo-token-$RANDOM$RANDOM
echo "$HOOD_TOKEN" > "$DEMO_DIR/hood-token"

echo "==> starting OpenBao dev server on $VAULT_ADDR"
"$BIN/bao" server -dev -dev-listen-address=127.0.0.1:$VAULT_PORT -dev-root-token-id="$VAULT_TOKEN" >"$DEMO_DIR/bao.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$BIN/bao" status >/dev/null 2>&1 && break; sleep 0.1; done

echo "==> starting the Hood test server on $HOOD_URL"
"$BIN/hoodtest" -listen 127.0.0.1:$HOOD_PORT -token-file "$DEMO_DIR/hood-token" \
  -integrations 1161=twilio_sms,1162=twilio_sms,1170=custom_email_provider,1171=mandrill_email,1172=sendgrid_email,1173=mailgun_email,1180=mitto_sms,1190=telegram \
  >"$DEMO_DIR/hoodtest.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$DEMO_DIR/hoodtest.log" 2>/dev/null && break; sleep 0.1; done

echo "==> writing demo credentials to Vault (KV v2 at secret/)"
kv() { "$BIN/bao" kv put -mount=secret "$@" >/dev/null; }
kv rotator/hood token="$HOOD_TOKEN"
kv ocamba/twilio account_sid=AC0123456789abcdef0123456789abcdef token=demo-twilio-auth-v1 default_phone_number=+14155552671
kv ocamba/smtp username=mailer@example.com password=demo-smtp-v1 port=587 sending_domain=mail.example.com default_sender_email=noreply@example.com default_sender_name="Example Co"
kv ocamba/mandrill api_key=ad-79demo-v1 default_sender_email=noreply@example.com default_sender_name="Example Co" default_reply_to_email=help@example.com smtp_username=example
kv ocamba/sendgrid api_key=SG.demo-v1 default_sender_email=noreply@example.com default_sender_name="Example Co" default_reply_to_email=help@example.com
kv ocamba/mailgun api_key=key-demo-v1 domain=mg.example.com sender_email=noreply@example.com sender_name="Example Co" owner=platform-team
kv ocamba/mitto sender_name=ExampleCo
kv ocamba/telegram auth_token=123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 chat_id=-100123456

run() { echo; echo "\$ rotator $*"; "$BIN/rotator" "$@" --config demo/config.yaml --log-format text --log-level warn || true; }

run validate
run plan
run once
echo
echo "==> rotating the Twilio auth token in Vault (a new KV version)"
kv ocamba/twilio account_sid=AC0123456789abcdef0123456789abcdef token=demo-twilio-auth-v2 default_phone_number=+14155552671
run once    # only the two Twilio integrations changed: the rest are unchanged, no Hood call

echo
echo "==> what the Hood test server received (setting names with a fingerprint of each value, never a value)"
grep -E 'PATCH' "$DEMO_DIR/hoodtest.log" | sed -E 's/^time=[^ ]+ //' || true
