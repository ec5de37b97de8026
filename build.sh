#!/usr/bin/env bash
# build.sh: builds and tests quotabar.
#
#   ./build.sh test    install what the tests need (Debian/Ubuntu), then vet and test everything
#   ./build.sh linux   build the Linux binary into dist/
#   ./build.sh app     build the macOS .app bundle (on a Mac)
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"

# Debian packages the tests drive for real: a private D-Bus session bus and an
# SNI tray host, headless Chromium, WebKitWebDriver, Xvfb, and the screenshot tools.
TEST_PACKAGES=(dbus dbus-x11 chromium xvfb xauth webkit2gtk-driver xdotool imagemagick haskell-gtk-sni-tray-utils x11-utils)

install_test_deps() {
	local missing=()
	for p in "${TEST_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if ! command -v apt-get >/dev/null; then
		echo "build.sh: missing test packages (${missing[*]}) and no apt-get; install them and run again" >&2
		exit 1
	fi
	local sudo=()
	[ "$(id -u)" -ne 0 ] && sudo=(sudo)
	echo "build.sh: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
		-o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
}

cmd_test() {
	install_test_deps
	export QUOTABAR_REQUIRE_TOOLS=1
	echo "== gofmt" >&2
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [ -n "$bad" ]; then echo "not gofmt-formatted:"; echo "$bad"; exit 1; fi
	echo "== go vet" >&2
	go vet ./...
	echo "== go test -race" >&2
	go test -race -count=1 -timeout 15m ./...
}

case "${1:-}" in
test) cmd_test ;;
*)
	sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
