#!/usr/bin/env bash
# the concentrator speaks the wire protocol. wirepeer
# (a scripted tunnel peer) connects from cpe, does the TLS handshake (the shared key's
# identity "shared") and HELLO, sends DATA on
# flow 12345 that was never OPENed and expects RESET for it, then a KEEPALIVE and expects
# the reply. The concentrator must stay up and exit 0 afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/wirepeer

tb_setup
tb_write_configs multiplexed
tb_start_daemon conc conc "$TB_DIR/conc.yaml"
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || tb_fail "concentrator does not listen"

tb_cpe "$MPUDP_BUILD/tools/wirepeer" "198.18.2.2:$TB_CONC_PORT" \
  "tls:shared:$(tb_psk_hex)" hello expect-hello data:12345:00 expect-reset:12345 keepalive expect-keepalive ||
  tb_fail "wirepeer exited $?"
tb_running conc || tb_fail "the concentrator died"
tb_stop_daemon conc || tb_fail "the concentrator exited $?"
echo "PASS: test_core_reset"
