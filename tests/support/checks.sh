# Counting checks for the shell tests (sourced): ok/bad record a result,
# check NAME CMD... runs CMD and records whether it succeeded.
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
