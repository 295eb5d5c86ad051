package portcullis.lib.routes_test

import data.portcullis.lib.routes

grants := [
	{"name": "github: read-only", "route": "github", "methods": ["GET", "HEAD"], "paths": ["/**"]},
	{"name": "billing: create charge", "route": "billing", "methods": ["POST"], "paths": ["/charges"]},
	{"name": "billing: any charge call", "route": "billing", "methods": ["GET", "POST"], "paths": ["/charges", "/charges/*"]},
]

call(route, method, path) := {"route": route, "request": {"method": method, "path": path}}

test_read_only_route_allows_get if {
	routes.allow == {"github: read-only"} with input as call("github", "GET", "/repos/acme/app/issues")
		with data.portcullis.config.routes as grants
}

test_read_only_route_allows_head_on_root if {
	routes.allow == {"github: read-only"} with input as call("github", "HEAD", "/")
		with data.portcullis.config.routes as grants
}

test_read_only_route_refuses_writes if {
	every method in ["POST", "PUT", "PATCH", "DELETE"] {
		count(routes.allow) == 0 with input as call("github", method, "/repos/acme/app/issues")
			with data.portcullis.config.routes as grants
	}
}

test_every_matching_grant_is_a_reason if {
	routes.allow == {"billing: create charge", "billing: any charge call"} with input as call("billing", "POST", "/charges")
		with data.portcullis.config.routes as grants
}

test_post_to_an_ungranted_path if {
	count(routes.allow) == 0 with input as call("billing", "POST", "/refunds")
		with data.portcullis.config.routes as grants
}

test_unknown_route if {
	count(routes.allow) == 0 with input as call("shell", "GET", "/")
		with data.portcullis.config.routes as grants
}

test_no_grants_configured_allows_nothing if {
	count(routes.allow) == 0 with input as call("github", "GET", "/")
		with data.portcullis.config as {}
}
