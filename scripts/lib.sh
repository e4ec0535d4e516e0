# scripts/lib.sh — shared by scripts/run and scripts/test (sourced, not run).
set -euo pipefail

GH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build and the server need.
GH_PKGS_RUN="build-essential cmake pkg-config libmicrohttpd-dev libssl-dev libpq-dev postgresql
  libargon2-dev libscrypt-dev libjansson-dev libcurl4-openssl-dev libjemalloc-dev libqrencode-dev liboath-dev libgit2-dev"
# ...and what the tests and benchmarks need on top.
GH_PKGS_TEST="chromium clang libclang-rt-14-dev nginx wrk"
# Node.js comes with the machine (20.x, with npm); Debian's only when it does not.
command -v npm >/dev/null 2>&1 || GH_PKGS_TEST="$GH_PKGS_TEST nodejs npm"

gh_say() { printf '==> %s\n' "$*" >&2; }

gh_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the packages of $@ that are missing (apt-get update first when the
# package lists are empty or an install fails for want of them).
gh_install_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    gh_say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] ||
       ! gh_sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
        gh_sudo apt-get update
        gh_sudo apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# Debian's postgresql package starts a system cluster; Gatehouse never uses it.
gh_pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Configures and builds one build folder: gh_build DIR [cmake args...]
gh_build() {
    local dir=$1; shift
    cmake -S "$GH_ROOT" -B "$GH_ROOT/$dir" "$@" >/dev/null
    cmake --build "$GH_ROOT/$dir" -j "$(nproc)"
}

# npm test peers, exactly as locked.
gh_npm_install() {
    cd "$GH_ROOT"
    if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.gh-lock; then
        gh_say "installing npm test peers (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.gh-lock
    fi
}
