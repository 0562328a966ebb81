# bench/perf-attr.awk: reads `perf script -F ip,sym,dso` of a call-graph
# profile (perf record --call-graph dwarf) and charges each sample to the
# innermost function of the program on its stack (-v bin=REGEX matching the
# program's "(path)"), so the library calls a function makes count for it:
#   SHARE  FUNCTION  (in HOTTEST-CALLEE SHARE)
# Used by scripts/bench-pcap; unsorted (sort -rn).
function flush(   i, j, own, d, leaf) {
	if (!n)
		return
	total++
	# an inlined frame belongs to the next frame at the same address, else
	# (perf dropped that frame) to the library of the frame it called
	for (i = n - 1; i >= 0; i--)
		if (dso[i] == "(inlined)")
			dso[i] = (i + 1 < n && ip[i + 1] == ip[i]) ? dso[i + 1] : (i > 0 ? dso[i - 1] : "?")
	own = ""
	for (i = 0; i < n; i++)
		if (dso[i] ~ bin) { own = sym[i]; break }
	if (own == "")
		own = "[outside mtlsdiag: " (dso[0] ~ /kernel/ ? "kernel" : sym[0]) "]"
	cnt[own]++
	leaf = (i < n && i > 0) ? sym[0] : ""
	if (leaf != "")
		callee[own SUBSEP leaf]++
	n = 0
}
/^[ \t]*$/ { flush(); next }
{
	s = $2; sub(/\+0x[0-9a-f]+$/, "", s)
	if (s == "[unknown]" && $NF != "(inlined)") {
		s = $NF; gsub(/^[(]|[)]$/, "", s); sub(/.*\//, "", s); s = "[" s "]"
	}
	ip[n] = $1; sym[n] = s; dso[n] = $NF; n++
}
END {
	flush()
	for (k in callee) {
		split(k, p, SUBSEP)
		if (callee[k] > best[p[1]]) { best[p[1]] = callee[k]; bestname[p[1]] = p[2] }
	}
	for (f in cnt)
		printf "%6.2f%%  %-32s %s\n", 100 * cnt[f] / total, f,
			(f in best) ? sprintf("(in %s %.1f%%)", bestname[f], 100 * best[f] / total) : ""
}
