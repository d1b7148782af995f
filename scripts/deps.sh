#!/bin/bash
# Installs whatever Ferry needs that this Debian 12 machine lacks (as root).
set -euo pipefail
pkgs=(gcc make cmake pkg-config binutils clang libclang-rt-14-dev
      libzstd-dev liblz4-dev libssl-dev libyajl-dev libuv1-dev libcriterion-dev
      iproute2 tmux qemu-system-x86 xenstore-utils python3-pyxs strace
      libcurl4-openssl-dev curl etcd-server)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	if [ "$(id -u)" != 0 ]; then
		echo "deps: need root to install packages" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
