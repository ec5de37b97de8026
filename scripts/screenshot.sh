#!/usr/bin/env bash
# scripts/screenshot.sh: photograph quotabar's open menu on Linux, for the
# README. It runs everything privately: a virtual X display (Xvfb), its own
# D-Bus session bus, a tray host (gtk-sni-tray-standalone, which also provides
# the StatusNotifierWatcher), and quotabar with a throw-away config, socket
# and state. It drives quotabar into an interesting state through the socket
# (a Claude subscription past 90% of its 5-hour window, one service near its
# limits; then one cooling down after a 429 with agents queued behind it), clicks the tray icon with xdotool, opens submenus from
# the keyboard, and writes PNGs with ImageMagick's import.
#
#   scripts/screenshot.sh [OUTDIR]     default OUTDIR: dist/screenshots
#
# Needs (Debian): xvfb dbus haskell-gtk-sni-tray-utils xdotool imagemagick.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

out=${1:-dist/screenshots}
for t in Xvfb dbus-daemon gtk-sni-tray-standalone xdotool import go; do
	command -v "$t" >/dev/null || { echo "screenshot.sh: $t not found; apt-get install xvfb dbus haskell-gtk-sni-tray-utils xdotool imagemagick" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d /tmp/qbshot.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds, 20 s at most.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < 200; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "screenshot.sh: timed out waiting for $what" >&2
	exit 1
}

go build -o "$work/quotabar" .

# A free display number: the first without an X lock file.
d=99
while [ -e "/tmp/.X$d-lock" ]; do d=$((d + 1)); done
Xvfb ":$d" -screen 0 900x560x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=":$d"
wait_for "Xvfb" xdotool getdisplaygeometry

dbus-daemon --session --nofork --print-address=1 --address="unix:dir=$work" >"$work/bus" 2>"$work/dbus.log" &
pids+=($!)
wait_for "dbus-daemon" test -s "$work/bus"
export DBUS_SESSION_BUS_ADDRESS=$(head -n1 "$work/bus")
export NO_AT_BRIDGE=1 # no accessibility bus warnings from GTK

# gtk-sni-tray-standalone sometimes dies at start-up on a D-Bus race of its
# own (UnknownObject, then a pattern-match failure): start it again.
start_tray() {
	local i
	for ((i = 0; i < 5; i++)); do
		gtk-sni-tray-standalone --watcher --top --end --size 30 --color black >"$work/tray.log" 2>&1 &
		tray=$!
		while kill -0 "$tray" 2>/dev/null && ! grep -qs scaledStrutSettings "$work/tray.log"; do sleep 0.1; done
		if kill -0 "$tray" 2>/dev/null; then
			pids+=("$tray")
			return 0
		fi
		wait "$tray" || true
	done
	echo "screenshot.sh: gtk-sni-tray-standalone keeps failing:" >&2
	cat "$work/tray.log" >&2
	exit 1
}
start_tray
wait_for "the tray host" dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
	org.freedesktop.DBus.GetNameOwner string:org.kde.StatusNotifierWatcher

export QUOTABAR_SOCKET="$work/quotabar.sock" QUOTABAR_CONFIG="$work/config.toml" QUOTABAR_STATE_DIR="$work/state"
export XDG_CONFIG_HOME="$work/xdg"
cat >"$QUOTABAR_CONFIG" <<'TOML'
show_title = true

[proxy]
enabled = false

[services.openai]
preset = "openai"
limits = ["500 requests/1m", "200000 tokens/1m"]
max_concurrent = 8

[services.anthropic]
preset = "anthropic"
limits = ["50 requests/1m"]
fallback = { browser = "chrome", url = "https://claude.ai/" }

[services.claude]
preset = "claude"
reserve_high = 0.10

[agents.research]
priority = "high"
weight = 2

[agents.reviewer]
priority = "low"
TOML
"$work/quotabar" >"$work/quotabar.log" 2>&1 &
pids+=($!)
qb() { "$work/quotabar" "$@"; }
wait_for "quotabar" qb status

# openai: the provider's headers say most of the minute's budget is used.
for a in research coder research; do
	lease=$(qb acquire --agent "$a" --service openai --tokens 1200 --json | sed -n 's/.*"lease": *"\([^"]*\)".*/\1/p')
	qb report --lease "$lease" --status 200 --usage-tokens 950 \
		-H x-ratelimit-limit-requests=500 -H x-ratelimit-remaining-requests=412 -H x-ratelimit-reset-requests=42s \
		-H x-ratelimit-limit-tokens=200000 -H x-ratelimit-remaining-tokens=151000 -H x-ratelimit-reset-tokens=18s >/dev/null
