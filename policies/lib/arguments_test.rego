package portcullis.lib.arguments_test

import data.portcullis.lib.arguments

settings := {
	"numeric_limits": [{
		"route": "billing", "methods": ["POST"], "paths": ["/charges"],
		"field": "amount", "min": 0, "max": 500,
	}],
	"read_only_sql": [{"route": "db", "methods": ["POST"], "paths": ["/query"], "field": "query"}],
	"path_prefixes": {"files": ["/reports/"]},
}

charge(body) := {"route": "billing", "request": {"method": "POST", "path": "/charges", "body": body}}

query(sql) := {"route": "db", "request": {"method": "POST", "path": "/query", "body": {"query": sql}}}

read(path) := {"route": "files", "request": {"method": "GET", "path": path}}

# --- Numeric limits ---

test_amount_within_limit if {
	count(arguments.deny) == 0 with input as charge({"amount": 120})
		with data.portcullis.config.arguments as settings
}

test_amount_at_limit_is_allowed if {
	count(arguments.deny) == 0 with input as charge({"amount": 500})
		with data.portcullis.config.arguments as settings
}

test_amount_just_over_limit if {
	arguments.deny == {"body.amount over limit"} with input as charge({"amount": 500.01})
		with data.portcullis.config.arguments as settings
}

test_amount_zero_is_allowed if {
	count(arguments.deny) == 0 with input as charge({"amount": 0})
		with data.portcullis.config.arguments as settings
}

test_negative_amount if {
	arguments.deny == {"body.amount below minimum"} with input as charge({"amount": -1})
		with data.portcullis.config.arguments as settings
}

test_missing_amount if {
	arguments.deny == {"body.amount missing or not a number"} with input as charge({"currency": "usd"})
		with data.portcullis.config.arguments as settings
}

test_string_amount if {
	arguments.deny == {"body.amount missing or not a number"} with input as charge({"amount": "120"})
		with data.portcullis.config.arguments as settings
}

test_null_amount if {
	arguments.deny == {"body.amount missing or not a number"} with input as charge({"amount": null})
		with data.portcullis.config.arguments as settings
}

# The gateway omits body when the request body is not JSON.
test_no_body if {
	arguments.deny == {"body.amount missing or not a number"} with input as {"route": "billing", "request": {"method": "POST", "path": "/charges"}}
		with data.portcullis.config.arguments as settings
}

test_body_not_an_object if {
	arguments.deny == {"body.amount missing or not a number"} with input as charge([500])
		with data.portcullis.config.arguments as settings
}

# A limit without "max" in data refuses every charge instead of allowing all.
test_limit_without_max_fails_closed if {
	broken := object.remove(settings.numeric_limits[0], ["max"])
	arguments.deny == {"body.amount over limit"} with input as charge({"amount": 1})
		with data.portcullis.config.arguments.numeric_limits as [broken]
}

test_limit_only_applies_where_configured if {
	count(arguments.deny) == 0 with input as {"route": "billing", "request": {"method": "GET", "path": "/charges"}}
		with data.portcullis.config.arguments as settings
}

# --- Read-only SQL ---

test_select if {
	count(arguments.deny) == 0 with input as query("SELECT id, total FROM orders WHERE id = 7")
		with data.portcullis.config.arguments as settings
}

test_lowercase_select if {
	count(arguments.deny) == 0 with input as query("select count(*) from orders")
		with data.portcullis.config.arguments as settings
}

test_leading_whitespace_and_trailing_semicolon if {
	count(arguments.deny) == 0 with input as query("\n  SELECT 1;  \n")
		with data.portcullis.config.arguments as settings
}

test_column_names_containing_keywords_are_fine if {
	count(arguments.deny) == 0 with input as query("SELECT updated_at, created_by FROM orders")
		with data.portcullis.config.arguments as settings
}

