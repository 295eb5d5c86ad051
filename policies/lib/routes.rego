# Route grants: the only source of "allow" in the library. A grant in
# data.portcullis.config.routes names a route, the methods and the path
# patterns it opens; everything not granted stays denied.
#
# The reason for an allow is the grant's name, so the audit log says which
# grant let each call through. Keep names short and stable: they are what an
# auditor searches for.
package portcullis.lib.routes

import data.portcullis.config
import data.portcullis.lib.agents
import data.portcullis.lib.match

# Only the grants the calling agent may use (agents.rego: a profile's "grants").
allow contains grant.name if {
	some grant in config.routes
	match.call_matches(grant)
	not input.mcp # MCP routes are granted by tool, prompt and resource (mcp.rego), never by path
	agents.may_use(grant.name)
}
