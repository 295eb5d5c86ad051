# The benchmark's policy: small, but it does the work a real one does on every call. It
# checks the agent, the route, the method and the path, and for a POST a field of the JSON
# body. Deny by default, so a mistake in the benchmark shows up as non-2xx answers rather
# than as fast numbers.
package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

decision := {"allow": true, "reasons": ["bench-bot reads items"]} if {
	bench_call("GET")
	startswith(input.request.path, "/items")
}

decision := {"allow": true, "reasons": ["bench-bot writes a note"]} if {
	bench_call("POST")
	input.request.path == "/items"
	input.request.body.kind == "note"
	is_string(input.request.body.text)
}

# The REST route, and the credential workloads' routes to the same upstream path (one per
# credential type, bench/gateway.ts): the same rules for all, so they cost the same to judge.
bench_routes := {"bench", "bench-oauth", "bench-exchange", "bench-sigv4"}

bench_call(method) if {
	input.route in bench_routes
	input.agent.id == "bench-bot"
	input.request.method == method
}
