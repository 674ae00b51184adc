#!/bin/sh
# Entry point of a darkchat node container: runs darkchatd with the
# container's arguments (server type, ip, ports; flags come from DARKCHAT_*
# variables). With GATEWAY set, the node sits on a LAN behind a NAT router
# container, so its default route goes through that router instead of
# Docker's bridge (needs cap_add NET_ADMIN).
set -eu
if [ -n "${GATEWAY:-}" ]; then
	ip route replace default via "$GATEWAY"
	echo "node.sh: default route via the NAT router $GATEWAY"
fi
exec darkchatd "$@"
