# Matching a call against a rule from data.json. Every module reads "route,
# methods, paths" through this one function, so a CISO learns one shape:
#
#   {"route": "billing", "methods": ["POST"], "paths": ["/charges"]}
#
# Paths are glob patterns with "/" as the separator: "*" matches exactly one
# path segment and "**" any number of them, so "/charges/*" matches
# "/charges/ch_1" (and "/charges/") but not "/charges/ch_1/refunds". The gateway canonicalises the
# path before the policy sees it (dot segments, "//", encoded "/" and ";" are
# refused outright), so a pattern is matched against exactly what is forwarded.
package portcullis.lib.match

# call_matches(rule) holds when the call is on rule.route, uses one of
# rule.methods (upper-case) and its path matches one of rule.paths.
call_matches(rule) if {
	input.route == rule.route
	input.request.method in rule.methods
	some pattern in rule.paths
	glob.match(pattern, ["/"], input.request.path)
}
