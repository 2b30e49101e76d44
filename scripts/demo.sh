#!/usr/bin/env bash
# `make demo`: the main job on the built-in default profile, end to end, on loopback only.
#   1. render the default profile (null-client) into a config directory
#   2. validate it with the real Postfix (postconf -n, postfix check) and lint it
#   3. start a TLS next hop (aiosmtpd with STARTTLS, the null client's relayhost; encrypt is enforced)
#   4. start the hardener MTA from the rendered files on 127.0.0.1
#   5. submit a message with `hardener sendmail` and wait for it to arrive at the next hop
#   6. audit the running MTA from an untrusted-looking vantage and print the report
#   7. stop everything (also on failure)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.venv/bin"
HARDENER="$BIN/hardener"
DEMO=/var/tmp/hardener-demo
CONF="$DEMO/etc"
MTA_PORT=10025
HOP_ADDR=127.0.0.3
HOP_PORT=10026
PIDS=()

say() { printf '\n== %s\n' "$*"; }
cleanup() {
  "$HARDENER" mta stop --config "$CONF" >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" >/dev/null 2>&1 || true; done
  ip addr del "$HOP_ADDR/8" dev lo >/dev/null 2>&1 || true
}
trap cleanup EXIT

rm -rf "$DEMO"
mkdir -p "$DEMO"
ip addr add "$HOP_ADDR/8" dev lo >/dev/null 2>&1 || true

say "1. render the default profile (null-client)"
# A self-signed certificate for the demo's own STARTTLS (a real site installs one from its CA;
# lint and audit rightly report a self-signed one).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=demo.hardener.test" \
  -addext "subjectAltName=DNS:demo.hardener.test" \
  -keyout "$DEMO/smtpd.key" -out "$DEMO/smtpd.pem" >/dev/null 2>&1
"$HARDENER" render null-client --out "$CONF" \
  --set smtpd_tls_cert_file="$DEMO/smtpd.pem" \
  --set smtpd_tls_key_file="$DEMO/smtpd.key" \
  --set myhostname=demo.hardener.test \
  --set "relayhost=[$HOP_ADDR]:$HOP_PORT" \
  --set admin_address=admin@example.com \
  --set "smtpd_listen=127.0.0.1:$MTA_PORT" \
  --set config_directory="$CONF" \
  --set queue_directory="$DEMO/queue" \
  --set data_directory="$DEMO/data" \
  --set maillog_file="$DEMO/maillog"

say "2. validate with Postfix and lint"
postconf -c "$CONF" -n >/dev/null
echo "postconf -c $CONF -n: accepted"
"$HARDENER" lint "$CONF" --fail-on high

say "3. start the next hop ($HOP_ADDR:$HOP_PORT, STARTTLS)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=relay.hardener.test" \
  -keyout "$DEMO/hop.key" -out "$DEMO/hop.pem" >/dev/null 2>&1
mkdir -p "$DEMO/hop-maildir"/{tmp,new,cur}
"$BIN/python" -m aiosmtpd -n -l "$HOP_ADDR:$HOP_PORT" --tlscert "$DEMO/hop.pem" --tlskey "$DEMO/hop.key" \
  -c aiosmtpd.handlers.Mailbox "$DEMO/hop-maildir" >"$DEMO/hop.log" 2>&1 &
PIDS+=($!)

say "4. start the hardener MTA on 127.0.0.1:$MTA_PORT"
"$HARDENER" mta start --config "$CONF"
"$HARDENER" mta status --config "$CONF"

say "5. send a message with hardener sendmail"
printf 'Subject: hardener demo\n\nHello from the hardener null client.\n' |
  "$HARDENER" sendmail -C "$CONF" -f app@demo.hardener.test someone@example.com
for _ in $(seq 1 100); do
  n=$(find "$DEMO/hop-maildir" -type f -path '*/new/*' 2>/dev/null | wc -l)
  [ "$n" -ge 1 ] && break
  sleep 0.2
done
if [ "${n:-0}" -ge 1 ]; then
  echo "delivered to the next hop over STARTTLS: $(find "$DEMO/hop-maildir" -type f -path '*/new/*' | head -1)"
else
  echo "message not delivered yet; queue:"; "$HARDENER" mta queue list --config "$CONF"
  exit 1
fi
echo "maillog:"; sed 's/^/  /' "$DEMO/maillog"

say "6. audit the running MTA"
set +e
"$HARDENER" audit "127.0.0.1:$MTA_PORT" --source-address 127.0.0.9 --trusted 127.0.0.0/8 --timeout 10
rc=$?
set -e
say "done (audit exit code $rc); stopping everything"
exit "$rc"
