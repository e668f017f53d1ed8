#!/usr/bin/env bash
# Idempotent dependency step for `make run` / `make test`: installs only the Debian packages that are
# missing and says which. Runs as root on a fresh Debian 12 machine (uses sudo when not root).
set -euo pipefail
PKGS=(cmake make g++ pkg-config libopenblas-dev libxtensor-dev libcli11-dev doctest-dev
      nlohmann-json3-dev libcurl4-openssl-dev gnuplot-nox python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "[deps] done"