done
# Two calls in flight on openai.
qb acquire --agent research --service openai >/dev/null
qb acquire --agent coder --service openai >/dev/null
# claude: Claude Code's answers say the 5-hour window is 93% used (the
# provider warns), the week 31%; three agents spent it.
now=$(date +%s)
r5=$((now + 102 * 60 + 30)) r7=$((now + 71 * 3600))
u=0.55
for a in research coder research reviewer research coder; do
	u=$(echo "$u + 0.063" | bc)
	status=allowed
	[ "$(echo "$u > 0.75" | bc)" = 1 ] && status=allowed_warning
	qb report --agent "$a" --service claude --status 200 --usage-tokens 42000 \
		-H anthropic-ratelimit-unified-status=$status -H anthropic-ratelimit-unified-representative-claim=five_hour \
		-H anthropic-ratelimit-unified-5h-utilization=$u -H anthropic-ratelimit-unified-5h-reset=$r5 \
		-H anthropic-ratelimit-unified-5h-status=$status \
		-H anthropic-ratelimit-unified-7d-utilization=0.31 -H anthropic-ratelimit-unified-7d-reset=$r7 \
		-H anthropic-ratelimit-unified-7d-status=allowed >/dev/null
done
wait_for "the windows" sh -c "\"$work/quotabar\" status --json | grep -q '\"reserved\": *true'"

# The tray window, and our icon at its right end.
# (--onlyvisible: GTK also makes a hidden 10×10 leader window.)
wait_for "the tray window" xdotool search --onlyvisible --class gtk-sni-tray
win=$(xdotool search --onlyvisible --class gtk-sni-tray | head -n1)
eval "$(xdotool getwindowgeometry --shell "$win")"
barx=$X bary=$Y barw=$WIDTH barh=$HEIGHT
# menu_shows TEXT: the menu shows a change within a second; wait for it.
menu_shows() {
	wait_for "the menu to show $1" sh -c "dbus-send --session --print-reply --dest=\$(dbus-send --session --print-reply \
	--dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames | grep -o 'org.kde.StatusNotifierItem-[0-9]*-1' | head -n1) \
	/StatusNotifierItem/menu com.canonical.dbusmenu.GetLayout int32:0 int32:-1 array:string: | grep -q '$1'"
}
menu_shows "5-hour: 93% used"

# GTK maps a menu and draws it a moment later: the pauses below are for the
# X server, not for quotabar.
shot() {
	sleep 0.8
	# Cut away the empty screen: keep the menus and the icon.
	import -window root "$work/$1.png"
	convert "$work/$1.png" -fuzz 20% -trim +repage -bordercolor '#2b2b2b' -border 16 "$out/$1.png"
	echo "wrote $out/$1.png" >&2
}
open_menu() {
	xdotool key Escape Escape Escape
	sleep 0.3
	# A press and a release apart: a zero-length click does not open it.
	# The pointer must have entered the icon before the press.
	xdotool mousemove $((barx + barw - 16)) $((bary + barh / 2)) sleep 0.3 mousedown 1 sleep 0.1 mouseup 1
	sleep 0.8
}
# hover ROW: point at the ROWth item of the open top-level menu, which opens
# its submenu without selecting anything in it (the keyboard would select
# the first item, and its highlight hides the separator above it).
hover() {
	local w mx=-1 my=0 mh=0 mwidth=0
	for w in $(xdotool search --onlyvisible --class gtk-sni-tray); do
		[ "$w" = "$win" ] && continue
		eval "$(xdotool getwindowgeometry --shell "$w")"
		if [ $((X + WIDTH)) -gt $mx ]; then mx=$((X + WIDTH)) my=$Y mh=$HEIGHT mwidth=$WIDTH; fi
	done
	[ "$mx" -ge 0 ] || { echo "screenshot.sh: the menu did not open" >&2; exit 1; }
	# Items are evenly spaced; the two separators and the frame take about
	# 10 pixels. The rows asked for (services, Agents) come before either.
	local items=8 # top-level items with this config's three services
	local rowh=$(((mh - 10) / items))
	xdotool mousemove $((mx - mwidth / 2)) $((my + 5 + rowh * ($1 - 1) + rowh / 2))
	sleep 0.8 # GTK opens a submenu after a hover delay
}
# First the near-limit state: the icon follows claude's 5-hour window.
open_menu
hover 2 # claude: past the reserve of its 5-hour window
shot menu
open_menu
hover 3 # openai: near its limits
shot menu-openai

# anthropic: a 429 with Retry-After starts a cooldown; three agents queue.
lease=$(qb acquire --agent coder --service anthropic --json | sed -n 's/.*"lease": *"\([^"]*\)".*/\1/p')
qb report --lease "$lease" --status 429 -H retry-after=45 >/dev/null
for a in coder reviewer research; do
	qb acquire --agent "$a" --service anthropic --wait 5m >/dev/null 2>&1 &
	pids+=($!)
done
wait_for "the queue" sh -c "\"$work/quotabar\" status --json | grep -q '\"queued\": *3'"
menu_shows "3 queued"
open_menu
shot menu-top
open_menu
hover 1 # anthropic: cooling down, agents queued
shot menu-anthropic
open_menu
hover 4 # Agents
shot menu-agents
