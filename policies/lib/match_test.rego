package portcullis.lib.match_test

import data.portcullis.lib.match

rule := {"route": "billing", "methods": ["GET"], "paths": ["/charges", "/charges/*", "/exports/**"]}

call(route, method, path) := {"route": route, "request": {"method": method, "path": path}}

test_exact_path if {
	match.call_matches(rule) with input as call("billing", "GET", "/charges")
}

test_star_matches_one_segment if {
	match.call_matches(rule) with input as call("billing", "GET", "/charges/ch_1")
}

test_star_does_not_match_deeper_paths if {
	not match.call_matches(rule) with input as call("billing", "GET", "/charges/ch_1/refunds")
}

test_double_star_matches_any_depth if {
	match.call_matches(rule) with input as call("billing", "GET", "/exports/2026/11/all.csv")
}

test_trailing_slash_is_a_different_path if {
	exact := {"route": "billing", "methods": ["GET"], "paths": ["/charges"]}
	not match.call_matches(exact) with input as call("billing", "GET", "/charges/")
}

# "*" may match an empty segment: "/charges/*" covers "/charges/" too.
test_star_matches_an_empty_segment if {
	match.call_matches(rule) with input as call("billing", "GET", "/charges/")
}

test_prefix_of_a_pattern_is_not_a_match if {
	not match.call_matches(rule) with input as call("billing", "GET", "/chargesheet")
}

test_other_route if {
	not match.call_matches(rule) with input as call("github", "GET", "/charges")
}

test_other_method if {
	not match.call_matches(rule) with input as call("billing", "DELETE", "/charges")
}

# Methods arrive upper-case from the gateway; data must use upper case too.
test_methods_are_case_sensitive if {
	not match.call_matches(rule) with input as call("billing", "get", "/charges")
}

test_missing_request if {
	not match.call_matches(rule) with input as {"route": "billing"}
}
