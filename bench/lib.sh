# Shell functions shared by the benchmark scripts (sourced, not run).

# busy_jiffies prints the non-idle CPU time of the machine in clock ticks.
busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
hz=$(getconf CLK_TCK)

# wait_quiet waits until other processes use < 0.2 CPUs (1 s samples), at
# most QUIET_WAIT seconds.
wait_quiet() {
	local deadline=$((SECONDS + QUIET_WAIT)) a b
	while :; do
		a=$(busy_jiffies)
		sleep 1
		b=$(busy_jiffies)
		if [ $((b - a)) -lt $((hz / 5)) ] || [ $SECONDS -ge $deadline ]; then
			return
		fi
	done
}
