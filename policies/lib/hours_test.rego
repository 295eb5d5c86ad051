package portcullis.lib.hours_test

import data.portcullis.lib.hours

# New York: UTC-5 in winter (EST), UTC-4 in summer (EDT).
settings := {
	"routes": ["billing"],
	"timezone": "America/New_York",
	"days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
	"start": "08:00",
	"end": "18:00",
}

# 2026-11-23 is a Monday, 2026-11-21 a Saturday.
at(time) := {"route": "billing", "time": time, "request": {"method": "POST", "path": "/charges"}}

test_monday_midday if {
	count(hours.deny) == 0 with input as at("2026-11-23T17:00:00Z") # 12:00 EST
		with data.portcullis.config.business_hours as settings
}

test_opening_minute_is_in if {
	count(hours.deny) == 0 with input as at("2026-11-23T13:00:00Z") # 08:00 EST
		with data.portcullis.config.business_hours as settings
}

test_minute_before_opening_is_out if {
	hours.deny == {"outside business hours"} with input as at("2026-11-23T12:59:59Z") # 07:59:59 EST
		with data.portcullis.config.business_hours as settings
}

test_1759_is_in if {
	count(hours.deny) == 0 with input as at("2026-11-23T22:59:00Z") # 17:59 EST
		with data.portcullis.config.business_hours as settings
}

test_1800_is_out if {
	hours.deny == {"outside business hours"} with input as at("2026-11-23T23:00:00Z") # 18:00 EST
		with data.portcullis.config.business_hours as settings
}

test_saturday_is_out if {
	hours.deny == {"outside business hours"} with input as at("2026-11-21T17:00:00Z") # Sat 12:00 EST
		with data.portcullis.config.business_hours as settings
}

# Monday 02:00 UTC is still Sunday evening in New York.
test_weekday_is_taken_in_the_configured_zone if {
	hours.deny == {"outside business hours"} with input as at("2026-11-23T02:00:00Z")
		with data.portcullis.config.business_hours as settings
}

# 12:30 UTC is 07:30 in January (EST) but 08:30 in July (EDT).
test_daylight_saving_time if {
	hours.deny == {"outside business hours"} with input as at("2026-01-05T12:30:00Z")
		with data.portcullis.config.business_hours as settings
	count(hours.deny) == 0 with input as at("2026-07-06T12:30:00Z")
		with data.portcullis.config.business_hours as settings
}

test_time_with_offset if {
	count(hours.deny) == 0 with input as at("2026-11-23T09:15:00-05:00")
		with data.portcullis.config.business_hours as settings
}

test_missing_time if {
	hours.deny == {"request time missing or invalid"} with input as {"route": "billing"}
		with data.portcullis.config.business_hours as settings
}

test_invalid_time if {
	every time in ["yesterday", "2026-11-23 17:00:00", 1795539600] {
		hours.deny == {"request time missing or invalid"} with input as at(time)
			with data.portcullis.config.business_hours as settings
	}
}

test_unrestricted_route_at_night if {
	count(hours.deny) == 0 with input as {"route": "github", "time": "2026-11-21T03:00:00Z"}
		with data.portcullis.config.business_hours as settings
}

# A misconfigured window closes the route rather than opening it.
test_bad_configuration_fails_closed if {
	every broken in [
		object.union(settings, {"start": "8am"}),
		object.union(settings, {"timezone": "Mars/Olympus_Mons"}),
		object.remove(settings, ["days"]),
	] {
		hours.deny == {"outside business hours"} with input as at("2026-11-23T17:00:00Z")
			with data.portcullis.config.business_hours as broken
	}
}