test_second_statement if {
	arguments.deny == {"sql query is not a single read-only select"} with input as query("SELECT 1; DROP TABLE orders")
		with data.portcullis.config.arguments as settings
}

test_second_statement_without_space if {
	arguments.deny == {"sql query is not a single read-only select"} with input as query("select 1;drop table orders")
		with data.portcullis.config.arguments as settings
}

# Caught by the ";" check alone: no write keyword in either statement.
test_second_select if {
	arguments.deny == {"sql query is not a single read-only select"} with input as query("SELECT 1; SELECT pg_sleep(60)")
		with data.portcullis.config.arguments as settings
}

test_not_a_select if {
	every sql in [
		"DELETE FROM orders",
		"UPDATE orders SET total = 0",
		"INSERT INTO orders VALUES (1)",
		"DROP TABLE orders",
		"WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
		"EXPLAIN ANALYZE DELETE FROM orders",
		"selectx FROM orders",
		"",
	] {
		arguments.deny == {"sql query is not a single read-only select"} with input as query(sql)
			with data.portcullis.config.arguments as settings
	}
}

test_select_that_writes_or_locks if {
	every sql in [
		"SELECT * INTO backup FROM orders",
		"SELECT * FROM orders FOR UPDATE",
		"select * from orders where id in (delete from orders returning id)",
	] {
		arguments.deny == {"sql query is not a single read-only select"} with input as query(sql)
			with data.portcullis.config.arguments as settings
	}
}

test_query_missing if {
	arguments.deny == {"sql query missing or not a string"} with input as {"route": "db", "request": {"method": "POST", "path": "/query", "body": {}}}
		with data.portcullis.config.arguments as settings
}

test_query_not_a_string if {
	arguments.deny == {"sql query missing or not a string"} with input as query(["SELECT 1"])
		with data.portcullis.config.arguments as settings
}

# --- Paths under a prefix ---

test_path_under_prefix if {
	count(arguments.deny) == 0 with input as read("/reports/2026/q3-summary.csv")
		with data.portcullis.config.arguments as settings
}

test_path_outside_prefix if {
	arguments.deny == {"path outside allowed prefix"} with input as read("/secrets/api-keys.txt")
		with data.portcullis.config.arguments as settings
}

test_prefix_is_not_a_string_prefix_of_a_sibling if {
	arguments.deny == {"path outside allowed prefix"} with input as read("/reports-private/x.csv")
		with data.portcullis.config.arguments as settings
}

test_prefix_itself_without_slash if {
	arguments.deny == {"path outside allowed prefix"} with input as read("/reports")
		with data.portcullis.config.arguments as settings
}

test_dot_dot_segment if {
	arguments.deny == {"path traversal"} with input as read("/reports/../secrets/api-keys.txt")
		with data.portcullis.config.arguments as settings
}

test_dot_dot_inside_a_name if {
	arguments.deny == {"path traversal"} with input as read("/reports/q3..csv")
		with data.portcullis.config.arguments as settings
}

test_dot_dot_with_path_parameter if {
	arguments.deny == {"path traversal", "path has unsafe characters"} with input as read("/reports/..;x/secrets")
		with data.portcullis.config.arguments as settings
}

test_unsafe_characters if {
	every path in [
		"/reports//etc/passwd",
		"/reports/%2e%2e/secrets",
		"/reports/a\\b",
		"/reports/q3 summary.csv",
		"/reports/a;b",
	] {
		arguments.deny == {"path has unsafe characters"} with input as read(path)
			with data.portcullis.config.arguments as settings
	}
}

test_missing_path if {
	arguments.deny == {"path outside allowed prefix", "path has unsafe characters"} with input as {"route": "files", "request": {"method": "GET"}}
		with data.portcullis.config.arguments as settings
}

test_prefix_rule_only_on_its_route if {
	count(arguments.deny) == 0 with input as {"route": "github", "request": {"method": "GET", "path": "/repos/acme/app"}}
		with data.portcullis.config.arguments as settings
}
