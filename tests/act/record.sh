# Shared by the stand-ins of tests/act, in bash so that a recorded call costs milliseconds: JSON
# encoding (results in $REPLY, no subshell) and one record per call appended to $RECORD_LOG.

# json_string TEXT: TEXT as a JSON string. A control character other than \n \t \r leaves the
# line invalid JSON, and the test reading it fails loudly.
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    printf -v REPLY '"%s"' "$s"
}

# json_array ITEM...: the items as a JSON array of strings.
json_array() {
    local item items="" separator=""
    for item in "$@"; do
        json_string "$item"
        items+="$separator$REPLY"
        separator=", "
    done
    REPLY="[$items]"
}

# record KIND FIELDS: append {"kind": KIND, "job": $GITHUB_JOB, FIELDS} to $RECORD_LOG, FIELDS
# being JSON already (`"key": value, ...`).
record() {
    local kind job
    json_string "$1" && kind=$REPLY
    json_string "${GITHUB_JOB:-}" && job=$REPLY
    printf '{"kind": %s, "job": %s, %s}\n' "$kind" "$job" "$2" >>"$RECORD_LOG"
}
