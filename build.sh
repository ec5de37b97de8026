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
TEST_PACKAGES=(dbus dbus-x11 chromium xvfb xauth webkit2gtk-driver xdotool imagemagick haskell-gtk-sni-tray-utils x11-utils python3 redis-server)

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

# Go tools the checks run, pinned, built from the Go module proxy into a
# cache directory outside the module (so they do not enter go.mod).
STATICCHECK_VERSION=v0.7.0
TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/quotabar-tools"

install_go_tools() {
	local want="$TOOLS_DIR/staticcheck-$STATICCHECK_VERSION"
	if [ ! -x "$want" ]; then
		echo "build.sh: installing staticcheck $STATICCHECK_VERSION" >&2
		mkdir -p "$TOOLS_DIR"
		(cd "$TOOLS_DIR" && GOFLAGS=-mod=mod GOBIN="$TOOLS_DIR" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" &&
			mv "$TOOLS_DIR/staticcheck" "$want")
	fi
	STATICCHECK="$want"
}

# The npm packages the tests drive for real, at pinned versions: the clients
# the proxy is tested with through `quotabar run` (the openai and anthropic
# SDKs, Claude Code, Codex), an MCP client nobody here wrote (the MCP
# Inspector's CLI) and Playwright's connectOverCDP. They are installed once
# into a cache directory named for the pins; QUOTABAR_NPM_DIR tells the tests
# where, "current" links to it, and its node_modules/.bin goes on PATH.
NPM_PACKAGES=(openai@6.49.0 @anthropic-ai/sdk@1.14.0 @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0
	@modelcontextprotocol/inspector@1.0.3 playwright-core@1.65.1)

install_npm_packages() {
	command -v npm >/dev/null || { echo "build.sh: npm is missing; install Node.js 20 or later (apt-get install nodejs npm)" >&2; exit 1; }
	local cache="${XDG_CACHE_HOME:-$HOME/.cache}/quotabar-npm"
	local dir="$cache/$(printf '%s\n' "${NPM_PACKAGES[@]}" | sha256sum | cut -c1-12)"
	if [ ! -f "$dir/.done" ]; then
		echo "build.sh: installing ${NPM_PACKAGES[*]} into $dir" >&2
		rm -rf "$dir" && mkdir -p "$dir"
		npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}" >/dev/null
		touch "$dir/.done"
	fi
	ln -sfn "$dir" "$cache/current"
	export QUOTABAR_NPM_DIR="$dir"
	export PATH="$dir/node_modules/.bin:$PATH"
}

cmd_test() {
	install_test_deps
	install_npm_packages
	install_go_tools
	export QUOTABAR_REQUIRE_TOOLS=1
	echo "== gofmt" >&2
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [ -n "$bad" ]; then echo "not gofmt-formatted:"; echo "$bad"; exit 1; fi
	echo "== go vet" >&2
	go vet ./...
	echo "== staticcheck" >&2
	"$STATICCHECK" ./...
	echo "== darwincheck (type-check the macOS build)" >&2
	for arch in arm64 amd64; do go run ./internal/darwincheck -goarch "$arch"; done
	echo "== go test -race" >&2
	go test -race -count=1 -timeout 15m ./...
	# Tests whose assertions depend on the real clock (testenv.RealTime)
	# skip under -race; here they run without it, one package at a time.
	local realtime
	realtime=$(grep -rl --include='*_test.go' 'testenv.RealTime(t)' . | xargs -n1 dirname | sort -u)
	echo "== real-time tests, without -race:" $realtime >&2
	go test -count=1 -p 1 -timeout 10m -run "$(grep -rh --include='*_test.go' -B1 'testenv.RealTime(t)' . | sed -n 's/^func \(Test[A-Za-z0-9_]*\).*/\1/p' | sort -u | paste -sd'|' | sed 's/.*/^(&)$/')" $realtime
}

# cmd_linux builds the Linux binary (the tray talks D-Bus in pure Go, so no
# cgo): dist/quotabar for this machine's architecture, or GOARCH's.
cmd_linux() {
	if [ "$(uname -s)" != Linux ]; then
		echo "build.sh linux: run it on Linux (this is $(uname -s)); on a Mac, ./build.sh app builds the app" >&2
		exit 1
	fi
	mkdir -p dist
	CGO_ENABLED=0 go build -trimpath -o dist/quotabar .
	echo "built dist/quotabar" >&2
}

# cmd_app builds dist/quotabar.app on a Mac: fyne.io/systray needs cgo and
# Cocoa, so each architecture is built natively by clang and the two are
# joined with lipo; the bundle is signed ad hoc so Gatekeeper runs it
# locally.
cmd_app() {
	if [ "$(uname -s)" != Darwin ]; then
		echo "build.sh app: the macOS app needs a Mac with Xcode's command line tools (cgo with Cocoa, lipo, codesign); this is $(uname -s). On Linux, ./build.sh linux builds the binary." >&2
		exit 1
	fi
	local t
	for t in clang lipo codesign iconutil plutil; do
		if ! command -v "$t" >/dev/null; then
			echo "build.sh app: $t not found; install Xcode's command line tools (xcode-select --install)" >&2
			exit 1
		fi
	done
	local version app=dist/quotabar.app work=dist/app-build
	version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' ipc/wire/wire.go)
	[ -n "$version" ] || { echo "build.sh app: no Version in ipc/wire/wire.go" >&2; exit 1; }
	rm -rf "$app" "$work"
	mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources" "$work"
	local min=12.0 # keep equal to LSMinimumSystemVersion in Info.plist
	for arch in arm64 amd64; do
		CGO_ENABLED=1 GOOS=darwin GOARCH=$arch \
			CGO_CFLAGS="-mmacosx-version-min=$min" CGO_LDFLAGS="-mmacosx-version-min=$min" \
			go build -trimpath -o "$work/quotabar-$arch" .
	done
	lipo -create -output "$app/Contents/MacOS/quotabar" "$work/quotabar-arm64" "$work/quotabar-amd64"
	cp Info.plist "$app/Contents/Info.plist"
	plutil -replace CFBundleShortVersionString -string "$version" "$app/Contents/Info.plist"
	plutil -replace CFBundleVersion -string "$version" "$app/Contents/Info.plist"
	go run ./app/icons/iconset "$work/quotabar.iconset"
	iconutil -c icns -o "$app/Contents/Resources/quotabar.icns" "$work/quotabar.iconset"
	codesign --force --sign - "$app"
	codesign --verify --strict "$app"
	rm -rf "$work"
	echo "built $app (version $version, $(lipo -archs "$app/Contents/MacOS/quotabar"))" >&2
}

case "${1:-}" in
test) cmd_test ;;
linux) cmd_linux ;;
app) cmd_app ;;
*)
	sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
