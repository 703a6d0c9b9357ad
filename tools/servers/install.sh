#!/usr/bin/env bash
# Install the third-party HTTP servers (and load generators) that the recipes in
# servers.toml start. Idempotent: what is present is left alone. Starts no daemon:
# Debian's maintainer scripts are told not to start services (policy-rc.d), and
# anything a package managed to start all the same is stopped before we exit.
#
#   tools/servers/install.sh                     everything
#   tools/servers/install.sh nginx lighttpd      a subset (names below)
#   tools/servers/install.sh --check [NAMES...]  only report what is present
#
# Names: nginx lighttpd apache2 busybox mini-httpd webfs caddy go ruby
#        node-http-server jwebserver ab wrk
# (go-fileserver = go, webrick = ruby, apache2-utils = ab; "all" = every name.)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL=(nginx lighttpd apache2 busybox mini-httpd webfs caddy go ruby node-http-server jwebserver ab wrk)

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

check_only=0
names=()
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        -h|--help) usage; exit 0 ;;
        all) names+=("${ALL[@]}") ;;
        go-fileserver|golang-go|golang) names+=(go) ;;
        webrick|ruby-webrick) names+=(ruby) ;;
        apache2-utils) names+=(ab) ;;
        http-server|npm) names+=(node-http-server) ;;
        mini_httpd) names+=(mini-httpd) ;;
        webfsd) names+=(webfs) ;;
        nginx|lighttpd|apache2|busybox|mini-httpd|webfs|caddy|go|ruby|node-http-server|jwebserver|ab|wrk)
            names+=("$arg") ;;
        *) echo "install.sh: unknown name '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")

# Debian packages behind each name, and the executable that proves it is there.
apt_packages() {
    case "$1" in
        nginx) echo nginx ;;
        lighttpd) echo lighttpd ;;
        apache2) echo apache2 ;;
        busybox) echo busybox ;;
        mini-httpd) echo mini-httpd ;;
        webfs) echo webfs ;;
        caddy) echo caddy ;;
        go) echo golang-go ;;
        ruby) echo ruby ruby-webrick ;;
        node-http-server) command -v npm >/dev/null 2>&1 || echo npm ;;
        ab) echo apache2-utils ;;
        wrk) echo wrk ;;
        jwebserver) ;;   # no JDK >= 18 in Debian 12: nothing to install
    esac
}

PATH="$PATH:/usr/sbin:/sbin"

find_jwebserver() {
    if command -v jwebserver >/dev/null 2>&1; then command -v jwebserver; return 0; fi
    local f
    for f in /usr/lib/jvm/*/bin/jwebserver; do
        [ -x "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# First line of a command's output (stdout and stderr), whatever its exit status.
first_line() {
    local out
    out="$("$@" 2>&1)" || true
    printf '%s\n' "${out%%$'\n'*}"
}

# Prints a version line if present, returns 1 if absent.
probe() {
    case "$1" in
        nginx) command -v nginx >/dev/null && first_line nginx -v ;;
        lighttpd) command -v lighttpd >/dev/null && first_line lighttpd -v ;;
        apache2) command -v apache2 >/dev/null && first_line apache2 -v ;;
        busybox) command -v busybox >/dev/null && first_line busybox ;;
        mini-httpd) command -v mini_httpd >/dev/null && first_line mini_httpd -V ;;
        webfs) command -v webfsd >/dev/null && dpkg-query -W -f='webfs ${Version}\n' webfs 2>/dev/null ;;
        caddy) command -v caddy >/dev/null && first_line caddy version ;;
        go) command -v go >/dev/null && go version ;;
        ruby) command -v ruby >/dev/null && ruby -rwebrick -e 'puts "ruby #{RUBY_VERSION}, WEBrick #{WEBrick::VERSION}"' 2>/dev/null ;;
        node-http-server)
            command -v node >/dev/null && [ -f "$HERE/node_modules/http-server/package.json" ] &&
                node -e 'console.log("http-server " + require(process.argv[1]).version + ", node " + process.version)' \
                    "$HERE/node_modules/http-server/package.json" ;;
        jwebserver) local j; j="$(find_jwebserver)" && echo "$(first_line "$j" --version) ($j)" ;;
        ab) command -v ab >/dev/null && first_line ab -V ;;
        wrk) command -v wrk >/dev/null && first_line wrk -v ;;
        *) return 1 ;;
    esac
}

report() {
    local n v rc=0
    for n in "${names[@]}"; do
        if v="$(probe "$n" 2>/dev/null)" && [ -n "$v" ]; then
            printf '%-17s present  %s\n' "$n" "$v"
        else
            printf '%-17s MISSING\n' "$n"
            rc=1
        fi
    done
    return $rc
}

if [ "$check_only" = 1 ]; then
    report
    exit $?
fi

# --- Debian packages ------------------------------------------------------------
need=()
for n in "${names[@]}"; do
    for p in $(apt_packages "$n"); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ ${#need[@]} -gt 0 ]; then
    echo "install.sh: apt-get install ${need[*]}"
    # Forbid maintainer scripts from starting services, unless a policy already does.
    added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 0755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    cleanup_policy() { [ "$added_policy" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d; return 0; }
    trap cleanup_policy EXIT
    if ! apt-cache show "${need[0]}" >/dev/null 2>&1; then
        $SUDO apt-get update
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
    cleanup_policy
    trap - EXIT
    # Belt and braces: stop whatever a package started anyway (on a machine without
    # policy-rc.d support, or with systemd), so nothing is left bound to port 80.
    for svc in nginx lighttpd apache2 mini-httpd webfs caddy; do
        if [ -e "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ]; then
            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
                $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
            elif [ -x "/etc/init.d/$svc" ]; then
                $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            fi
        fi
    done
fi

# --- npm: http-server into tools/servers/node_modules (gitignored) -------------
for n in "${names[@]}"; do
    if [ "$n" = node-http-server ]; then
        if [ ! -f "$HERE/node_modules/http-server/package.json" ]; then
            echo "install.sh: npm install http-server (tools/servers/node_modules)"
            if [ -f "$HERE/package-lock.json" ]; then
                (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
            else
                (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error)
            fi
        fi
    fi
done

# --- warm the Go FileServer build cache (recipes.py builds it on demand too) ----
for n in "${names[@]}"; do
    if [ "$n" = go ] && command -v python3 >/dev/null 2>&1; then
        python3 "$HERE/recipes.py" build go-fileserver || echo "install.sh: Go FileServer build failed" >&2
    fi
done

# --- nothing may be left listening on port 80 -----------------------------------
if command -v ss >/dev/null 2>&1 && ss -ltnH 'sport = :80' 2>/dev/null | grep -q .; then
    echo "install.sh: WARNING: something listens on port 80:" >&2
    ss -ltnpH 'sport = :80' >&2 || true
fi

report
