# Constraints on what a granted call may carry: numeric limits on body fields,
# read-only SQL, and paths confined under a prefix. Each constraint is keyed in
# data.portcullis.config.arguments by the same route/methods/paths shape as the
# route grants (see match.rego), so it applies exactly where it is written.
#
# Two habits keep these rules from failing open; copy them when you add one.
#
# 1. Deny unless the value is provably fine; never "deny if the value is bad".
#    A missing field makes a comparison undefined rather than false, so
#    `deny if input.request.body.amount > 500` would allow a call with no
#    amount, with "amount": "9999", or with a typo in the limit in data.json.
#
# 2. Put the check behind `not` in a helper that takes only values known to
#    exist (the rule from data), and read the input inside the helper. The
#    compiler evaluates refs passed as arguments (to a function, `<=`, `in`)
#    BEFORE the `not`: in `not is_number(input.request.body.amount)` a missing
#    body makes the whole line undefined, so the deny does not fire.
package portcullis.lib.arguments

import data.portcullis.config
import data.portcullis.lib.match

# --- Numeric limits ---------------------------------------------------------
# {"route", "methods", "paths", "field": "amount", "min": 0, "max": 500}:
# body[field] must be a JSON number with min <= value <= max (both inclusive).
# A numeric string such as "120" is refused, not converted.

deny contains concat("", ["body.", rule.field, " missing or not a number"]) if {
	some rule in config.arguments.numeric_limits
	match.call_matches(rule)
	not is_number_field(rule)
}

deny contains concat("", ["body.", rule.field, " over limit"]) if {
	some rule in config.arguments.numeric_limits
	match.call_matches(rule)
	is_number_field(rule)
	not at_most_max(rule)
}

deny contains concat("", ["body.", rule.field, " below minimum"]) if {
	some rule in config.arguments.numeric_limits
	match.call_matches(rule)
	is_number_field(rule)
	not at_least_min(rule)
}

is_number_field(rule) if is_number(input.request.body[rule.field])

# Undefined, and so a deny, when the rule has no "max" (or "min").
at_most_max(rule) if input.request.body[rule.field] <= rule.max

at_least_min(rule) if rule.min <= input.request.body[rule.field]

# --- Read-only SQL ----------------------------------------------------------
# {"route", "methods", "paths", "field": "query"}: body[field] must be a single
# SELECT statement.
#
# Be clear about what this is: a coarse, regex-based guard against the obvious
# (a second statement after ";", INSERT/UPDATE/DELETE/DDL, SELECT ... INTO or
# FOR UPDATE). It is not a SQL parser. It does not see the side effects of
# functions a SELECT can call (pg_terminate_backend, dblink, lo_import, ...),
# and it refuses some honest queries (a ";" or the word "delete" inside a
# string literal, a leading comment). The real control is a read-only
# database role or a read replica behind the route; this rule makes the intent
# visible in the audit log and stops an agent's mistakes before they reach the
# database.

deny contains "sql query missing or not a string" if {
	some rule in config.arguments.read_only_sql
	match.call_matches(rule)
	not is_string_field(rule)
}

deny contains "sql query is not a single read-only select" if {
	some rule in config.arguments.read_only_sql
	match.call_matches(rule)
	is_string_field(rule)
	not read_only_select(rule)
}

is_string_field(rule) if is_string(input.request.body[rule.field])

read_only_select(rule) if {
	query := input.request.body[rule.field]

	# SQL keywords are case-insensitive: "select" is as good as "SELECT".
	regex.match(`^\s*(?i:select)\b`, query)

	# One statement only: a ";" may end the query but nothing may follow it.
	not regex.match(`;\s*\S`, query)

	not regex.match(write_keywords, query)
}

# Words that write, lock, or run something else, anywhere in the query.
write_keywords := `(?i)\b(insert|update|delete|merge|upsert|drop|alter|create|truncate|grant|revoke|into|copy|call|exec|execute|lock|attach|pragma)\b`

# --- Paths under a prefix ---------------------------------------------------
# {"<route>": ["/reports/", ...]}: every call on the route must have a path
# that starts with one of the prefixes (end a prefix with "/" so that
# "/reports-private" does not pass as "/reports"). The gateway already refuses
# dot segments; these checks repeat that on purpose, because a file server is
# where a traversal does its damage, and because a policy copied to another
# gateway should not rely on it.

deny contains "path outside allowed prefix" if {
	config.arguments.path_prefixes[input.route]
	not under_allowed_prefix
}

# Stricter than dot segments: ".." anywhere, "a..b" included, is refused.
deny contains "path traversal" if {
	config.arguments.path_prefixes[input.route]
	contains(input.request.path, "..")
}

# Non-empty segments of letters, digits, ".", "_" and "-" only: no "//", no
# percent-escapes (nothing for the file server to decode a second time), no
# ";", "\" or spaces. File names outside that set need a different rule.
deny contains "path has unsafe characters" if {
	config.arguments.path_prefixes[input.route]
	not safe_path
}

under_allowed_prefix if {
	some prefix in config.arguments.path_prefixes[input.route]
	startswith(input.request.path, prefix)
}

safe_path if regex.match(`^(/[A-Za-z0-9._-]+)+/?$`, input.request.path)
