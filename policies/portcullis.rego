# The entrypoint the gateway evaluates for every tool call: portcullis/decision.
#
# Allow only when a route grant matches the call AND no module vetoes it.
# Anything else is a deny, and so is an error or an undefined result in the
# gateway, so a policy that cannot decide never lets a call through.
#
# The modules under lib/ own the rules; this file only combines them. To add a
# module, write it with `deny contains reason if { ... }` and add it to `deny`
# below: that one line is what a reviewer needs to see.
package portcullis

import data.portcullis.lib.agents
import data.portcullis.lib.arguments
import data.portcullis.lib.credentials
import data.portcullis.lib.hours
import data.portcullis.lib.mcp
import data.portcullis.lib.routes

# Reasons to allow: the names of the route grants (REST) and MCP grants that match the call.
allow := routes.allow | mcp.allow

# Reasons to deny, from every module that can veto a call.
deny := (((agents.deny | arguments.deny) | hours.deny) | mcp.deny) | credentials.deny

# The answer the gateway reads: {"allow": bool, "reasons": [string, ...]},
# plus "credential" when the allowing grant names one (lib/credentials.rego),
# and "mask" for MCP calls whose arguments must not be recorded.
# Reasons are sorted so that the same call always gets the same audit record.
# With nothing matching at all, the default explains itself rather than
# returning an empty list.
default verdict := {"allow": false, "reasons": ["no rule allows this call"]}

verdict := object.union({"allow": true, "reasons": sort(allow)}, credentials.field) if {
	count(allow) > 0
	count(deny) == 0
} else := {"allow": false, "reasons": sort(deny)} if {
	count(deny) > 0
}

# MCP calls also carry the JSON pointers to erase from the audit record, on
# allow and deny alike (a denied call's arguments are recorded too).
decision := object.union(verdict, {"mask": mcp.mask}) if count(mcp.mask) > 0

else := verdict
