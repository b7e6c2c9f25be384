# Shell functions for booting the builder appliance in QEMU and watching its console, shared by
# scripts/demo.sh and scripts/appliance-arches.sh (sourced, not run). They need KILN set and
# die() defined by the caller.

# boot_appliance PREFIX DATA PORT MEM LOG STATE: boots PREFIX-kernel and PREFIX-initrd.img with
# the node configuration folder DATA on a config drive, the raw disk image STATE as its state
# disk (made blank, sparse, 8 GiB, when missing) and the node's BuildKit port forwarded to
# 127.0.0.1:PORT; the console goes to LOG and reads what is written to fd 3 (open until the
# caller closes it). APPLIANCE_CPUS (default 1) sets the guest's virtual CPUs. Sets QEMU_PID.
boot_appliance() {
	local prefix=$1 data=$2 port=$3 mem=$4 log=$5 state=$6
	[[ -e $state ]] || truncate -s 8G "$state"
	rm -f "$log.in"
	mkfifo "$log.in"
	"$KILN" run qemu -cpus "${APPLIANCE_CPUS:-1}" -mem "$mem" -data "$data" -disk "$state,format=raw" -publish "127.0.0.1:$port:1234" \
		-cmdline-append kiln.console=shell "$prefix" <"$log.in" >"$log" 2>&1 &
	QEMU_PID=$!
	exec 3>"$log.in"
	CONSOLE_LOG=$log
}

# wait_for TEXT SECONDS: until the console says TEXT; dies with the console's end when QEMU
# ends first or the time runs out.
wait_for() {
	local deadline=$((SECONDS + $2))
	until grep -qF -- "$1" "$CONSOLE_LOG"; do
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			tail -30 "$CONSOLE_LOG" >&2
			die "QEMU ended before the console said: $1"
		fi
		((SECONDS < deadline)) || {
			tail -30 "$CONSOLE_LOG" >&2
			die "no \"$1\" on the console within $2 s"
		}
		sleep 1
	done
}

# power_off: types `kill -TERM 1` into the console shell and waits for QEMU to end.
power_off() {
	echo "kill -TERM 1" >&3
	wait_for "kiln-init: powering off" 180
	wait "$QEMU_PID" || die "QEMU ended badly (console in $CONSOLE_LOG)"
	QEMU_PID=
	exec 3>&-
}

# port_free PORT: dies when something listens on 127.0.0.1:PORT.
port_free() {
	if (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		die "something listens on 127.0.0.1:$1 already; pick another port"
	fi
}
