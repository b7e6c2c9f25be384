# replace_between DOC BEGIN END FILE: replaces the lines between the marker lines BEGIN and END
# of DOC (kept) with FILE's lines. Sourced by the scripts that write measured tables into the
# docs (bootbench.sh, appliance-arches.sh); fails when DOC lacks either marker.
replace_between() {
	local doc=$1 begin=$2 end=$3 file=$4
	grep -qxF "$begin" "$doc" && grep -qxF "$end" "$doc" || {
		echo "$doc has no markers $begin ... $end" >&2
		return 1
	}
	awk -v b="$begin" -v e="$end" -v t="$file" '
		$0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$doc" >"$doc.new"
	mv "$doc.new" "$doc"
}
